"""The FastAPI application: one factory, state built from the settings, routers, error handlers."""
from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.api import datasets, jobs, ops, trained_models
from app.db import engine_for
from app.dispatch import make_dispatcher
from app.errors import install_error_handlers
from app.predict import ModelCache
from app.reaper import Reaper
from app.settings import Settings, get_settings
from app.storage import store_for
from app.telemetry import Telemetry

DESCRIPTION = """Deep clustering as a service: upload a feature matrix, start a clustering job
(autoencoder pretraining, then clustering fine-tuning), poll it, read labels, centroids and
metrics, and predict the cluster of new samples.

Every error is `{"error": {"code", "message", "details"}}`. Send `Authorization: Bearer <key>`
unless the server runs with auth disabled (the embedded default on 127.0.0.1)."""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.store.sweep_staging()
        reaper = None
        if settings.reaper_interval_seconds > 0:
            reaper = Reaper(app.state.engine, settings, app.state.dispatcher)
            reaper.start()
        yield
        if reaper is not None:
            reaper.stop()

    app = FastAPI(title="deepclust", version="1", description=DESCRIPTION, lifespan=lifespan)
    app.state.settings = settings
    app.state.engine = engine_for(settings.database_url)
    app.state.store = store_for(settings.data_dir)
    app.state.dispatcher = make_dispatcher(settings)
    app.state.models = ModelCache(settings.model_cache_size, settings.device)
    app.state.telemetry = Telemetry(app.state.engine)
    app.state.telemetry.install(app)
    install_error_handlers(app)
    for module in (ops, datasets, jobs, trained_models):
        app.include_router(module.router)
    return app
