"""No host synchronisation per batch (issue #26): a method's step, its per-batch hooks and
transforms never read a tensor back to Python (``.item()``, ``float()``, ``int()``, ``bool()`` /
a Python ``if`` on a tensor, ``.cpu()``, ``.tolist()``, ``.numpy()``). On a GPU each of those
waits for the device to finish everything queued, per batch.

Every registered method trains an epoch or so of its tiny preset on the CPU with those
Tensor methods patched to count while a step, a transform or a ``before_step`` hook runs; a
``before_step`` that reported labels (a full-data target update, allowed to sync once) is
exempt. The loss sums are read once per epoch, with one transfer (``Run.end_epoch``)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import make_blobs

from deepclust.models import Callback, DeepClusterer, list_methods, tiny_preset
from deepclust.models.training import loop, run as run_module

SYNCING = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__")
METHODS = [m.name for m in list_methods()]
IMAGE_ONLY = {m.name for m in list_methods() if "features" not in m.input_kinds}


class SyncCounter:
    def __init__(self):
        self.depth = 0
        self.calls: list[str] = []

    def patch(self, monkeypatch):
        for name in SYNCING:
            original = getattr(torch.Tensor, name)

            def counted(tensor, *args, _name=name, _original=original, **kwargs):
                if self.depth:
                    self.calls.append(_name)
                return _original(tensor, *args, **kwargs)

            monkeypatch.setattr(torch.Tensor, name, counted)

    def watch(self, fn, where, exempt=None):
        def watched(*args, **kwargs):
            before = len(self.calls)
            state = exempt(args) if exempt else None
            self.depth += 1
            try:
                return fn(*args, **kwargs)
            finally:
                self.depth -= 1
                if exempt and exempt(args) is not state:  # labels were reported: a full-data pass
                    del self.calls[before:]
                else:
                    self.calls[before:] = [f"{where}: {c}" for c in self.calls[before:]]
        return watched


@pytest.fixture
def counter(monkeypatch):
    counter = SyncCounter()
    original = loop.run_phase

    def run_phase(model, data, phase, run, **kwargs):
        phase.step = counter.watch(phase.step, f"{type(phase).__name__}.step")
        phase.before_step = counter.watch(phase.before_step, f"{type(phase).__name__}.before_step",
                                          exempt=lambda args: run.last_labels)
        for name in ("transform", "second_view"):
            if getattr(phase, name, None) is not None:
                setattr(phase, name, counter.watch(getattr(phase, name), f"{type(phase).__name__}.{name}"))
        return original(model, data, phase, run, **kwargs)

    monkeypatch.setattr(loop, "run_phase", run_phase)
    counter.patch(monkeypatch)
    return counter


def _data(method):
    X, _ = make_blobs(n_samples=96, n_features=64, centers=3, random_state=0)
    X = X.astype(np.float32)
    return X.reshape(-1, 1, 8, 8) if method in IMAGE_ONLY else X[:, :6]


class Checkpoints(Callback):
    def on_checkpoint(self, state):
        pass


@pytest.mark.parametrize("method", METHODS)
def test_no_host_sync_in_steps_and_per_batch_hooks(method, counter):
    torch.set_num_threads(1)
    est = DeepClusterer(method, 3, random_state=0, device="cpu", **tiny_preset(method))
    est.fit(_data(method), callbacks=[Checkpoints()])
    assert counter.calls == [], f"{method}: host syncs per batch: {sorted(set(counter.calls))}"


def test_the_counter_catches_an_item_in_a_step(counter, monkeypatch):
    """The test above would fail if someone added ``.item()`` to a step."""
    from deepclust.models.training import pretrain

    original = pretrain.reconstruction_objective

    def objective(autoencoder, x):
        terms = original(autoencoder, x)
        terms["loss"].item()  # the kind of line this test exists to catch
        return terms

    monkeypatch.setattr(pretrain, "reconstruction_objective", objective)
    from deepclust.models.methods import base
    monkeypatch.setattr(base, "reconstruction_objective", objective)
    DeepClusterer("dec", 3, random_state=0, device="cpu", **tiny_preset("dec")).fit(_data("dec"))
    assert counter.calls and all(c == "PretrainPhase.step: item" for c in counter.calls)


def test_epoch_losses_are_read_in_one_transfer(monkeypatch):
    reads = []
    original = run_module.host_values

    def host_values(tensors):
        values = original(tensors)
        reads.append(len(values))
        return values

    monkeypatch.setattr(run_module, "host_values", host_values)
    est = DeepClusterer("idec", 3, random_state=0, device="cpu", **tiny_preset("idec")).fit(_data("idec"))
    rows = [h for h in est.history_ if h["phase"] != "init"]
    assert len(reads) == len(rows) and all(n >= 2 for n in reads)  # every term of a row at once


class Due(Callback):
    def __init__(self, every):
        self.every, self.polls, self.states = every, 0, []

    def checkpoint_due(self):
        self.polls += 1
        return self.polls % self.every == 0

    def on_checkpoint(self, state):
        self.states.append(state)


def test_checkpoints_are_built_only_when_due(monkeypatch):
    copies = []
    original = run_module.Run.checkpoint
    monkeypatch.setattr(run_module.Run, "checkpoint", lambda self, **state: copies.append(1) or original(self, **state))
    due, always = Due(every=3), Due(every=1)
    DeepClusterer("dec", 3, random_state=0, device="cpu", **tiny_preset("dec")).fit(_data("dec"), callbacks=[due])
    assert due.polls >= 6 and len(due.states) == due.polls // 3 == len(copies)
    copies.clear()
    DeepClusterer("dec", 3, random_state=0, device="cpu", **tiny_preset("dec")).fit(
        _data("dec"), callbacks=[Due(every=10**9), always])
    assert len(always.states) == always.polls == len(copies)  # only the callback that asked gets it
