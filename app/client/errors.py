"""The client's exceptions: one per kind of error answer, each carrying the API's ``status``,
``code``, ``message`` and ``details`` (API.md's one error shape)."""
from __future__ import annotations

import httpx

class DeepclustError(Exception):
    """An error answer of the API: its HTTP ``status`` and the body's ``code``, ``message``, ``details``."""

    def __init__(self, status: int, code: str, message: str, details: dict | None = None):
        super().__init__(f"{message} [{status} {code}]")
        self.status, self.code, self.message, self.details = status, code, message, details or {}


class BadRequest(DeepclustError):
    """400: the request could not be parsed."""


class Unauthorized(DeepclustError):
    """401: no API key, or one the server does not know."""


class NotFound(DeepclustError):
    """404: no such id (or it belongs to another tenant)."""


class Conflict(DeepclustError):
    """409: the resource is in the wrong state (e.g. labels of a job that has not succeeded)."""


class TooLarge(DeepclustError):
    """413: the upload is over the server's size limit."""


class UnsupportedMediaType(DeepclustError):
    """415: a file format or content type the server does not take."""


class InvalidRequest(DeepclustError):
    """422: well-formed, but the content is invalid (params out of range, wrong shape, ...)."""


class ServiceUnavailable(DeepclustError):
    """503: a dependency of the server (database, broker) is down; try again later."""


class ServerError(DeepclustError):
    """Any other error status (a 500 is a server bug worth reporting)."""


class ConnectionFailed(DeepclustError):
    """The server could not be reached at all (status 0)."""


class JobFailed(DeepclustError):
    """Raised by ``Job.wait(raise_on_failure=True)`` when the job failed or was cancelled."""


_BY_STATUS: dict[int, type[DeepclustError]] = {400: BadRequest, 401: Unauthorized, 404: NotFound, 409: Conflict,
                                         413: TooLarge, 415: UnsupportedMediaType, 422: InvalidRequest,
                                         503: ServiceUnavailable}


def error_from_response(response: httpx.Response) -> DeepclustError:
    """The typed exception for an error answer, from the API's error body when it has one."""
    try:
        error = response.json()["error"]
        code, message, details = error["code"], error["message"], error.get("details") or {}
    except (ValueError, KeyError, TypeError):  # not the API's shape: a proxy, a crash page
        code, message, details = "http_error", response.text[:500] or response.reason_phrase, {}
    return _BY_STATUS.get(response.status_code, ServerError)(response.status_code, code, message, details)


