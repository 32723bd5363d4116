"""What every user command shares: --api/--key/--json, the client, errors, tables and JSON output."""
from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from deepclust.app.client import DEFAULT_URL, DeepclustError, Client

out = Console(soft_wrap=True)                # tables and results
err = Console(stderr=True, soft_wrap=True)   # messages, errors and progress bars

Api = Annotated[str, typer.Option("--api", envvar="DEEPCLUST_API", help="Base URL of the deepclust API.",
                                  rich_help_panel="Server")]
Key = Annotated[Optional[str], typer.Option("--key", envvar="DEEPCLUST_KEY", show_default=False,
                                            help="API key (`deepclust keys create`); not needed on 127.0.0.1 "
                                                 "with the embedded defaults.", rich_help_panel="Server")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the API's JSON instead of a table (for scripts).")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
API_DEFAULT = DEFAULT_URL


def connect(api: str, key: str | None) -> Client:
    return Client(api, key=key or None)


def reports_errors(func: Callable) -> Callable:
    """An API error becomes one line on stderr and exit status 1, not a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except DeepclustError as exc:
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
          title: str | None = None) -> Table:
    """A table of ``rows``; a column is a key, or (header, function of the row)."""
    t = Table(title=title, show_edge=False, header_style="bold")
    headers, getters = [], []
    for column in columns:
        header, get = (column, lambda row, c=column: row.get(c)) if isinstance(column, str) else column
        headers.append(header)
        getters.append(get)
    cells = [[cell(get(row)) for get in getters] for row in rows]
    for i, header in enumerate(headers):
        # Ids are what people copy into the next command: never cut or wrapped.
        whole = header == "id" or header.endswith("_id")
        t.add_column(header, no_wrap=whole, min_width=max((len(r[i]) for r in cells), default=0) if whole else None)
    for row in cells:
        t.add_row(*row)
    return t


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
    if as_json:
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
