"""The one error shape of the API, {"error": {"code", "message", "details"}}, and every code it answers with.

Each machine code is declared once, below, as an ``ErrorCode``: its HTTP status, an example
message for the OpenAPI document and, where the message follows from the details alone, its
template. Raising one is calling it: ``raise DATASET_NOT_FOUND(id=...)`` or
``raise NON_FINITE("Row 3, column 2 is NaN ...", row=3, column=2)``. A route lists the codes it can
answer by name (``http.openapi.errors(JOB_NOT_FOUND, JOB_FINISHED)``); the document groups them by
status. ``CODES`` maps each code's name to its declaration.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import Send

from deepclust.app.datasets.ingest import formats

log = logging.getLogger(__name__)


class ErrorDetail(BaseModel):
    code: str = Field(description="A machine code, stable across versions (each route lists its own).")
    message: str = Field(description="What is wrong and how to fix it, for a person.")
    details: dict[str, Any] = Field({}, description="Structured facts about the error (ids, limits, each invalid "
                                                    "field), varying by code.")


class ErrorBody(BaseModel):
    """What every non-2xx answer carries."""

    error: ErrorDetail


CODES: dict[str, ErrorCode] = {}


@dataclass(frozen=True)
class ErrorCode:
    """One machine code: its status, an example message (the OpenAPI document shows it) and, when
    the message follows from the details alone, its template (``str.format`` of the details)."""

    code: str
    status: int
    example: str
    template: str | None = None

    def __post_init__(self) -> None:
        if self.code in CODES:
            raise ValueError(f"error code {self.code!r} is declared twice")
        CODES[self.code] = self

    def __call__(self, message: str | None = None, details: dict[str, Any] | None = None, /, *,
                 headers: dict[str, str] | None = None, **more: Any) -> ApiError:
        """The exception to raise: ``message`` (default: the template, filled from the details) and
        the details, as a dict and/or keywords."""
        details = {**(details or {}), **more}
        return ApiError(self, self.template.format(**details) if message is None else message, details, headers)

    def response(self, message: str | None = None, details: dict[str, Any] | None = None, /, *,
                 headers: dict | None = None, status: int | None = None, **more: Any) -> JSONResponse:
        """The answer itself, for handlers and routes that answer rather than raise; ``status``
        only for the codes Starlette raises with statuses of its own (``HTTP_ERROR``)."""
        exc = self(message, details, headers=headers, **more)
        return error_response(status or exc.status, exc.code, exc.message, exc.details, exc.headers)


class ApiError(Exception):
    def __init__(self, error: ErrorCode, message: str, details: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.error, self.status, self.code = error, error.status, error.code
        self.message, self.details, self.headers = message, details or {}, headers


# -- The request itself (any route) ----------------------------------------------------------------
MALFORMED_REQUEST = ErrorCode("malformed_request", 400,
                               "The request could not be parsed: query.limit: Input should be greater than or equal to 1")
MISSING_FILE = ErrorCode("missing_file", 400, "The form has no 'file' part; send the data as multipart field 'file'.")
UNAUTHORIZED = ErrorCode("unauthorized", 401,
                          "Send 'Authorization: Bearer <key>'; keys are made with `deepclust keys create`.")
TOO_LARGE = ErrorCode("too_large", 413,
                       "The upload is larger than the limit of 1073741824 bytes (DEEPCLUST_MAX_UPLOAD_BYTES).")
UNSUPPORTED_MEDIA_TYPE = ErrorCode("unsupported_media_type", 415,
                                    "Send the upload as multipart/form-data with a 'file' part.")
UNSUPPORTED_FORMAT = ErrorCode("unsupported_format", 415,
                                f"Cannot tell the format of 'data.bin': use {formats.joined(formats.suffix_list())}.")
INVALID_REQUEST = ErrorCode("invalid_request", 422,
                             "The request body is invalid: n_clusters: Input should be a valid integer")
NOT_FOUND = ErrorCode("not_found", 404, "There is no /v2/jobs; the API is described at /docs.")
METHOD_NOT_ALLOWED = ErrorCode("method_not_allowed", 405, "PUT is not allowed on /v1/jobs; see /docs.")
HTTP_ERROR = ErrorCode("http_error", 400, "Bad Request")
CLIENT_DISCONNECTED = ErrorCode("client_disconnected", 400,
                                 "The client disconnected before the request was complete.",
                                 template="The client disconnected before the request was complete.")
DATABASE_UNAVAILABLE = ErrorCode("database_unavailable", 503, "The database is not answering; try again shortly.")
BROKER_UNAVAILABLE = ErrorCode("broker_unavailable", 503,
                                "The job queue (broker) is not answering; nothing was created, try again shortly.",
                                "The job queue (broker) is not answering; nothing was created, try again shortly.")
OVERLOADED = ErrorCode("overloaded", 503, "The server is at capacity; try again after the Retry-After seconds.")
NOT_READY = ErrorCode("not_ready", 503, "Not ready: broker down.")
INTERNAL_ERROR = ErrorCode("internal_error", 500,
                            "An unexpected error occurred; it has been logged.",
                            template="An unexpected error occurred; it has been logged.")

# -- Unknown ids (also another tenant's: ids do not leak) ------------------------------------------
DATASET_NOT_FOUND = ErrorCode("dataset_not_found", 404,
                               "No dataset with id 'ds_0123456789abcdef01234567'.",
                               template="No dataset with id {id!r}.")
JOB_NOT_FOUND = ErrorCode("job_not_found", 404,
                           "No job with id 'job_0123456789abcdef01234567'.",
                           template="No job with id {id!r}.")
MODEL_NOT_FOUND = ErrorCode("model_not_found", 404,
                             "No model with id 'mdl_0123456789abcdef01234567'.",
                             template="No model with id {id!r}.")
SWEEP_NOT_FOUND = ErrorCode("sweep_not_found", 404,
                             "No sweep with id 'swp_0123456789abcdef01234567'.",
                             template="No sweep with id {id!r}.")
PREDICTION_NOT_FOUND = ErrorCode("prediction_not_found", 404,
                                  "No prediction with id 'prd_0123456789abcdef01234567'.",
                                  template="No prediction with id {id!r}.")
PLOT_NOT_FOUND = ErrorCode("plot_not_found", 404,
                            "There is no plot 'loss'; the plots are history, embedding, sizes, examples, confusion.")

# -- Wrong state -----------------------------------------------------------------------------------
JOB_NOT_SUCCEEDED = ErrorCode("job_not_succeeded", 409,
                               "Job job_0123456789abcdef01234567 is running; results exist once it has succeeded.")
JOB_FINISHED = ErrorCode("job_finished", 409,
                          "Job job_0123456789abcdef01234567 has already succeeded; there is nothing to cancel.")
JOB_ACTIVE = ErrorCode("job_active", 409,
                        "Job job_0123456789abcdef01234567 is running; cancel it first (POST "
                        "/v1/jobs/job_0123456789abcdef01234567/cancel) and delete it once it has stopped.")
DATASET_IN_USE = ErrorCode("dataset_in_use", 409,
                            "Job job_0123456789abcdef01234567 of this dataset is queued or running; cancel it or wait "
                            "for the end, then delete the dataset.")
SWEEP_FINISHED = ErrorCode("sweep_finished", 409,
                            "Sweep swp_0123456789abcdef01234567 has already succeeded; there is nothing to cancel.")
SWEEP_NOT_SUCCEEDED = ErrorCode("sweep_not_succeeded", 409,
                                 "Sweep swp_0123456789abcdef01234567 is running; its plot exists once it has succeeded.")
PREDICTION_NOT_SUCCEEDED = ErrorCode("prediction_not_succeeded", 409,
                                      "Prediction prd_0123456789abcdef01234567 is running; its labels exist once it "
                                      "has succeeded.")
PREDICTION_FINISHED = ErrorCode("prediction_finished", 409,
                                 "Prediction prd_0123456789abcdef01234567 has already succeeded; there is nothing to "
                                 "cancel.")
PREDICTION_ACTIVE = ErrorCode("prediction_active", 409,
                               "Prediction prd_0123456789abcdef01234567 is running; cancel it first (POST "
                               "/v1/predictions/prd_0123456789abcdef01234567/cancel) and delete it once it has "
                               "stopped.")
MODEL_IN_USE = ErrorCode("model_in_use", 409,
                          "Prediction prd_0123456789abcdef01234567 of this model is queued or running; cancel it or "
                          "wait for the end, then delete the model.")
NO_LABELS = ErrorCode("no_labels", 409,
                       "The dataset of job job_0123456789abcdef01234567 has no labels, so there is nothing to "
                       "compare the clusters with.")
NO_K_SELECTION = ErrorCode("no_k_selection", 409,
                            "Job job_0123456789abcdef01234567 was given its K, so there is no estimate to draw.")
NOT_IMAGES = ErrorCode("not_images", 409,
                        "Job job_0123456789abcdef01234567 was trained on feature vectors, not images; example "
                        "grids need images.")
MODEL_DELETED = ErrorCode("model_deleted", 409,
                           "The model of job job_0123456789abcdef01234567 has been deleted, and this plot needs it.")
DATASET_DELETED = ErrorCode("dataset_deleted", 409,
                             "Dataset ds_0123456789abcdef01234567 of job job_0123456789abcdef01234567 has been "
                             "deleted, and this plot needs its data.")

# -- Uploaded data (datasets/ingest/) --------------------------------------------------------------
EMPTY_DATA = ErrorCode("empty_data", 422, "The file holds no samples (or samples with no features).")
TOO_FEW_SAMPLES = ErrorCode("too_few_samples", 422, "Clustering needs at least 2 samples.")
ONE_DIMENSIONAL = ErrorCode("one_dimensional", 422,
                             "The array is one-dimensional; a dataset is (n_samples, n_features) or images.")
TOO_MANY_DIMENSIONS = ErrorCode("too_many_dimensions", 422, "The array has 6 dimensions; at most 4 (N, C, H, W).")
NON_NUMERIC = ErrorCode("non_numeric", 422, "Row 3, column 2 is not a number: 'abc'.")
NON_FINITE = ErrorCode("non_finite", 422,
                        "Row 3, column 2 is NaN, infinite, empty or too large for float32; every value must be a "
                        "finite number.")
RAGGED_ROWS = ErrorCode("ragged_rows", 422, "Row 7 has 63 values; the rows before it have 64.")
INVALID_FILE = ErrorCode("invalid_file", 422, "The file is refused: not a valid .npy file.")
TRUNCATED_FILE = ErrorCode("truncated_file", 422, "The file is refused: it ends before its header says it should.")
PICKLED_DATA = ErrorCode("pickled_data", 422,
                          "The file is refused: object arrays (pickled Python objects) are not accepted.")
MISSING_ARRAY = ErrorCode("missing_array", 422, "The .npz has no array 'x' (features); it has: data.")
TOO_MANY_COLUMNS = ErrorCode("too_many_columns", 413,
                              "The table has 20000 columns, more than the limit of 16384 (DEEPCLUST_MAX_COLUMNS).")

# -- Labels ----------------------------------------------------------------------------------------
INVALID_LABELS = ErrorCode("invalid_labels", 422, "The labels file has a line that is empty.")
MISSING_LABELS = ErrorCode("missing_labels", 422, "The label column has empty cells (row 12).")
LABELS_LENGTH_MISMATCH = ErrorCode("labels_length_mismatch", 422, "There are 1796 labels for 1797 samples.")
LABELS_GIVEN_TWICE = ErrorCode("labels_given_twice", 422,
                                "Give labels either as a 'labels' file or as a 'label_column', not both.")
LABEL_COLUMN_UNSUPPORTED = ErrorCode("label_column_unsupported", 422,
                                      f"label_column applies to {formats.joined(formats.LABEL_COLUMN_FORMATS, 'and')}, "
                                      "not npy.")
UNKNOWN_LABEL_COLUMN = ErrorCode("unknown_label_column", 422, "There is no column 'digit'; the columns are p0, p1, ...")
TOO_MANY_CLASSES = ErrorCode("too_many_classes", 422,
                              "The labels name more than 4096 classes; labels are class names or integers, one per "
                              "sample.")

# -- Image archives and images (datasets/ingest/archives.py, images.py) ----------------------------
TOO_MANY_MEMBERS = ErrorCode("too_many_members", 413,
                              "The archive has more than 200000 members (DEEPCLUST_MAX_ARCHIVE_MEMBERS).")
IMAGE_TOO_LARGE = ErrorCode("image_too_large", 413,
                             "digits/3/a.png has 1000000000 pixels, more than the limit of 89478485 per image.")
IMAGE_FILE_TOO_LARGE = ErrorCode("image_file_too_large", 413,
                                  "digits/3/a.png is larger than the limit of 67108864 bytes per image file.")
UNSAFE_PATH = ErrorCode("unsafe_path", 422,
                         "The archive member '../etc/passwd' leaves the archive; nothing was stored.")
ARCHIVE_LINK = ErrorCode("archive_link", 422, "The archive member 'a.png' is a link; archives of links are refused.")
ARCHIVE_SPECIAL_FILE = ErrorCode("archive_special_file", 422,
                                  "The archive member 'dev' is a device or FIFO, not a file.")
DUPLICATE_MEMBER = ErrorCode("duplicate_member", 422, "The archive holds 'a/1.png' twice.")
ENCRYPTED_ARCHIVE = ErrorCode("encrypted_archive", 422,
                               "The archive member 'a.png' is encrypted; send an unencrypted archive.")
INVALID_ARCHIVE = ErrorCode("invalid_archive", 422, "The archive is damaged: Bad CRC-32 for file 'a.png'.")
NO_IMAGES = ErrorCode("no_images", 422, "The archive holds no readable PNG, JPEG, BMP, TIFF or WebP image.")
UNREADABLE_IMAGE = ErrorCode("unreadable_image", 422,
                              "digits/3/a.png is not a readable image: cannot identify image file.")
INVALID_IMAGE_SIZE = ErrorCode("invalid_image_size", 422,
                                "image_size must be 'H,W' with both between 1 and 4096; got '0,28'.")
INVALID_COLOR = ErrorCode("invalid_color", 422, "color must be grayscale or rgb; got 'cmyk'.")
IMAGE_OPTIONS_UNSUPPORTED = ErrorCode("image_options_unsupported", 422,
                                       "image_size and color apply to image archives only.")
UNKNOWN_LABEL_PATH = ErrorCode("unknown_label_path", 422,
                                "labels.csv names 'x/1.png', which is not an image of the archive.")
IMAGE_INPUT_UNSUPPORTED = ErrorCode("image_input_unsupported", 422,
                                     "This model was trained on feature rows; send rows, not images.")

# -- Jobs (jobs/) ----------------------------------------------------------------------------------
UNKNOWN_METHOD = ErrorCode("unknown_method", 422,
                            "unknown method 'spectral'; known methods: cdc, dccf, dec, idec, kmeans")
METHOD_INPUT_KIND = ErrorCode("method_input_kind", 422, "Method 'dec' takes features; this dataset is images.")
INVALID_N_CLUSTERS = ErrorCode("invalid_n_clusters", 422,
                                "n_clusters must be between 2 and the number of samples (1797); got 1.")
INVALID_PARAMS = ErrorCode("invalid_params", 422,
                            "pretrain_epochs: pretraining settings go in the job's 'pretrain' block, not in params: "
                            "send \"pretrain\": {\"epochs\": 50}.")
PRETRAINED_OTHER_DATASET = ErrorCode("pretrained_other_dataset", 422,
                                      "pretrained_from job job_0123 was trained on dataset ds_a, not ds_b.")
PRETRAINED_NO_AUTOENCODER = ErrorCode("pretrained_no_autoencoder", 422,
                                       "Job job_0123 (kmeans) and this job do not both train an autoencoder.")
PRETRAINED_ARCHITECTURE = ErrorCode("pretrained_architecture", 422,
                                     "embedding_dim is 5 here but 10 in job job_0123; the reused autoencoder needs the same "
                                     "architecture.")
JOB_TOO_LARGE = ErrorCode("job_too_large", 422,
                           "This job's model would need about 14.2 GB, more than the limit of 4 GB per job "
                           "(DEEPCLUST_MAX_JOB_MEMORY_BYTES); use smaller hidden_dims or batch sizes.")
UNSUPPORTED_INPUT_SHAPE = ErrorCode("unsupported_input_shape", 422,
                                     "Method 'decs' cannot take this dataset's samples of shape [1, 20, 20]: the DECS network "
                                     "takes 16x16, 28x28 or 32x32 images.")
TOO_MANY_STREAMS = ErrorCode("too_many_streams", 503,
                              "This server already serves 200 event streams; try again shortly, or poll GET "
                              "/v1/jobs/{id}.",
                              template="This server already serves {limit} event streams; try again shortly, or poll GET /v1/jobs/{{id}}.")

# -- Sweeps (sweeps/) ------------------------------------------------------------------------------
GRID_TOO_LARGE = ErrorCode("grid_too_large", 422, "The grid has 300 jobs, more than the limit of 200 per sweep.")
INVALID_GRID = ErrorCode("invalid_grid", 422,
                          "n_clusters must hold at least one K between 2 and the number of samples.")
INVALID_SELECTION = ErrorCode("invalid_selection", 422,
                               "selection must be one of stability, silhouette, calinski_harabasz, davies_bouldin.")

# -- Models and predict (trained_models/) ----------------------------------------------------------
INVALID_INSTANCES = ErrorCode("invalid_instances", 422,
                               "instances must be a non-empty list of rows, e.g. [[0.1, 0.2], [0.3, 0.4]].")
WRONG_SHAPE = ErrorCode("wrong_shape", 422, "Each instance must have shape [64] (or 64 values flattened); got [63].")
INVALID_MODEL_BUNDLE = ErrorCode("invalid_model_bundle", 422,
                                  "The zip lacks manifest.json; it must hold model.safetensors and manifest.json.")
ONNX_UNAVAILABLE = ErrorCode("onnx_unavailable", 503,
                              "ONNX export is not installed on this server: install the optional extra there (pip "
                              "install 'deepclust[onnx]'), or download the zip and export with the library.")

DATASET_NOT_FOR_MODEL = ErrorCode("dataset_not_for_model", 422,
                                   "Model mdl_0123456789abcdef01234567 takes samples of shape [64]; dataset "
                                   "ds_0123456789abcdef01234567 holds features of shape [63].")

# -- Encoders (encoders/) --------------------------------------------------------------------------
ENCODER_NOT_FOUND = ErrorCode("encoder_not_found", 404,
                               "No encoder with id 'enc_0123456789abcdef01234567'.",
                               template="No encoder with id {id!r}.")
ENCODER_IN_USE = ErrorCode("encoder_in_use", 409,
                            "Job job_0123456789abcdef01234567 uses this encoder and is queued or running; cancel it "
                            "or wait for the end, then delete the encoder.")
INVALID_ENCODER_OPTIONS = ErrorCode("invalid_encoder_options", 422,
                                     "input_size must be H,W (two positive integers), e.g. 224,224; got '224'.")
NOT_ONNX = ErrorCode("not_onnx", 422, "The file is not an ONNX model: Error parsing message.")
ONNX_EXTERNAL_DATA = ErrorCode("onnx_external_data", 422,
                                "The model keeps tensor 'w' in an external data file ('w.bin'); save it with every "
                                "tensor inside the .onnx file (onnx.save(model, path, save_as_external_data=False)).")
ONNX_CUSTOM_OPERATOR = ErrorCode("onnx_custom_operator", 422,
                                  "Node 'n0' uses operator 'MyOp' of the custom domain 'com.example'; only the "
                                  "standard ONNX operators are accepted.")
ONNX_INPUTS = ErrorCode("onnx_inputs", 422,
                         "The model has 2 inputs (x, y); an encoder takes exactly one, N×C×H×W float32.")
ONNX_OUTPUT_SHAPE = ErrorCode("onnx_output_shape", 422,
                               "On a probe batch of 2 images the output 'z' has shape [2, 8, 2]; an encoder gives "
                               "one vector per image, N×D.")
ENCODER_NOT_APPLICABLE = ErrorCode("encoder_not_applicable", 422,
                                    "An encoder embeds images; dataset ds_0123456789abcdef01234567 holds features.")

# -- Plots (plots/) --------------------------------------------------------------------------------
PLOTTING_UNAVAILABLE = ErrorCode("plotting_unavailable", 503,
                                  "This server cannot draw plots: matplotlib is not installed (pip install "
                                  "'deepclust[plot]'); the .json routes still give the numbers.")

# What an error message may echo of the caller's input (ids, paths, names): enough to recognise it.
ECHO_LIMIT = 64


def clip(text: str, limit: int = ECHO_LIMIT) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def not_found(kind: str, id_: str) -> ApiError:
    """``<kind>_not_found``, the same answer for "does not exist" and "belongs to another tenant":
    ids do not leak."""
    return CODES[f"{kind}_not_found"](id=clip(id_))


def error_response(status: int, code: str, message: str, details: dict | None = None,
                   headers: dict | None = None) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "details": details or {}}}
    return JSONResponse(body, status_code=status, headers=headers)


async def send_error(send: Send, exc: ApiError) -> None:
    """The error shape from a pure ASGI middleware, which sits outside the exception handlers."""
    response = error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)
    await send({"type": "http.response.start", "status": exc.status, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})


# An error answer stays small whatever the request: at most this many field errors are listed
# (``n_errors`` says how many there were) and a message is clipped to MAX_MESSAGE characters.
MAX_LISTED_ERRORS = 20
MAX_MESSAGE = 2000


def _describe(errors: list[dict], skip_first: bool) -> str:
    text = "; ".join(f"{'.'.join(map(str, e['loc'][1 if skip_first else 0:])) or 'body'}: {e['message']}"
                     for e in errors[:MAX_LISTED_ERRORS])
    if len(errors) > MAX_LISTED_ERRORS:
        text += f"; ... ({len(errors)} errors in all)"
    return clip(text, MAX_MESSAGE)


def _listed(errors: list[dict]) -> dict:
    details: dict[str, Any] = {"errors": errors[:MAX_LISTED_ERRORS]}
    if len(errors) > MAX_LISTED_ERRORS:
        details["n_errors"] = len(errors)
    return details


# Statuses Starlette raises on its own (unknown route, wrong verb, body limits) and our codes for them.
_HTTP_CODES = {400: MALFORMED_REQUEST, 401: UNAUTHORIZED, 404: NOT_FOUND,
               405: METHOD_NOT_ALLOWED, 413: TOO_LARGE, 415: UNSUPPORTED_MEDIA_TYPE}


def allowed_methods(app: FastAPI, path: str) -> list[str]:
    methods: set[str] = set()
    for route in app.routes:
        regex, route_methods = getattr(route, "path_regex", None), getattr(route, "methods", None)
        if regex is not None and route_methods and regex.match(path):
            methods |= route_methods
    return sorted(methods)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_req: Request, exc: ApiError):
        return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(req: Request, exc: RequestValidationError):
        errors = [{"loc": [clip(str(p)) if isinstance(p, str) else p for p in e.get("loc", ())],
                   "message": clip(e.get("msg", ""), 500), "type": e.get("type", "")} for e in exc.errors()]
        if any(e["loc"] == ["body"] for e in errors):  # the body as a whole, not one of its fields
            ctype = req.headers.get("content-type", "").split(";")[0].strip().lower()
            if ctype != "application/json" and not ctype.endswith("+json"):
                return UNSUPPORTED_MEDIA_TYPE.response(
                    f"{req.method} {req.url.path} takes JSON: send the body with the header "
                    "'Content-Type: application/json' (curl: -H 'Content-Type: application/json').",
                    {"content_type": ctype or None})
            return INVALID_REQUEST.response("The body must be a JSON object with the fields described at /docs.",
                                            _listed(errors))
        # Unparseable JSON or a bad query/path parameter is a malformed request (400); a
        # well-formed body whose fields are wrong is invalid content (422).
        if any(e["type"] == "json_invalid" or (e["loc"] and e["loc"][0] != "body") for e in errors):
            return MALFORMED_REQUEST.response("The request could not be parsed: " + _describe(errors, False),
                                              _listed(errors))
        return INVALID_REQUEST.response("The request body is invalid: " + _describe(errors, True), _listed(errors))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(req: Request, exc: StarletteHTTPException):
        path = clip(req.url.path)
        message = {404: f"There is no {path}; the API is described at /docs.",
                   405: f"{req.method} is not allowed on {path}; see /docs."}.get(exc.status_code,
                                                                                  str(exc.detail))
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:  # Starlette lists the methods of one route; the path may have several
            headers = {**(headers or {}), "Allow": ", ".join(allowed_methods(req.app, req.url.path))}
        return _HTTP_CODES.get(exc.status_code, HTTP_ERROR).response(message, headers=headers,
                                                                     status=exc.status_code)

    async def _database_error(_req: Request, exc: OperationalError | InterfaceError):
        # Raised when the database cannot be reached or dropped the connection; the request
        # itself was fine, so it is the dependency that is unavailable.
        log.warning("database error: %s", exc)
        return DATABASE_UNAVAILABLE.response(
            "The database is not answering; try again shortly.",
            {"dependency": "database", "reason": type(exc.orig).__name__ if exc.orig else type(exc).__name__},
            headers={"Retry-After": "2"})

    app.add_exception_handler(OperationalError, _database_error)
    app.add_exception_handler(InterfaceError, _database_error)

    @app.exception_handler(PoolTimeout)
    async def _database_busy(_req: Request, exc: PoolTimeout):
        log.warning("database pool timeout: %s", exc)
        return DATABASE_UNAVAILABLE.response("No database connection freed up in time; try again shortly.",
                                             {"dependency": "database", "reason": "pool_timeout"},
                                             headers={"Retry-After": "2"})

    @app.exception_handler(ClientDisconnect)
    async def _client_gone(req: Request, _exc: ClientDisconnect):
        # Nobody is left to read the answer; nothing was stored (staging files go with the request).
        log.info("client went away during %s %s", req.method, clip(req.url.path))
        return CLIENT_DISCONNECTED.response()

    @app.exception_handler(Exception)
    async def _unexpected(_req: Request, exc: Exception):
        log.exception("unhandled error")
        return INTERNAL_ERROR.response()
