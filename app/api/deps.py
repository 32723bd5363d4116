"""FastAPI dependencies: settings, a database session per request, the artifact store, the tenant."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session

from app.auth import LOCAL_TENANT, tenant_for_key
from app.db import new_session
from app.dispatch import Dispatcher
from app.settings import Settings
from app.storage import ArtifactStore


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_session(request: Request) -> Iterator[Session]:
    with new_session(request.app.state.engine) as session:
        yield session


def get_store(request: Request) -> ArtifactStore:
    return request.app.state.store


def get_dispatcher(request: Request) -> Dispatcher:
    return request.app.state.dispatcher


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
StoreDep = Annotated[ArtifactStore, Depends(get_store)]
DispatcherDep = Annotated[Dispatcher, Depends(get_dispatcher)]

# Declared for the OpenAPI document (the "Authorize" button); the check itself is below.
_bearer = HTTPBearer(auto_error=False, description="An API key from `deepclust keys create`.")


def current_tenant(settings: SettingsDep, session: SessionDep,
                   credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> str:
    if not settings.auth_enabled:
        return LOCAL_TENANT
    header = f"{credentials.scheme} {credentials.credentials}" if credentials else None
    return tenant_for_key(session, header)


TenantDep = Annotated[str, Depends(current_tenant)]
