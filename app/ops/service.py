"""What the operational routes check: the database and the broker, each answering or not."""
from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Engine

from deepclust.app.core.dispatch import Dispatcher


def database_health(engine: Engine) -> str:
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        return f"database unreachable: {type(exc).__name__}"
    return "ok"


def readiness(engine: Engine, dispatcher: Dispatcher) -> dict[str, str]:
    """Each dependency and its state: "ok", or why not."""
    checks = {"database": database_health(engine), "broker": "ok"}
    broker = dispatcher.health()
    if broker is not None:
        checks["broker"] = broker
    return checks
