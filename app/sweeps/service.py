"""Sweeps: validated creation of the grid of child jobs, listing, cancel, the plot.

A sweep is a row plus one ordinary job per grid point (K, seed); its status, progress and result
come from those jobs (app/core/sweepstate.py). See that module for how pretraining is shared.
"""
from __future__ import annotations

from sqlmodel import Session

from deepclust.app.core import jobstate, sweepstate
from deepclust.app.core.dispatch import BrokerUnavailable, Dispatcher, send_or_undo
from deepclust.app.core.ids import new_id
from deepclust.app.core.pagination import paginate
from deepclust.app.core.storage import ArtifactStore
from deepclust.app.core.tables import CANCELLED, SUCCEEDED, Dataset, Job, Sweep, SweepJob
from deepclust.app.errors import (
    BROKER_UNAVAILABLE,
    GRID_TOO_LARGE,
    INVALID_GRID,
    INVALID_N_CLUSTERS,
    INVALID_SELECTION,
    PLOTTING_UNAVAILABLE,
    SWEEP_FINISHED,
    SWEEP_NOT_SUCCEEDED,
    not_found,
)
from deepclust.app.jobs.service import method_for, validated_params
from deepclust.app.tenancy.ownership import owned
from deepclust.app.http.paging import Page
from deepclust.app.sweeps.schemas import ClusterRange, SweepCreate, SweepOut
from deepclust.models import selection as model_selection

MAX_GRID = 200  # jobs per sweep: a bigger grid is almost surely a typo in a range


def owned_sweep(session: Session, sweep_id: str, tenant: str) -> Sweep:
    sweep = session.get(Sweep, sweep_id)
    if sweep is None or sweep.tenant_id != tenant:
        raise not_found("sweep", sweep_id)
    return sweep


def cluster_count(body: SweepCreate) -> int:
    """How many K's the request asks for, by arithmetic: a range is never built to be counted."""
    k = body.n_clusters
    if isinstance(k, ClusterRange):
        return max(0, (k.max - k.min) // k.step + 1)
    return 1 if isinstance(k, int) else len(k)


def seed_count(body: SweepCreate) -> int:
    if body.n_restarts is not None:
        return body.n_restarts
    return len(body.seeds) if body.seeds is not None else 3


def grid(body: SweepCreate, n_samples: int) -> tuple[list[int], list[int]]:
    """The K's and seeds of the request, checked: 422 for anything a job would refuse, or a grid
    too large or unable to support the selection. The grid's size is checked by arithmetic before
    any list of K's is built (a range can declare a billion of them)."""
    n_ks, n_seeds = cluster_count(body), seed_count(body)
    if n_ks == 0:
        raise INVALID_N_CLUSTERS("n_clusters gives no K: use a non-empty list or a range with "
                                 "min <= max.", n_clusters=body.model_dump()["n_clusters"])
    if n_ks * n_seeds > MAX_GRID:
        raise GRID_TOO_LARGE(f"{n_ks} K's x {n_seeds} seeds is {n_ks * n_seeds} jobs; at "
                             f"most {MAX_GRID} per sweep.", jobs=n_ks * n_seeds, limit=MAX_GRID)
    ks = body.cluster_values()
    seeds = body.seed_values()
    bad = [k for k in ks if not 2 <= k <= n_samples]
    if bad:
        raise INVALID_N_CLUSTERS(f"every K must be between 2 and the number of samples ({n_samples}); "
                                 f"not {_clipped(bad)}.", n_clusters=bad[:_SHOWN], n_invalid=len(bad),
                                 n_samples=n_samples)
    for name, values in (("n_clusters", ks), ("seeds", seeds)):
        if len(set(values)) != len(values):
            raise INVALID_GRID(f"{name} repeats a value: {_clipped(values)}.", field=name)
    if body.selection not in model_selection.CRITERIA:
        raise INVALID_SELECTION(f"selection must be one of {sorted(model_selection.CRITERIA)}; got "
                                f"{body.selection!r}.", selection=body.selection)
    if body.selection == "stability" and len(seeds) < 2:
        raise INVALID_SELECTION("selection 'stability' compares runs of one K under different seeds: "
                                "give at least two seeds (or n_restarts >= 2).", seeds=seeds)
    return ks, seeds



def _clipped(values: list) -> str:
    """A list as an error message may show it: the first few values (an error stays small)."""
    if len(values) > _SHOWN:
        return f"[{', '.join(map(str, values[:_SHOWN]))}, ... ({len(values)} in all)]"
    return str(values)


_SHOWN = 10


def create_sweep(session: Session, dispatcher: Dispatcher, tenant: str, body: SweepCreate) -> Sweep:
    dataset = owned(session, Dataset, body.dataset_id, tenant)
    method = method_for(dataset, body.method)
    ks, seeds = grid(body, dataset.n_samples)
    params = validated_params(method, dataset, body.params, body.pretrain)
    # One pretraining per seed, reused by the seed's other K's, when the method pretrains at all.
    share_pretraining = (params.get("pretrain_epochs") or 0) > 0 and len(ks) > 1

    sweep = Sweep(id=new_id("swp"), tenant_id=tenant, dataset_id=dataset.id, name=body.name, method=method.name,
                  params=params, n_clusters=ks, seeds=seeds, selection=body.selection, device=body.device)
    jobs, links, runnable = [], [], []
    for seed in seeds:  # every seed's first K before any held job, so sources are created first
        source = None
        for k in ks:
            held = share_pretraining and source is not None
            job = Job(id=new_id("job"), tenant_id=tenant, dataset_id=dataset.id,
                      name=f"{body.name or sweep.id} K={k} seed={seed}", method=method.name, n_clusters=k,
                      params=params, seed=seed, device=body.device,
                      pretrained_from=source.id if held else None, waits_for=source.id if held else None)
            jobs.append(job)
            links.append(SweepJob(sweep_id=sweep.id, job_id=job.id, n_clusters=k, seed=seed,
                                  position=ks.index(k) * len(seeds) + seeds.index(seed)))
            if not held:
                runnable.append(job.id)
            source = source or job
    session.add(sweep)
    session.add_all(jobs)
    session.flush()  # sweep and jobs before the links that point to them (PostgreSQL checks at once)
    session.add_all(links)
    session.commit()
    try:  # undone, the sweep, its links (cascade) and its jobs go
        send_or_undo(session, [*jobs, sweep], lambda: [dispatcher.submit(job_id) for job_id in runnable])
    except BrokerUnavailable as exc:
        raise BROKER_UNAVAILABLE(reason=str(exc)) from None
    return sweep


def list_sweeps(session: Session, tenant: str, dataset_id: str | None, limit: int,
                offset: int) -> tuple[list[Sweep], int]:
    where = [Sweep.tenant_id == tenant]
    if dataset_id is not None:
        where.append(Sweep.dataset_id == dataset_id)
    return paginate(session, Sweep, *where, limit=limit, offset=offset)


def view(session: Session, sweep: Sweep) -> dict:
    """The sweep resource's fields that come from its children: status, progress, job_ids."""
    pairs = sweepstate.children(session, sweep.id)
    status, progress = sweepstate.status_and_progress(sweep, [job for _, job in pairs])
    return {"status": status, "progress": progress, "job_ids": [link.job_id for link, _ in pairs]}


def out(session: Session, sweep: Sweep) -> SweepOut:
    return SweepOut.of(sweep, view(session, sweep))


def create(session: Session, dispatcher: Dispatcher, tenant: str, body: SweepCreate) -> SweepOut:
    return out(session, create_sweep(session, dispatcher, tenant, body))


def page(session: Session, tenant: str, dataset_id: str | None, limit: int, offset: int) -> Page[SweepOut]:
    rows, total = list_sweeps(session, tenant, dataset_id, limit, offset)
    return Page(items=[out(session, r) for r in rows], total=total)


def get(session: Session, sweep_id: str, tenant: str) -> SweepOut:
    return out(session, owned_sweep(session, sweep_id, tenant))


def cancel(session: Session, store: ArtifactStore, tenant: str, sweep_id: str) -> SweepOut:
    return out(session, cancel_sweep(session, store, tenant, sweep_id))


def cancel_sweep(session: Session, store: ArtifactStore, tenant: str, sweep_id: str) -> Sweep:
    """Cancel every child that has not ended (queued ones at once, running ones within an epoch);
    the sweep is ``cancelled`` as soon as they all have ended."""
    sweep = owned_sweep(session, sweep_id, tenant)
    if sweep.status not in sweepstate.ACTIVE:
        raise SWEEP_FINISHED(f"Sweep {sweep_id} has already {sweep.status}; there is nothing "
                             "to cancel.", {"status": sweep.status})
    sweep.cancel_requested = True
    session.add(sweep)
    session.commit()
    for _, job in sweepstate.children(session, sweep_id):
        if job is not None and job.status in sweepstate.ACTIVE:
            if jobstate.request_cancel(session, job.id) == CANCELLED and job.checkpoint_key:
                store.delete_prefix(job.checkpoint_key)
    sweepstate.settle(session, store, sweep_id)
    session.refresh(sweep)
    return sweep


def plot_png(session: Session, tenant: str, sweep_id: str) -> bytes:
    sweep = owned_sweep(session, sweep_id, tenant)
    if sweep.status != SUCCEEDED:
        raise SWEEP_NOT_SUCCEEDED(f"Sweep {sweep_id} is {view(session, sweep)['status']}; its plot "
                                  "exists once it has succeeded.", {"status": sweep.status})
    try:
        return model_selection.plot_sweep(sweep.result["table"], recommended=sweep.result["recommended"]["n_clusters"],
                                          title=f"{sweep.method} sweep {sweep.id}")
    except ImportError:
        raise PLOTTING_UNAVAILABLE("This server has no matplotlib; install deepclust[plot].",
                                   {}) from None
