"""The routes of /v1/datasets: upload (streamed, checked, stored once), list, read, delete."""
from __future__ import annotations

from contextlib import ExitStack

from fastapi import APIRouter, Request, Response

from deepclust.app.http.deps import DbDep, SettingsDep, StoreDep, TenantDep
from deepclust.app.http.paging import LimitQuery, OffsetQuery
from deepclust.app.core.tables import Dataset
from deepclust.app.datasets.ingest import formats
from deepclust.app.datasets.service import FILE_FIELDS, TEXT_FIELDS, create_dataset, list_datasets
from deepclust.app.lifecycle import delete_dataset
from deepclust.app.errors import (
    ARCHIVE_LINK,
    ARCHIVE_SPECIAL_FILE,
    DATASET_IN_USE,
    DATASET_NOT_FOUND,
    DUPLICATE_MEMBER,
    EMPTY_DATA,
    ENCRYPTED_ARCHIVE,
    IMAGE_FILE_TOO_LARGE,
    IMAGE_OPTIONS_UNSUPPORTED,
    IMAGE_TOO_LARGE,
    INVALID_ARCHIVE,
    INVALID_COLOR,
    INVALID_FILE,
    INVALID_IMAGE_SIZE,
    INVALID_LABELS,
    LABELS_GIVEN_TWICE,
    LABELS_LENGTH_MISMATCH,
    LABEL_COLUMN_UNSUPPORTED,
    MALFORMED_REQUEST,
    MISSING_ARRAY,
    MISSING_FILE,
    MISSING_LABELS,
    NON_FINITE,
    NON_NUMERIC,
    NO_IMAGES,
    ONE_DIMENSIONAL,
    PICKLED_DATA,
    RAGGED_ROWS,
    TOO_FEW_SAMPLES,
    TOO_LARGE,
    TOO_MANY_DIMENSIONS,
    TOO_MANY_MEMBERS,
    TRUNCATED_FILE,
    UNKNOWN_LABEL_COLUMN,
    UNKNOWN_LABEL_PATH,
    UNREADABLE_IMAGE,
    UNSAFE_PATH,
    UNSUPPORTED_FORMAT,
    UNSUPPORTED_MEDIA_TYPE,
)
from deepclust.app.http.openapi import TENANT, errors
from deepclust.app.tenancy.ownership import owned
from deepclust.app.datasets.schemas import DATASET_EXAMPLE, DatasetOut
from deepclust.app.http.paging import Page, page_example
from deepclust.app.http.uploads import receive_form

router = APIRouter(prefix="/v1/datasets", tags=["datasets"], responses=TENANT)

_UPLOAD_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"], "additionalProperties": False,
    # Labels come as a file or as a column, never both (422 labels_given_twice). The descriptions say
    # so: a `not` (or dependentSchemas) here is valid JSON Schema, but schemathesis 4.32 cannot build
    # negative examples for it over binary parts ("Unsupported type: 'Binary'"), and its run is how
    # tests/service/http/test_schema_fuzz.py holds this document to the server's answers.
    "properties": {
        "file": {"type": "string", "format": "binary",
                 "description": f"The data: {formats.described()}, or an image archive "
                                f"{'/'.join(formats.ARCHIVE_SUFFIXES)}. The format is told by the file name, else "
                                "by its first bytes: a name without an extension works for the binary formats "
                                "(npy, npz, parquet, archives), while text tables need theirs (.csv, .tsv; 415 "
                                "unsupported_format otherwise)."},
        "name": {"type": "string", "description": "A name for the dataset (default: the file's name)."},
        "labels": {"type": "string", "format": "binary",
                   "description": "Optional labels, used only for evaluation metrics: a .npy vector or one label "
                                  "per line, as many as samples. Not with label_column."},
        "label_column": {"type": "string", "description": f"Optional, {'/'.join(formats.LABEL_COLUMN_FORMATS)}: the "
                                                          "column holding labels (header name or 0-based index); it "
                                                          "is not a feature. Not with a labels file."},
        "image_size": {"type": "string", "pattern": "^[0-9]+,[0-9]+$",
                       "description": "Optional, image archives: H,W to resize to (default: the most common size)."},
        "color": {"type": "string", "enum": ["grayscale", "rgb"],
                  "description": "Optional, image archives: grayscale or rgb (default: from the images)."},
    }}, "encoding": {"file": {"contentType": "application/octet-stream"},
                     "labels": {"contentType": "application/octet-stream"}},
    "examples": {"csv with a label column": {"value": {"file": "digits.csv", "label_column": "digit",
                                                      "name": "digits"}}}}}}}


@router.post("", status_code=201, response_model=DatasetOut, openapi_extra=_UPLOAD_BODY,
             responses=errors(MALFORMED_REQUEST, MISSING_FILE, TOO_LARGE, TOO_MANY_MEMBERS, IMAGE_TOO_LARGE,
                              IMAGE_FILE_TOO_LARGE, UNSUPPORTED_MEDIA_TYPE, UNSUPPORTED_FORMAT, EMPTY_DATA,
                              TOO_FEW_SAMPLES, ONE_DIMENSIONAL, TOO_MANY_DIMENSIONS, NON_NUMERIC, NON_FINITE,
                              RAGGED_ROWS, INVALID_FILE, TRUNCATED_FILE, PICKLED_DATA, MISSING_ARRAY,
                              INVALID_LABELS, MISSING_LABELS, LABELS_LENGTH_MISMATCH, LABELS_GIVEN_TWICE,
                              LABEL_COLUMN_UNSUPPORTED, UNKNOWN_LABEL_COLUMN, UNSAFE_PATH, ARCHIVE_LINK,
                              ARCHIVE_SPECIAL_FILE, DUPLICATE_MEMBER, ENCRYPTED_ARCHIVE, INVALID_ARCHIVE,
                              NO_IMAGES, UNREADABLE_IMAGE, INVALID_IMAGE_SIZE, INVALID_COLOR,
                              IMAGE_OPTIONS_UNSUPPORTED, UNKNOWN_LABEL_PATH),
             summary="Upload a feature matrix or an image archive (streamed to disk, checked, stored once)")
async def upload_dataset(request: Request, db: DbDep, store: StoreDep, settings: SettingsDep,
                         tenant: TenantDep) -> DatasetOut:
    """Upload a dataset as `multipart/form-data`. It is refused with a clear message, and nothing
    is stored, when it is empty, one-dimensional or ragged, has non-numeric cells, NaN or infinity,
    is a pickled or truncated `.npy`, or has labels whose count differs from the samples."""
    with ExitStack() as stack:  # the staging files go when the request is done, whatever happened
        form = await receive_form(request, stack, store, settings.max_upload_bytes,
                                  file_fields=FILE_FIELDS, text_fields=TEXT_FIELDS)
        row = await db.run(create_dataset, store, settings, tenant, form)
    return DatasetOut.of(row)


@router.get("", response_model=Page[DatasetOut], summary="List your datasets, newest first",
            responses={**errors(MALFORMED_REQUEST), 200: {"content": {"application/json": {"example": page_example(DATASET_EXAMPLE)}}}})
async def get_datasets(db: DbDep, tenant: TenantDep, limit: LimitQuery = 50,
                       offset: OffsetQuery = 0) -> Page[DatasetOut]:
    """Your datasets, newest first, a page at a time."""
    rows, total = await db.run(list_datasets, tenant, limit, offset)
    return Page(items=[DatasetOut.of(r) for r in rows], total=total)


@router.get("/{dataset_id}", response_model=DatasetOut, summary="One dataset",
            responses=errors(DATASET_NOT_FOUND))
async def get_dataset(dataset_id: str, db: DbDep, tenant: TenantDep) -> DatasetOut:
    """One dataset: its shape, format, labels and checksum."""
    return DatasetOut.of(await db.run(owned, Dataset, dataset_id, tenant))


@router.delete("/{dataset_id}", status_code=204, response_class=Response,
               summary="Delete a dataset with its finished jobs and their models",
               responses=errors(DATASET_NOT_FOUND, DATASET_IN_USE))
async def remove_dataset(dataset_id: str, request: Request, db: DbDep, store: StoreDep,
                         tenant: TenantDep) -> Response:
    """Delete the dataset, its files, its finished jobs and their models. Refused (409, naming the
    jobs) while one of its jobs is queued or running: cancel it, or wait for it to end."""
    request.app.state.models.evict(await db.run(delete_dataset, store, tenant, dataset_id))
    return Response(status_code=204)
