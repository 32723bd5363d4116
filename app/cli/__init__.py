"""`deepclust`: the user's commands, which talk to a server over HTTP (datasets, jobs, labels,
predict, methods, models), beside the operator's (serve, worker, migrate, keys).

    deepclust datasets upload digits.csv --label-column digit
    deepclust jobs start DATASET -m dec -k 10 --pretrain epochs=50 --wait
    deepclust labels JOB -o labels.csv

The server is ``--api`` / ``$DEEPCLUST_API`` (default http://127.0.0.1:8000) and the key
``--key`` / ``$DEEPCLUST_KEY``; ``--json`` prints the API's JSON for scripts. The three go
before the subcommand (``deepclust --api URL jobs list``) or after it.
"""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Optional

import typer

from deepclust.app.cli import admin, datasets, encoders, helpstyle, jobs, models, predictions, sweeps
from deepclust.app.cli.common import GIVEN

helpstyle.install()

app = typer.Typer(name="deepclust", help="Deep clustering as a service: the server, and a client for it.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  context_settings={"help_option_names": ["-h", "--help"]})


def package_version() -> str:
    try:
        return version("deepclust")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"deepclust {package_version()}")
        raise typer.Exit()


@app.callback()
def root(_version: Annotated[Optional[bool], typer.Option("--version", callback=_print_version, is_eager=True,
                                                         help="Print the version and exit.")] = None,
         api: Annotated[Optional[str], typer.Option("--api", metavar="URL", show_default=False,
                                                    help="Base URL of the deepclust API, for every command "
                                                         "($DEEPCLUST_API; default http://127.0.0.1:8000).")] = None,
         key: Annotated[Optional[str], typer.Option("--key", metavar="KEY", show_default=False,
                                                    help="API key, for every command ($DEEPCLUST_KEY).")] = None,
         as_json: Annotated[bool, typer.Option("--json", help="JSON output (and JSON errors) for every "
                                                              "command.")] = False) -> None:
    GIVEN.clear()  # a new invocation (in tests, several run in one process)
    GIVEN.update({k: v for k, v in {"api": api, "key": key, "json": as_json}.items() if v})


USER, ADMIN = "Using a server", "Running the server"
app.add_typer(datasets.app, name="datasets", rich_help_panel=USER)
app.add_typer(jobs.app, name="jobs", rich_help_panel=USER)
app.add_typer(sweeps.app, name="sweeps", rich_help_panel=USER)
app.command("labels", rich_help_panel=USER)(jobs.labels)
app.command("predict", rich_help_panel=USER)(models.predict)
app.command("methods", rich_help_panel=USER)(models.methods)
app.add_typer(models.app, name="models", rich_help_panel=USER)
app.add_typer(predictions.app, name="predictions", rich_help_panel=USER)
app.add_typer(encoders.app, name="encoders", rich_help_panel=USER)
app.command("serve", rich_help_panel=ADMIN)(admin.serve)
app.command("worker", rich_help_panel=ADMIN)(admin.worker)
app.command("migrate", rich_help_panel=ADMIN)(admin.migrate)
app.add_typer(admin.keys, name="keys", rich_help_panel=ADMIN)


def main() -> None:
    app()
