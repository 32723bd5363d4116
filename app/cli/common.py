"""What every user command shares: --api/--key/--json, the client, errors, tables and JSON output."""
from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Annotated, Any, Optional

import httpx
import typer
from rich.console import Console
from rich.table import Table

from deepclust.app.client import DEFAULT_URL, DeepclustError, Client

out = Console(soft_wrap=True)                # tables and results
err = Console(stderr=True, soft_wrap=True)   # messages, errors and progress bars

# --api, --key and --json are taken before the subcommand (the root callback, which runs first on
# every invocation, leaves them in GIVEN) or after it (each command's own options); the command's
# own win, then the root's, then $DEEPCLUST_API / $DEEPCLUST_KEY, then the defaults.
GIVEN: dict[str, Any] = {}
Api = Annotated[Optional[str], typer.Option("--api", metavar="URL", show_default=False,
                                            help=f"Base URL of the deepclust API ($DEEPCLUST_API; default "
                                                 f"{DEFAULT_URL}).", rich_help_panel="Server")]
Key = Annotated[Optional[str], typer.Option("--key", metavar="KEY", show_default=False,
                                            help="API key ($DEEPCLUST_KEY; `deepclust keys create`); not needed on "
                                                 "127.0.0.1 with the embedded defaults.", rich_help_panel="Server")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the API's JSON instead of a table (for scripts); "
                                                     "errors too, as {\"error\": {code, message, details}}.")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
API_DEFAULT = None
AUTH_HEADER = "x-deepclust-auth"  # "disabled" on every answer of a server with auth off


def global_options() -> dict:
    """What was given before the subcommand: {"api", "key", "json"} (absent when not given)."""
    return GIVEN


def wants_json(as_json: bool = False) -> bool:
    return bool(as_json or global_options().get("json"))


def connect(api: str | None, key: str | None) -> Client:
    given = global_options()
    url = api or given.get("api") or os.environ.get("DEEPCLUST_API") or DEFAULT_URL
    key = key or given.get("key") or os.environ.get("DEEPCLUST_KEY") or None
    client = Client(url, key=key)
    if key:
        warned = []

        def warn_auth_off(response: httpx.Response) -> None:
            if not warned and response.headers.get(AUTH_HEADER) == "disabled":
                warned.append(True)
                err.print(f"[yellow]warning:[/] the server at {url} runs with authentication disabled: the API "
                          "key is not checked (anyone who can reach it has access)", highlight=False)

        client._http.event_hooks["response"].append(warn_auth_off)
    return client


def reports_errors(func: Callable) -> Callable:
    """An API error becomes one line on stderr (or, under --json, ``{"error": {...}}`` on stdout)
    and exit status 1, not a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except DeepclustError as exc:
            if wants_json(kwargs.get("as_json", False)):
                print_json({"error": {"code": exc.code, "message": exc.message, "details": exc.details}})
            else:
                where = f" ({exc.status} {exc.code})" if exc.status else ""
                err.print(f"[red]error{where}:[/] {exc.message}", highlight=False)
            raise typer.Exit(1) from None

    return wrapper


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    text = str(value)
    if len(text) > 25 and text[:4].isdigit() and "T" in text:  # an ISO timestamp: to the second
        return text[:19].replace("T", " ")
    return text


def table(rows: Iterable[dict], columns: Sequence[str | tuple[str, Callable[[dict], Any]]],
          title: str | None = None, *, drop: Sequence[str] = ()) -> Table:
    """A table of ``rows``; a column is a key, or (header, function of the row).

    Ids are never cut or wrapped (people copy them into the next command) and no column is
    squeezed below its header: when the table is wider than the terminal, the columns named in
    ``drop`` go first, in that order, until it fits; what is left wraps."""
    headers, getters = [], []
    for column in columns:
        header, get = (column, lambda row, c=column: row.get(c)) if isinstance(column, str) else column
        headers.append(header)
        getters.append(get)
    cells = [[cell(get(row)) for get in getters] for row in rows]
    widths = [max([len(header), *(len(r[i]) for r in cells)]) for i, header in enumerate(headers)]
    keep = list(range(len(headers)))
    for name in drop:
        if _width([widths[i] for i in keep]) <= out.width:
            break
        keep = [i for i in keep if headers[i] != name]
    t = Table(title=title, show_edge=False, header_style="bold")
    for i in keep:
        whole = headers[i] == "id" or headers[i].endswith("_id")
        t.add_column(headers[i], no_wrap=whole, overflow="fold",
                     min_width=widths[i] if whole else min(widths[i], max(len(headers[i]), 3)))
    for row in cells:
        t.add_row(*(row[i] for i in keep))
    return t


def _width(widths: Sequence[int]) -> int:
    """A table's width without edges: each column padded by one on each side, a rule between two."""
    return sum(w + 2 for w in widths) + max(len(widths) - 1, 0)


def fields(resource: dict, keys: Sequence[str] | None = None) -> Table:
    """One resource as a two-column table of its fields."""
    t = Table(show_header=False, show_edge=False, box=None, pad_edge=False)
    t.add_column(style="bold")
    t.add_column()
    for key in keys or resource:
        if key in resource:
            t.add_row(key, cell(resource[key]))
    return t


def emit(data: Any, as_json: bool, human: Callable[[], Any]) -> None:
    """JSON on stdout for scripts, else what ``human()`` renders."""
    if wants_json(as_json):
        print_json(data)
    else:
        rendered = human()
        if rendered is not None:
            out.print(rendered)


def parse_assignments(pairs: list[str] | None, option: str) -> dict[str, Any]:
    """``["maxiter=1500", "hidden_dims=[128,128]"]`` -> a dict; values are JSON, else strings."""
    result: dict[str, Any] = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise typer.BadParameter(f"{pair!r} is not KEY=VALUE (e.g. maxiter=1500)", param_hint=option)
        try:
            result[name.strip()] = json.loads(value)
        except json.JSONDecodeError:
            result[name.strip()] = value
    return result
