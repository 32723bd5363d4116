"""`deepclust jobs start | list | show | watch | history | logs | cancel | delete`, and `deepclust labels`."""
from __future__ import annotations

import json
import sys
from datetime import datetime
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from deepclust.app.cli.common import (
    API_DEFAULT,
    Api,
    AsJson,
    Key,
    Yes,
    connect,
    emit,
    err,
    fields,
    parse_assignments,
    print_json,
    reports_errors,
    table,
    wants_json,
)
from deepclust.app.client import Client, Job
from deepclust.app.client.progress import detail, stage, warning_lines

app = typer.Typer(help="Start, follow, inspect, cancel and delete clustering jobs.", no_args_is_help=True)


class Status(str, Enum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


COLUMNS = ("id", "method", ("K", lambda j: j["n_clusters"]), ("state", stage),
           ("done", lambda j: f"{(j.get('progress') or {}).get('fraction', 0):.0%}"),
           ("detail", detail), "created_at")


def _seconds(job: dict) -> float | None:
    if not job.get("started_at") or not job.get("finished_at"):
        return None
    return (datetime.fromisoformat(job["finished_at"]) - datetime.fromisoformat(job["started_at"])).total_seconds()


def summarize(client: Client, job: dict) -> int:
    """One line on how the job ended; the exit status: 0 when it succeeded."""
    took = _seconds(job)
    took = f" in {took:.0f} s" if took is not None else ""
    if job["status"] == "succeeded":
        metrics = client._json("GET", f"/v1/jobs/{job['id']}/metrics")
        scores = {**(metrics.get("external") or {}), "silhouette": metrics["internal"].get("silhouette")}
        shown = ", ".join(f"{k} {v:.3f}" for k, v in scores.items() if v is not None)
        k = " (K estimated)" if job.get("k_selection") else ""
        err.print(f"[green]job {job['id']} succeeded{took}[/]: model {job['model_id']}; K {job['n_clusters']}{k}; "
                  f"{shown}", highlight=False)
        for line in warning_lines(job):
            err.print(f"  [yellow]warning[/] {line}", highlight=False)
        return 0
    if job["status"] == "failed":
        error = job.get("error") or {}
        err.print(f"[red]job {job['id']} failed{took}[/]: {error.get('code')}: {error.get('message')}\n"
                  f"  what the worker logged: deepclust jobs logs {job['id']}", highlight=False)
        return 1
    err.print(f"[yellow]job {job['id']} was cancelled[/]", highlight=False)
    return 1


def follow(client: Client, job: Job) -> dict:
    """The live bar until the job ends; Ctrl-C offers to cancel it on the server."""
    try:
        return job.wait(progress=True, console=err)
    except KeyboardInterrupt:
        err.print()
        if typer.confirm(f"Cancel job {job.id} on the server?", default=False, err=True):
            state = job.cancel()["status"]
            err.print(f"job {job.id}: {'cancelled' if state == 'cancelled' else 'cancel requested; it stops within an epoch'}")
        else:
            err.print(f"job {job.id} keeps running; follow it with: deepclust jobs watch {job.id}")
        raise typer.Exit(130) from None


@app.command("start")
@reports_errors
def start(dataset_id: Annotated[str, typer.Argument(help="The dataset to cluster (deepclust datasets list).")],
          method: Annotated[str, typer.Option("--method", "-m", help="kmeans, dec, idec, cdc, dccf, ... "
                                                                     "(deepclust methods)")],
          n_clusters: Annotated[str, typer.Option("--n-clusters", "-k", metavar="K",
                                                  help="Number of clusters K, or auto: estimated after "
                                                       "pretraining, without labels (see --k-range).")],
          param: Annotated[Optional[list[str]], typer.Option("--param", "-p", metavar="KEY=VALUE",
                                                             help="A method param; repeat for more. VALUE is "
                                                                  "JSON (1500, [128,128], true) or text.")] = None,
          pretrain: Annotated[Optional[list[str]], typer.Option("--pretrain", metavar="KEY=VALUE",
                                                                help="A pretraining setting, e.g. epochs=50, "
                                                                     "batch_size=256; repeat for more.")] = None,
          seed: Annotated[Optional[int], typer.Option(help="Random seed (default 0).")] = None,
          name: Annotated[Optional[str], typer.Option(help="A name for the job.")] = None,
          device: Annotated[Optional[str], typer.Option(help="auto, cpu, cuda, cuda:N.")] = None,
          pretrained_from: Annotated[Optional[str], typer.Option(help="Reuse this succeeded job's autoencoder.")] = None,
          encoder: Annotated[Optional[str], typer.Option(metavar="ENCODER_ID", help="Embed the images with this "
                                                         "encoder first (deepclust encoders list); the method "
                                                         "clusters the embeddings.")] = None,
          k_range: Annotated[Optional[str], typer.Option("--k-range", metavar="MIN,MAX",
                                                         help="With -k auto: the K's considered (default 2,30).")] = None,
          guard: Annotated[Optional[str], typer.Option(help="restore (default): a clustering that degenerates "
                                                       "ends on its last healthy state; warn; off.")] = None,
          wait: Annotated[bool, typer.Option("--wait", "-w", help="Follow it with a progress bar until it ends "
                                                                  "(Ctrl-C offers to cancel it).")] = False,
          api: Api = API_DEFAULT, key: Key = None, as_json: AsJson = False) -> None:
    """Start a clustering job."""
    params, pretrain_block = parse_assignments(param, "--param"), parse_assignments(pretrain, "--pretrain")
    with connect(api, key) as client:
        k = n_clusters if n_clusters == "auto" else _int_option(n_clusters, "--n-clusters")
        bounds = tuple(_int_option(v, "--k-range") for v in k_range.split(",")) if k_range else None
        job = client.start_job(dataset_id, method, k, params=params, pretrain=pretrain_block or None,
                               seed=seed, name=name, device=device, pretrained_from=pretrained_from,
                               encoder=encoder, k_range=bounds, guard=guard)
        if not wait:
            emit(job.resource, as_json, lambda: fields(job.resource, ("id", "status", "method", "n_clusters",
                                                                      "params", "pretrain", "dataset_id")))
            return
        if wants_json(as_json):
            final = job.wait(progress=False)
            print_json(final)
            raise typer.Exit(0 if final["status"] == "succeeded" else 1)
        raise typer.Exit(summarize(client, follow(client, job)))


def _int_option(value: str, option: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not an integer", param_hint=option) from None


class SortKey(str, Enum):
    created = "created"
    acc = "acc"
    nmi = "nmi"
    silhouette = "silhouette"
    clusters = "clusters"
    k = "k"


METRIC_KEYS = {"acc": "acc", "nmi": "nmi", "silhouette": "silhouette", "clusters": "nonempty_clusters"}


def _metric(name: str) -> Callable[[dict], object]:
    return lambda j: (j.get("metrics") or {}).get(name)


def list_columns(items: list[dict]) -> list:
    """The jobs table: acc/nmi only when a listed job has them; what goes first at 80 columns is
    in LIST_DROP."""
    labelled = any("acc" in (j.get("metrics") or {}) for j in items)
    metrics = [("acc", _metric("acc")), ("nmi", _metric("nmi"))] if labelled else []
    return ["id", "method", ("K", lambda j: j["n_clusters"]), "seed", ("state", stage), *metrics,
            ("silhouette", _metric("silhouette")), ("clusters", _metric("nonempty_clusters")),
            ("detail", detail), "created_at"]


LIST_DROP = ("created_at", "detail", "seed", "nmi", "clusters", "silhouette")


def sort_jobs(items: list[dict], key: SortKey) -> list[dict]:
    """Newest first (the API's order), or by a metric, best first (none last), or by K."""
    if key == SortKey.created:
        return items
    if key == SortKey.k:
        return sorted(items, key=lambda j: j["n_clusters"])
    name = METRIC_KEYS[key.value]
    have = [j for j in items if (j.get("metrics") or {}).get(name) is not None]
    rest = [j for j in items if (j.get("metrics") or {}).get(name) is None]
    return sorted(have, key=lambda j: j["metrics"][name], reverse=True) + rest


@app.command("list")
@reports_errors
def list_(status: Annotated[Optional[Status], typer.Option(help="Only jobs in this state.")] = None,
          dataset: Annotated[Optional[str], typer.Option(metavar="DATASET_ID", help="Only jobs of this dataset.")] = None,
          method: Annotated[Optional[str], typer.Option("--method", "-m", metavar="METHOD",
                                                        help="Only jobs of this method.")] = None,
          sweep: Annotated[Optional[str], typer.Option(metavar="SWEEP_ID", help="Only the jobs of this sweep.")] = None,
          all_: Annotated[bool, typer.Option("--all", "-a", help="Also sweeps' jobs (by default a sweep's jobs are "
                                                                 "grouped away: deepclust sweeps list).")] = False,
          sort: Annotated[SortKey, typer.Option(help="created (newest first); acc, nmi, silhouette, clusters (best "
                                                     "first); k.")] = SortKey.created,
          limit: Annotated[int, typer.Option(metavar="N", min=1, help="At most N jobs.")] = 50,
          offset: Annotated[int, typer.Option(metavar="N", min=0, help="Skip the newest N.")] = 0,
          api: Api = API_DEFAULT, key: Key = None, as_json: AsJson = False) -> None:
    """List your jobs with their metrics (acc/nmi when labelled, silhouette, non-empty clusters).

    By default only the jobs of no sweep; --sweep ID lists one sweep's jobs, --all every job."""
    standalone = None if (all_ or sweep) else True
    query = {"status": status.value if status else None, "dataset_id": dataset, "method": method,
             "sweep_id": sweep, "standalone": None if standalone is None else "true", "limit": limit,
             "offset": offset}
    with connect(api, key) as client:
        items = client._json("GET", "/v1/jobs", params={k: v for k, v in query.items() if v is not None})["items"]
    items = sort_jobs(items, sort)
    emit(items, as_json, lambda: table(items, list_columns(items), drop=LIST_DROP))


@app.command("show")
@reports_errors
def show(job_id: str, api: Api = API_DEFAULT, key: Key = None, as_json: AsJson = False) -> None:
    """Show one job: state, progress, error, model."""
    with connect(api, key) as client:
        job = client.job(job_id).resource
    emit(job, as_json, lambda: fields({**job, "state": stage(job), "detail": detail(job)},
                                      ("id", "name", "dataset_id", "method", "n_clusters", "params", "pretrain",
                                       "seed", "device", "state", "detail", "attempts", "error", "model_id",
                                       "created_at", "started_at", "finished_at")))


@app.command("watch")
@reports_errors
def watch(job_id: str, api: Api = API_DEFAULT, key: Key = None) -> None:
    """Follow a job with a progress bar until it ends (Ctrl-C offers to cancel it)."""
    with connect(api, key) as client:
        raise typer.Exit(summarize(client, follow(client, client.job(job_id))))


@app.command("history")
@reports_errors
def history(job_id: str, api: Api = API_DEFAULT, key: Key = None, as_json: AsJson = False) -> None:
    """Per-epoch rows: phase, epoch, loss and its terms, acc/nmi when the dataset has labels."""
    with connect(api, key) as client:
        rows = client._json("GET", f"/v1/jobs/{job_id}/history")
    columns = list(dict.fromkeys(k for row in rows for k in row))
    emit(rows, as_json, lambda: table(rows, columns))


@app.command("logs")
@reports_errors
def logs(job_id: str, api: Api = API_DEFAULT, key: Key = None) -> None:
    """What the worker logged for this job (start, device, phases, warnings, a failure's traceback)."""
    with connect(api, key) as client:
        sys.stdout.write(client.job(job_id).logs())


@app.command("cancel")
@reports_errors
def cancel(job_id: str, api: Api = API_DEFAULT, key: Key = None, as_json: AsJson = False) -> None:
    """Cancel a job: a queued one at once, a running one within an epoch."""
    with connect(api, key) as client:
        job = client.job(job_id)
        job.cancel()
    emit(job.resource, as_json, lambda: f"job {job.id}: " + ("cancelled" if job.status == "cancelled"
                                                             else "cancel requested; it stops within an epoch"))


@app.command("delete")
@reports_errors
def delete(job_id: str, yes: Yes = False, api: Api = API_DEFAULT, key: Key = None) -> None:
    """Delete a finished job with its model, labels and files."""
    if not yes:
        typer.confirm(f"Delete job {job_id} with its model and results?", abort=True, err=True)
    with connect(api, key) as client:
        client.job(job_id).delete()
    err.print(f"deleted job {job_id}")


class LabelFormat(str, Enum):
    csv = "csv"
    npy = "npy"
    json = "json"


@reports_errors
def labels(job_id: Annotated[str, typer.Argument(help="A succeeded job.")],
           output: Annotated[Optional[Path], typer.Option("--output", "-o", dir_okay=False,
                                                          help="Write here (format from the suffix: .csv, "
                                                               ".npy, .json); default: CSV on stdout.")] = None,
           format: Annotated[Optional[LabelFormat], typer.Option(help="Override the format.")] = None,
           api: Api = API_DEFAULT, key: Key = None) -> None:
    """The label of every training sample of a job: index, label, confidence."""
    chosen = format.value if format else (output.suffix.lstrip(".").lower() if output else "csv")
    if chosen not in ("csv", "npy", "json"):
        raise typer.BadParameter(f"cannot tell the format from {output.name!r}; use .csv, .npy or .json, "
                                 "or --format", param_hint="--output")
    with connect(api, key) as client:
        content = client.request("GET", f"/v1/jobs/{job_id}/labels", params={"format": chosen, "limit": 100_000})
        data = content.content
        if chosen == "json":  # every page, as one document
            page = content.json()
            while len(page["items"]) < page["total"]:
                more = client._json("GET", f"/v1/jobs/{job_id}/labels",
                                    params={"offset": len(page["items"]), "limit": 100_000})
                page["items"] += more["items"]
            data = (json.dumps(page) + "\n").encode()
    if output is None:
        sys.stdout.buffer.write(data) if chosen == "npy" else sys.stdout.write(data.decode())
        sys.stdout.flush()
    else:
        output.write_bytes(data)
        err.print(f"wrote the labels of job {job_id} to {output}")
