"""The routes of /v1/predictions: start, list, read, cancel, delete, labels, logs."""
from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query, Response
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool

from deepclust.app.core import joblog
from deepclust.app.core.tables import Prediction
from deepclust.app.errors import (
    BROKER_UNAVAILABLE,
    DATABASE_UNAVAILABLE,
    DATASET_NOT_FOR_MODEL,
    DATASET_NOT_FOUND,
    INVALID_REQUEST,
    MALFORMED_REQUEST,
    MODEL_NOT_FOUND,
    PREDICTION_ACTIVE,
    PREDICTION_FINISHED,
    PREDICTION_NOT_FOUND,
    PREDICTION_NOT_SUCCEEDED,
    TOO_LARGE,
    UNSUPPORTED_MEDIA_TYPE,
)
from deepclust.app.http.deps import DbDep, DispatcherDep, StoreDep, TenantDep
from deepclust.app.http.openapi import TENANT, errors
from deepclust.app.http.paging import LimitQuery, OffsetQuery, Page, page_example
from deepclust.app.jobs.service import LabelsFile
from deepclust.app.predictions import service as predictions
from deepclust.app.tenancy.ownership import owned
from deepclust.app.predictions.schemas import (
    PREDICTION_OUT_EXAMPLE,
    PredictionCreate,
    PredictionLabelsPage,
    PredictionOut,
)

router = APIRouter(prefix="/v1/predictions", tags=["predictions"], responses=TENANT)

Status = Literal["queued", "running", "succeeded", "failed", "cancelled"]


@router.post("", status_code=202, response_model=PredictionOut,
             summary="Predict a stored dataset with a model, in the workers (any size)",
             responses=errors(MALFORMED_REQUEST, MODEL_NOT_FOUND, DATASET_NOT_FOUND, TOO_LARGE, UNSUPPORTED_MEDIA_TYPE,
                              INVALID_REQUEST, DATASET_NOT_FOR_MODEL, DATABASE_UNAVAILABLE, BROKER_UNAVAILABLE))
async def create_prediction(body: PredictionCreate, response: Response, db: DbDep, dispatcher: DispatcherDep,
                            tenant: TenantDep) -> PredictionOut:
    """Queue a batch prediction: every sample of the dataset through the model, batch by batch in
    a worker (memory bounded whatever the dataset's size), with progress, cancel and retry like a
    job. The dataset must be what the model takes (features of its width, images of its shape; a
    model on an encoder's embeddings takes images like those the encoder was fed): else 422
    `dataset_not_for_model`, before anything is queued. The answer has `Location: /v1/predictions/{id}`."""
    row = await db.run(predictions.create, dispatcher, tenant, body)
    response.headers["Location"] = f"/v1/predictions/{row.id}"
    return PredictionOut.of(row)


@router.get("", response_model=Page[PredictionOut], summary="List your batch predictions, newest first",
            responses={**errors(MALFORMED_REQUEST),
                       200: {"content": {"application/json": {"example": page_example(PREDICTION_OUT_EXAMPLE)}}}})
async def list_predictions(db: DbDep, tenant: TenantDep,
                           model_id: str | None = Query(None, description="Only predictions by this model."),
                           dataset_id: str | None = Query(None, description="Only predictions of this dataset."),
                           status: Status | None = Query(None, description="Only predictions in this state."),
                           limit: LimitQuery = 50, offset: OffsetQuery = 0) -> Page[PredictionOut]:
    """Your batch predictions, newest first, optionally of one model, dataset or status."""
    return await db.run(predictions.page, tenant, model_id, dataset_id, status, limit, offset)


@router.get("/{prediction_id}", response_model=PredictionOut, summary="One batch prediction: status, progress",
            responses=errors(PREDICTION_NOT_FOUND))
async def get_prediction(prediction_id: str, db: DbDep, tenant: TenantDep) -> PredictionOut:
    """The prediction: status (queued -> running -> succeeded | failed | cancelled), the samples
    predicted so far, the error when it failed."""
    return await db.run(predictions.get, tenant, prediction_id)


@router.post("/{prediction_id}/cancel", status_code=202, response_model=PredictionOut,
             summary="Cancel: a queued prediction at once, a running one within a batch",
             responses=errors(PREDICTION_NOT_FOUND, PREDICTION_FINISHED))
async def cancel_prediction(prediction_id: str, db: DbDep, store: StoreDep, tenant: TenantDep) -> PredictionOut:
    """Cancel the prediction: a queued one is `cancelled` at once; a running one stays `running`
    until its next batch boundary, then is `cancelled` (its partial results removed). A finished
    prediction answers 409."""
    return await db.run(predictions.cancel, store, tenant, prediction_id)


@router.delete("/{prediction_id}", status_code=204, response_class=Response,
               summary="Delete a finished batch prediction with its labels",
               responses=errors(PREDICTION_NOT_FOUND, PREDICTION_ACTIVE))
async def delete_prediction(prediction_id: str, db: DbDep, store: StoreDep, tenant: TenantDep) -> Response:
    """Delete the prediction with its labels, probabilities and log. A queued or running one
    answers 409: cancel it first."""
    await db.run(predictions.remove, store, tenant, prediction_id)
    return Response(status_code=204)


@router.get("/{prediction_id}/labels", response_model=PredictionLabelsPage, response_model_exclude_none=True,
            summary="The cluster of every sample of the dataset (and its probabilities)",
            responses={**errors(MALFORMED_REQUEST, PREDICTION_NOT_FOUND, PREDICTION_NOT_SUCCEEDED),
                       200: {"content": {"text/csv": {"example": "index,label,confidence\n0,1,0.770\n1,8,0.912\n"},
                                         "application/octet-stream": {"schema": {"type": "string", "format": "binary"},
                                                                      "example": "(a .npy int64 vector)"}}}})
async def get_labels(prediction_id: str, db: DbDep, store: StoreDep, tenant: TenantDep,
                     format: Literal["json", "csv", "npy"] = Query("json", description="json (paged), csv or npy (all)."),
                     offset: OffsetQuery = 0,
                     limit: int = Query(1000, ge=1, le=100_000, description="json: page size."),
                     probabilities: bool = Query(False, description="Add each sample's soft assignment to the K "
                                                                    "clusters: json `probabilities` per item, csv "
                                                                    "columns p0..pK-1, npy a structured array with "
                                                                    "the fields `labels` and `probabilities`.")):
    """Each sample's cluster and confidence, once the prediction has succeeded (409 before), as
    for a job's labels: paged JSON, or all of them as CSV (`index,label,confidence`) or as an
    `.npy` label vector; `probabilities=true` adds the soft assignments."""
    answer = await db.run(predictions.labels, store, tenant, prediction_id, format, offset, limit, probabilities)
    if isinstance(answer, LabelsFile):
        return Response(answer.content, media_type=answer.media_type,
                        headers={"Content-Disposition": f'attachment; filename="{answer.filename}"'})
    return answer


@router.get("/{prediction_id}/logs", response_class=Response,
            summary="What the worker logged for this batch prediction: each attempt, its batches, a failure",
            responses={**errors(PREDICTION_NOT_FOUND), 200: {"content": {"text/plain": {"example": (
                "2026-12-03 14:02:07,312 INFO prediction prd_0123: attempt 1: model mdl_0123 on dataset ds_0123 "
                "(9298 samples)\n")}}}})
async def get_logs(prediction_id: str, db: DbDep, store: StoreDep, tenant: TenantDep) -> Response:
    """The prediction's log as plain text, every attempt appended (as a job's): empty while it is
    queued; where a retry resumed; a failure's traceback."""
    await db.run(owned, Prediction, prediction_id, tenant)
    return PlainTextResponse(await run_in_threadpool(joblog.read, store, prediction_id))
