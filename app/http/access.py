"""What a request must pass before a route sees it: the API key, then the JSON body's limits.

A pure ASGI middleware, so both happen before a single body byte is read: a request without a
valid key answers 401 however large its body, and a JSON body is refused while it arrives when
it outgrows ``MAX_JSON_BYTES`` (413), or once read when it is not UTF-8 or nests deeper than
``MAX_JSON_DEPTH`` (400) -- before any parser, ours or FastAPI's, recurses into it. The body then
goes on to the route unchanged. The tenant is left in ``request.state.tenant``.
"""
from __future__ import annotations

import logging

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deepclust.app.http.deps import Database
from deepclust.app.tenancy.auth import LOCAL_TENANT, tenant_for_key
from deepclust.app.core.settings import Settings
from deepclust.app.errors import DATABASE_UNAVAILABLE, MALFORMED_REQUEST, TOO_LARGE, ApiError, send_error
from deepclust.app.http.safejson import json_depth

log = logging.getLogger(__name__)

# Under /v1 every route needs a key except the method catalogue.
PUBLIC = frozenset({"/v1/methods"})
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def needs_key(path: str) -> bool:
    return path.startswith("/v1/") and path not in PUBLIC


class ClientGone(Exception):
    pass


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


AUTH_DISABLED = (b"x-deepclust-auth", b"disabled")


def _saying_auth_disabled(send: Send) -> Send:
    """Every answer of a server with auth off says so (``X-Deepclust-Auth: disabled``): a client
    that sends a key can tell it is not checked. No documented body changes."""

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), AUTH_DISABLED]}
        await send(message)

    return sending


def is_json(content_type: str | None) -> bool:
    """A JSON body, or one without a content type (which FastAPI parses as JSON too)."""
    if not content_type:
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


class AccessMiddleware:
    def __init__(self, app: ASGIApp, *, settings: Settings, db: Database):
        self.app, self.settings, self.db = app, settings, db

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if not self.settings.auth_enabled:
            send = _saying_auth_disabled(send)
        try:
            if needs_key(scope["path"]):
                scope.setdefault("state", {})["tenant"] = await self.tenant(_header(scope, b"authorization"))
            if scope["method"] in _BODY_METHODS and is_json(_header(scope, b"content-type")):
                receive = await self._checked_json(scope, receive)
        except ApiError as exc:
            await send_error(send, exc)
            return
        except ClientGone:
            return  # nobody to answer
        await self.app(scope, receive, send)

    async def tenant(self, authorization: str | None) -> str:
        if not self.settings.auth_enabled:
            return LOCAL_TENANT
        try:
            return await self.db.run(tenant_for_key, authorization)
        except (OperationalError, InterfaceError, PoolTimeout) as exc:
            # Outside the app's exception handlers: the same answer they give an outage.
            log.warning("database error looking up an API key: %s", exc)
            orig = getattr(exc, "orig", None)
            raise DATABASE_UNAVAILABLE(
                "The database is not answering; try again shortly.",
                {"dependency": "database", "reason": type(orig or exc).__name__},
                headers={"Retry-After": "2"}) from None

    async def _checked_json(self, scope: Scope, receive: Receive) -> Receive:
        limit = self.settings.max_json_bytes
        declared = _header(scope, b"content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise json_too_large(limit)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise json_too_large(limit)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if not body.isascii():
            try:
                body.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise MALFORMED_REQUEST(f"The body is not UTF-8 (byte {exc.start}); JSON "
                                        "must be sent as UTF-8.", {"position": exc.start}) from None
        depth = json_depth(body)
        if depth > self.settings.max_json_depth:
            raise MALFORMED_REQUEST(f"The JSON nests {depth} levels deep; at most "
                                    f"{self.settings.max_json_depth} are accepted.",
                                    {"depth": depth, "limit": self.settings.max_json_depth})

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return replay


def json_too_large(limit: int) -> ApiError:
    return TOO_LARGE(f"The JSON body is larger than the limit of {limit} bytes "
                     "(DEEPCLUST_MAX_JSON_BYTES); send large inputs as a multipart file.", {"limit": limit})
