"""The routes of /v1/models: list, read, delete, download (zip, ONNX), import, predict."""
from __future__ import annotations

from contextlib import ExitStack
from typing import Literal

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from deepclust.app import lifecycle
from deepclust.app.http.deps import DbDep, SettingsDep, StoreDep, TenantDep
from deepclust.app.http.paging import LimitQuery, OffsetQuery
from deepclust.app.core import results
from deepclust.app.datasets.ingest import formats
from deepclust.app.errors import (
    ARCHIVE_LINK,
    ARCHIVE_SPECIAL_FILE,
    DATABASE_UNAVAILABLE,
    DUPLICATE_MEMBER,
    ENCRYPTED_ARCHIVE,
    IMAGE_INPUT_UNSUPPORTED,
    INVALID_ARCHIVE,
    INVALID_FILE,
    INVALID_INSTANCES,
    INVALID_MODEL_BUNDLE,
    INVALID_REQUEST,
    LABEL_COLUMN_UNSUPPORTED,
    MALFORMED_REQUEST,
    MISSING_ARRAY,
    MISSING_FILE,
    MODEL_IN_USE,
    MODEL_NOT_FOUND,
    NON_FINITE,
    NON_NUMERIC,
    NO_IMAGES,
    ONE_DIMENSIONAL,
    ONNX_UNAVAILABLE,
    PICKLED_DATA,
    RAGGED_ROWS,
    TOO_LARGE,
    TOO_MANY_DIMENSIONS,
    TOO_MANY_MEMBERS,
    TRUNCATED_FILE,
    UNKNOWN_LABEL_COLUMN,
    UNREADABLE_IMAGE,
    UNSAFE_PATH,
    UNSUPPORTED_FORMAT,
    UNSUPPORTED_MEDIA_TYPE,
    WRONG_SHAPE,
)
from deepclust.app.trained_models.bundle import bundle_onnx, bundle_zip, import_model
from deepclust.app.http.openapi import TENANT, errors
from deepclust.app.trained_models import service
from deepclust.app.trained_models.predict import NPY_MEDIA_TYPE, answer_json, wants_npy
from deepclust.app.http.paging import Page, page_example
from deepclust.app.trained_models.schemas import MODEL_EXAMPLE, ModelOut, PredictIn, PredictOut
from deepclust.app.http.uploads import is_multipart, receive_form

router = APIRouter(prefix="/v1/models", tags=["models"], responses=TENANT)

_PREDICT_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": PredictIn.model_json_schema(),
                         "example": {"instances": [[0.0, 0.25, 0.5, 1.0]]}},
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "additionalProperties": False,
                                       "properties": {
        "file": {"type": "string", "format": "binary",
                 "description": f"Rows in any dataset format ({formats.DATA_SUFFIXES}), an image archive, or one "
                                f"image file ({formats.IMAGE_TYPES}), shaped or made like the training samples; one "
                                "row is enough. Named with its extension: text tables (.csv, .tsv) are not told "
                                "from their bytes."},
        "label_column": {"type": "string", "description": f"optional, {'/'.join(formats.LABEL_COLUMN_FORMATS)}: a "
                                                           "column to drop (header name or 0-based index), e.g. the "
                                                           "training file's labels"}}},
                            "encoding": {"file": {"contentType": "application/octet-stream"}},
                            "example": {"file": "few.csv", "label_column": "digit"}},
}}}


@router.get("", response_model=Page[ModelOut], summary="List your models, newest first",
            responses={**errors(MALFORMED_REQUEST), 200: {"content": {"application/json": {"example": page_example(MODEL_EXAMPLE)}}}})
async def list_models(db: DbDep, tenant: TenantDep, limit: LimitQuery = 50,
                      offset: OffsetQuery = 0) -> Page[ModelOut]:
    """Your models (each succeeded job makes one; imports add more), newest first."""
    return await db.run(service.models_page, tenant, limit, offset)


_IMPORT_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"], "additionalProperties": False, "properties": {
        "file": {"type": "string", "format": "binary", "contentMediaType": "application/zip",
                 "description": "A zip holding model.safetensors and manifest.json: what GET /v1/models/{id}/download "
                                "gives, or a directory written by DeepClusterer.save, zipped. Anything else is "
                                "415 unsupported_media_type."}}},
    "encoding": {"file": {"contentType": "application/zip"}}, "example": {"file": "model.zip"}}}}}


@router.post("", status_code=201, response_model=ModelOut, openapi_extra=_IMPORT_BODY,
             responses=errors(MALFORMED_REQUEST, MISSING_FILE, TOO_LARGE, TOO_MANY_MEMBERS, UNSUPPORTED_MEDIA_TYPE,
                              INVALID_MODEL_BUNDLE),
             summary="Import a model trained elsewhere with the library (a zip of model.safetensors + manifest.json)")
async def import_bundle(request: Request, response: Response, db: DbDep, store: StoreDep,
                        settings: SettingsDep, tenant: TenantDep) -> ModelOut:
    """Import a model bundle; the answer is the new model resource (no job, no dataset), usable by
    predict and download like any other. The bundle is checked before anything is stored: JSON
    manifest, safetensors weights (never pickle), a network no larger than its weights, and a model
    that rebuilds and predicts."""
    with ExitStack() as stack:
        form = await receive_form(request, stack, store, settings.max_upload_bytes, file_fields=("file",),
                                  digest=False)
        if "file" not in form.files:
            raise MISSING_FILE("The form has no 'file' part; send the zip as multipart field 'file'.")
        row, weights, encoder_onnx = await run_in_threadpool(import_model, tenant, form.files["file"].path,
                                                             settings.max_expanded_bytes)
    out = await db.run(service.store_import, row, weights, encoder_onnx)
    response.headers["Location"] = f"/v1/models/{row.id}"
    return out


@router.get("/{model_id}", response_model=ModelOut, summary="One model", responses=errors(MODEL_NOT_FOUND))
async def get_model(model_id: str, db: DbDep, tenant: TenantDep) -> ModelOut:
    """The model: method, params, input shape, the training job's metrics, source job and dataset."""
    return await db.run(service.get_model, model_id, tenant)


@router.delete("/{model_id}", status_code=204, response_class=Response, summary="Delete a model",
               responses=errors(MODEL_NOT_FOUND, MODEL_IN_USE))
async def delete_model(model_id: str, request: Request, db: DbDep, tenant: TenantDep) -> Response:
    """Delete the model; its job keeps its labels and metrics (and shows model_id null), its finished
    batch predictions their labels. 409 while a batch prediction by it is queued or running."""
    await db.run(lifecycle.delete_model, tenant, model_id)
    request.app.state.models.evict([model_id])
    return Response(status_code=204)


@router.get("/{model_id}/download", response_class=Response,
            responses={**errors(MALFORMED_REQUEST, MODEL_NOT_FOUND, DATABASE_UNAVAILABLE, ONNX_UNAVAILABLE),
                       200: {"content": {"application/zip": {"schema": {"type": "string", "format": "binary"},
                                                             "example": "(a zip: model.safetensors, manifest.json)"},
                                         "application/octet-stream": {"schema": {"type": "string", "format": "binary"},
                                                                      "example": "(an ONNX model)"}},
                             "description": "zip: model.safetensors + manifest.json; onnx: the ONNX model"}},
            summary="Download a model: a zip for DeepClusterer.load, or ONNX (preprocessing included)")
async def download_model(model_id: str, request: Request, db: DbDep, tenant: TenantDep,
                         format: Literal["zip", "onnx"] = Query(
                             "zip", description="zip: model.safetensors + manifest.json, loadable with "
                                                "DeepClusterer.load once unzipped; onnx: input (N, n_features) "
                                                "float32 -> probabilities (N, K), embedding (N, d)")) -> Response:
    """The model as a zip that `DeepClusterer.load` reads once unzipped, or (`?format=onnx`) as an
    ONNX model of the inference path, preprocessing included: input `input` (N, n_features)
    float32, raw values as sent to predict; outputs `probabilities` (N, K) and `embedding` (N, d).
    A model on a pretrained encoder's embeddings gives ONE graph (preprocessing, encoder, clustering
    model) from `pixels` (N, C, H, W) float32, 8-bit pixel values shaped like its dataset's images;
    its zip also carries `encoder.onnx` and the preprocessing as the manifest's `encoder`.
    ONNX export needs the server's optional extra `onnx` (503 without it)."""
    card = await db.run(service.model_card, model_id, tenant)
    encoder_onnx = await db.run(results.encoder_onnx, model_id) if card.encoder is not None else None
    if format == "zip":
        weights, manifest = await db.run(results.model_bytes, model_id)
        return Response(bundle_zip(weights, manifest, card.encoder, encoder_onnx), media_type="application/zip",
                        headers={"Content-Disposition": f'attachment; filename="{model_id}.zip"'})
    model = await service.cached_model(request.app.state.models, db, model_id)
    content = await run_in_threadpool(bundle_onnx, model, card.encoder, encoder_onnx)
    return Response(content, media_type="application/octet-stream",
                    headers={"Content-Disposition": f'attachment; filename="{model_id}.onnx"'})


@router.post("/{model_id}/predict", response_model=PredictOut, response_model_exclude_none=True,
             openapi_extra=_PREDICT_BODY,
             responses={**errors(MALFORMED_REQUEST, MISSING_FILE, MODEL_NOT_FOUND, TOO_LARGE,
                                 UNSUPPORTED_MEDIA_TYPE, UNSUPPORTED_FORMAT, INVALID_REQUEST, INVALID_INSTANCES,
                                 WRONG_SHAPE, RAGGED_ROWS, NON_NUMERIC, NON_FINITE, ONE_DIMENSIONAL,
                                 TOO_MANY_DIMENSIONS, INVALID_FILE, TRUNCATED_FILE, PICKLED_DATA, MISSING_ARRAY,
                                 LABEL_COLUMN_UNSUPPORTED, UNKNOWN_LABEL_COLUMN, IMAGE_INPUT_UNSUPPORTED,
                                 UNSAFE_PATH, ARCHIVE_LINK, ARCHIVE_SPECIAL_FILE, DUPLICATE_MEMBER,
                                 ENCRYPTED_ARCHIVE, INVALID_ARCHIVE, NO_IMAGES, UNREADABLE_IMAGE),
                        200: {"description": "Labels and probabilities (and embeddings with `?embeddings=true`). "
                                             "With `Accept: application/x-npy`, one structured `.npy` with the "
                                             "fields `labels` (int64), `probabilities` and `embeddings` (float32 "
                                             "rows): `np.load(f)[\"labels\"]`.",
                              "content": {NPY_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"},
                                                           "example": "(a .npy file: np.load(f)['labels'])"}}}},
             summary="Cluster new samples: JSON instances or an uploaded file")
async def predict_model(model_id: str, request: Request, db: DbDep, store: StoreDep,
                        settings: SettingsDep, tenant: TenantDep,
                        embeddings: bool = Query(False, description="Also return the latent vectors")) -> Response:
    """The cluster and soft assignment of each row: JSON `{"instances": [[...], ...]}`, or a
    multipart `file` in any dataset format, one image or an image archive (with `label_column` to
    drop a label column). Rows are preprocessed exactly as the training data was; a wrong width or
    shape, NaN or infinity is a 422. `Accept: application/x-npy` answers one `.npy`."""
    card = await db.run(service.model_card, model_id, tenant)
    model = await service.cached_model(request.app.state.models, db, model_id)
    encoder = await service.encoder_runner(request.app.state.encoders, db, card)
    npy = wants_npy(request.headers.get("accept", ""))
    media_type = NPY_MEDIA_TYPE if npy else "application/json"
    if is_multipart(request):
        with ExitStack() as stack:
            form = await receive_form(request, stack, store, settings.max_upload_bytes, file_fields=("file",),
                                      text_fields=("label_column",), digest=False)
            if "file" not in form.files:
                raise MISSING_FILE("The form has no 'file' part.")
            x_path = stack.enter_context(store.staging_file(".npy"))
            content = await run_in_threadpool(service.predict_file, form, card, model, x_path, store.staging_file,
                                              settings, embeddings, npy, encoder)
            return Response(content, media_type=media_type)
    if not request.headers.get("content-type", "").startswith("application/json"):
        raise UNSUPPORTED_MEDIA_TYPE("Send JSON {\"instances\": [[...], ...]} or a multipart 'file'.")
    body = await request.body()
    content = await run_in_threadpool(answer_json, model, body, card.sample_shape, embeddings, npy, encoder)
    return Response(content, media_type=media_type)
