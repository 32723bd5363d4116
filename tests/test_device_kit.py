"""The one lent-GPU call of issues #26 and #27 (benchmarks/on_device.sh with device_kit.py's
kit) runs on a Python that has only the device image's packages and the kit's wheels.

A device minute is scarce and a missing package would spend the call on an ImportError, so the
call is proven here: every distribution outside the image and the kit is hidden from the
interpreter (a ``sitecustomize`` that every process of the call loads, ``deepclust serve`` and the
table's cell workers included) and the whole script runs, on the CPU with its tiny settings.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import device_kit  # noqa: E402


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirements(name: str, extras: frozenset[str], seen: dict[str, set[str]]) -> None:
    """Every distribution ``name[extras]`` needs here, recursively (markers evaluated here; one
    not installed here is not needed by what the tests run either)."""
    key = _norm(name)
    if extras <= seen.get(key, set()) and key in seen:
        return
    try:
        requires = distribution(name).requires or ()
    except PackageNotFoundError:
        return
    seen.setdefault(key, set()).update(extras)
    for line in requires:
        req = Requirement(line)
        if req.marker and not any(req.marker.evaluate({"extra": e}) for e in (extras or {""})):
            continue
        _requirements(req.name, frozenset(req.extras), seen)


def _allowed(wheels=device_kit.WHEELS) -> set[str]:
    return {_norm(n) for n in (*device_kit.DEVICE_IMAGE, *wheels)} | {"deepclust"}


def test_every_requirement_of_the_server_is_on_the_image_or_carried():
    seen: dict[str, set[str]] = {}
    _requirements("deepclust", frozenset({"server"}), seen)
    missing = set(seen) - _allowed() - set(device_kit.NOT_CARRIED)
    assert not missing, f"deepclust[server] needs {sorted(missing)}: add them to device_kit.WHEELS"
    stray = {_norm(n) for n in device_kit.WHEELS} - set(seen)
    assert not stray, f"device_kit.WHEELS carries {sorted(stray)}, which deepclust[server] does not need"


def _hide_all_but(folder: Path, allowed: set[str], log: Path) -> dict[str, str]:
    """A sitecustomize that refuses to import a distribution outside ``allowed``; the environment
    that makes every Python process of the call load it."""
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(textwrap.dedent(f"""
        import importlib.abc, importlib.metadata, os, re, sys

        ALLOWED = {sorted(allowed)!r}
        OWNERS = importlib.metadata.packages_distributions()
        with open({str(log)!r}, "a") as f:
            f.write(f"{{os.getpid()}}\\n")

        class HideOthers(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                owners = OWNERS.get(name.partition(".")[0])
                if owners and not any(re.sub(r"[-_.]+", "-", d).lower() in ALLOWED for d in owners):
                    raise ModuleNotFoundError(f"No module named {{name!r}} (hidden: not on the device)", name=name)
                return None

        sys.meta_path.insert(0, HideOthers())
    """))
    env = {**os.environ, "PYTHONPATH": str(folder), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    return {k: v for k, v in env.items() if not k.startswith("DEEPCLUST_")}


def test_hiding_a_carried_package_breaks_the_call_s_imports(tmp_path):
    """The control: without one of the kit's wheels (fastapi), the import check fails."""
    env = _hide_all_but(tmp_path / "site", _allowed([w for w in device_kit.WHEELS if w != "fastapi"]),
                        tmp_path / "pids")
    done = subprocess.run([sys.executable, "-P", "-c", "import deepclust.app.main"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "No module named 'fastapi' (hidden: not on the device)" in done.stderr


def test_the_device_call_runs_with_only_the_image_and_the_kit(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    pids = tmp_path / "pids"
    env = _hide_all_but(tmp_path / "site", _allowed(), pids)
    env.update(OUT=str(out), DEVICE="cpu", TINY="1", WHEELS_DIR="none", TABLE_ARGS="--cells dec:mnist:1,kmeans:mnist:0")
    # Budgets with room for a loaded CI machine: the tiny run takes ~20 s, and the service job gets
    # what is left of gpu.py's budget as its runtime limit (a tight one ends it runtime_exceeded).
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "on_device.sh"), "90", "90"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    log = done.stdout[-3000:] + done.stderr[-3000:]
    assert done.returncode == 0, log
    assert "gpu.py exit 0" in done.stdout and "table.py exit 0" in done.stdout, log
    assert "torch " in (out / "device.txt").read_text()
    rows = [json.loads(line) for line in (out / "gpu.jsonl").read_text().splitlines()]
    assert not [r for r in rows if "error" in r], log
    service = next(r for r in rows if r["section"] == "service")
    assert service["status"] == "succeeded" and service["external"]["acc"] > 0.2
    assert "device cpu" in service["log_device_line"]
    cells = [json.loads(line) for line in (out / "table_gpu.jsonl").read_text().splitlines()]
    assert [(c["method"], c["status"]) for c in cells] == [("dec", "ok"), ("kmeans", "ok")], log
    # the hiding was there: gpu.py, deepclust serve, table.py and its cell worker, the summary
    assert len(pids.read_text().split()) >= 5
