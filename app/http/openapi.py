"""What the OpenAPI document says about errors: for each route, the statuses it can answer and
the machine codes behind each, with an example body per code.

    @router.get("/{job_id}", responses=errors(404))             # + the router's 401 and 503
    @router.post("", responses=errors(400, 404, 422, codes={422: ("invalid_params", ...)}))

A status given without codes takes its usual ones (``DEFAULT_CODES``). Every error body is
``ErrorBody``: ``{"error": {"code", "message", "details"}}``.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

from deepclust.app.errors import ErrorBody

STATUS_TEXT = {400: "Malformed request", 401: "No or bad API key", 404: "Unknown id, or not yours",
               409: "Wrong state", 413: "Too large", 415: "Unsupported format", 422: "Invalid content",
               503: "A dependency is unavailable"}

DEFAULT_CODES = {400: ("malformed_request",), 401: ("unauthorized",), 413: ("too_large",),
                 415: ("unsupported_media_type",), 422: ("invalid_request",), 503: ("database_unavailable",)}

# An example message for every machine code the API answers with.
MESSAGES = {
    "malformed_request": "The request could not be parsed: query.limit: Input should be greater than or equal to 1",
    "missing_file": "The form has no 'file' part; send the data as multipart field 'file'.",
    "unauthorized": "Send 'Authorization: Bearer <key>'; keys are made with `deepclust keys create`.",
    "dataset_not_found": "No dataset with id 'ds_0123456789abcdef01234567'.",
    "job_not_found": "No job with id 'job_0123456789abcdef01234567'.",
    "model_not_found": "No model with id 'mdl_0123456789abcdef01234567'.",
    "job_not_succeeded": "Job job_0123456789abcdef01234567 is running; results exist once it has succeeded.",
    "job_finished": "Job job_0123456789abcdef01234567 has already succeeded; there is nothing to cancel.",
    "job_active": "Job job_0123456789abcdef01234567 is running; cancel it first "
                  "(POST /v1/jobs/job_0123456789abcdef01234567/cancel) and delete it once it has stopped.",
    "dataset_in_use": "Job job_0123456789abcdef01234567 of this dataset is queued or running; cancel it or wait "
                      "for the end, then delete the dataset.",
    "too_large": "The upload is larger than the limit of 1073741824 bytes (DEEPCLUST_MAX_UPLOAD_BYTES).",
    "unsupported_media_type": "Send the upload as multipart/form-data with a 'file' part.",
    "unsupported_format": "Cannot tell the format of 'data.bin': use .npy, .npz, .csv, .tsv or .parquet.",
    "invalid_request": "The request body is invalid: n_clusters: Input should be a valid integer",
    "empty_data": "The file holds no samples (or samples with no features).",
    "too_few_samples": "Clustering needs at least 2 samples.",
    "one_dimensional": "The array is one-dimensional; a dataset is (n_samples, n_features) or images.",
    "too_many_dimensions": "The array has 6 dimensions; at most 4 (N, C, H, W).",
    "non_numeric": "Row 3, column 2 is not a number: 'abc'.",
    "non_finite": "Row 3, column 2 is NaN, infinite, empty or too large for float32; every value must be a "
                  "finite number.",
    "ragged_rows": "Row 7 has 63 values; the rows before it have 64.",
    "invalid_file": "The file is refused: not a valid .npy file.",
    "truncated_file": "The file is refused: it ends before its header says it should.",
    "pickled_data": "The file is refused: object arrays (pickled Python objects) are not accepted.",
    "missing_array": "The .npz has no array 'x' (features); it has: data.",
    "invalid_labels": "The labels file has a line that is empty.",
    "missing_labels": "The label column has empty cells (row 12).",
    "labels_length_mismatch": "There are 1796 labels for 1797 samples.",
    "labels_given_twice": "Give labels either as a 'labels' file or as a 'label_column', not both.",
    "label_column_unsupported": "label_column applies to csv, tsv and parquet, not npy.",
    "unknown_label_column": "There is no column 'digit'; the columns are p0, p1, ...",
    "unknown_method": "unknown method 'spectral'; known methods: cdc, dccf, dec, idec, kmeans",
    "method_input_kind": "Method 'dec' takes features; this dataset is images.",
    "invalid_n_clusters": "n_clusters must be between 2 and the number of samples (1797); got 1.",
    "invalid_params": "pretrain_epochs: pretraining settings go in the job's 'pretrain' block, not in params: "
                      "send \"pretrain\": {\"epochs\": 50}.",
    "pretrained_other_dataset": "pretrained_from job job_0123 was trained on dataset ds_a, not ds_b.",
    "pretrained_no_autoencoder": "Job job_0123 (kmeans) and this job do not both train an autoencoder.",
    "pretrained_architecture": "embedding_dim is 5 here but 10 in job job_0123; the reused autoencoder needs the "
                               "same architecture.",
    "invalid_instances": "instances must be a non-empty list of rows, e.g. [[0.1, 0.2], [0.3, 0.4]].",
    "wrong_shape": "Each instance must have shape [64] (or 64 values flattened); got [63].",
    "invalid_model_bundle": "The zip lacks manifest.json; it must hold model.safetensors and manifest.json.",
    "broker_unavailable": "The job queue (broker) is not answering; nothing was created, try again shortly.",
    "database_unavailable": "The database is not answering; try again shortly.",
    "onnx_unavailable": "ONNX export is not installed on this server: install the optional extra there "
                        "(pip install 'deepclust[onnx]'), or download the zip and export with the library.",
    "not_ready": "Not ready: broker down.",
    # image archives (app/archives.py)
    "too_many_members": "The archive has more than 200000 members (DEEPCLUST_MAX_ARCHIVE_MEMBERS).",
    "image_too_large": "digits/3/a.png has 1000000000 pixels, more than the limit of 89478485 per image.",
    "image_file_too_large": "digits/3/a.png is larger than the limit of 67108864 bytes per image file.",
    "unsafe_path": "The archive member '../etc/passwd' leaves the archive; nothing was stored.",
    "archive_link": "The archive member 'a.png' is a link; archives of links are refused.",
    "archive_special_file": "The archive member 'dev' is a device or FIFO, not a file.",
    "duplicate_member": "The archive holds 'a/1.png' twice.",
    "encrypted_archive": "The archive member 'a.png' is encrypted; send an unencrypted archive.",
    "invalid_archive": "The archive is damaged: Bad CRC-32 for file 'a.png'.",
    "no_images": "The archive holds no readable PNG, JPEG, BMP, TIFF or WebP image.",
    "unreadable_image": "digits/3/a.png is not a readable image: cannot identify image file.",
    "invalid_image_size": "image_size must be 'H,W' with both between 1 and 4096; got '0,28'.",
    "invalid_color": "color must be grayscale or rgb; got 'cmyk'.",
    "image_options_unsupported": "image_size and color apply to image archives only.",
    "unknown_label_path": "labels.csv names 'x/1.png', which is not an image of the archive.",
    "image_input_unsupported": "This model was trained on feature rows; send rows, not images.",
    "job_too_large": "This job's model would need about 14.2 GB, more than the limit of 4 GB per job "
                     "(DEEPCLUST_MAX_JOB_MEMORY_BYTES); use smaller hidden_dims or batch sizes.",
    "unsupported_input_shape": "Method 'decs' cannot take this dataset's samples of shape [1, 20, 20]: the DECS "
                               "network takes 16x16, 28x28 or 32x32 images.",
    # sweeps (app/sweeps.py)
    "sweep_not_found": "No sweep with id 'swp_0123456789abcdef01234567'.",
    "sweep_finished": "Sweep swp_0123456789abcdef01234567 has already succeeded; there is nothing to cancel.",
    "sweep_not_succeeded": "Sweep swp_0123456789abcdef01234567 is running; its plot exists once it has succeeded.",
    "grid_too_large": "The grid has 300 jobs, more than the limit of 200 per sweep.",
    "invalid_grid": "n_clusters must hold at least one K between 2 and the number of samples.",
    "invalid_selection": "selection must be one of stability, silhouette, calinski_harabasz, davies_bouldin.",
    # plots and events (app/plots.py, app/events.py)
    "plot_not_found": "There is no plot 'loss'; the plots are history, embedding, sizes, examples, confusion.",
    "no_labels": "The dataset of job job_0123456789abcdef01234567 has no labels, so there is nothing to compare "
                 "the clusters with.",
    "not_images": "Job job_0123456789abcdef01234567 was trained on feature vectors, not images; example grids "
                  "need images.",
    "model_deleted": "The model of job job_0123456789abcdef01234567 has been deleted, and this plot needs it.",
    "dataset_deleted": "Dataset ds_0123456789abcdef01234567 of job job_0123456789abcdef01234567 has been deleted, "
                       "and this plot needs its data.",
    "plotting_unavailable": "This server cannot draw plots: matplotlib is not installed (pip install "
                            "'deepclust[plot]'); the .json routes still give the numbers.",
    "too_many_streams": "This server already serves 200 event streams; try again shortly, or poll GET /v1/jobs/{id}.",
}


def errors(*statuses: int, codes: Mapping[int, Iterable[str]] | None = None) -> dict[int | str, dict]:
    """The ``responses=`` of a route (or router) for these error statuses."""
    codes = dict(codes or {})
    out: dict[int | str, dict] = {}
    for status in sorted(set(statuses) | set(codes)):
        names = tuple(codes.get(status, DEFAULT_CODES.get(status, ())))
        if not names:
            raise ValueError(f"status {status} needs its machine codes")
        examples = {name: {"summary": name, "value": {"error": {"code": name, "message": MESSAGES[name],
                                                                "details": {}}}} for name in names}
        out[status] = {"model": ErrorBody,
                       "description": f"{STATUS_TEXT[status]}. Codes: " + ", ".join(f"`{n}`" for n in names) + ".",
                       "content": {"application/json": {"examples": examples}}}
    return out


# Every route behind a tenant: a missing or unknown key (when auth is on), the database down.
TENANT = errors(401, 503)


def install_openapi(app) -> None:
    """The app's OpenAPI document without FastAPI's own 422 answers: the API answers a bad query
    or path parameter with 400 and a bad body with its own 422, both in the ErrorBody shape, and
    routes declare them with ``errors``."""
    from fastapi.openapi.utils import get_openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            spec = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            for operations in spec.get("paths", {}).values():
                for operation in operations.values():
                    default = operation.get("responses", {}).get("422", {})
                    if "HTTPValidationError" in str(default.get("content", {})):
                        del operation["responses"]["422"]
            schemas = spec.get("components", {}).get("schemas", {})
            for name in ("HTTPValidationError", "ValidationError"):
                schemas.pop(name, None)
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi
