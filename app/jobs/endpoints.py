"""The routes of /v1/jobs: create, list, read, cancel, delete, logs, history, results, live events."""
from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import PlainTextResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from deepclust.app.jobs import events, service as jobs
from deepclust.app import lifecycle
from deepclust.app.http.deps import DbDep, DispatcherDep, SettingsDep, StoreDep, TenantDep
from deepclust.app.http.paging import LimitQuery, OffsetQuery
from deepclust.app.core import joblog
from deepclust.app.core.tables import Job
from deepclust.app.errors import (
    BROKER_UNAVAILABLE,
    DATABASE_UNAVAILABLE,
    DATASET_NOT_FOUND,
    ENCODER_NOT_APPLICABLE,
    ENCODER_NOT_FOUND,
    INVALID_N_CLUSTERS,
    INVALID_PARAMS,
    INVALID_REQUEST,
    JOB_ACTIVE,
    JOB_FINISHED,
    JOB_NOT_FOUND,
    JOB_NOT_SUCCEEDED,
    JOB_TOO_LARGE,
    MALFORMED_REQUEST,
    METHOD_INPUT_KIND,
    PRETRAINED_ARCHITECTURE,
    PRETRAINED_NO_AUTOENCODER,
    PRETRAINED_OTHER_DATASET,
    TOO_LARGE,
    TOO_MANY_STREAMS,
    UNAUTHORIZED,
    UNKNOWN_METHOD,
    UNSUPPORTED_INPUT_SHAPE,
    UNSUPPORTED_MEDIA_TYPE,
)
from deepclust.app.http.openapi import TENANT, errors
from deepclust.app.tenancy.ownership import owned
from deepclust.app.http.paging import Page, page_example
from deepclust.app.jobs.schemas import JOB_OUT_EXAMPLE, CentroidsOut, HistoryRow, JobCreate, JobOut, LabelsPage, MetricsOut

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=TENANT)

Status = Literal["queued", "running", "succeeded", "failed", "cancelled"]


@router.post("", status_code=202, response_model=JobOut, summary="Start a clustering job",
             responses=errors(MALFORMED_REQUEST, DATASET_NOT_FOUND, ENCODER_NOT_FOUND, ENCODER_NOT_APPLICABLE,
                              JOB_NOT_FOUND, JOB_NOT_SUCCEEDED, TOO_LARGE,
                              UNSUPPORTED_MEDIA_TYPE, INVALID_REQUEST, UNKNOWN_METHOD, METHOD_INPUT_KIND,
                              INVALID_N_CLUSTERS, INVALID_PARAMS, PRETRAINED_OTHER_DATASET,
                              PRETRAINED_NO_AUTOENCODER, PRETRAINED_ARCHITECTURE, JOB_TOO_LARGE,
                              UNSUPPORTED_INPUT_SHAPE, DATABASE_UNAVAILABLE, BROKER_UNAVAILABLE))
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
            responses={**errors(MALFORMED_REQUEST), 200: {"content": {"application/json": {"example": page_example(JOB_OUT_EXAMPLE)}}}})
async def list_jobs(db: DbDep, tenant: TenantDep,
                    status: Status | None = Query(None, description="Only jobs in this state."),
                    dataset_id: str | None = Query(None, description="Only jobs of this dataset."),
                    method: str | None = Query(None, description="Only jobs of this method."),
                    sweep_id: str | None = Query(None, description="Only the jobs of this sweep."),
                    standalone: bool | None = Query(None, description="true: only jobs of no sweep (a sweep's "
                                                                      "children grouped away); false: only "
                                                                      "sweeps' children."),
                    limit: LimitQuery = 50, offset: OffsetQuery = 0) -> Page[JobOut]:
    """Your jobs, newest first, optionally of one status, dataset, method or sweep; each succeeded
    one carries the summary of its `metrics` (acc/nmi when labelled, silhouette, non-empty clusters)."""
    items, total = await db.run(jobs.list_jobs, tenant, status, dataset_id, limit, offset,
                                method=method, sweep_id=sweep_id, standalone=standalone)
    return Page(items=items, total=total)


@router.get("/{job_id}", response_model=JobOut, summary="One job: status, phase, progress", responses=errors(JOB_NOT_FOUND))
async def get_job(job_id: str, db: DbDep, tenant: TenantDep) -> JobOut:
    """The job: status (queued -> running -> succeeded | failed | cancelled), phase, progress
    (epoch of the phase, fraction of the whole job, last loss), error, model."""
    return await db.run(jobs.get_resource, tenant, job_id)


@router.post("/{job_id}/cancel", status_code=202, response_model=JobOut,
             summary="Cancel: a queued job at once, a running one within an epoch",
             responses=errors(JOB_NOT_FOUND, JOB_FINISHED))
async def cancel_job(job_id: str, db: DbDep, store: StoreDep, tenant: TenantDep) -> JobOut:
    """Cancel the job: a queued one is `cancelled` at once; a running one stays `running` until its
    next epoch boundary, then is `cancelled`. A finished job answers 409."""
    return await db.run(jobs.cancel_resource, store, tenant, job_id)


@router.delete("/{job_id}", status_code=204, response_class=Response,
               summary="Delete a finished job with its model, results and files",
               responses=errors(JOB_NOT_FOUND, JOB_ACTIVE))
async def delete_job(job_id: str, request: Request, db: DbDep, store: StoreDep, tenant: TenantDep) -> Response:
    """Delete the job with its model, history, labels, centroids, metrics, checkpoint and log.
    A queued or running job answers 409: cancel it first."""
    request.app.state.models.evict(await db.run(lifecycle.delete_job, store, tenant, job_id))
    return Response(status_code=204)


@router.get("/{job_id}/logs", response_class=Response,
            summary="What the worker logged for this job: start, device, phases, warnings, a failure's traceback",
            responses={**errors(JOB_NOT_FOUND), 200: {"content": {"text/plain": {"example": (
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
            responses={**errors(JOB_NOT_FOUND), 200: {"content": {"application/json": {
                "example": HistoryRow.model_config["json_schema_extra"]["examples"]}}}})
async def get_history(job_id: str, db: DbDep, tenant: TenantDep) -> list[dict]:
    """One row per epoch so far, in order (also while the job runs)."""
    return await db.run(jobs.history, tenant, job_id)


@router.get("/{job_id}/labels", response_model=LabelsPage, summary="The cluster of every training sample",
            responses={**errors(MALFORMED_REQUEST, JOB_NOT_FOUND, JOB_NOT_SUCCEEDED),
                       200: {"content": {"text/csv": {"example": "index,label,confidence\n0,1,0.770\n1,8,0.912\n"},
                                         "application/octet-stream": {"schema": {"type": "string", "format": "binary"},
                                                                      "example": "(a .npy int64 vector)"}}}})
async def get_labels(job_id: str, db: DbDep, tenant: TenantDep,
                     format: Literal["json", "csv", "npy"] = Query("json", description="json (paged), csv or npy (all)."),
                     offset: OffsetQuery = 0,
                     limit: int = Query(1000, ge=1, le=100_000, description="json: page size.")):
    """Each sample's cluster and confidence, once the job has succeeded (409 before): paged JSON,
    or all of them as CSV (`index,label,confidence`) or as an `.npy` label vector."""
    answer = await db.run(jobs.labels, tenant, job_id, format, offset, limit)
    if isinstance(answer, jobs.LabelsFile):
        return Response(answer.content, media_type=answer.media_type,
                        headers={"Content-Disposition": f'attachment; filename="{answer.filename}"'})
    return answer


@router.get("/{job_id}/centroids", response_model=CentroidsOut, summary="The cluster centres",
            responses=errors(JOB_NOT_FOUND, JOB_NOT_SUCCEEDED))
async def get_centroids(job_id: str, db: DbDep, tenant: TenantDep) -> CentroidsOut:
    """The K centres, in the embedding (or the scaled input space for k-means), once succeeded."""
    return await db.run(jobs.centroids, tenant, job_id)


@router.get("/{job_id}/metrics", response_model=MetricsOut, summary="Cluster sizes, internal and external metrics",
            responses=errors(JOB_NOT_FOUND, JOB_NOT_SUCCEEDED))
async def get_metrics(job_id: str, db: DbDep, tenant: TenantDep) -> MetricsOut:
    """Cluster sizes; silhouette, Calinski-Harabasz, Davies-Bouldin; and ACC, NMI, ARI against the
    dataset's labels when it has labels (they are never used for training)."""
    return await db.run(jobs.metrics, tenant, job_id)


# -- GET /v1/jobs/{id}/events: Server-Sent Events of a job's progress (see jobs/events.py) -------------
# A router of its own: the tenant is read here rather than through the session-holding tenant
# dependency (a stream may stay open for hours); the same scheme for the docs.
events_router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
_bearer = HTTPBearer(auto_error=False, description="An API key from `deepclust keys create`.")
MAX_STREAMS = events.MAX_STREAMS

_EVENT_SCHEMA = {
    "type": "object", "required": ["event", "data"],
    "properties": {"event": {"type": "string", "enum": ["status", "epoch", "end"]},
                   "id": {"type": "string", "description": "An `epoch` event's history row id."},
                   "data": {"type": "string", "contentMediaType": "application/json",
                            "description": "The job resource (`status`, `end`) or the history row (`epoch`)."}},
}


@events_router.get("/{job_id}/events", summary="Live progress as Server-Sent Events",
            response_class=StreamingResponse,
            responses={**errors(MALFORMED_REQUEST, UNAUTHORIZED, JOB_NOT_FOUND, DATABASE_UNAVAILABLE, TOO_MANY_STREAMS),
                       200: {"description": "The event stream.", "content": {"text/event-stream": {
                           # Open API 3.1: for an event stream, `schema` describes one event.
                           "schema": _EVENT_SCHEMA,
                           "example": 'event: epoch\nid: 41\ndata: {"phase": "pretrain", "epoch": 3, "loss": 0.031}\n\n'
                                      'event: end\ndata: {"id": "job_0123456789abcdef01234567", "status": '
                                      '"succeeded"}\n\n'}}}},
            description="Events: `status` (the job resource, whenever it changes), `epoch` (a history row; its "
                        "id is the event id, and a reconnect with `Last-Event-ID` resumes after it), `end` (the "
                        "final job resource; the stream then closes). A job that has already ended sends `end` at "
                        "once. Connecting replays the job's history so far as `epoch` events.")
async def get_events(job_id: str, request: Request,
                     credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
                     last_event_id: Annotated[str | None, Header()] = None) -> StreamingResponse:
    authorization = f"{credentials.scheme} {credentials.credentials}" if credentials else None
    await run_in_threadpool(events.check_owner, request.app.state, authorization, job_id)
    after = events.after_event(last_event_id)
    return events.counted_stream(request.app.state, job_id, after)  # the last step: it takes a place
