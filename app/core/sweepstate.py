"""A sweep as its children make it: held children released when the job they wait for ends, the
sweep's status and progress derived from its children, and its result computed once all ended.

Shared by the worker (right after each job it ran has ended: the fast path) and the API process
(the reaper's round, catching up on anything the worker could not do, e.g. when it died; and the
cancel route). Every transition is a guarded update, so two of them racing agree on one outcome.

Reuse of pretraining: a sweep's job for the first K of each seed pretrains; the seed's other K's
are created *held* (``waits_for`` = that job, ``pretrained_from`` = that job) and are neither
dispatched nor claimable until it has ended. If it succeeded they reuse its autoencoder; if it
failed or was cancelled they are released without ``pretrained_from`` and pretrain themselves.
"""
from __future__ import annotations

import logging
from datetime import timedelta

import numpy as np
from sqlalchemy import update
from sqlmodel import Session, select

from deepclust.app.core import jobstate
from deepclust.app.core.db import utcnow
from deepclust.app.core.npyfile import open_array
from deepclust.app.core.storage import ArtifactStore
from deepclust.app.core.tables import (CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED, Assignment, Dataset, Job, Metrics,
                             Sweep, SweepJob)
from deepclust.models import selection

log = logging.getLogger(__name__)

ACTIVE = (QUEUED, RUNNING)
ENDED = (SUCCEEDED, FAILED, CANCELLED)
# Every row of a sweep's result table has these keys (acc/nmi/ari only when the dataset has labels).
CRITERIA = tuple(selection.CRITERIA)


class SelectionImpossible(ValueError):
    """Too few succeeded children to choose anything (e.g. stability with one run per K)."""


def children(session: Session, sweep_id: str) -> list[tuple[SweepJob, Job | None]]:
    """The sweep's grid points in order, each with its job (None if the job was deleted)."""
    links = session.exec(select(SweepJob).where(SweepJob.sweep_id == sweep_id).order_by(SweepJob.position)).all()
    jobs = {j.id: j for j in session.exec(select(Job).where(Job.id.in_([link.job_id for link in links]))).all()}
    return [(link, jobs.get(link.job_id)) for link in links]


def status_and_progress(sweep: Sweep, jobs: list[Job | None]) -> tuple[str, dict]:
    """What GET shows: a stored final status, or queued/running from the children; progress counts."""
    counts = {state: 0 for state in (*ACTIVE, *ENDED)}
    fractions = []
    for job in jobs:
        if job is None:
            continue
        counts[job.status] += 1
        fractions.append(1.0 if job.status in ENDED else float((job.progress or {}).get("fraction") or 0.0))
    status = sweep.status
    if status in ACTIVE:
        status = QUEUED if counts[QUEUED] == len(fractions) else RUNNING
    progress = {"fraction": round(float(np.mean(fractions)), 4) if fractions else 0.0,
                "total": len(fractions), **counts}
    return status, progress


def release_waiting(session: Session, source_id: str | None = None) -> list[str]:
    """Release the held jobs whose source (``waits_for``) has ended (or is gone); returns their ids.

    A released job is marked ``dispatch_pending``: whoever released it submits it, and the
    reaper's round sends it if that did not happen. Its ``pretrained_from`` goes when the source
    did not succeed, so it pretrains itself.
    """
    where = [Job.status == QUEUED, Job.waits_for.is_not(None)]
    if source_id is not None:
        where.append(Job.waits_for == source_id)
    held = session.exec(select(Job.id, Job.waits_for).where(*where)).all()
    released = []
    for job_id, source_id_ in held:
        source = session.get(Job, source_id_, populate_existing=True)
        if source is not None and source.status in ACTIVE:
            continue
        values = {"waits_for": None, "dispatch_pending": True}
        if source is None or source.status != SUCCEEDED:
            values["pretrained_from"] = None
        result = session.execute(update(Job).where(Job.id == job_id, Job.status == QUEUED,
                                                   Job.waits_for == source_id_).values(**values))
        session.commit()
        if result.rowcount == 1:
            released.append(job_id)
    return released


def submit_released(session: Session, dispatcher, job_ids: list[str]) -> None:
    """Hand released jobs to the dispatcher now; a refusal leaves them to the reaper's next round."""
    for job_id in job_ids:
        try:
            dispatcher.submit(job_id)
        except Exception as exc:  # BrokerUnavailable: the row keeps dispatch_pending
            log.warning("job %s stays pending until the broker answers: %s", job_id, exc)
            return
        jobstate.mark_dispatched(session, job_id)


def settle(session: Session, store: ArtifactStore, sweep_id: str, *, grace_seconds: float = 0.0) -> str | None:
    """End the sweep if every child has ended: ``cancelled`` if it was cancelled, else its result
    is computed (``succeeded``) or it cannot be (``failed``). Returns the final status it wrote,
    or None (children still active, too recent for ``grace_seconds``, or already settled)."""
    sweep = session.get(Sweep, sweep_id, populate_existing=True)
    if sweep is None or sweep.status not in ACTIVE:
        return None
    pairs = children(session, sweep_id)
    jobs = [job for _, job in pairs if job is not None]
    if any(job.status in ACTIVE for job in jobs):
        return None
    ended = [job.finished_at for job in jobs if job.finished_at is not None]
    if grace_seconds and ended and max(ended) > utcnow() - timedelta(seconds=grace_seconds):
        return None  # the worker that ended the last child is probably settling it right now

    values: dict = {"result": None, "error": None}
    if sweep.cancel_requested:
        values["status"] = CANCELLED
    else:
        try:
            values["result"] = compute_result(session, store, sweep, pairs)
            values["status"] = SUCCEEDED
        except SelectionImpossible as exc:
            values["status"] = FAILED
            values["error"] = {"code": "selection_impossible", "message": str(exc)}
    result = session.execute(update(Sweep).where(Sweep.id == sweep_id, Sweep.status.in_(ACTIVE))
                             .values(finished_at=utcnow(), **values))
    session.commit()
    return values["status"] if result.rowcount == 1 else None


def compute_result(session: Session, store: ArtifactStore, sweep: Sweep,
                   pairs: list[tuple[SweepJob, Job | None]]) -> dict:
    """The recommended K and run, and the table of every criterion per succeeded grid point.

    Embedding criteria are the ones each job reported (its metrics); input criteria and
    stability are computed here from the dataset and the children's labels. The dataset's
    labels only fill acc/nmi/ari columns after the choice is made.
    """
    done = [(link, job) for link, job in pairs if job is not None and job.status == SUCCEEDED]
    if not done:
        raise SelectionImpossible("No grid point of the sweep succeeded; see its jobs' errors.")
    runs, external = [], []
    for link, job in done:
        labels = np.asarray(session.exec(select(Assignment.label).where(Assignment.job_id == job.id)
                                         .order_by(Assignment.index)).all(), dtype=np.int64)
        metrics = session.get(Metrics, job.id)
        internal = (metrics.internal if metrics else None) or {}
        runs.append(selection.Run(link.n_clusters, labels, seed=link.seed, key=job.id,
                                  criteria={name: internal.get(name) for name in (*selection.INTERNAL, "stadion")}))
        external.append(metrics.external if metrics else None)
    dataset = session.get(Dataset, sweep.dataset_id)
    X = open_array(store.local_path(dataset.data_key)) if dataset and store.exists(dataset.data_key) else None
    try:
        chosen = selection.select(runs, X, sweep.selection, random_state=0)
    except ValueError as exc:
        raise SelectionImpossible(f"Cannot choose by {sweep.selection!r} from the succeeded runs: {exc}.") from None

    table = []
    for row, ext in zip(chosen.table, external):
        out = {"n_clusters": row["n_clusters"], "seed": row["seed"], "job_id": row["key"],
               **{name: _json_number(row[name]) for name in CRITERIA}, "selected": row["selected"]}
        if ext:
            out.update({name: _json_number(ext[name]) for name in ("acc", "nmi", "ari") if name in ext})
        table.append(out)
    job = done[chosen.run_index][1]
    return {"recommended": {"n_clusters": chosen.n_clusters, "job_id": job.id, "seed": job.seed,
                            "model_id": job.model_id},
            "table": table}


def _json_number(value) -> float | None:
    """JSON has no NaN or infinity: an undefined criterion is null."""
    return float(value) if value is not None and np.isfinite(value) else None


def after_job(session: Session, store: ArtifactStore, dispatcher, job_id: str) -> None:
    """What a job's end means for sweeps: release the jobs held for it, settle its sweep."""
    submit_released(session, dispatcher, release_waiting(session, job_id))
    link = session.exec(select(SweepJob).where(SweepJob.job_id == job_id)).first()
    if link is not None:
        settle(session, store, link.sweep_id)


def tick(session: Session, store: ArtifactStore, grace_seconds: float) -> None:
    """The reaper's catch-up: release whatever can be (its pending-dispatch step then sends them)
    and settle active sweeps whose children all ended at least ``grace_seconds`` ago."""
    release_waiting(session)
    for sweep_id in session.exec(select(Sweep.id).where(Sweep.status.in_(ACTIVE))).all():
        settle(session, store, sweep_id, grace_seconds=grace_seconds)
