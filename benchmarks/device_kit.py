"""Pack what one lent-GPU call needs for issues #26 and #27 part 2, and say the call to make.

    .venv/bin/python benchmarks/device_kit.py            # here: wheels to .whl/, datasets to .data/
    .venv/bin/python benchmarks/device_kit.py --check    # only: is the kit there and under the limit?

A lent machine gives a session 15 minutes of device time, its start included, and one command
runs 10 minutes at most. Both issues' part 2 therefore go in **one** call:
``benchmarks/on_device.sh`` runs ``gpu.py`` (#26) and then ``table.py`` (#27) within budgets that
fit that call. The device machine is bare of everything this repository brings, and its Python
(torch, scikit-learn, pandas, httpx, typer, onnxruntime...) lacks what the service needs
(``WHEELS``), so those travel as wheels, as the device tool's README describes; the benchmark
datasets beside the checkout do not travel either, so they are copied into the checkout (both
folders are git-ignored through ``.git/info/exclude``). Everything that travels must stay under
64 MiB, which this script checks before a call is spent on it.

The wheels are pinned at the versions installed in this environment, the ones the test suite
runs against. ``--python-version 3.11`` packs wheels for this machine's Python, to dry-run the
call here on a virtual environment holding only the image's packages (README.md, "GPU").
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

ROOT = Path(__file__).resolve().parent
REPO = ROOT.parent
sys.path.insert(0, str(ROOT))
from benchdata import DatasetError, add_data_dir_argument, dataset_path  # noqa: E402

# What the device call imports that the device image does not have (KINDS.md of the device tool
# lists the image's packages): the service's web, database and queue stack, its settings, and
# diptest (the dip criterion of K estimation). Found by running the call's imports on a Python
# holding only DEVICE_IMAGE (tests/test_device_kit.py). The last line the image has, at versions
# not known here: typer and click change together (an older typer breaks on a newer click), and
# pydantic needs a recent typing-extensions, so the tested versions of all three travel.
WHEELS = (
    "pydantic", "pydantic-core", "annotated-types", "typing-inspection", "pydantic-settings", "python-dotenv",
    "sqlmodel", "sqlalchemy", "alembic", "mako",
    "celery", "kombu", "billiard", "vine", "amqp", "click-didyoumean", "click-repl", "click-plugins",
    "prompt-toolkit", "wcwidth", "tzlocal", "redis",
    "fastapi", "starlette", "opentelemetry-api", "uvicorn", "python-multipart", "fastapi-offline", "orjson",
    "diptest",
    "typer", "click", "typing-extensions",
)

# The device image's Python packages, as the device tool's KINDS.md lists them (read there on
# 2026-11-17; their versions are not listed). A Python with only these and the kit must run the
# call: tests/test_device_kit.py imports everything the call imports with every other
# distribution hidden, and checks that deepclust[server]'s requirements are all here or carried.
DEVICE_IMAGE = frozenset((
    "absl-py", "accelerate", "aiofiles", "aiohappyeyeballs", "aiohttp", "aiosignal", "annotated-doc", "anyio",
    "attrs", "botorch", "build", "certifi", "charset-normalizer", "chex", "click", "cloudpickle", "cmake",
    "colorama", "contourpy", "coverage", "cuda-bindings", "cuda-core", "cuda-pathfinder", "cuda-toolkit",
    "cupy-cuda13x", "cycler", "cython", "diffrax", "e3nn", "einops", "equinox", "etils", "execnet", "filelock",
    "flatbuffers", "flax", "fonttools", "formulaic", "frozenlist", "fsspec", "gpytorch", "grpcio", "h11",
    "h5py", "hf-xet", "httpcore", "httpx", "huggingface-hub", "humanize", "hypothesis", "idna", "imageio",
    "iniconfig", "interface-meta", "jax", "jax-cuda13-pjrt", "jax-cuda13-plugin", "jaxlib", "jaxtyping",
    "jinja2", "joblib", "kiwisolver", "lazy-loader", "lightning", "lightning-utilities", "linear-operator",
    "lineax", "llvmlite", "lxml", "markdown", "markdown-it-py", "markupsafe", "matplotlib", "mdurl", "meson",
    "ml-dtypes", "mpi4py", "mpmath", "msgpack", "multidict", "multipledispatch", "mypy-extensions", "nanobind",
    "narwhals", "networkx", "ninja", "numba", "numba-cuda", "numpy", "numpyro", "nvidia-cublas",
    "nvidia-cuda-cupti", "nvidia-cuda-nvrtc", "nvidia-cuda-runtime", "nvidia-cudnn-cu13", "nvidia-cufft",
    "nvidia-cufile", "nvidia-curand", "nvidia-cusolver", "nvidia-cusparse", "nvidia-cusparselt-cu13",
    "nvidia-ml-py", "nvidia-nccl-cu13", "nvidia-nvjitlink", "nvidia-nvshmem-cu13", "nvidia-nvtx", "onnx",
    "onnx-ir", "onnxruntime", "onnxscript", "opencv-python-headless", "optax", "opt-einsum", "opt-einsum-fx",
    "optimistix", "orbax-checkpoint", "packaging", "pandas", "pathspec", "patsy", "peft", "pillow", "pip",
    "pluggy", "portalocker", "prometheus-client", "propcache", "protobuf", "psutil", "pyarrow", "pybind11",
    "py-cpuinfo", "pygments", "pyparsing", "pyproject-hooks", "pyre-extensions", "pytest", "pytest-benchmark",
    "pytest-cov", "pytest-mock", "pytest-timeout", "pytest-xdist", "python-dateutil", "pytorch-lightning",
    "pyyaml", "regex", "requests", "rich", "sacrebleu", "safetensors", "scikit-build-core", "scikit-image",
    "scikit-learn", "scipy", "seaborn", "sentencepiece", "sentence-transformers", "setuptools", "shellingham",
    "simplejson", "six", "sortedcontainers", "statsmodels", "sympy", "tabulate", "tensorboard",
    "tensorboard-data-server", "tensorstore", "threadpoolctl", "tifffile", "tiktoken", "timm", "tokenizers",
    "toolz", "torch", "torchaudio", "torchdiffeq", "torch-geometric", "torchmetrics", "torchvision", "tqdm",
    "transformers", "treescope", "triton", "typer", "typing-extensions", "typing-inspect", "urllib3", "uvloop",
    "wadler-lindig", "werkzeug", "wheel", "wrapt", "xarray", "xxhash", "yarl", "zipp"
))

# deepclust[server] requirements the call never imports, so they do not travel.
NOT_CARRIED = {"psycopg2-binary": "PostgreSQL's driver; the call's service runs on SQLite"}

# The datasets the call reads: MNIST (gpu.py and most table cells), USPS (DECS), CIFAR-10 test.
DATASETS = ("mnist.npz", "usps.npz", "cifar10_jpeg_test.npz")

# What the device tool carries at most: the working tree plus the carried folders.
LIMIT_BYTES = 64 << 20
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64")
WHEEL_DIR, DATA_DIR = ".whl", ".data"


def pinned() -> list[str]:
    """``name==version`` of every wheel, at the versions installed here."""
    missing, pins = [], []
    for name in WHEELS:
        try:
            pins.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            missing.append(name)
    if missing:
        raise SystemExit(f"not installed here, so no version to pin: {', '.join(missing)} "
                         "(run this with the project's environment: .venv/bin/python)")
    return pins


def ignore(*folders: str) -> None:
    """Add the folders to .git/info/exclude: they travel only because the call names them."""
    path = Path(subprocess.run(["git", "rev-parse", "--git-path", "info/exclude"], cwd=REPO, check=True,
                               capture_output=True, text=True).stdout.strip())
    path = path if path.is_absolute() else REPO / path
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = path.read_text().splitlines() if path.exists() else []
    new = [f"/{f}/" for f in folders if f"/{f}/" not in lines]
    if new:
        path.write_text("\n".join(lines + new) + "\n")


def download(pins: list[str], python_version: str) -> None:
    dest = REPO / WHEEL_DIR
    if dest.exists():
        shutil.rmtree(dest)  # one version of each: two would stop the install there
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
           "--python-version", python_version, "--implementation", "cp", "-d", str(dest)]
    for platform in PLATFORMS:
        cmd += ["--platform", platform]
    subprocess.run(cmd + pins, check=True)


def copy_datasets(data_dir: Path) -> None:
    dest = REPO / DATA_DIR
    dest.mkdir(exist_ok=True)
    for name in DATASETS:
        dataset_path(name, data_dir)  # the files the benchmarks were measured on, or stop here
        target = dest / name
        if not (target.is_file() and target.stat().st_size == (data_dir / name).stat().st_size):
            shutil.copyfile(data_dir / name, target)
        dataset_path(name, dest)


def travelling_bytes() -> int:
    """Tracked and untracked-not-ignored files, plus the two carried folders."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            check=True, capture_output=True).stdout.split(b"\0")
    total = sum((REPO / p.decode()).stat().st_size for p in listed if p and (REPO / p.decode()).is_file())
    for folder in (WHEEL_DIR, DATA_DIR):
        total += sum(f.stat().st_size for f in (REPO / folder).rglob("*") if f.is_file())
    return total


def call() -> str:
    return ('run(command="bash benchmarks/on_device.sh", carry=[".whl", ".data"], timeout_s=590)\n'
            "then: python benchmarks/device_kit.py --collect <files_at>   (copies the results into "
            "benchmarks/results/)")


# What the call brings back -> where it is committed, in benchmarks/results/.
RESULTS = {"gpu.jsonl": "gpu.jsonl", "table_gpu.jsonl": "table_gpu.jsonl",
           "service-job.log": "gpu-service-job.log", "device.txt": "gpu-device.txt"}


def collect(files_at: Path) -> None:
    """Copy what the call brought back into benchmarks/results/."""
    for name, target in RESULTS.items():
        source = files_at / name
        if source.is_file():
            shutil.copyfile(source, ROOT / "results" / target)
            print(f"{source} -> benchmarks/results/{target}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--python-version", default="3.12", help="the device's Python (3.12; KINDS.md)")
    add_data_dir_argument(ap)
    ap.add_argument("--check", action="store_true", help="only check the kit that is there")
    ap.add_argument("--collect", type=Path, metavar="FILES_AT", help="copy a call's results into benchmarks/results")
    args = ap.parse_args(argv)
    if args.collect:
        collect(args.collect)
        return 0
    if not args.check:
        ignore(WHEEL_DIR, DATA_DIR)
        download(pinned(), args.python_version)
        try:
            copy_datasets(args.data_dir)
        except DatasetError as exc:
            raise SystemExit(str(exc))
    wheels = sorted(p.name for p in (REPO / WHEEL_DIR).glob("*.whl"))
    if len(wheels) != len(WHEELS):
        raise SystemExit(f"{len(wheels)} wheels in {WHEEL_DIR}/, expected {len(WHEELS)}: run without --check")
    size = travelling_bytes()
    print(f"{len(wheels)} wheels, {len(DATASETS)} datasets; {size / 2**20:.1f} MiB travel (limit 64 MiB)")
    if size > LIMIT_BYTES:
        raise SystemExit("over the device tool's 64 MiB: the call would be refused")
    print(call())
    return 0


if __name__ == "__main__":
    sys.exit(main())
