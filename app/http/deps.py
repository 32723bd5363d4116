"""FastAPI dependencies: settings, the database, the artifact store, the dispatcher, the tenant.

Every route reaches the database through ``DbDep``: ``await db.run(fn, *args)`` opens a session, calls
``fn(session, *args)`` and closes it, all inside one worker thread. A connection is therefore
held only while queries run, never while a request waits for a thread, reads its body or is
serialised; the pool holds as many connections as there are request threads, so a query never
waits for one. (A session handed out per request by a dependency holds its connection from the
first query to the end of the request: under load the requests holding connections wait for
threads while the threads wait for connections, until the pool times out.)
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from fastapi.security import HTTPBearer
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool

from deepclust.app.tenancy.auth import LOCAL_TENANT, tenant_for_key
from deepclust.app.core.db import new_session
from deepclust.app.core.dispatch import Dispatcher
from deepclust.app.core.settings import Settings
from deepclust.app.core.storage import ArtifactStore

T = TypeVar("T")


class Database:
    def __init__(self, engine: Engine):
        self.engine = engine

    def call(self, fn: Callable[..., T], *args, **kwargs) -> T:
        """``fn(session, *args, **kwargs)`` in a session of its own, in the calling thread."""
        with new_session(self.engine) as session:
            return fn(session, *args, **kwargs)

    async def run(self, fn: Callable[..., T], *args, **kwargs) -> T:
        """The same, in a request thread: the event loop never blocks on the database."""
        return await run_in_threadpool(self.call, fn, *args, **kwargs)


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_db(request: Request) -> Database:
    return request.app.state.db


def get_store(request: Request) -> ArtifactStore:
    return request.app.state.store


def get_dispatcher(request: Request) -> Dispatcher:
    return request.app.state.dispatcher


SettingsDep = Annotated[Settings, Depends(get_settings)]
DbDep = Annotated[Database, Depends(get_db)]
StoreDep = Annotated[ArtifactStore, Depends(get_store)]
DispatcherDep = Annotated[Dispatcher, Depends(get_dispatcher)]

# Declared for the OpenAPI document (the "Authorize" button); the key is checked by
# http/access.py before the route runs and before any body is read.
_bearer = HTTPBearer(auto_error=False, description="An API key from `deepclust keys create`.")


async def current_tenant(request: Request, _credentials=Depends(_bearer)) -> str:
    tenant = getattr(request.state, "tenant", None)
    if tenant is None:  # a route outside /v1 that http/access.py does not guard: check the key here
        settings = request.app.state.settings
        if not settings.auth_enabled:
            return LOCAL_TENANT
        tenant = await request.app.state.db.run(tenant_for_key, request.headers.get("authorization"))
    return tenant


TenantDep = Annotated[str, Depends(current_tenant)]
