"""Speed settings of training on a GPU (issue #26), each behind a setting; on the CPU all are off.

=========  ======================  ============================  ===================================
setting    environment variable    values                        ``auto`` on CUDA (on the CPU: off)
=========  ======================  ============================  ===================================
tf32       ``DEEPCLUST_TF32``      auto | on | off               on: float32 matmuls and convolutions
                                                                 on tensor cores (TF32)
adam       ``DEEPCLUST_ADAM``      auto | single | foreach |     fused: one kernel per Adam step
                                   fused                         instead of one per parameter
autocast   ``DEEPCLUST_AUTOCAST``  auto | off | bf16             off: the autoencoder's encode and
                                                                 decode in bfloat16
capture    ``DEEPCLUST_CAPTURE``   auto | off | compile |        off: ``torch.compile`` of a static
                                   cudagraphs                    step (``cudagraphs``: its
                                                                 "reduce-overhead" mode, CUDA graphs)
=========  ======================  ============================  ===================================

The CUDA defaults are provisional until ``benchmarks/gpu.py`` has measured each setting on a
device (its ``accel`` rows): TF32 and fused Adam are the ones known to cost no accuracy that
matters here; bf16 and whole-step capture stay off until measured.

On the CPU every setting resolves to off whatever is asked, so CPU results stay bit-identical
(``benchmarks/bit_identity.py``; ``tests/models/test_accel.py``). Under autocast only the
autoencoder's passes run in bf16: their outputs are cast back to float32 before the Student-t
kernel, KL, Otsu, pair selection or any loss reduction sees them.

``override(**settings)`` sets them in code for a block (benchmarks, tests); it wins over the
environment.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass

import torch

CHOICES = {
    "tf32": ("auto", "on", "off"),
    "adam": ("auto", "single", "foreach", "fused"),
    "autocast": ("auto", "off", "bf16"),
    "capture": ("auto", "off", "compile", "cudagraphs"),
}
CUDA_DEFAULTS = {"tf32": "on", "adam": "fused", "autocast": "off", "capture": "off"}
OFF = {"tf32": "off", "adam": "single", "autocast": "off", "capture": "off"}
_overrides: ContextVar[dict] = ContextVar("deepclust_accel_overrides", default={})


@dataclass(frozen=True)
class Accel:
    """The resolved settings of one device."""

    tf32: bool = False
    adam: str = "single"
    autocast: str = "off"
    capture: str = "off"

    @property
    def any(self) -> bool:
        return self != Accel()


def requested(name: str) -> str:
    """What is asked for ``name``: an ``override``, else ``DEEPCLUST_<NAME>``, else ``auto``."""
    value = _overrides.get().get(name) or os.environ.get(f"DEEPCLUST_{name.upper()}", "auto")
    value = str(value).strip().lower()
    if value not in CHOICES[name]:
        raise ValueError(f"DEEPCLUST_{name.upper()}={value!r}: use one of {', '.join(CHOICES[name])}")
    return value


def resolve(device: torch.device | str) -> Accel:
    """The settings on ``device``: on the CPU all off; on CUDA what is asked, ``auto`` being
    ``CUDA_DEFAULTS``."""
    if torch.device(device).type != "cuda":
        return Accel()
    values = {}
    for name in CHOICES:
        value = requested(name)
        values[name] = CUDA_DEFAULTS[name] if value == "auto" else value
    return Accel(tf32=values["tf32"] == "on", adam=values["adam"], autocast=values["autocast"],
                 capture=values["capture"])


@contextlib.contextmanager
def override(**settings: str) -> Iterator[None]:
    """Set some settings for the block, e.g. ``override(tf32="off", capture="compile")``."""
    for name, value in settings.items():
        if name not in CHOICES or str(value).lower() not in CHOICES[name]:
            raise ValueError(f"unknown speed setting {name}={value!r}; settings: {CHOICES}")
    token = _overrides.set({**_overrides.get(), **{k: str(v).lower() for k, v in settings.items()}})
    try:
        yield
    finally:
        _overrides.reset(token)


def adam_options(parameters: list) -> dict:
    """Keyword arguments of ``torch.optim.Adam`` for parameters on their device: ``{}`` on the
    CPU (torch's default there, the single-tensor loop)."""
    if not parameters:
        return {}
    first = parameters[0]["params"][0] if isinstance(parameters[0], dict) else parameters[0]
    adam = resolve(first.device).adam
    if adam == "fused":
        return {"fused": True}
    if adam == "foreach":
        return {"foreach": True}
    return {} if first.device.type == "cpu" else {"foreach": False}


@contextlib.contextmanager
def training(model: torch.nn.Module, phases: list, device: torch.device) -> Iterator[Accel]:
    """The settings of ``device`` in force for one fit: TF32 flags set (and restored), the
    autoencoder's passes under bf16 autocast, static steps compiled. Everything is undone after."""
    accel = resolve(device)
    if not accel.any:
        yield accel
        return
    with contextlib.ExitStack() as stack:
        if device.type == "cuda":
            stack.enter_context(tf32(accel.tf32))
        autoencoder = getattr(model, "autoencoder", None)
        if accel.autocast == "bf16" and autoencoder is not None:
            stack.enter_context(autocast_autoencoder(autoencoder, device))
        if accel.capture != "off":
            stack.enter_context(compiled_steps(phases, accel.capture))
        yield accel


@contextlib.contextmanager
def tf32(enabled: bool) -> Iterator[None]:
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


@contextlib.contextmanager
def autocast_autoencoder(autoencoder: torch.nn.Module, device: torch.device,
                         dtype: torch.dtype = torch.bfloat16) -> Iterator[None]:
    """``encode`` and ``decode`` of ``autoencoder`` under autocast, their outputs float32: the
    networks' matmuls and convolutions in ``dtype``, everything downstream (Student-t, KL, Otsu,
    pair selection, loss reductions) as before."""
    originals = {name: getattr(autoencoder, name) for name in ("encode", "decode")}

    def wrap(fn):
        def cast(x):
            with torch.autocast(device.type, dtype=dtype):
                out = fn(x)
            return out.float()
        return cast

    for name, fn in originals.items():
        setattr(autoencoder, name, wrap(fn))  # an instance attribute shadows the method
    try:
        yield
    finally:
        for name in originals:
            delattr(autoencoder, name)


@contextlib.contextmanager
def compiled_steps(phases: list, mode: str) -> Iterator[None]:
    """``torch.compile`` the step of every phase that says it is static (``static_step``: the
    same tensor shapes and no Python branch on data from step to step, so a compiled graph, or
    a CUDA graph with ``cudagraphs``, is replayed every batch; the short last batch compiles once
    more)."""
    compiled = []
    for phase in phases:
        if getattr(phase, "static_step", False):
            options = {"mode": "reduce-overhead"} if mode == "cudagraphs" else {}
            phase.step = torch.compile(phase.step, dynamic=False, **options)
            compiled.append(phase)
    try:
        yield
    finally:
        for phase in compiled:
            del phase.step
