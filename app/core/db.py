"""The one engine/session factory and the column types every table shares."""
from __future__ import annotations

import threading
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import DateTime, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.types import TypeDecorator
from sqlmodel import Session, create_engine


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes in and out, on PostgreSQL and on SQLite (which stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: use app.core.db.utcnow()")
        return value.astimezone(timezone.utc)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value


def ensure_sqlite_dir(database_url: str) -> None:
    """SQLite creates the file on first use, but not the directory it lives in."""
    if database_url.startswith("sqlite"):
        database = make_url(database_url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)


def make_engine(database_url: str, pool_size: int = 5, pool_timeout: float = 30.0,
                connect_timeout: int | None = None) -> Engine:
    # A few connections beyond the pool for the threads outside the request path (reaper, scrapes).
    pool = {"pool_size": pool_size, "max_overflow": 4, "pool_timeout": pool_timeout}
    if not database_url.startswith("sqlite"):
        url = make_url(database_url)
        connect_args = {}
        if connect_timeout is not None and "connect_timeout" not in url.query and url.drivername.endswith("psycopg2"):
            connect_args["connect_timeout"] = connect_timeout  # an unreachable server fails fast, not in minutes
        return create_engine(database_url, pool_pre_ping=True, connect_args=connect_args, **pool)
    ensure_sqlite_dir(database_url)
    # The web process, the local runner and its child processes share one file: WAL lets
    # readers proceed during a write, busy_timeout makes writers wait instead of failing.
    engine = create_engine(database_url, connect_args={"check_same_thread": False, "timeout": 30}, **pool)

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_conn, _record):
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    return engine


_engines: dict[tuple, Engine] = {}
_engines_lock = threading.Lock()


def engine_for(database_url: str, pool_size: int = 5, pool_timeout: float = 30.0,
               connect_timeout: int | None = None) -> Engine:
    """One engine per URL (and pool shape) per process (a spawned or forked child builds its own)."""
    key = (database_url, pool_size, pool_timeout, connect_timeout)
    with _engines_lock:
        if key not in _engines:
            _engines[key] = make_engine(database_url, pool_size, pool_timeout, connect_timeout)
        return _engines[key]


def dispose_engines(database_url: str) -> None:
    """Close every pooled connection to ``database_url`` (before dropping a test schema, say)."""
    with _engines_lock:
        for key, engine in list(_engines.items()):
            if key[0] == database_url:
                engine.dispose()
                del _engines[key]


def new_session(engine: Engine) -> Session:
    # Objects stay readable after commit: handlers serialise rows they have just committed.
    return Session(engine, expire_on_commit=False)

