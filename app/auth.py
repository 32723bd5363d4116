"""API keys: made by `deepclust keys create`, shown once, stored as sha256; each belongs to a tenant."""
from __future__ import annotations

import hashlib
import secrets

from sqlmodel import Session, select

from app.errors import ApiError
from app.ids import new_id
from app.tables import ApiKey, Tenant

# Everything belongs to this tenant while auth is disabled (the embedded default).
LOCAL_TENANT = "local"
_KEY_PREFIX = "dck_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(session: Session, name: str, tenant_id: str | None = None) -> tuple[str, ApiKey]:
    """A new key for ``tenant_id``, or for a new tenant called ``name``. Returns the key in clear."""
    if tenant_id is None:
        tenant = Tenant(id=new_id("tn"), name=name)
        session.add(tenant)
        session.flush()  # the key's foreign key needs the tenant row first
    elif (tenant := session.get(Tenant, tenant_id)) is None:
        raise ValueError(f"no tenant {tenant_id!r}")
    key = _KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(id=new_id("key"), tenant_id=tenant.id, name=name, key_hash=hash_key(key))
    session.add(row)
    session.commit()
    return key, row


def unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message)


def tenant_for_key(session: Session, authorization: str | None) -> str:
    scheme, _, key = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise unauthorized("Send 'Authorization: Bearer <key>'; keys are made with `deepclust keys create`.")
    tenant_id = session.exec(select(ApiKey.tenant_id).where(ApiKey.key_hash == hash_key(key.strip()))).first()
    if tenant_id is None:
        raise unauthorized("The API key is not known.")
    return tenant_id
