"""A live progress bar of one job (Rich), shared by the Python client and the CLI.

It is fed job resources as they are polled and shows the status or phase, the job's overall
fraction, the epoch of the current phase, the last loss and an ETA. In fine-tuning, ``epochs`` is
the most the phase can take (``maxiter`` iterations at ``ceil(n_samples / batch_size)`` per
epoch); the phase may stop sooner, once fewer than ``tol`` of the labels change between
target updates, so the bar shows it as an upper bound: ``epoch 12/≤188``.
"""
from __future__ import annotations

from collections.abc import Iterable

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

FINISHED = ("succeeded", "failed", "cancelled")


def stage(job: dict) -> str:
    """``queued``, a running job's phase, or how it ended."""
    if job["status"] == "running":
        return job.get("phase") or "starting"
    return job["status"]


def detail(job: dict) -> str:
    """``epoch 3/50  loss 0.0213`` for a running job; how it ended for a finished one."""
    if job["status"] in FINISHED:
        if job["status"] == "failed" and job.get("error"):
            return f"{job['error']['code']}: {job['error']['message']}"
        return f"model {job['model_id']}" if job.get("model_id") else ""
    p = job.get("progress") or {}
    parts = []
    if job["status"] == "running" and p.get("epochs"):
        bound = "≤" if job.get("phase") == "finetune" else ""
        parts.append(f"epoch {p.get('epoch') or 0}/{bound}{p['epochs']}")
    if p.get("loss") is not None:
        parts.append(f"loss {p['loss']:.4g}")
    if p.get("label_change") is not None and job.get("phase") == "finetune":
        parts.append(f"changed {p['label_change']:.2%}")
    return "  ".join(parts)


def warning_lines(job: dict) -> list[str]:
    """One line per warning of a job (API 1.2 ``warnings``): the estimated K, a restored state,
    clusters that ended empty or one that holds most samples."""
    return [f"{w['code']}: {w['message']}" for w in job.get("warnings") or []]


def _follow(kind: str, states: Iterable[dict], describe, details, console: Console | None) -> dict | None:
    """One bar while iterating over successive resources of a job or a sweep; returns the last.
    ``describe`` names the bar's stage, ``details`` writes the text beside it."""
    last = None
    columns = (TextColumn("{task.description:<9}"), BarColumn(bar_width=20), TaskProgressColumn(),
               TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[detail]}"))
    with Progress(*columns, console=console, refresh_per_second=4) as bar:
        task = None
        for resource in states:
            last = resource
            fraction = (1.0 if resource["status"] == "succeeded"
                        else (resource.get("progress") or {}).get("fraction") or 0.0)
            if task is None:
                bar.console.print(f"{kind} {resource['id']}", highlight=False)
                task = bar.add_task(describe(resource), total=1.0, detail="")
            bar.update(task, completed=fraction, description=describe(resource), detail=details(resource))
    return last


def follow(states: Iterable[dict], console: Console | None = None) -> dict | None:
    """Show a bar while iterating over successive resources of one job; returns the last one."""
    return _follow("job", states, stage, detail, console)


def sweep_detail(sweep: dict) -> str:
    """``5/18 jobs done, 2 running, 1 failed``; the recommendation once it has succeeded."""
    p = sweep.get("progress") or {}
    done = sum(p.get(s) or 0 for s in FINISHED)
    parts = [f"{done}/{p.get('total') or 0} jobs done"]
    if p.get("running"):
        parts.append(f"{p['running']} running")
    for state in ("failed", "cancelled"):
        if p.get(state):
            parts.append(f"{p[state]} {state}")
    recommended = (sweep.get("result") or {}).get("recommended")
    if recommended:
        parts.append(f"recommended K={recommended['n_clusters']} (job {recommended['job_id']})")
    elif sweep["status"] == "failed" and sweep.get("error"):
        parts.append(f"{sweep['error']['code']}: {sweep['error']['message']}")
    return ", ".join(parts)


def follow_sweep(states: Iterable[dict], console: Console | None = None) -> dict | None:
    """One bar over a sweep's jobs while iterating over successive resources of the sweep."""
    return _follow("sweep", states, lambda sweep: sweep["status"], sweep_detail, console)


def prediction_detail(prediction: dict) -> str:
    """``40960/100000 samples`` while it runs; how it ended once finished."""
    if prediction["status"] == "failed" and prediction.get("error"):
        return f"{prediction['error']['code']}: {prediction['error']['message']}"
    p = prediction.get("progress") or {}
    return f"{p.get('done') or 0}/{p.get('total') or prediction.get('n_samples') or 0} samples"


def follow_prediction(states: Iterable[dict], console: Console | None = None) -> dict | None:
    """One bar over the samples of a batch prediction while iterating over its successive resources."""
    return _follow("prediction", states, lambda prediction: prediction["status"], prediction_detail, console)
