"""The FastAPI application: one factory, state built from the settings, routers, error handlers."""
from __future__ import annotations

from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI

from deepclust.app.http.access import AccessMiddleware
from deepclust.app.http.admission import AdmissionGate
from deepclust.app.http.deps import Database
from deepclust.app.core.db import engine_for
from deepclust.app.datasets import endpoints as datasets
from deepclust.app.encoders import endpoints as encoders
from deepclust.app.core.dispatch import make_dispatcher
from deepclust.app.core.encoding import RunnerCache
from deepclust.app.core.settings import Settings, get_settings
from deepclust.app.core.storage import store_for
from deepclust.app.http.docs import install_docs
from deepclust.app.errors import install_error_handlers
from deepclust.app.http.openapi import install_openapi
from deepclust.app.trained_models.predict import ModelCache
from deepclust.app.retention import RetentionSweeper
from deepclust.app.sweeps import endpoints as sweeps
from deepclust.app.trained_models import endpoints as trained_models
from deepclust.app.http.telemetry import Telemetry
from deepclust.app.jobs import endpoints as jobs
from deepclust.app.jobs.reaper import Reaper
from deepclust.app.ops import endpoints as ops
from deepclust.app.plots import endpoints as plots
from deepclust.app.predictions import endpoints as predictions
from deepclust.app.web import install_dashboard

DESCRIPTION = """Deep clustering as a service: upload a feature matrix, start a clustering job
(autoencoder pretraining, then clustering fine-tuning), poll it, read labels, centroids and
metrics, and predict the cluster of new samples.

Every error is `{"error": {"code", "message", "details"}}`. Send `Authorization: Bearer <key>`
unless the server runs with auth disabled (the embedded default on 127.0.0.1)."""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # The blocking work of requests runs on this many threads, each with a pooled connection.
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.request_threads
        app.state.store.sweep_staging()
        reaper = None
        if settings.reaper_interval_seconds > 0:
            reaper = Reaper(app.state.engine, settings, app.state.dispatcher)
            reaper.start()
        sweeper = None
        if settings.retention_days:
            sweeper = RetentionSweeper(app.state.engine, app.state.store, settings.retention_days,
                                       settings.retention_interval_seconds)
            sweeper.start()
        yield
        if reaper is not None:
            reaper.stop()
        if sweeper is not None:
            sweeper.stop()

    app = FastAPI(title="deepclust", version="1", description=DESCRIPTION, lifespan=lifespan,
                  docs_url=None, redoc_url=None)
    install_docs(app)
    install_openapi(app)
    app.state.settings = settings
    app.state.engine = engine_for(settings.database_url, pool_size=settings.request_threads,
                                  pool_timeout=settings.db_pool_timeout_seconds,
                                  connect_timeout=settings.db_connect_timeout_seconds)
    app.state.db = Database(app.state.engine)
    app.state.store = store_for(settings.data_dir)
    app.state.dispatcher = make_dispatcher(settings)
    app.state.models = ModelCache(settings.model_cache_size, settings.device)
    app.state.encoders = RunnerCache(settings.model_cache_size)  # the encoders of models on pretrained features
    app.state.telemetry = Telemetry(app.state.engine)
    # Outermost last: telemetry sees every answer, the gate refuses before the key is looked up,
    # the key is checked before a body is read.
    app.add_middleware(AccessMiddleware, settings=settings, db=app.state.db)
    app.add_middleware(AdmissionGate, max_active=settings.max_active_requests,
                       max_waiting=settings.max_waiting_requests, wait_seconds=settings.queue_timeout_seconds,
                       retry_after=settings.retry_after_seconds)
    app.state.telemetry.install(app)
    install_error_handlers(app)
    for router in (ops.router, datasets.router, encoders.router, jobs.router, jobs.events_router, plots.router,
                   trained_models.router, sweeps.router, predictions.router):
        app.include_router(router)
    install_dashboard(app)
    return app
