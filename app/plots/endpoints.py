"""GET /v1/jobs/{id}/plots/{name}.png (and .json, the numbers behind it)."""
from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request, Response

from deepclust.app.plots import service as plots
from deepclust.app.http.deps import DbDep, StoreDep, TenantDep
from deepclust.app.errors import (
    DATABASE_UNAVAILABLE,
    DATASET_DELETED,
    JOB_NOT_FOUND,
    JOB_NOT_SUCCEEDED,
    MALFORMED_REQUEST,
    MODEL_DELETED,
    NOT_IMAGES,
    NO_K_SELECTION,
    NO_LABELS,
    PLOTTING_UNAVAILABLE,
    PLOT_NOT_FOUND,
)
from deepclust.app.http.openapi import TENANT, errors

router = APIRouter(prefix="/v1/jobs", tags=["plots"], responses=TENANT)
_ERRORS = errors(MALFORMED_REQUEST, JOB_NOT_FOUND, PLOT_NOT_FOUND, JOB_NOT_SUCCEEDED, NO_LABELS, NOT_IMAGES, NO_K_SELECTION,
                 MODEL_DELETED, DATASET_DELETED, DATABASE_UNAVAILABLE, PLOTTING_UNAVAILABLE)
# A 1×1 transparent PNG, as the document's example of an image answer.
_PNG_EXAMPLE = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")

Projection = Literal["pca", "tsne"]
_DESCRIPTION = (f"`name` is one of {', '.join(plots.PLOTS)}. `history` is there while the job runs; the others once it has "
                "succeeded (409 before), `confusion` only when the dataset has labels and `examples` only for "
                "images (409 otherwise), `k_selection` (the evidence of an estimated K: the criterion and seed "
                "agreement against K) once the job has estimated its K (n_clusters \"auto\"; 409 `no_k_selection` "
                "otherwise). Computed once per finished job and cached. `projection` chooses the "
                "embedding map's 2-D projection: PCA, or t-SNE on a seeded sample of at most 10 000 points.")


@router.get("/{job_id}/plots/{name}.png", summary="A plot of the job as a PNG image", description=_DESCRIPTION,
            response_class=Response,
            responses={**_ERRORS, 200: {"description": "The PNG image.", "content": {"image/png": {
                "schema": {"type": "string", "format": "binary"}, "example": _PNG_EXAMPLE}}}})
async def get_plot_png(job_id: str, name: str, request: Request, db: DbDep, store: StoreDep, tenant: TenantDep,
                       projection: Projection = "pca") -> Response:
    png, finished = await db.run(plots.job_plot_png, store, request.app.state.models, tenant, job_id, name, projection)
    # A finished job's plot never changes; a running job's history does.
    cache = "private, max-age=86400" if finished else "no-store"
    return Response(png, media_type="image/png", headers={"Cache-Control": cache})


@router.get("/{job_id}/plots/{name}.json", response_model=dict, summary="The numbers behind a plot",
            responses={**_ERRORS, 200: {"description": "The plot's numbers.", "content": {"application/json": {
                "example": {"cluster_sizes": [178, 182, 177]}}}}},
            description=_DESCRIPTION + " history: `{rows}`; sizes: `{cluster_sizes}`; embedding: `{method, indices, "
            "points, labels, centroids, n_clusters, explained_variance}` (indices are dataset rows); examples: "
            "`{n_per_cluster, clusters: [{cluster, size, most_confident, least_confident}]}`; confusion: "
            "`{classes, clusters, matrix}` (matrix[i][j]: samples of classes[i] in clusters[j]).")
async def get_plot_json(job_id: str, name: str, request: Request, db: DbDep, store: StoreDep, tenant: TenantDep,
                        projection: Projection = "pca") -> dict:
    return await db.run(plots.job_plot_numbers, store, request.app.state.models, tenant, job_id, name, projection)
