"""The architecture's import rules (docs/architecture.md, "Boundaries"), checked on the real import graph."""
from __future__ import annotations

import grimp
import pytest

GRAPH = grimp.build_graph("app", "worker", "models", include_external_packages=True)


def _imports(package: str) -> list[tuple[str, str]]:
    """Every (importer, imported) pair of a direct import made by a module of ``package``."""
    pairs = []
    for module in GRAPH.find_children(package) | GRAPH.find_descendants(package) | {package}:
        pairs += [(module, imported) for imported in GRAPH.find_modules_directly_imported_by(module)]
    return pairs


def _under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_models_is_a_pure_library():
    bad = [(a, b) for a, b in _imports("models") if _under(b, "app") or _under(b, "worker")]
    assert bad == [], f"models imports the service: {bad}"


def test_worker_imports_only_the_shared_core_of_app():
    bad = [(a, b) for a, b in _imports("worker") if _under(b, "app") and not _under(b, "app.core")]
    assert bad == [], f"the worker reaches past app.core: {bad}"


def test_app_core_stays_inside_itself():
    bad = [(a, b) for a, b in _imports("app.core")
           if (_under(b, "app") and not _under(b, "app.core")) or _under(b, "worker")]
    assert bad == [], f"app.core imports the HTTP side or the worker: {bad}"


@pytest.mark.parametrize("web", ["fastapi", "starlette", "uvicorn"])
def test_nothing_the_worker_imports_pulls_in_the_web_stack(web):
    for package in ("app.core", "worker", "models"):
        chain = GRAPH.find_shortest_chain(importer=package, imported=web, as_packages=True)
        assert chain is None, f"{package} imports {web}: {' -> '.join(chain)}"


@pytest.mark.parametrize("heavy", ["torch", "fastapi", "starlette", "sqlalchemy", "sqlmodel", "models", "app.core"])
def test_the_python_client_stays_light(heavy):
    """`from app.client import Client` in a notebook loads httpx and numpy, not the server or torch."""
    chain = GRAPH.find_shortest_chain(importer="app.client", imported=heavy, as_packages=True)
    assert chain is None, f"app.client imports {heavy}: {' -> '.join(chain)}"
