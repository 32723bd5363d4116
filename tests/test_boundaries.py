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
