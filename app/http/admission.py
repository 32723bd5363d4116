"""Admission control: a bounded number of requests at work, a bounded wait for the others, and
beyond either a fast 503 with ``Retry-After`` (never a hang until the client gives up).

A pure ASGI middleware, outside everything else but the telemetry, so an overloaded server
spends nothing on a request it refuses: no key lookup, no body read.
"""
from __future__ import annotations

import anyio
from starlette.types import ASGIApp, Receive, Scope, Send

from deepclust.app.errors import OVERLOADED, send_error

# Liveness and scraping must answer while the server is saturated; that is when they matter.
EXEMPT = frozenset({"/healthz", "/metrics"})


def exempt(path: str) -> bool:
    # Event streams stay open for a job's whole run; they have their own limit (jobs/events.py).
    return path in EXEMPT or (path.startswith("/v1/jobs/") and path.endswith("/events"))


class AdmissionGate:
    def __init__(self, app: ASGIApp, *, max_active: int, max_waiting: int, wait_seconds: float,
                 retry_after: int):
        self.app = app
        self.max_waiting, self.wait_seconds, self.retry_after = max_waiting, wait_seconds, retry_after
        self.slots = anyio.Semaphore(max(1, max_active))
        self.waiting = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or exempt(scope["path"]):
            await self.app(scope, receive, send)
            return
        if self.slots.value == 0 and self.waiting >= self.max_waiting:
            await self._refuse(send, "too many requests are waiting")
            return
        self.waiting += 1
        try:
            with anyio.move_on_after(self.wait_seconds) as wait:
                await self.slots.acquire()
        finally:
            self.waiting -= 1
        if wait.cancelled_caught:
            await self._refuse(send, f"no request slot freed up within {self.wait_seconds:g} s")
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.slots.release()

    async def _refuse(self, send: Send, why: str) -> None:
        await send_error(send, OVERLOADED(f"The server is at capacity ({why}); retry after {self.retry_after} s.",
                                          {"retry_after": self.retry_after},
                                          headers={"Retry-After": str(self.retry_after)}))
