"""The routes of /v1/sweeps: start, list, read, cancel, plot."""
from __future__ import annotations

from fastapi import APIRouter, Query, Response

from deepclust.app.sweeps import service as sweeps
from deepclust.app.http.deps import DbDep, DispatcherDep, StoreDep, TenantDep
from deepclust.app.http.paging import LimitQuery, OffsetQuery
from deepclust.app.errors import (
    BROKER_UNAVAILABLE,
    DATABASE_UNAVAILABLE,
    DATASET_NOT_FOUND,
    GRID_TOO_LARGE,
    INVALID_GRID,
    INVALID_N_CLUSTERS,
    INVALID_PARAMS,
    INVALID_REQUEST,
    INVALID_SELECTION,
    MALFORMED_REQUEST,
    METHOD_INPUT_KIND,
    PLOTTING_UNAVAILABLE,
    SWEEP_FINISHED,
    SWEEP_NOT_FOUND,
    SWEEP_NOT_SUCCEEDED,
    TOO_LARGE,
    UNKNOWN_METHOD,
    UNSUPPORTED_INPUT_SHAPE,
    UNSUPPORTED_MEDIA_TYPE,
)
from deepclust.app.http.openapi import TENANT, errors
from deepclust.app.http.paging import Page, page_example
from deepclust.app.sweeps.schemas import SweepCreate, SweepOut

router = APIRouter(prefix="/v1/sweeps", tags=["sweeps"], responses=TENANT)
_EXAMPLE = SweepOut.model_config["json_schema_extra"]["examples"][0]
# A 1×1 transparent PNG, as the document's example of an image answer.
_PNG_EXAMPLE = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="


@router.post("", status_code=202, response_model=SweepOut,
             summary="Sweep K and seeds: one job per grid point, then a label-free recommendation",
             responses=errors(MALFORMED_REQUEST, DATASET_NOT_FOUND, TOO_LARGE, UNSUPPORTED_MEDIA_TYPE,
                              INVALID_REQUEST, UNKNOWN_METHOD, METHOD_INPUT_KIND, INVALID_N_CLUSTERS,
                              INVALID_PARAMS, INVALID_GRID, GRID_TOO_LARGE, INVALID_SELECTION,
                              UNSUPPORTED_INPUT_SHAPE, DATABASE_UNAVAILABLE, BROKER_UNAVAILABLE))
async def create_sweep(body: SweepCreate, response: Response, db: DbDep, dispatcher: DispatcherDep,
                 tenant: TenantDep) -> SweepOut:
    """Start a sweep: one ordinary job per (K, seed), listed, cancellable and resumable like any
    job; jobs of the same seed reuse one pretraining where the method allows it. Once they have
    all ended, `result` names the recommended K and run, chosen without labels."""
    sweep = await db.run(sweeps.create, dispatcher, tenant, body)
    response.headers["Location"] = f"/v1/sweeps/{sweep.id}"
    return sweep


@router.get("", response_model=Page[SweepOut], summary="List your sweeps, newest first",
            responses={**errors(MALFORMED_REQUEST), 200: {"content": {"application/json": {"example": page_example(_EXAMPLE)}}}})
async def list_sweeps(db: DbDep, tenant: TenantDep,
                dataset_id: str | None = Query(None, description="Only sweeps of this dataset."),
                limit: LimitQuery = 50, offset: OffsetQuery = 0) -> Page[SweepOut]:
    """Your sweeps, newest first, optionally of one dataset."""
    return await db.run(sweeps.page, tenant, dataset_id, limit, offset)


@router.get("/{sweep_id}", response_model=SweepOut, summary="One sweep: status, progress, result",
            responses=errors(SWEEP_NOT_FOUND))
async def get_sweep(sweep_id: str, db: DbDep, tenant: TenantDep) -> SweepOut:
    """The sweep with the progress of its jobs and, once succeeded, its result table."""
    return await db.run(sweeps.get, sweep_id, tenant)


@router.post("/{sweep_id}/cancel", status_code=202, response_model=SweepOut,
             summary="Cancel every job of the sweep that has not ended",
             responses=errors(SWEEP_NOT_FOUND, SWEEP_FINISHED))
async def cancel_sweep(sweep_id: str, db: DbDep, store: StoreDep, tenant: TenantDep) -> SweepOut:
    """Cancel the sweep's queued and running jobs (running ones stop within an epoch); the sweep
    then ends `cancelled`. A finished sweep answers 409."""
    return await db.run(sweeps.cancel, store, tenant, sweep_id)


@router.get("/{sweep_id}/plot.png", response_class=Response,
            responses={**errors(SWEEP_NOT_FOUND, SWEEP_NOT_SUCCEEDED, DATABASE_UNAVAILABLE, PLOTTING_UNAVAILABLE),
                       200: {"description": "Each criterion against K, one dot per run, the mean per K as a line, "
                                            "the recommended K marked",
                             "content": {"image/png": {"schema": {"type": "string", "format": "binary"},
                                                       "example": _PNG_EXAMPLE}}}},
            summary="The sweep's criteria against K (once succeeded)")
async def get_plot(sweep_id: str, db: DbDep, tenant: TenantDep) -> Response:
    """A PNG of every criterion against K; 409 until the sweep has succeeded."""
    return Response(await db.run(sweeps.plot_png, tenant, sweep_id), media_type="image/png")
