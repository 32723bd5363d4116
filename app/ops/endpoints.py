"""Operational routes (/healthz, /readyz, /metrics) and the method catalogue (/v1/methods)."""
from __future__ import annotations

import hmac

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from deepclust.app.errors import NOT_READY, UNAUTHORIZED
from deepclust.app.http.openapi import errors
from deepclust.app.http.paging import Page, page_example
from deepclust.app.ops.service import readiness
from deepclust.app.ops.schemas import HealthOut, MethodOut, ReadyOut
from deepclust.models import list_methods

# Any route may answer 503 when the server is at capacity (http/admission.py).
router = APIRouter()


@router.get("/healthz", tags=["ops"], summary="200 while the process lives", response_model=HealthOut)
def healthz() -> dict:
    """Liveness: 200 as long as the process answers."""
    return {"status": "ok"}


@router.get("/readyz", tags=["ops"], summary="200 when the database and the broker answer, else 503 naming which",
            response_model=ReadyOut, responses=errors(NOT_READY))
async def readyz(request: Request):
    """Readiness: 200 when the database and the broker answer, else 503 naming which is down
    (`details` holds each check)."""
    checks = await run_in_threadpool(readiness, request.app.state.engine, request.app.state.dispatcher)
    down = [name for name, state in checks.items() if state != "ok"]
    if down:
        return NOT_READY.response(f"Not ready: {', '.join(down)} down.", checks)
    return {"status": "ready", "checks": checks}


@router.get("/metrics", tags=["ops"], summary="Prometheus text: requests, latencies, jobs by status, queue depth",
            response_class=Response,
            responses={**errors(UNAUTHORIZED),
                       200: {"description": "The Prometheus text exposition format; totals only, never per tenant.",
                             "content": {"text/plain": {"schema": {"type": "string"}, "example": (
                                 "# TYPE deepclust_jobs gauge\ndeepclust_jobs{status=\"queued\"} 2.0\n")}}}})
def metrics(request: Request) -> Response:
    """Prometheus metrics in the text format: totals only, never per tenant. When
    `DEEPCLUST_METRICS_TOKEN` is set, it must be sent as `Authorization: Bearer <token>` (401 otherwise)."""
    token = request.app.state.settings.metrics_token
    if token and not hmac.compare_digest(request.headers.get("authorization", ""), f"Bearer {token}"):
        return UNAUTHORIZED.response("/metrics needs 'Authorization: Bearer <DEEPCLUST_METRICS_TOKEN>'.",
                                     headers={"WWW-Authenticate": "Bearer"})
    return Response(generate_latest(request.app.state.telemetry.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/v1/methods", tags=["methods"], response_model=Page[MethodOut],
            responses={200: {"content": {"application/json": {"example": page_example(
                MethodOut.model_config["json_schema_extra"]["examples"][0])}}}},
            summary="Every method with its params schema, paper defaults and accepted input kinds")
def methods() -> Page[MethodOut]:
    """Every method: its params schema and defaults (the papers'), its pretraining settings as a
    schema of their own (the job's `pretrain` block), and the input kinds it accepts."""
    items = [MethodOut.of(m) for m in list_methods()]
    return Page(items=items, total=len(items))
