from __future__ import annotations

import json
from contextlib import ExitStack

from fastapi import APIRouter, Query, Request
from pydantic import ValidationError
from sqlmodel import Session, func, select
from starlette.concurrency import run_in_threadpool

from app.api.deps import SessionDep, SettingsDep, StoreDep, TenantDep
from app.errors import ERROR_RESPONSES, ApiError, ErrorBody
from app.ingest import canonicalize, detect_format
from app.npyfile import open_array
from app.ownership import owned
from app.predict import check_shape, instances_array, predict
from app.schemas import ModelOut, Page, PredictIn, PredictOut
from app.tables import Metrics, TrainedModel
from app.uploads import is_multipart, receive_form

router = APIRouter(prefix="/v1/models", tags=["models"], responses=ERROR_RESPONSES)

_PREDICT_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": PredictIn.model_json_schema(),
                         "example": {"instances": [[0.0, 0.25, 0.5, 1.0]]}},
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
        "file": {"type": "string", "format": "binary", "description": "rows in any dataset format"}}}},
}}}


def _model_out(session: Session, row: TrainedModel) -> ModelOut:
    return ModelOut.of(row, session.get(Metrics, row.job_id))


@router.get("", response_model=Page[ModelOut])
def list_models(session: SessionDep, tenant: TenantDep, limit: int = Query(50, ge=1, le=1000),
                offset: int = Query(0, ge=0)) -> Page[ModelOut]:
    where = TrainedModel.tenant_id == tenant
    rows = session.exec(select(TrainedModel).where(where).order_by(TrainedModel.created_at.desc(), TrainedModel.id)
                        .offset(offset).limit(limit)).all()
    total = session.exec(select(func.count()).select_from(TrainedModel).where(where)).one()
    return Page(items=[_model_out(session, r) for r in rows], total=total)


@router.get("/{model_id}", response_model=ModelOut)
def get_model(model_id: str, session: SessionDep, tenant: TenantDep) -> ModelOut:
    return _model_out(session, owned(session, TrainedModel, model_id, tenant))


@router.post("/{model_id}/predict", response_model=PredictOut, response_model_exclude_none=True,
             openapi_extra=_PREDICT_BODY, responses={415: {"model": ErrorBody, "description": "Unsupported format"}},
             summary="Cluster new samples: JSON instances or an uploaded file")
async def predict_model(model_id: str, request: Request, session: SessionDep, store: StoreDep,
                        settings: SettingsDep, tenant: TenantDep,
                        embeddings: bool = Query(False, description="Also return the latent vectors")) -> dict:
    row = await run_in_threadpool(owned, session, TrainedModel, model_id, tenant)
    model = await run_in_threadpool(request.app.state.models.get, row)
    if is_multipart(request):
        with ExitStack() as stack:
            form = await receive_form(request, stack, store, settings.max_upload_bytes, file_fields=("file",))
            if "file" not in form.files:
                raise ApiError(400, "missing_file", "The form has no 'file' part.")
            upload = form.files["file"]
            x_path = stack.enter_context(store.staging_file(".npy"))

            def from_file() -> dict:
                canonicalize(upload.path, detect_format(upload.filename, upload.path), x_path,
                             staging=store.staging_file, max_expanded_bytes=settings.max_expanded_bytes)
                return predict(model, check_shape(open_array(x_path), row.sample_shape), embeddings)

            return await run_in_threadpool(from_file)
    if not request.headers.get("content-type", "").startswith("application/json"):
        raise ApiError(415, "unsupported_media_type", "Send JSON {\"instances\": [[...], ...]} or a multipart 'file'.")
    try:
        body = PredictIn.model_validate(json.loads(await request.body()))
    except json.JSONDecodeError as exc:
        raise ApiError(400, "malformed_request", f"The body is not valid JSON: {exc}") from None
    except ValidationError as exc:
        raise ApiError(422, "invalid_request", "The body must be {\"instances\": [[...], ...]}.",
                       {"errors": json.loads(exc.json(include_url=False, include_input=False))}) from None
    X = check_shape(instances_array(body.instances), row.sample_shape)
    return await run_in_threadpool(predict, model, X, embeddings)
