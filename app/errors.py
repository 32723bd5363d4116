"""The one error shape of the API: {"error": {"code", "message", "details"}} with the right status."""
from __future__ import annotations

import logging
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

log = logging.getLogger(__name__)


class ErrorDetail(BaseModel):
    code: str = Field(description="A machine code, stable across versions (each route lists its own).")
    message: str = Field(description="What is wrong and how to fix it, for a person.")
    details: dict[str, Any] = Field({}, description="Structured facts about the error (ids, limits, each invalid "
                                                    "field), varying by code.")


class ErrorBody(BaseModel):
    """What every non-2xx answer carries."""

    error: ErrorDetail


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details or {}
        self.headers = headers


# What an error message may echo of the caller's input (ids, paths, names): enough to recognise it.
ECHO_LIMIT = 64


def clip(text: str, limit: int = ECHO_LIMIT) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def not_found(kind: str, id_: str) -> ApiError:
    # The same answer for "does not exist" and "belongs to another tenant": ids do not leak.
    return ApiError(404, f"{kind}_not_found", f"No {kind} with id {clip(id_)!r}.", {"id": clip(id_)})


def invalid(code: str, message: str, **details: Any) -> ApiError:
    return ApiError(422, code, message, details)


def error_response(status: int, code: str, message: str, details: dict | None = None,
                   headers: dict | None = None) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "details": details or {}}}
    return JSONResponse(body, status_code=status, headers=headers)


async def send_error(send: Send, status: int, code: str, message: str, details: dict | None = None,
                     headers: dict | None = None) -> None:
    """The error shape from a pure ASGI middleware, which sits outside the exception handlers."""
    response = error_response(status, code, message, details, headers)
    await send({"type": "http.response.start", "status": status, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})


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
                         (422, "Invalid content"),
                         (503, "A dependency (database, broker) is down, or the server is at capacity "
                               "(then with Retry-After)")]
}


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
        errors = [{"loc": list(e.get("loc", ())), "message": e.get("msg", ""), "type": e.get("type", "")}
                  for e in exc.errors()]
        if any(e["loc"] == ["body"] for e in errors):  # the body as a whole, not one of its fields
            ctype = req.headers.get("content-type", "").split(";")[0].strip().lower()
            if ctype != "application/json" and not ctype.endswith("+json"):
                return error_response(415, "unsupported_media_type",
                                      f"{req.method} {req.url.path} takes JSON: send the body with the header "
                                      "'Content-Type: application/json' (curl: -H 'Content-Type: application/json').",
                                      {"content_type": ctype or None})
            return error_response(422, "invalid_request", "The body must be a JSON object with the fields "
                                  "described at /docs.", {"errors": errors})
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
        path = clip(req.url.path)
        message = {404: f"There is no {path}; the API is described at /docs.",
                   405: f"{req.method} is not allowed on {path}; see /docs."}.get(exc.status_code,
                                                                                  str(exc.detail))
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:  # Starlette lists the methods of one route; the path may have several
            headers = {**(headers or {}), "Allow": ", ".join(allowed_methods(req.app, req.url.path))}
        return error_response(exc.status_code, _HTTP_CODES.get(exc.status_code, "http_error"), message,
                              headers=headers)

    async def _database_error(_req: Request, exc: OperationalError | InterfaceError):
        # Raised when the database cannot be reached or dropped the connection; the request
        # itself was fine, so it is the dependency that is unavailable.
        log.warning("database error: %s", exc)
        return error_response(503, "database_unavailable",
                              "The database is not answering; try again shortly.",
                              {"dependency": "database",
                               "reason": type(exc.orig).__name__ if exc.orig else type(exc).__name__},
                              headers={"Retry-After": "2"})

    app.add_exception_handler(OperationalError, _database_error)
    app.add_exception_handler(InterfaceError, _database_error)

    @app.exception_handler(PoolTimeout)
    async def _database_busy(_req: Request, exc: PoolTimeout):
        log.warning("database pool timeout: %s", exc)
        return error_response(503, "database_unavailable", "No database connection freed up in time; "
                              "try again shortly.", {"dependency": "database", "reason": "pool_timeout"},
                              headers={"Retry-After": "2"})

    @app.exception_handler(ClientDisconnect)
    async def _client_gone(req: Request, _exc: ClientDisconnect):
        # Nobody is left to read the answer; nothing was stored (staging files go with the request).
        log.info("client went away during %s %s", req.method, clip(req.url.path))
        return error_response(400, "client_disconnected", "The client disconnected before the request was complete.")

    @app.exception_handler(Exception)
    async def _unexpected(_req: Request, exc: Exception):
        log.exception("unhandled error")
        return error_response(500, "internal_error", "An unexpected error occurred; it has been logged.")
