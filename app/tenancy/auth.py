"""API keys: made by `deepclust keys create`, shown once, stored as sha256; each belongs to a tenant.

A key answers 401 from the moment it is revoked or expires: every request looks its key up (one
indexed read), nothing is cached.
"""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from sqlmodel import Session, select

from deepclust.app.core.db import utcnow
from deepclust.app.core.ids import new_id
from deepclust.app.core.tables import ApiKey, Tenant
from deepclust.app.errors import UNAUTHORIZED, ApiError

# Everything belongs to this tenant while auth is disabled (the embedded default).
LOCAL_TENANT = "local"
_KEY_PREFIX = "dck_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(session: Session, name: str, tenant_id: str | None = None,
               expires_at: datetime | None = None) -> tuple[str, ApiKey]:
    """A new key for ``tenant_id``, or for a new tenant called ``name``. Returns the key in clear.

    ``ValueError`` when the tenant does not exist, or when the name is taken (by a tenant, for a
    new one; by one of the tenant's keys, for a second key): names are never silently duplicated.
    """
    if tenant_id is None:
        existing = session.exec(select(Tenant.id).where(Tenant.name == name)).first()
        if existing is not None:
            raise ValueError(f"a tenant named {name!r} exists ({existing}); add a key to it with "
                             f"--tenant {existing}, or choose another name")
        tenant = Tenant(id=new_id("tn"), name=name)
        session.add(tenant)
        session.flush()  # the key's foreign key needs the tenant row first
    elif (tenant := session.get(Tenant, tenant_id)) is None:
        raise ValueError(f"no tenant {tenant_id!r}")
    elif session.exec(select(ApiKey.id).where(ApiKey.tenant_id == tenant.id, ApiKey.name == name)).first():
        raise ValueError(f"tenant {tenant.id} already has a key named {name!r}; choose another name")
    key = _KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(id=new_id("key"), tenant_id=tenant.id, name=name, key_hash=hash_key(key), expires_at=expires_at)
    session.add(row)
    session.commit()
    return key, row


def unauthorized(message: str) -> ApiError:
    return UNAUTHORIZED(message, headers={"WWW-Authenticate": "Bearer"})


def tenant_for_key(session: Session, authorization: str | None) -> str:
    scheme, _, key = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise unauthorized("Send 'Authorization: Bearer <key>'; keys are made with `deepclust keys create`.")
    row = session.exec(select(ApiKey.tenant_id, ApiKey.expires_at, ApiKey.revoked_at)
                       .where(ApiKey.key_hash == hash_key(key.strip()))).first()
    if row is None:
        raise unauthorized("The API key is not known.")
    tenant_id, expires_at, revoked_at = row
    if revoked_at is not None:
        raise unauthorized("The API key has been revoked; ask for a new one.")
    if expires_at is not None and expires_at <= utcnow():
        raise unauthorized("The API key has expired; ask for a new one.")
    return tenant_id
