"""What the OpenAPI document says about errors: for each route, the statuses it can answer and
the machine codes behind each, with an example body per code.

    @router.get("/{job_id}", responses=errors(JOB_NOT_FOUND))   # + the router's 401 and 503
    @router.post("", responses=errors(MALFORMED_REQUEST, DATASET_NOT_FOUND, INVALID_PARAMS, ...))

A route names the codes it can answer (``app/errors.py`` declares each once, with its status and
example); they are grouped by status here. Every error body is ``ErrorBody``:
``{"error": {"code", "message", "details"}}``.
"""
from __future__ import annotations

from deepclust.app.errors import DATABASE_UNAVAILABLE, UNAUTHORIZED, ErrorBody, ErrorCode

STATUS_TEXT = {400: "Malformed request", 401: "No or bad API key", 404: "Unknown id, or not yours",
               409: "Wrong state", 413: "Too large", 415: "Unsupported format", 422: "Invalid content",
               503: "A dependency is unavailable"}


def errors(*codes: ErrorCode) -> dict[int | str, dict]:
    """The ``responses=`` of a route (or router) that can answer these codes: one entry per status,
    its codes in the order given, each with its example body."""
    by_status: dict[int, dict[str, ErrorCode]] = {}
    for code in codes:
        by_status.setdefault(code.status, {})[code.code] = code
    out: dict[int | str, dict] = {}
    for status in sorted(by_status):
        named = by_status[status]
        examples = {name: {"summary": name, "value": {"error": {"code": name, "message": code.example,
                                                                "details": {}}}} for name, code in named.items()}
        out[status] = {"model": ErrorBody,
                       "description": f"{STATUS_TEXT[status]}. Codes: " + ", ".join(f"`{n}`" for n in named) + ".",
                       "content": {"application/json": {"examples": examples}}}
    return out


# Every route behind a tenant: a missing or unknown key (when auth is on), the database down.
TENANT = errors(UNAUTHORIZED, DATABASE_UNAVAILABLE)


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
