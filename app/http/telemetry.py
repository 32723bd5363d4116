"""Prometheus metrics of one app: request counts and latencies, jobs by status, queue depth."""
from __future__ import annotations

import time

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy.engine import Engine
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from sqlmodel import Session, func, select

from deepclust.app.core.tables import JOB_STATES, QUEUED, Job


class JobsCollector:
    """Read at scrape time from the job table, the source of truth."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def collect(self):
        try:
            with Session(self.engine) as session:
                counts = dict(session.exec(select(Job.status, func.count()).group_by(Job.status)).all())
        except Exception:  # an unreachable database shows in /readyz; the scrape still answers
            return
        jobs = GaugeMetricFamily("deepclust_jobs", "Jobs by status", labels=["status"])
        for status in JOB_STATES:
            jobs.add_metric([status], counts.get(status, 0))
        yield jobs
        yield GaugeMetricFamily("deepclust_queue_depth", "Jobs waiting for a worker", value=counts.get(QUEUED, 0))


class Telemetry:
    def __init__(self, engine: Engine):
        self.registry = CollectorRegistry()
        self.requests = Counter("deepclust_http_requests", "HTTP requests", ["method", "route", "status"],
                                registry=self.registry)
        self.latency = Histogram("deepclust_http_request_duration_seconds", "HTTP request latency",
                                 ["method", "route"], registry=self.registry)
        self.registry.register(JobsCollector(engine))

    def install(self, app: FastAPI) -> None:
        app.add_middleware(_Observe, telemetry=self)


class _Observe:
    """Counts and times every request, the ones the middlewares inside it refuse included."""

    def __init__(self, app: ASGIApp, telemetry: Telemetry):
        self.app, self.telemetry = app, telemetry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # what the server answers if the app raises before it has sent anything

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")  # the template, not the ids
            self.telemetry.latency.labels(scope["method"], route).observe(time.perf_counter() - start)
            self.telemetry.requests.labels(scope["method"], route, str(status)).inc()
