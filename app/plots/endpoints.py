"""GET /v1/jobs/{id}/plots/{name}.png (and .json, the numbers behind it)."""
from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request, Response

from deepclust.app.plots import service as plots
from deepclust.app.http.deps import SessionDep, StoreDep, TenantDep
from deepclust.app.errors import (
    DATABASE_UNAVAILABLE,
    DATASET_DELETED,
    JOB_NOT_FOUND,
    JOB_NOT_SUCCEEDED,
    MALFORMED_REQUEST,
    MODEL_DELETED,
    NOT_IMAGES,
    NO_LABELS,
    PLOTTING_UNAVAILABLE,
    PLOT_NOT_FOUND,
)
from deepclust.app.http.openapi import TENANT, errors
from deepclust.app.tenancy.ownership import owned
from deepclust.app.core.tables import ACTIVE_STATES, Job

router = APIRouter(prefix="/v1/jobs", tags=["plots"], responses=TENANT)
_ERRORS = errors(MALFORMED_REQUEST, JOB_NOT_FOUND, PLOT_NOT_FOUND, JOB_NOT_SUCCEEDED, NO_LABELS, NOT_IMAGES,
                 MODEL_DELETED, DATASET_DELETED, DATABASE_UNAVAILABLE, PLOTTING_UNAVAILABLE)
# A 1×1 transparent PNG, as the document's example of an image answer.
_PNG_EXAMPLE = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")

Projection = Literal["pca", "tsne"]
_NAMES = ", ".join(plots.PLOTS)
_DESCRIPTION = (f"`name` is one of {_NAMES}. `history` is there while the job runs; the others once it has "
                "succeeded (409 before), `confusion` only when the dataset has labels and `examples` only for "
                "images (409 otherwise). Computed once per finished job and cached. `projection` chooses the "
                "embedding map's 2-D projection: PCA, or t-SNE on a seeded sample of at most 10 000 points.")


def _job(session, tenant: str, job_id: str, name: str) -> Job:
    job = owned(session, Job, job_id, tenant)
    if name not in plots.PLOTS:
        raise PLOT_NOT_FOUND(f"There is no plot {name!r}; the plots are {_NAMES}.",
                             {"plot": name, "plots": list(plots.PLOTS)})
    return job


@router.get("/{job_id}/plots/{name}.png", summary="A plot of the job as a PNG image", description=_DESCRIPTION,
            response_class=Response,
            responses={**_ERRORS, 200: {"description": "The PNG image.", "content": {"image/png": {
                "schema": {"type": "string", "format": "binary"}, "example": _PNG_EXAMPLE}}}})
def get_plot_png(job_id: str, name: str, request: Request, session: SessionDep, store: StoreDep, tenant: TenantDep,
                 projection: Projection = "pca") -> Response:
    job = _job(session, tenant, job_id, name)
    # A finished job's plot never changes; a running job's history does.
    cache = "no-store" if job.status in ACTIVE_STATES else "private, max-age=86400"
    png = plots.plot_png(session, store, request.app.state.models, job, name, projection)
    return Response(png, media_type="image/png", headers={"Cache-Control": cache})


@router.get("/{job_id}/plots/{name}.json", response_model=dict, summary="The numbers behind a plot",
            responses={**_ERRORS, 200: {"description": "The plot's numbers.", "content": {"application/json": {
                "example": {"cluster_sizes": [178, 182, 177]}}}}},
            description=_DESCRIPTION + " history: `{rows}`; sizes: `{cluster_sizes}`; embedding: `{method, indices, "
            "points, labels, centroids, n_clusters, explained_variance}` (indices are dataset rows); examples: "
            "`{n_per_cluster, clusters: [{cluster, size, most_confident, least_confident}]}`; confusion: "
            "`{classes, clusters, matrix}` (matrix[i][j]: samples of classes[i] in clusters[j]).")
def get_plot_json(job_id: str, name: str, request: Request, session: SessionDep, store: StoreDep, tenant: TenantDep,
                  projection: Projection = "pca") -> dict:
    job = _job(session, tenant, job_id, name)
    return plots.plot_numbers(session, store, request.app.state.models, job, name, projection)
