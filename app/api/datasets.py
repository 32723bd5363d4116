from __future__ import annotations

from contextlib import ExitStack

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from app.api.deps import SessionDep, SettingsDep, StoreDep, TenantDep
from app.datasets import FILE_FIELDS, TEXT_FIELDS, create_dataset, delete_dataset, list_datasets
from app.errors import ERROR_RESPONSES, ErrorBody
from app.ownership import owned
from app.schemas import DatasetOut, Page
from app.tables import Dataset
from app.uploads import receive_form

router = APIRouter(prefix="/v1/datasets", tags=["datasets"], responses=ERROR_RESPONSES)

_UPLOAD_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"],
    "properties": {
        "file": {"type": "string", "format": "binary",
                 "description": ".npy, .npz (arrays x, optional y), .csv/.tsv (numeric, optional header) or .parquet"},
        "name": {"type": "string"},
        "labels": {"type": "string", "format": "binary",
                   "description": "optional: .npy vector or one label per line; used only for metrics"},
        "label_column": {"type": "string", "description": "optional, csv/tsv/parquet: header name or 0-based index"},
    }}, "encoding": {"file": {"contentType": "application/octet-stream"}}}}}}


@router.post("", status_code=201, response_model=DatasetOut, openapi_extra=_UPLOAD_BODY,
             responses={413: {"model": ErrorBody, "description": "Over the size limit"},
                        415: {"model": ErrorBody, "description": "Unsupported format"}},
             summary="Upload a feature matrix (streamed to disk, converted once to float32)")
async def upload_dataset(request: Request, session: SessionDep, store: StoreDep, settings: SettingsDep,
                         tenant: TenantDep) -> DatasetOut:
    with ExitStack() as stack:  # the staging files go when the request is done, whatever happened
        form = await receive_form(request, stack, store, settings.max_upload_bytes,
                                  file_fields=FILE_FIELDS, text_fields=TEXT_FIELDS)
        row = await run_in_threadpool(create_dataset, session, store, settings, tenant, form)
    return DatasetOut.of(row)


@router.get("", response_model=Page[DatasetOut])
def get_datasets(session: SessionDep, tenant: TenantDep, limit: int = Query(50, ge=1, le=1000),
                 offset: int = Query(0, ge=0)) -> Page[DatasetOut]:
    rows, total = list_datasets(session, tenant, limit, offset)
    return Page(items=[DatasetOut.of(r) for r in rows], total=total)


@router.get("/{dataset_id}", response_model=DatasetOut)
def get_dataset(dataset_id: str, session: SessionDep, tenant: TenantDep) -> DatasetOut:
    return DatasetOut.of(owned(session, Dataset, dataset_id, tenant))


@router.delete("/{dataset_id}", status_code=204, response_class=Response)
def remove_dataset(dataset_id: str, session: SessionDep, store: StoreDep, tenant: TenantDep) -> Response:
    delete_dataset(session, store, tenant, dataset_id)
    return Response(status_code=204)
