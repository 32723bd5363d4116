"""Prometheus metrics of one app: request counts and latencies, jobs by status, queue depth."""
from __future__ import annotations

import time

from fastapi import FastAPI, Request
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from app.tables import JOB_STATES, QUEUED, Job


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
        @app.middleware("http")
        async def _observe(request: Request, call_next):
            start = time.perf_counter()
            response = await call_next(request)
            route = getattr(request.scope.get("route"), "path", "unmatched")  # the template, not the ids
            self.latency.labels(request.method, route).observe(time.perf_counter() - start)
            self.requests.labels(request.method, route, str(response.status_code)).inc()
            return response
