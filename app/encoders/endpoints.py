"""The routes of /v1/encoders: upload an ONNX image encoder (streamed, checked, stored once), list,
read, delete."""
from __future__ import annotations

from contextlib import ExitStack

from fastapi import APIRouter, Request, Response

from deepclust.app.core.tables import Encoder
from deepclust.app.encoders.schemas import ENCODER_EXAMPLE, EncoderOut
from deepclust.app.encoders.service import FILE_FIELDS, TEXT_FIELDS, create_encoder, delete_encoder, list_encoders
from deepclust.app.errors import (
    EMPTY_DATA,
    ENCODER_IN_USE,
    ENCODER_NOT_FOUND,
    INVALID_ENCODER_OPTIONS,
    MALFORMED_REQUEST,
    MISSING_FILE,
    NOT_ONNX,
    ONNX_CUSTOM_OPERATOR,
    ONNX_EXTERNAL_DATA,
    ONNX_INPUTS,
    ONNX_OUTPUT_SHAPE,
    TOO_LARGE,
    UNSUPPORTED_MEDIA_TYPE,
    ApiError,
)
from deepclust.app.http.deps import DbDep, SettingsDep, StoreDep, TenantDep
from deepclust.app.http.openapi import TENANT, errors
from deepclust.app.http.paging import LimitQuery, OffsetQuery, Page, page_example
from deepclust.app.http.uploads import receive_form
from deepclust.app.tenancy.ownership import owned

router = APIRouter(prefix="/v1/encoders", tags=["encoders"], responses=TENANT)

_UPLOAD_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file", "input_size", "color"], "additionalProperties": False,
    "properties": {
        "file": {"type": "string", "format": "binary",
                 "description": "An ONNX model with every tensor inside the file, standard operators only: one "
                                "input N×C×H×W float32, one output N×D (or name them with input_name/output_name)."},
        "name": {"type": "string", "description": "A name for the encoder (default: the file's name)."},
        "input_size": {"type": "string", "pattern": "^[0-9]+,[0-9]+$", "description": "H,W it takes, e.g. 224,224."},
        "color": {"type": "string", "enum": ["rgb", "grayscale"], "description": "rgb (C=3) or grayscale (C=1)."},
        "mean": {"type": "string", "description": "Optional, per channel, applied after scaling pixels to [0,1]: "
                                                  "comma-separated, e.g. 0.485,0.456,0.406."},
        "std": {"type": "string", "description": "Optional, per channel, like mean, e.g. 0.229,0.224,0.225."},
        "input_name": {"type": "string", "description": "Optional: the model's input to feed."},
        "output_name": {"type": "string", "description": "Optional: the model's N×D output (needed when it has "
                                                         "several)."},
    }}, "encoding": {"file": {"contentType": "application/octet-stream"}},
    "examples": {"DINOv2-small": {"value": {"file": "dinov2-small.onnx", "name": "dinov2-small",
                                            "input_size": "224,224", "color": "rgb", "mean": "0.485,0.456,0.406",
                                            "std": "0.229,0.224,0.225"}}}}}}}


@router.post("", status_code=201, response_model=EncoderOut, openapi_extra=_UPLOAD_BODY,
             responses=errors(MALFORMED_REQUEST, MISSING_FILE, TOO_LARGE, UNSUPPORTED_MEDIA_TYPE, EMPTY_DATA,
                              INVALID_ENCODER_OPTIONS, NOT_ONNX, ONNX_EXTERNAL_DATA, ONNX_CUSTOM_OPERATOR,
                              ONNX_INPUTS, ONNX_OUTPUT_SHAPE),
             summary="Upload a pretrained image encoder (ONNX; checked on a probe batch, stored once)")
async def upload_encoder(request: Request, response: Response, db: DbDep, store: StoreDep, settings: SettingsDep,
                         tenant: TenantDep) -> EncoderOut:
    """Upload an ONNX image encoder as `multipart/form-data`. It is checked with onnx and
    onnxruntime, and refused with a clear message (nothing stored) when it is not ONNX, keeps
    tensors in external data files, uses custom operator domains, has more than one input, gives an
    output that is not N×D on a probe batch, or is larger than DEEPCLUST_MAX_ENCODER_BYTES."""
    limit = settings.max_encoder_bytes
    with ExitStack() as stack:  # the staging file goes when the request is done, whatever happened
        try:
            form = await receive_form(request, stack, store, limit, file_fields=FILE_FIELDS, text_fields=TEXT_FIELDS)
        except ApiError as exc:
            if exc.error is TOO_LARGE:
                raise TOO_LARGE(f"The encoder is larger than the limit of {limit} bytes "
                                "(DEEPCLUST_MAX_ENCODER_BYTES).", {"limit": limit}) from None
            raise
        row = await db.run(create_encoder, store, settings, tenant, form)
    response.headers["Location"] = f"/v1/encoders/{row.id}"
    return EncoderOut.of(row)


@router.get("", response_model=Page[EncoderOut], summary="List your encoders, newest first",
            responses={**errors(MALFORMED_REQUEST),
                       200: {"content": {"application/json": {"example": page_example(ENCODER_EXAMPLE)}}}})
async def get_encoders(db: DbDep, tenant: TenantDep, limit: LimitQuery = 50,
                       offset: OffsetQuery = 0) -> Page[EncoderOut]:
    """Your encoders, newest first, a page at a time."""
    rows, total = await db.run(list_encoders, tenant, limit, offset)
    return Page(items=[EncoderOut.of(r) for r in rows], total=total)


@router.get("/{encoder_id}", response_model=EncoderOut, summary="One encoder", responses=errors(ENCODER_NOT_FOUND))
async def get_encoder(encoder_id: str, db: DbDep, tenant: TenantDep) -> EncoderOut:
    """One encoder: its input shape, output dimension and checksum."""
    return EncoderOut.of(await db.run(owned, Encoder, encoder_id, tenant))


@router.delete("/{encoder_id}", status_code=204, response_class=Response, summary="Delete an encoder",
               responses=errors(ENCODER_NOT_FOUND, ENCODER_IN_USE))
async def remove_encoder(encoder_id: str, db: DbDep, store: StoreDep, tenant: TenantDep) -> Response:
    """Delete the encoder, its file and the embeddings made with it. Refused (409, naming the jobs)
    while a queued or running job uses it. Models trained on it keep their own copy."""
    await db.run(delete_encoder, store, tenant, encoder_id)
    return Response(status_code=204)
