"""How deepclust installs: one top-level name, and a light client.

A wheel is built from this checkout (no network: setuptools from the running environment)
and read as pip would unpack it into site-packages.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    leftover = not (ROOT / "build").exists()  # setuptools builds in the tree; leave it as it was
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(out), str(ROOT)], check=True, capture_output=True)
    if leftover:
        shutil.rmtree(ROOT / "build", ignore_errors=True)
    (path,) = out.glob("deepclust-*.whl")
    return zipfile.ZipFile(path)


def test_only_deepclust_lands_at_the_top_of_site_packages(wheel):
    tops = {name.split("/")[0] for name in wheel.namelist()}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"deepclust"}


def test_the_wheel_holds_the_three_folders_and_the_dashboard(wheel):
    names = set(wheel.namelist())
    for module in ("deepclust/__init__.py", "deepclust/app/main.py", "deepclust/app/core/db.py",
                   "deepclust/models/estimator.py", "deepclust/worker/run.py",
                   "deepclust/app/web/templates/base.html", "deepclust/app/web/static/app.js"):
        assert module in names


def test_the_base_install_is_the_client_and_the_heavy_parts_are_extras(wheel):
    (metadata,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    requires = [line.split(":", 1)[1].strip() for line in wheel.read(metadata).decode().splitlines()
                if line.startswith("Requires-Dist:")]
    base = sorted(r.split(">")[0].split("=")[0].split(";")[0].strip() for r in requires if "extra ==" not in r)
    assert base == ["httpx", "numpy", "rich", "typer"]
    for heavy in ("torch", "fastapi", "sqlmodel", "celery"):
        assert any(r.startswith(heavy) and "extra ==" in r for r in requires), heavy


def test_the_public_names_resolve():
    code = ("import deepclust as d; "
            "print(d.__version__ != 'unknown', d.Client.__module__, d.Job.__name__, d.DeepclustError.__name__, "
            "d.DeepClusterer.__name__, callable(d.list_methods), callable(d.sweep_k), issubclass(d.NotFound, d.DeepclustError))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "deepclust.app.client", "Job", "DeepclustError", "DeepClusterer",
                                  "True", "True", "True"]


def test_a_client_import_loads_no_torch_no_web_stack_no_database():
    code = ("import sys; from deepclust import Client, DeepclustError; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'fastapi', 'starlette', 'sqlalchemy', "
            "'sqlmodel', 'celery', 'sklearn', 'pandas'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
