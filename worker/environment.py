"""What a worker trains on: the device (``DEEPCLUST_DEVICE``, narrowed by ``CUDA_VISIBLE_DEVICES``),
its name and memory, and the versions of the libraries that decide the numbers. Written on every
job's log and printed by ``deepclust worker --check`` (JSON; exit status 0 when the device asked
for is usable, 1 when not)."""
from __future__ import annotations

import importlib.metadata
import os


def resolve_device(device: str) -> str:
    """The torch device a job asking for ``device`` gets here: ``auto`` is ``cuda`` when a GPU
    is visible (``CUDA_VISIBLE_DEVICES`` decides which; empty or ``-1`` hides them all), else
    ``cpu``."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _onnxruntime_providers() -> list[str]:
    """The execution providers the encode phase can use: CUDAExecutionProvider only with
    onnxruntime-gpu and a CUDA runtime it can load, else the encoders run on the CPU."""
    try:
        import onnxruntime
    except ImportError:
        return []
    return list(onnxruntime.get_available_providers())


def describe(device: str = "auto") -> dict:
    """The device and the library versions, JSON-able. ``usable`` is False (with ``problem``)
    when ``device`` asks for a GPU this process cannot see."""
    import torch

    resolved = resolve_device(device)
    info: dict = {
        "device_asked": device,
        "device": resolved,
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "usable": True,
        "versions": {
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
            "numpy": _version("numpy"),
            "scikit-learn": _version("scikit-learn"),
            # The worker image installs the CUDA build, onnxruntime-gpu: the same module, another name.
            "onnxruntime": _version("onnxruntime") or _version("onnxruntime-gpu"),
        },
        "onnxruntime_providers": _onnxruntime_providers(),
    }
    if resolved.startswith("cuda"):
        if not torch.cuda.is_available():
            info.update(usable=False, problem=f"device {device!r} asks for a GPU, but torch sees none "
                                              f"(torch {torch.__version__} built for CUDA {torch.version.cuda}; "
                                              f"CUDA_VISIBLE_DEVICES={info['cuda_visible_devices']!r})")
            return info
        index = torch.device(resolved).index
        index = torch.cuda.current_device() if index is None else index
        if index >= torch.cuda.device_count():
            info.update(usable=False, problem=f"device {resolved!r}: only {torch.cuda.device_count()} GPU(s) visible")
            return info
        props = torch.cuda.get_device_properties(index)
        free, total = torch.cuda.mem_get_info(index)
        info["gpu"] = {"index": index, "name": props.name, "capability": f"{props.major}.{props.minor}",
                       "memory_total_gib": round(total / 2**30, 2), "memory_free_gib": round(free / 2**30, 2),
                       "count": torch.cuda.device_count()}
    else:
        info["cpu_threads"] = torch.get_num_threads()
    return info


def summary(info: dict) -> str:
    """One log line of ``describe``'s answer."""
    v = info["versions"]
    where = info["device"]
    if "gpu" in info:
        g = info["gpu"]
        where += (f" ({g['name']}, compute {g['capability']}, {g['memory_free_gib']:.1f} of "
                  f"{g['memory_total_gib']:.1f} GiB free)")
    elif "cpu_threads" in info:
        where += f" ({info['cpu_threads']} threads)"
    if not info["usable"]:
        where += f" -- NOT USABLE: {info['problem']}"
    libs = ", ".join(f"{k} {val}" for k, val in v.items() if val is not None)
    return f"device {where}; {libs}"
