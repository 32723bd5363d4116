"""GET /v1/jobs/{id}/events: Server-Sent Events of a job's progress (see app.events)."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from deepclust.app.auth import LOCAL_TENANT, tenant_for_key
from deepclust.app.core.db import new_session
from deepclust.app.errors import ApiError
from deepclust.app.openapi import errors
from deepclust.app.events import job_events
from deepclust.app.ownership import owned
from deepclust.app.core.tables import Job

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

# Read here rather than through the session-holding tenant dependency; the same scheme for the docs.
_bearer = HTTPBearer(auto_error=False, description="An API key from `deepclust keys create`.")
MAX_STREAMS = 200  # open event streams per server process; more answer 503 until one closes


def _check_owner(request: Request, authorization: str | None, job_id: str) -> None:
    # A session of its own, closed before the stream starts: a long-lived listener holds no connection.
    settings = request.app.state.settings
    with new_session(request.app.state.engine) as session:
        tenant = tenant_for_key(session, authorization) if settings.auth_enabled else LOCAL_TENANT
        owned(session, Job, job_id, tenant)


_EVENT_SCHEMA = {
    "type": "object", "required": ["event", "data"],
    "properties": {"event": {"type": "string", "enum": ["status", "epoch", "end"]},
                   "id": {"type": "string", "description": "An `epoch` event's history row id."},
                   "data": {"type": "string", "contentMediaType": "application/json",
                            "description": "The job resource (`status`, `end`) or the history row (`epoch`)."}},
}


@router.get("/{job_id}/events", summary="Live progress as Server-Sent Events",
            response_class=StreamingResponse,
            responses={**errors(401, codes={404: ("job_not_found",), 503: ("database_unavailable", "too_many_streams")}),
                       200: {"description": "The event stream.", "content": {"text/event-stream": {
                           # Open API 3.1: for an event stream, `schema` describes one event.
                           "schema": _EVENT_SCHEMA,
                           "example": 'event: epoch\nid: 41\ndata: {"phase": "pretrain", "epoch": 3, "loss": 0.031}\n\n'
                                      'event: end\ndata: {"id": "job_0123456789abcdef01234567", "status": '
                                      '"succeeded"}\n\n'}}}},
            description="Events: `status` (the job resource, whenever it changes), `epoch` (a history row; its "
                        "id is the event id, and a reconnect with `Last-Event-ID` resumes after it), `end` (the "
                        "final job resource; the stream then closes). A job that has already ended sends `end` at "
                        "once. Connecting replays the job's history so far as `epoch` events.")
async def get_events(job_id: str, request: Request,
                     credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
                     last_event_id: Annotated[str | None, Header()] = None) -> StreamingResponse:
    authorization = f"{credentials.scheme} {credentials.credentials}" if credentials else None
    await run_in_threadpool(_check_owner, request, authorization, job_id)
    after = int(last_event_id) if last_event_id and last_event_id.isdigit() else 0
    state = request.app.state
    if getattr(state, "event_streams", 0) >= MAX_STREAMS:
        raise ApiError(503, "too_many_streams", f"This server already serves {MAX_STREAMS} event streams; try "
                       "again shortly, or poll GET /v1/jobs/{id}.", {"limit": MAX_STREAMS})
    poll_seconds = min(1.0, max(0.05, state.settings.progress_interval_seconds))

    async def counted():
        state.event_streams = getattr(state, "event_streams", 0) + 1
        try:
            async for chunk in job_events(state.engine, job_id, after, poll_seconds):
                yield chunk
        finally:  # also when the client went away and the response was cancelled
            state.event_streams -= 1

    return StreamingResponse(counted(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
