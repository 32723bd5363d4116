"""`deepclust sweeps start | list | show | cancel | plot`: choosing K (and restarts) without labels."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from deepclust.app.cli.common import (
    API_DEFAULT,
    Api,
    AsJson,
    Key,
    connect,
    emit,
    err,
    fields,
    out,
    parse_assignments,
    print_json,
    reports_errors,
    table,
    wants_json,
)
from deepclust.app.client import Client, Sweep
from deepclust.app.client.progress import sweep_detail

app = typer.Typer(help="Sweeps: one job per K and seed, then the K recommended without labels.",
                  no_args_is_help=True)

LIST_COLUMNS = ("id", "name", "method", ("K", lambda s: k_values(s["n_clusters"])),
                ("seeds", lambda s: len(s["seeds"])), "status",
                ("jobs", lambda s: f"{_done(s)}/{s['progress']['total']}"),
                ("best K", lambda s: ((s.get("result") or {}).get("recommended") or {}).get("n_clusters")),
                "dataset_id", "created_at")
LIST_DROP = ("created_at", "dataset_id", "name", "seeds")
SHOWN = ("id", "name", "dataset_id", "method", "n_clusters", "seeds", "selection", "params", "pretrain", "status",
         "detail", "error", "created_at", "finished_at")


def _done(sweep: dict) -> int:
    p = sweep["progress"]
    return p["succeeded"] + p["failed"] + p["cancelled"]


def k_values(ks: list[int]) -> str:
    """``2-10`` for a run of K's, else ``2,4,8``."""
    if len(ks) > 2 and ks == list(range(ks[0], ks[-1] + 1)):
        return f"{ks[0]}-{ks[-1]}"
    return ",".join(map(str, ks))


def parse_ks(text: str) -> Any:
    """``5-15`` (a range, both ends in), ``5-15:2`` (with a step), ``5,8,10`` or ``10``."""
    try:
        if "-" in text:
            bounds, _, step = text.partition(":")
            low, high = (int(v) for v in bounds.split("-", 1))
            return {"min": low, "max": high, "step": int(step or 1)}
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not K's: write 5-15, 5-15:2, 5,8,10 or 10",
                                 param_hint="--n-clusters") from None
    return values[0] if len(values) == 1 else values


def result_rows(sweep: dict) -> tuple[list[dict], list]:
    """The result table with the selection criterion, the external metrics when there, and a mark
    on the chosen run."""
    rows = (sweep.get("result") or {}).get("table") or []
    criterion = sweep["selection"]
    columns: list = [("K", lambda r: r["n_clusters"]), "seed", criterion]
    columns += [c for c in ("silhouette", "stability") if c != criterion and any(c in r for r in rows)]
    columns += [c for c in ("acc", "nmi") if any(c in r for r in rows)]
    columns += [("chosen", lambda r: "◀" if r.get("selected") else ""), "job_id"]
    return rows, columns


def show_result(sweep: dict) -> None:
    rows, columns = result_rows(sweep)
    if rows:
        out.print(table(rows, columns, drop=("stability", "silhouette", "nmi")))
    recommended = (sweep.get("result") or {}).get("recommended")
    if recommended:
        out.print(f"recommended: K={recommended['n_clusters']} (seed {recommended['seed']}), job "
                  f"{recommended['job_id']}, model {recommended['model_id']}", highlight=False)


def follow(client: Client, sweep: Sweep) -> dict:
    """The live bar over its jobs until the sweep ends; Ctrl-C offers to cancel it on the server."""
    try:
        return sweep.wait(progress=True, console=err)
    except KeyboardInterrupt:
        err.print()
        if typer.confirm(f"Cancel sweep {sweep.id} (every job not yet ended) on the server?", default=False,
                         err=True):
            sweep.cancel()
            err.print(f"sweep {sweep.id}: cancel requested; running jobs stop within an epoch")
        else:
            err.print(f"sweep {sweep.id} keeps running; see it with: deepclust sweeps show {sweep.id}")
        raise typer.Exit(130) from None


def summarize(sweep: dict) -> int:
    """How the sweep ended, on stderr, its table on stdout; the exit status: 0 when it succeeded."""
    if sweep["status"] == "succeeded":
        err.print(f"[green]sweep {sweep['id']} succeeded[/]: {sweep_detail(sweep)}", highlight=False)
        show_result(sweep)
        return 0
    color = "red" if sweep["status"] == "failed" else "yellow"
    err.print(f"[{color}]sweep {sweep['id']} {sweep['status']}[/]: {sweep_detail(sweep)}\n"
              f"  its jobs: deepclust jobs list --sweep {sweep['id']}", highlight=False)
    return 1


@app.command("start")
@reports_errors
def start(dataset_id: Annotated[str, typer.Argument(help="The dataset (deepclust datasets list).")],
          method: Annotated[str, typer.Option("--method", "-m", metavar="METHOD",
                                              help="kmeans, dec, idec, ... (deepclust methods)")],
          n_clusters: Annotated[str, typer.Option("--n-clusters", "-k", metavar="KS",
                                                  help="The K's: 5-15 (both ends in), 5-15:2, 5,8,10.")],
          seeds: Annotated[Optional[str], typer.Option(metavar="0,1,2", help="One job per K and seed "
                                                                             "(default 0,1,2).")] = None,
          restarts: Annotated[Optional[int], typer.Option(metavar="N", min=1, help="Instead of --seeds: seeds "
                                                                                  "0..N-1.")] = None,
          param: Annotated[Optional[list[str]], typer.Option("--param", "-p", metavar="KEY=VALUE",
                                                             help="A method param; repeat for more.")] = None,
          pretrain: Annotated[Optional[list[str]], typer.Option("--pretrain", metavar="KEY=VALUE",
                                                                help="A pretraining setting, e.g. epochs=50; "
                                                                     "repeat for more.")] = None,
          selection: Annotated[Optional[str], typer.Option(metavar="CRITERION",
                                                           help="What picks K (the server's default when "
                                                                "not given; see the API docs).")] = None,
          device: Annotated[Optional[str], typer.Option(metavar="DEVICE", help="auto, cpu, cuda, cuda:N.")] = None,
          name: Annotated[Optional[str], typer.Option(metavar="NAME", help="A name for the sweep.")] = None,
          wait: Annotated[bool, typer.Option("--wait", "-w", help="Follow its jobs with a progress bar until it "
                                                                  "ends, then print its table (Ctrl-C offers to "
                                                                  "cancel it).")] = False,
          api: Api = API_DEFAULT, key: Key = None, as_json: AsJson = False) -> None:
    """Start a sweep: one job per K and seed; once they have ended, the K recommended without labels."""
    try:
        seed_values = [int(s) for s in seeds.split(",")] if seeds else None
    except ValueError:
        raise typer.BadParameter(f"{seeds!r} is not a list of seeds like 0,1,2", param_hint="--seeds") from None
    with connect(api, key) as client:
        sweep = client.start_sweep(dataset_id, method, parse_ks(n_clusters), seeds=seed_values, n_restarts=restarts,
                                   params=parse_assignments(param, "--param"),
                                   pretrain=parse_assignments(pretrain, "--pretrain") or None,
                                   selection=selection, device=device, name=name)
        if not wait:
            emit(sweep.resource, as_json, lambda: fields(sweep.resource, ("id", "status", "method", "n_clusters",
                                                                          "seeds", "selection", "dataset_id")))
            return
        if wants_json(as_json):
            final = sweep.wait(progress=False)
            print_json(final)
            raise typer.Exit(0 if final["status"] == "succeeded" else 1)
        raise typer.Exit(summarize(follow(client, sweep)))


@app.command("list")
@reports_errors
def list_(dataset: Annotated[Optional[str], typer.Option(metavar="DATASET_ID",
                                                         help="Only sweeps of this dataset.")] = None,
          limit: Annotated[int, typer.Option(metavar="N", min=1, help="At most N sweeps.")] = 50,
          api: Api = API_DEFAULT, key: Key = None, as_json: AsJson = False) -> None:
    """List your sweeps, newest first: their K's, progress and recommended K."""
    with connect(api, key) as client:
        items = [s.resource for s in client.list_sweeps(dataset_id=dataset, limit=limit)]
    emit(items, as_json, lambda: table(items, LIST_COLUMNS, drop=LIST_DROP))


@app.command("show")
@reports_errors
def show(sweep_id: Annotated[str, typer.Argument(help="A sweep (deepclust sweeps list).")],
         api: Api = API_DEFAULT, key: Key = None, as_json: AsJson = False) -> None:
    """Show one sweep: its grid, progress and, once succeeded, its table and recommended run."""
    with connect(api, key) as client:
        sweep = client.get_sweep(sweep_id).resource

    def human() -> None:
        out.print(fields({**sweep, "detail": sweep_detail(sweep)}, SHOWN))
        show_result(sweep)

    emit(sweep, as_json, human)


@app.command("cancel")
@reports_errors
def cancel(sweep_id: Annotated[str, typer.Argument(help="A sweep that has not ended.")],
           api: Api = API_DEFAULT, key: Key = None, as_json: AsJson = False) -> None:
    """Cancel every job of a sweep that has not ended (running ones stop within an epoch)."""
    with connect(api, key) as client:
        sweep = client.get_sweep(sweep_id)
        sweep.cancel()
    emit(sweep.resource, as_json, lambda: f"sweep {sweep.id}: " + (
        "cancelled" if sweep.status == "cancelled" else "cancel requested; its running jobs stop within an epoch"))


@app.command("plot")
@reports_errors
def plot(sweep_id: Annotated[str, typer.Argument(help="A succeeded sweep.")],
         output: Annotated[Optional[Path], typer.Option("--output", "-o", dir_okay=False,
                                                        help="Where to write the PNG (default: SWEEP_ID.png).")] = None,
         api: Api = API_DEFAULT, key: Key = None) -> None:
    """Save the sweep's criteria against K as a PNG (the recommended K marked)."""
    path = output or Path(f"{sweep_id}.png")
    with connect(api, key) as client:
        client.get_sweep(sweep_id).plot(path)
    err.print(f"wrote the plot of sweep {sweep_id} to {path}")
