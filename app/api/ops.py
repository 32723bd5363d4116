from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from app.errors import error_response
from app.schemas import MethodOut, Page
from models import list_methods

router = APIRouter()


@router.get("/healthz", tags=["ops"], summary="200 while the process lives")
def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz", tags=["ops"], summary="200 when the database and the broker answer, else 503 naming which")
def readyz(request: Request):
    checks = {"database": "ok", "broker": "ok"}
    try:
        with request.app.state.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        checks["database"] = f"database unreachable: {type(exc).__name__}"
    broker = request.app.state.dispatcher.health()
    if broker is not None:
        checks["broker"] = broker
    down = [name for name, state in checks.items() if state != "ok"]
    if down:
        return error_response(503, "not_ready", f"Not ready: {', '.join(down)} down.", checks)
    return {"status": "ready", "checks": checks}


@router.get("/metrics", tags=["ops"], summary="Prometheus text: requests, latencies, jobs by status, queue depth")
def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.telemetry.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/v1/methods", tags=["methods"], response_model=Page[MethodOut],
            summary="Every method with its params schema, paper defaults and accepted input kinds")
def methods() -> Page[MethodOut]:
    items = [MethodOut(name=m.name, summary=m.summary, input_kinds=list(m.input_kinds),
                       params_schema=m.params_schema, defaults=m.defaults) for m in list_methods()]
    return Page(items=items, total=len(items))
