"""The architecture's import rules (docs/architecture.md, "Boundaries"), checked on the real import graph."""
from __future__ import annotations

import pytest

from import_graph import ImportGraph, under

GRAPH = ImportGraph()
APP, MODELS, WORKER, CORE = "deepclust.app", "deepclust.models", "deepclust.worker", "deepclust.app.core"


def test_the_graph_sees_every_module_and_its_imports():
    """A rule checked on an empty graph proves nothing: the reader must see the real modules."""
    assert len(GRAPH.files) > 100
    assert "deepclust.models" in GRAPH.edges["deepclust.app.trained_models.predict"] | GRAPH.edges["deepclust.worker.run"]
    assert "torch" in GRAPH.edges["deepclust.models.training.loop"]


def test_models_is_a_pure_library():
    bad = [(a, b) for a, b in GRAPH.direct(MODELS) if under(b, APP) or under(b, WORKER)]
    assert bad == [], f"models imports the service: {bad}"


def test_worker_imports_only_the_shared_core_of_app():
    bad = [(a, b) for a, b in GRAPH.direct(WORKER) if under(b, APP) and not under(b, CORE)]
    assert bad == [], f"the worker reaches past app.core: {bad}"


def test_app_core_stays_inside_itself():
    bad = [(a, b) for a, b in GRAPH.direct(CORE)
           if (under(b, APP) and not under(b, CORE)) or under(b, WORKER)]
    assert bad == [], f"app.core imports the HTTP side or the worker: {bad}"


@pytest.mark.parametrize("web", ["fastapi", "starlette", "uvicorn"])
def test_nothing_the_worker_imports_pulls_in_the_web_stack(web):
    for package in (CORE, WORKER, MODELS):
        chain = GRAPH.chain(package, web)
        assert chain is None, f"{package} imports {web}: {' -> '.join(chain)}"


@pytest.mark.parametrize("heavy", ["torch", "fastapi", "starlette", "sqlalchemy", "sqlmodel", MODELS, CORE])
def test_the_python_client_stays_light(heavy):
    """`from deepclust import Client` in a notebook loads httpx and numpy, not the server or torch."""
    chain = GRAPH.chain("deepclust.app.client", heavy)
    assert chain is None, f"deepclust.app.client imports {heavy}: {' -> '.join(chain)}"


# -- app/ by domain (docs/architecture.md, "Map") ---------------------------------------------------

DOMAINS = ("datasets", "encoders", "jobs", "sweeps", "trained_models", "plots", "tenancy", "ops")


def _domain(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[:2] == ["deepclust", "app"] and parts[2] in DOMAINS else None


def test_only_the_cli_imports_the_worker():
    """The API process never runs a job: `deepclust serve` (the CLI) starts the local runner."""
    assert any(under(a, f"{APP}.cli") and under(b, WORKER) for a, b in GRAPH.direct(APP))  # the graph sees it
    bad = [(a, b) for a, b in GRAPH.direct(APP) if under(b, WORKER) and not under(a, f"{APP}.cli")]
    assert bad == [], f"imports of the worker outside deepclust.app.cli: {bad}"


def test_a_domain_imports_no_other_domains_routes():
    """Domains share service functions and schemas, never routes; only the app factory gathers the routers."""
    endpoints = [m for m in GRAPH.files if m.endswith(".endpoints")]
    assert {_domain(m) for m in endpoints} >= {"datasets", "jobs", "sweeps", "trained_models", "plots", "ops"}
    bad = [(a, b) for a, b in GRAPH.direct(APP) if b in endpoints and _domain(a) != _domain(b)
           and a != f"{APP}.main"]
    assert bad == [], f"routes imported across domains: {bad}"


def test_the_app_root_keeps_only_the_factory_the_server_errors_and_lifecycle():
    root = sorted(m.rpartition(".")[2] for m in GRAPH.files if m.count(".") == 2 and under(m, APP)
                  and not GRAPH.files[m].name == "__init__.py")
    assert root == ["errors", "lifecycle", "main", "retention", "server"], root
