"""The one error shape of the API: {"error": {"code", "message", "details"}} with the right status."""
from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: dict[str, Any] = {}


class ErrorBody(BaseModel):
    """What every non-2xx answer carries."""

    error: ErrorDetail


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details or {}


def not_found(kind: str, id_: str) -> ApiError:
    # The same answer for "does not exist" and "belongs to another tenant": ids do not leak.
    return ApiError(404, f"{kind}_not_found", f"No {kind} with id {id_!r}.", {"id": id_})


def invalid(code: str, message: str, **details: Any) -> ApiError:
    return ApiError(422, code, message, details)


def error_response(status: int, code: str, message: str, details: dict | None = None,
                   headers: dict | None = None) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "details": details or {}}}
    return JSONResponse(body, status_code=status, headers=headers)


def _describe(errors: list[dict], skip_first: bool) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'][1 if skip_first else 0:])) or 'body'}: {e['message']}"
                     for e in errors)


# Statuses Starlette raises on its own (unknown route, wrong verb, body limits) and our codes for them.
_HTTP_CODES = {400: "malformed_request", 401: "unauthorized", 404: "not_found",
               405: "method_not_allowed", 413: "too_large", 415: "unsupported_media_type"}

ERROR_RESPONSES: dict[int | str, dict] = {
    status: {"model": ErrorBody, "description": text}
    for status, text in [(400, "Malformed request"), (401, "No or bad API key"),
                         (404, "Unknown id, or not yours"), (409, "Wrong state"),
                         (422, "Invalid content"), (503, "A dependency (database, broker) is down")]
}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_req: Request, exc: ApiError):
        return error_response(exc.status, exc.code, exc.message, exc.details)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_req: Request, exc: RequestValidationError):
        errors = [{"loc": list(e.get("loc", ())), "message": e.get("msg", ""), "type": e.get("type", "")}
                  for e in exc.errors()]
        # Unparseable JSON or a bad query/path parameter is a malformed request (400); a
        # well-formed body whose fields are wrong is invalid content (422).
        if any(e["type"] == "json_invalid" or (e["loc"] and e["loc"][0] != "body") for e in errors):
            return error_response(400, "malformed_request",
                                  "The request could not be parsed: " + _describe(errors, False),
                                  {"errors": errors})
        return error_response(422, "invalid_request", "The request body is invalid: " + _describe(errors, True),
                              {"errors": errors})

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(req: Request, exc: StarletteHTTPException):
        message = {404: f"There is no {req.url.path}; the API is described at /docs.",
                   405: f"{req.method} is not allowed on {req.url.path}; see /docs."}.get(exc.status_code,
                                                                                      str(exc.detail))
        return error_response(exc.status_code, _HTTP_CODES.get(exc.status_code, "http_error"), message,
                              headers=getattr(exc, "headers", None))

    async def _database_error(_req: Request, exc: OperationalError | InterfaceError):
        # Raised when the database cannot be reached or dropped the connection; the request
        # itself was fine, so it is the dependency that is unavailable.
        log.warning("database error: %s", exc)
        return error_response(503, "database_unavailable",
                              "The database is not answering; try again shortly.",
                              {"reason": type(exc.orig).__name__ if exc.orig else type(exc).__name__})

    app.add_exception_handler(OperationalError, _database_error)
    app.add_exception_handler(InterfaceError, _database_error)

    @app.exception_handler(Exception)
    async def _unexpected(_req: Request, exc: Exception):
        log.exception("unhandled error")
        return error_response(500, "internal_error", "An unexpected error occurred; it has been logged.")
