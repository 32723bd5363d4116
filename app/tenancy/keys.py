"""The operator's key commands, as functions any command line can call:

    deepclust keys create --name NAME [--tenant TENANT_ID] [--expires-days N]   -> create_key_command
    deepclust keys list                                                         -> list_keys / keys_table
    deepclust keys revoke KEY_ID                                                -> revoke_key

Each takes the settings, opens the database (migrating an embedded SQLite one first) and returns
what to print; ``KeyCommandError`` carries a message for the operator (exit status 1).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, select

from deepclust.app.tenancy.auth import create_key
from deepclust.app.core.db import engine_for, new_session, utcnow
from deepclust.app.core.migrate import upgrade
from deepclust.app.core.settings import Settings
from deepclust.app.core.tables import ApiKey, Tenant


class KeyCommandError(RuntimeError):
    pass


@dataclass
class KeyInfo:
    id: str
    tenant_id: str
    tenant: str
    name: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    @property
    def state(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= utcnow():
            return "expired"
        return "active"


def _session(settings: Settings) -> Session:
    if settings.is_sqlite:
        upgrade(settings.database_url)
    return new_session(engine_for(settings.database_url))


MAX_EXPIRES_DAYS = 36_500


def create_key_command(settings: Settings, name: str, tenant: str | None = None,
                       expires_days: float | None = None) -> str:
    if expires_days is not None and not (math.isfinite(expires_days) and 0 < expires_days <= MAX_EXPIRES_DAYS):
        # NaN compares false with everything, and a huge value overflows the date: both once
        # reached timedelta and printed a traceback.
        raise KeyCommandError(f"--expires-days must be a number of days above 0 and at most {MAX_EXPIRES_DAYS} "
                              f"(100 years); got {expires_days}")
    expires_at = utcnow() + timedelta(days=expires_days) if expires_days is not None else None
    with _session(settings) as session:
        try:
            key, row = create_key(session, name, tenant, expires_at)
        except ValueError as exc:
            raise KeyCommandError(str(exc)) from None
    until = f", expires {row.expires_at:%Y-%m-%d %H:%M} UTC" if row.expires_at else ""
    return f"key {row.id} for tenant {row.tenant_id}{until} (shown once, keep it):\n{key}"


def list_keys(settings: Settings) -> list[KeyInfo]:
    with _session(settings) as session:
        rows = session.exec(select(ApiKey, Tenant.name).join(Tenant, Tenant.id == ApiKey.tenant_id)
                            .order_by(ApiKey.tenant_id, ApiKey.created_at, ApiKey.id)).all()
    return [KeyInfo(k.id, k.tenant_id, tenant, k.name, k.created_at, k.expires_at, k.revoked_at) for k, tenant in rows]


def keys_table(keys: list[KeyInfo]) -> str:
    """One line per key (never the key itself, which is not stored)."""
    def when(t: datetime | None) -> str:
        return f"{t:%Y-%m-%d %H:%M}" if t else "-"

    rows = [("ID", "TENANT", "TENANT NAME", "NAME", "CREATED", "EXPIRES", "REVOKED", "STATE")]
    rows += [(k.id, k.tenant_id, k.tenant, k.name, when(k.created_at), when(k.expires_at), when(k.revoked_at), k.state)
             for k in keys]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def revoke_key(settings: Settings, key_id: str) -> str:
    with _session(settings) as session:
        row = session.get(ApiKey, key_id)
        if row is None:
            raise KeyCommandError(f"no key {key_id!r} (see `deepclust keys list`)")
        if row.revoked_at is not None:
            return f"key {key_id} was already revoked at {row.revoked_at:%Y-%m-%d %H:%M} UTC"
        row.revoked_at = utcnow()
        session.commit()
    return f"key {key_id} revoked: it answers 401 from now on"
