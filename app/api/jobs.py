from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import PlainTextResponse
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from deepclust.app import jobs, lifecycle
from deepclust.app.api.deps import DbDep, DispatcherDep, SettingsDep, StoreDep, TenantDep
from deepclust.app.api.paging import LimitQuery, OffsetQuery
from deepclust.app.core import joblog
from deepclust.app.core import results
from deepclust.app.core.tables import Job
from deepclust.app.openapi import TENANT, errors
from deepclust.app.ownership import owned
from deepclust.app.schemas import (
    JOB_OUT_EXAMPLE,
    CentroidsOut,
    HistoryRow,
    JobCreate,
    JobOut,
    LabelItem,
    LabelsPage,
    MetricsOut,
    Page,
    page_example,
)

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=TENANT)
NOT_FOUND = {404: ("job_not_found",)}
NOT_SUCCEEDED = {**NOT_FOUND, 409: ("job_not_succeeded",)}

Status = Literal["queued", "running", "succeeded", "failed", "cancelled"]


@router.post("", status_code=202, response_model=JobOut, summary="Start a clustering job",
             responses=errors(400, codes={
                 404: ("dataset_not_found", "job_not_found"), 409: ("job_not_succeeded",),
                 413: ("too_large",), 415: ("unsupported_media_type",),
                 422: ("invalid_request", "unknown_method", "method_input_kind", "invalid_n_clusters", "invalid_params",
                       "pretrained_other_dataset", "pretrained_no_autoencoder", "pretrained_architecture",
                       "job_too_large", "unsupported_input_shape"),
                 503: ("database_unavailable", "broker_unavailable")}))
async def create_job(body: JobCreate, response: Response, db: DbDep, dispatcher: DispatcherDep,
                     settings: SettingsDep, tenant: TenantDep) -> JobOut:
    """Queue a job (JSON body, `Content-Type: application/json`); the answer is the job resource
    with `Location: /v1/jobs/{id}`. `params` are the method's own, pretraining settings go in
    `pretrain` (GET /v1/methods lists both schemas). A job with `pretrained_from` reuses that
    succeeded job's autoencoder and skips pretraining (404/409 when it is unknown or not succeeded)."""
    job = await db.run(jobs.create_job, dispatcher, tenant, body, settings.max_job_memory_bytes)
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return JobOut.of(job)


@router.get("", response_model=Page[JobOut], summary="List your jobs, newest first",
            responses={**errors(400), 200: {"content": {"application/json": {"example": page_example(JOB_OUT_EXAMPLE)}}}})
async def list_jobs(db: DbDep, tenant: TenantDep,
                    status: Status | None = Query(None, description="Only jobs in this state."),
                    dataset_id: str | None = Query(None, description="Only jobs of this dataset."),
                    limit: LimitQuery = 50, offset: OffsetQuery = 0) -> Page[JobOut]:
    """Your jobs, newest first, optionally of one status or dataset."""
    rows, total = await db.run(jobs.list_jobs, tenant, status, dataset_id, limit, offset)
    return Page(items=[JobOut.of(r) for r in rows], total=total)


@router.get("/{job_id}", response_model=JobOut, summary="One job: status, phase, progress", responses=errors(codes=NOT_FOUND))
async def get_job(job_id: str, db: DbDep, tenant: TenantDep) -> JobOut:
    """The job: status (queued -> running -> succeeded | failed | cancelled), phase, progress
    (epoch of the phase, fraction of the whole job, last loss), error, model."""
    return JobOut.of(await db.run(owned, Job, job_id, tenant))


@router.post("/{job_id}/cancel", status_code=202, response_model=JobOut,
             summary="Cancel: a queued job at once, a running one within an epoch",
             responses=errors(codes={**NOT_FOUND, 409: ("job_finished",)}))
async def cancel_job(job_id: str, db: DbDep, store: StoreDep, tenant: TenantDep) -> JobOut:
    """Cancel the job: a queued one is `cancelled` at once; a running one stays `running` until its
    next epoch boundary, then is `cancelled`. A finished job answers 409."""
    return JobOut.of(await db.run(jobs.cancel_job, store, tenant, job_id))


@router.delete("/{job_id}", status_code=204, response_class=Response,
               summary="Delete a finished job with its model, results and files",
               responses=errors(codes={**NOT_FOUND, 409: ("job_active",)}))
async def delete_job(job_id: str, request: Request, db: DbDep, store: StoreDep, tenant: TenantDep) -> Response:
    """Delete the job with its model, history, labels, centroids, metrics, checkpoint and log.
    A queued or running job answers 409: cancel it first."""
    request.app.state.models.evict(await db.run(lifecycle.delete_job, store, tenant, job_id))
    return Response(status_code=204)


@router.get("/{job_id}/logs", response_class=Response,
            summary="What the worker logged for this job: start, device, phases, warnings, a failure's traceback",
            responses={**errors(codes=NOT_FOUND), 200: {"content": {"text/plain": {"example": (
                "2026-11-23 20:58:07,312 INFO job job_0123: attempt 1: dec with K=10 on dataset ds_0123 (1797 samples "
                "of shape [64]), device cpu, seed 0\n"
                "2026-11-23 20:58:07,401 INFO job job_0123: pretrain begins (50 epochs)\n")}}}})
async def get_logs(job_id: str, db: DbDep, store: StoreDep, tenant: TenantDep) -> Response:
    """The job's log as plain text, every attempt appended: its start (method, data, device, params),
    each phase's begin and end, warnings, a failure's traceback, and why an attempt was retried.
    Empty while the job is queued."""
    await db.run(owned, Job, job_id, tenant)
    return PlainTextResponse(await run_in_threadpool(joblog.read, store, job_id))


@router.get("/{job_id}/history", response_model=list[HistoryRow],
            summary="Per-epoch rows: phase, epoch, loss, every loss term, acc/nmi when the dataset has labels",
            responses={**errors(codes=NOT_FOUND), 200: {"content": {"application/json": {
                "example": HistoryRow.model_config["json_schema_extra"]["examples"]}}}})
async def get_history(job_id: str, db: DbDep, tenant: TenantDep) -> list[dict]:
    """One row per epoch so far, in order (also while the job runs)."""
    return await db.run(jobs.history, tenant, job_id)


def _labels(session: Session, tenant: str, job_id: str, format: str, offset: int, limit: int):
    job = jobs.succeeded_job(session, tenant, job_id)
    if format == "csv":
        return Response(results.labels_csv(session, job.id), media_type="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="{job.id}-labels.csv"'})
    if format == "npy":
        return Response(results.labels_npy(session, job.id), media_type="application/octet-stream",
                        headers={"Content-Disposition": f'attachment; filename="{job.id}-labels.npy"'})
    rows, total = results.labels_page(session, job.id, offset, limit)
    return LabelsPage(total=total, offset=offset,
                      items=[LabelItem(index=r.index, label=r.label, confidence=r.confidence) for r in rows])


@router.get("/{job_id}/labels", response_model=LabelsPage, summary="The cluster of every training sample",
            responses={**errors(400, codes=NOT_SUCCEEDED),
                       200: {"content": {"text/csv": {"example": "index,label,confidence\n0,1,0.770\n1,8,0.912\n"},
                                         "application/octet-stream": {"schema": {"type": "string", "format": "binary"},
                                                                      "example": "(a .npy int64 vector)"}}}})
async def get_labels(job_id: str, db: DbDep, tenant: TenantDep,
                     format: Literal["json", "csv", "npy"] = Query("json", description="json (paged), csv or npy (all)."),
                     offset: OffsetQuery = 0,
                     limit: int = Query(1000, ge=1, le=100_000, description="json: page size.")):
    """Each sample's cluster and confidence, once the job has succeeded (409 before): paged JSON,
    or all of them as CSV (`index,label,confidence`) or as an `.npy` label vector."""
    return await db.run(_labels, tenant, job_id, format, offset, limit)


@router.get("/{job_id}/centroids", response_model=CentroidsOut, summary="The cluster centres",
            responses=errors(codes=NOT_SUCCEEDED))
async def get_centroids(job_id: str, db: DbDep, tenant: TenantDep) -> CentroidsOut:
    """The K centres, in the embedding (or the scaled input space for k-means), once succeeded."""
    return await db.run(_centroids, tenant, job_id)


def _centroids(session: Session, tenant: str, job_id: str) -> CentroidsOut:
    row = results.centroids(session, jobs.succeeded_job(session, tenant, job_id).id)
    return CentroidsOut(space=row.space, dim=row.dim, centroids=row.values)


@router.get("/{job_id}/metrics", response_model=MetricsOut, summary="Cluster sizes, internal and external metrics",
            responses=errors(codes=NOT_SUCCEEDED))
async def get_metrics(job_id: str, db: DbDep, tenant: TenantDep) -> MetricsOut:
    """Cluster sizes; silhouette, Calinski-Harabasz, Davies-Bouldin; and ACC, NMI, ARI against the
    dataset's labels when it has labels (they are never used for training)."""
    return await db.run(_metrics, tenant, job_id)


def _metrics(session: Session, tenant: str, job_id: str) -> MetricsOut:
    return MetricsOut.of(results.metrics(session, jobs.succeeded_job(session, tenant, job_id).id))
