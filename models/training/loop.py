"""The one training loop: every method's phases run here, counted in iterations.

The loop owns what every method shares: the batch order of each pass, the training-only
transform and second view seeded per step, the optimiser step, loss sums (kept on the device: no host sync per
batch) and a history row per epoch, a checkpoint after every epoch, cancel (polled after every
checkpoint) and resume. A checkpoint names the phase and the iteration within it and carries the
model, the optimiser, the phase's ``state_dict()`` and the RNG state, so a run resumed from it
sees exactly the batches, augmentations and random draws of an uninterrupted one.
"""
from __future__ import annotations

import hashlib
import math

import torch

from .data import ArrayData
from .phase import Batch, Phase
from .run import Run, accumulate, to_device

CHECKPOINT_VERSION = 2
# The keys the loop writes into a checkpoint; every other key is the run's ``base_state``.
LOOP_KEYS = frozenset({"version", "phase", "iteration", "phase_stopped", "model", "optimizer",
                       "phase_state", "rng", "history", "guard"})


def train(model, data: ArrayData, phases: list[Phase], run: Run, *, seed: int, resume: dict | None = None) -> None:
    """Run ``phases`` in order on ``model``; with ``resume`` (a checkpoint this loop wrote), start
    inside the phase and at the iteration it names, skipping the phases before it."""
    first = 0
    if resume is not None:
        if resume.get("version") != CHECKPOINT_VERSION:
            raise ValueError(f"checkpoint version {resume.get('version')!r} is not {CHECKPOINT_VERSION}; "
                             "it was written by another version of the library")
        names = [phase.name for phase in phases]
        if resume["phase"] not in names:
            raise ValueError(f"checkpoint is in phase {resume['phase']!r}, which this run does not have ({names})")
        first = names.index(resume["phase"])
        model.load_state_dict(resume["model"])
        set_rng_state(resume["rng"], data.device)
        run.guard.load_state_dict(resume.get("guard"))  # the degenerate-clustering guard's healthy copy
        run.base_state.update({k: v for k, v in resume.items() if k not in LOOP_KEYS})
    for i, phase in enumerate(phases[first:]):
        run_phase(model, data, phase, run, seed=seed, resume=resume if i == 0 else None)


def run_phase(model, data: ArrayData, phase: Phase, run: Run, *, seed: int, resume: dict | None = None) -> None:
    n = len(data)
    total, per_epoch, epochs = phase.iterations(n), phase.iterations_per_epoch(n), phase.epochs(n)
    run.callbacks.on_phase_begin(phase.name, epochs)
    optimizer = phase.optimizer(model)
    if resume is None:
        iteration, stopped = 0, False
        phase.begin(model, data, run)
        run.guard.begin(model, data, phase)  # a clustering phase's start is a healthy candidate
    else:
        iteration, stopped = int(resume["iteration"]), bool(resume["phase_stopped"])
        phase.load_state_dict(to_device(resume["phase_state"], data.device))
        if optimizer is not None:
            optimizer.load_state_dict(resume["optimizer"])

    sums: dict[str, torch.Tensor] = {}
    seen, order, polled, generator = 0, None, False, None
    while iteration < total and not stopped:
        if phase.before_step(model, data, iteration, run):
            stopped = True
            break
        epoch, position = divmod(iteration, per_epoch)
        if position == 0 or order is None:
            order = data.order(epoch, seed, phase.order)
        index = order[position * phase.batch_size:(position + 1) * phase.batch_size]
        x, view = data.rows(index), None
        if phase.transform is not None or phase.second_view is not None:
            if generator is None:
                generator = torch.Generator(device=x.device)
            generator.manual_seed(step_seed(seed, phase.name, iteration))
            if phase.transform is not None:
                x = phase.transform(x, generator)
            if phase.second_view is not None:  # the clean batch and an augmented copy of it
                view = phase.second_view(x, generator)
        if not model.training:  # a hook evaluated the model; a full .train() walk per step costs
            model.train()
        terms = phase.step(model, Batch(x, index, view))
        optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        optimizer.step()
        accumulate(sums, terms, len(index))
        seen += len(index)
        iteration += 1
        if iteration % per_epoch == 0 or iteration == total:
            stopped = phase.end_epoch(model, data, epoch, run)
            run.end_epoch(phase.name, epoch, epochs, sums, seen, phase.epoch_logs())
            sums, seen = {}, 0
            # a degenerate clustering: the guard may restore the last healthy state and end the phase
            stopped = run.guard.end_epoch(model, data, phase, epoch + 1, iteration, run) or stopped
            if run.wants_checkpoints:
                run.checkpoint(version=CHECKPOINT_VERSION, phase=phase.name, iteration=iteration,
                               phase_stopped=stopped, model=model.state_dict(), optimizer=optimizer.state_dict(),
                               phase_state=phase.state_dict(), rng=rng_state(data.device),
                               guard=run.guard.state_dict())
            run.callbacks.raise_if_stopped()
            polled = True
    if seen:  # a hook ended the phase mid-epoch: keep the partial epoch's losses
        run.end_epoch(phase.name, iteration // per_epoch, epochs, sums, seen, phase.epoch_logs())
    if total == 0 and (logs := phase.epoch_logs()):
        run.end_epoch(phase.name, 0, epochs, {}, 1, logs)
    if total:  # the state a phase stopped in mid-epoch is looked at too (not twice at an epoch's end)
        run.guard.end_epoch(model, data, phase, math.ceil(iteration / per_epoch), iteration, run)
    phase.end(model, data, run)
    if not polled:  # a phase without epochs (k-means) polls cancel once, when it is over
        run.callbacks.raise_if_stopped()


def step_seed(seed: int, phase: str, iteration: int) -> int:
    """A 63-bit seed for one step, the same in every run and every process."""
    digest = hashlib.blake2b(f"{int(seed)}/{phase}/{int(iteration)}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def rng_state(device: torch.device) -> dict:
    """The global RNG state (methods that draw random numbers in a step: Hutchinson probes)."""
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
