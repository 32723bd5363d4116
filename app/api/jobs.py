from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query, Response

from app import jobs
from app.api.deps import DispatcherDep, SessionDep, StoreDep, TenantDep
from app.errors import ERROR_RESPONSES
from app.ownership import owned
from app.schemas import CentroidsOut, JobCreate, JobOut, LabelItem, LabelsPage, MetricsOut, Page
from app.tables import Job

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=ERROR_RESPONSES)

Status = Literal["queued", "running", "succeeded", "failed", "cancelled"]


@router.post("", status_code=202, response_model=JobOut, summary="Start a clustering job")
def create_job(body: JobCreate, response: Response, session: SessionDep, dispatcher: DispatcherDep,
               tenant: TenantDep) -> JobOut:
    job = jobs.create_job(session, dispatcher, tenant, body)
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return JobOut.of(job)


@router.get("", response_model=Page[JobOut])
def list_jobs(session: SessionDep, tenant: TenantDep, status: Status | None = None, dataset_id: str | None = None,
              limit: int = Query(50, ge=1, le=1000), offset: int = Query(0, ge=0)) -> Page[JobOut]:
    rows, total = jobs.list_jobs(session, tenant, status, dataset_id, limit, offset)
    return Page(items=[JobOut.of(r) for r in rows], total=total)


@router.get("/{job_id}", response_model=JobOut)
def get_job(job_id: str, session: SessionDep, tenant: TenantDep) -> JobOut:
    return JobOut.of(owned(session, Job, job_id, tenant))


@router.post("/{job_id}/cancel", status_code=202, response_model=JobOut,
             summary="Cancel: a queued job at once, a running one within an epoch")
def cancel_job(job_id: str, session: SessionDep, store: StoreDep, tenant: TenantDep) -> JobOut:
    return JobOut.of(jobs.cancel_job(session, store, tenant, job_id))


@router.get("/{job_id}/history", response_model=list[dict],
            summary="Per-epoch rows: phase, epoch, loss, every loss term, acc/nmi when the dataset has labels")
def get_history(job_id: str, session: SessionDep, tenant: TenantDep) -> list[dict]:
    return jobs.history(session, tenant, job_id)


@router.get("/{job_id}/labels", response_model=LabelsPage,
            responses={200: {"content": {"text/csv": {}, "application/octet-stream": {}}}})
def get_labels(job_id: str, session: SessionDep, tenant: TenantDep,
               format: Literal["json", "csv", "npy"] = "json",
               offset: int = Query(0, ge=0), limit: int = Query(1000, ge=1, le=100_000)):
    job = jobs.succeeded_job(session, tenant, job_id)
    if format == "csv":
        return Response(jobs.labels_csv(session, job), media_type="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="{job_id}-labels.csv"'})
    if format == "npy":
        return Response(jobs.labels_npy(session, job), media_type="application/octet-stream",
                        headers={"Content-Disposition": f'attachment; filename="{job_id}-labels.npy"'})
    rows, total = jobs.labels_page(session, job, offset, limit)
    return LabelsPage(total=total, offset=offset,
                      items=[LabelItem(index=r.index, label=r.label, confidence=r.confidence) for r in rows])


@router.get("/{job_id}/centroids", response_model=CentroidsOut)
def get_centroids(job_id: str, session: SessionDep, tenant: TenantDep) -> CentroidsOut:
    row = jobs.centroids(session, jobs.succeeded_job(session, tenant, job_id))
    return CentroidsOut(space=row.space, dim=row.dim, centroids=row.values)


@router.get("/{job_id}/metrics", response_model=MetricsOut)
def get_metrics(job_id: str, session: SessionDep, tenant: TenantDep) -> MetricsOut:
    return MetricsOut.of(jobs.metrics(session, jobs.succeeded_job(session, tenant, job_id)))
