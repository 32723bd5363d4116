"""The guard against degenerate clusterings, run by the one training loop for every method.

After each epoch of a *clustering* phase (one whose ``clustering`` attribute is true; by
default a phase named ``FINETUNE``), and once more when such a phase ends mid-epoch, the loop
asks the guard to look at the labels of the current model (``argmax`` of its soft assignment
over all the data) -- no labels of the data, only the sizes of the clusters:

- ``nonempty_clusters``: clusters holding at least one sample;
- ``largest_cluster_fraction``: the share of the samples in the largest cluster;
- ``size_entropy``: the Shannon entropy of the cluster sizes divided by ``log K`` (1: equal
  sizes; 0: one cluster).

The state is *degenerate* when fewer than K clusters hold samples (``clusters_emptied``), or
when one holds more than half of the samples while K > 2 (``cluster_dominant``).

Modes: ``"restore"`` (default) keeps a copy of the last healthy state the phase passed through
(the model's weights -- centres included -- and its labels; the phase's start counts) and, at
the first degenerate epoch, loads it back and ends the phase there; ``"warn"`` only records the
event and keeps training; ``"off"`` looks at nothing. The guard's state (the healthy copy, the
events) goes into every checkpoint, so a resumed run restores exactly what an uninterrupted one
would have.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..phases import FINETUNE

GUARD_MODES = ("restore", "warn", "off")
DOMINANT_FRACTION = 0.5


def check_guard(mode: str) -> str:
    if mode not in GUARD_MODES:
        raise ValueError(f"unknown guard {mode!r}; choose one of {list(GUARD_MODES)}")
    return mode


def is_clustering(phase) -> bool:
    """Whether the guard watches ``phase``: its ``clustering`` attribute, else its name is FINETUNE."""
    flag = getattr(phase, "clustering", None)
    return phase.name == FINETUNE if flag is None else bool(flag)


def cluster_health(labels, n_clusters: int) -> dict:
    """Label-free health of a labelling into ``n_clusters`` clusters (see the module docstring)."""
    labels = np.asarray(labels, dtype=np.int64)
    counts = np.bincount(labels, minlength=n_clusters).astype(np.float64) if len(labels) else np.zeros(n_clusters)
    total = counts.sum()
    share = counts / total if total else counts
    nz = share[share > 0]
    entropy = float(-(nz * np.log(nz)).sum() / math.log(n_clusters)) if n_clusters > 1 and len(nz) else 0.0
    return {"nonempty_clusters": int((counts > 0).sum()),
            "largest_cluster_fraction": round(float(share.max()) if total else 0.0, 6),
            "size_entropy": round(entropy, 6)}


def degenerate(health: dict, n_clusters: int) -> list[str]:
    """The warning codes a health record deserves: ``clusters_emptied``, ``cluster_dominant``."""
    codes = []
    if health["nonempty_clusters"] < n_clusters:
        codes.append("clusters_emptied")
    if n_clusters > 2 and health["largest_cluster_fraction"] > DOMINANT_FRACTION:
        codes.append("cluster_dominant")
    return codes


@torch.no_grad()
def _labels(model, data) -> tuple[torch.Tensor, int]:
    """The current labels of every sample (in eval mode, as ``predict_soft``) and K."""
    model.eval()
    labels, k = [], 0
    for x in data.chunks():
        q = model.soft_assign(model.embed(x))
        k = int(q.shape[1])
        labels.append(q.argmax(1))
    return torch.cat(labels), k


class Guard:
    """What the loop calls for a clustering phase; its state travels in every checkpoint."""

    def __init__(self, mode: str = "restore"):
        self.mode = check_guard(mode)
        self.healthy: dict | None = None  # {"phase", "epoch", "model", "labels"}: the last healthy state
        self.events: list[dict] = []  # degenerate states seen: {"code", "phase", "epoch", health...}
        self.restored: dict | None = None  # {"phase", "epoch", "degenerated_epoch", "codes"}
        self.checked: dict | None = None  # {"phase", "iteration"} of the latest look

    # -- the loop's hooks -------------------------------------------------------------------------
    def begin(self, model, data, phase) -> None:
        """A clustering phase starts afresh: its start (k-means' centres) is a candidate state."""
        if self.mode != "off" and is_clustering(phase):
            self.healthy = None
            self._look(model, data, phase, epochs_done=0, iteration=0)

    def end_epoch(self, model, data, phase, epochs_done: int, iteration: int, run) -> bool:
        """After an epoch (or the partial one a phase stopped in); True: the phase must end here
        because the guard restored an earlier state."""
        if self.mode == "off" or not is_clustering(phase):
            return False
        if self.checked == {"phase": phase.name, "iteration": int(iteration)}:
            return False
        codes, labels = self._look(model, data, phase, epochs_done, iteration)
        if not codes or self.mode != "restore" or self.healthy is None or self.healthy["phase"] != phase.name:
            return False
        model.load_state_dict(self.healthy["model"])
        run.last_labels = self.healthy["labels"].cpu().numpy()
        self.restored = {"phase": phase.name, "epoch": int(self.healthy["epoch"]),
                         "degenerated_epoch": int(epochs_done), "codes": codes}
        return True

    def _look(self, model, data, phase, epochs_done: int, iteration: int):
        labels, k = _labels(model, data)
        health = cluster_health(labels.cpu().numpy(), k)
        codes = degenerate(health, k)
        self.checked = {"phase": phase.name, "iteration": int(iteration)}
        if codes:
            seen = {(e["code"], e["phase"]) for e in self.events}
            for code in codes:
                if (code, phase.name) not in seen:
                    self.events.append({"code": code, "phase": phase.name, "epoch": int(epochs_done), **health})
        elif self.mode == "restore":
            self.healthy = {"phase": phase.name, "epoch": int(epochs_done),
                            "model": {k_: v.detach().clone() for k_, v in model.state_dict().items()},
                            "labels": labels.detach().to("cpu", torch.int64).clone()}
        return codes, labels

    # -- checkpoints ------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"mode": self.mode, "healthy": self.healthy, "events": [dict(e) for e in self.events],
                "restored": self.restored, "checked": self.checked}

    def load_state_dict(self, state: dict | None) -> None:
        if not state:
            return
        self.healthy = state.get("healthy")
        self.events = [dict(e) for e in state.get("events") or []]
        self.restored = state.get("restored")
        self.checked = state.get("checked")


def result_report(guard: Guard, labels, n_clusters: int, k_selection=None) -> tuple[dict, list[dict]]:
    """``health_`` and ``warnings_`` of a fitted result: the final labels' health, what the
    guard did, and a warning for each thing a user without labels should know (codes
    ``clusters_emptied``, ``cluster_dominant``, ``restored``, ``k_estimated``)."""
    health = cluster_health(labels, n_clusters)
    final = degenerate(health, n_clusters)
    warnings: list[dict] = []
    if guard.restored is not None:
        r = guard.restored
        warnings.append({
            "code": "restored",
            "message": (f"the {r['phase']} phase degenerated after epoch {r['degenerated_epoch']} "
                        f"({', '.join(r['codes'])}); the result is its last healthy state, after epoch "
                        f"{r['epoch']}" + (" (the phase's start)" if r["epoch"] == 0 else "")),
            "details": {"phase": r["phase"], "epoch": r["epoch"], "degenerated_epoch": r["degenerated_epoch"],
                        "codes": list(r["codes"])}})
    first = {}
    for event in guard.events:
        first.setdefault(event["code"], event)
    for code in ("clusters_emptied", "cluster_dominant"):
        event = first.get(code)
        if code in final:
            message = (f"only {health['nonempty_clusters']} of {n_clusters} clusters hold samples"
                       if code == "clusters_emptied" else
                       f"one cluster holds {100 * health['largest_cluster_fraction']:.1f}% of the samples")
            details = {"n_clusters": n_clusters, **health}
            if event is not None:
                details.update({"phase": event["phase"], "epoch": event["epoch"]})
            warnings.append({"code": code, "message": message, "details": details})
        elif event is not None and guard.restored is None:
            message = (f"{event['nonempty_clusters']} of {n_clusters} clusters held samples"
                       if code == "clusters_emptied" else
                       f"one cluster held {100 * event['largest_cluster_fraction']:.1f}% of the samples")
            warnings.append({"code": code, "message": f"{message} after epoch {event['epoch']} of the "
                                                      f"{event['phase']} phase; the final state recovered",
                             "details": {"n_clusters": n_clusters, "recovered": True, **event}})
    if k_selection is not None:
        ks = [row["n_clusters"] for row in k_selection.table]
        warnings.append({"code": "k_estimated",
                         "message": f"K = {k_selection.chosen} was estimated without labels by "
                                    f"{k_selection.criterion} over K in {min(ks)}..{max(ks)}",
                         "details": {"criterion": k_selection.criterion, "chosen": int(k_selection.chosen),
                                     "table": k_selection.to_dict()["table"]}})
    if guard.mode == "off":
        state = "off"
    elif guard.restored is not None:
        state = "restored"
    elif guard.events or final:
        state = "warned"
    else:
        state = None
    health = {**health, "guard": state}
    if guard.restored is not None:
        health["restored_epoch"] = int(guard.restored["epoch"])
    return health, warnings
