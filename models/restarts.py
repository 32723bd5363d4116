"""Restarts of one K: train several seeds and keep the one chosen without labels.

Built on :mod:`models.selection` (the criteria, the medoid restart) and on the estimator's public
interface only (``clone``, ``fit``, ``transform``, ``labels_``): the estimator calls
:func:`fit_restarts`, and this module imports nothing of it. :mod:`models.sweep` (sweeps over K)
builds on this one. See :mod:`models.selection` for the references and the rules.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.base import clone

from . import selection as sel
from .k_estimation import stadion_of_partition
from .training.device import resolve_seed

TABLE_COLUMNS = ("n_clusters", "seed", "n_nonempty", *sel.CRITERIA, "selected")


def restart_seeds(random_state, n_restarts: int) -> list[int]:
    """Seeds of ``n_restarts`` runs: ``s, s+1, ...`` from the estimator's ``random_state`` ``s``
    (drawn at random when it is None, so unseeded restarts still differ from one another)."""
    if isinstance(n_restarts, bool) or not isinstance(n_restarts, (int, np.integer)) or n_restarts < 1:
        raise ValueError(f"n_restarts must be a positive integer, got {n_restarts!r}")
    base = resolve_seed(random_state)
    return [(base + r) % (2**31 - 1) for r in range(int(n_restarts))]


def check_selection(selection: str) -> str:
    if selection not in sel.CRITERIA:
        raise ValueError(f"unknown selection {selection!r}; choose one of {sorted(sel.CRITERIA)}")
    return selection


def evaluated_run(est, X, seed, *, labels=None, sample_size: int = sel.SILHOUETTE_SAMPLE,
                  random_state=0, stadion: bool = False) -> sel.Run:
    """A fitted estimator as a :class:`~models.selection.Run` over ``X``, its embedding criteria
    computed now (so the embedding itself need not be kept). ``labels`` defaults to ``labels_``.
    ``stadion``: also its Stadion score (seconds of k-means fits; the sweeps' K criterion)."""
    labels = np.asarray(est.labels_ if labels is None else labels)
    embedding = est.transform(X)
    criteria = sel.internal_criteria(embedding, labels, sample_size=sample_size, random_state=random_state)
    criteria["stadion"] = stadion_of_partition(embedding, labels, seed=random_state) if stadion else None
    return sel.Run(int(getattr(est, "n_clusters_", est.n_clusters)), labels, seed=seed, criteria=criteria)


def choose_restart(runs: Sequence[sel.Run], X=None, selection: str = "stability", *,
                   sample_size: int = sel.SILHOUETTE_SAMPLE, random_state=0) -> tuple[int, list[dict]]:
    """Index of the chosen run among restarts of one K, and the table of their criteria.

    ``"stability"``: the medoid run by pairwise ARI (:func:`models.selection.medoid_run`);
    any other criterion: the run with its best value (ties to the earlier run).
    """
    check_selection(selection)
    table = sel.build_table(runs, X, sample_size=sample_size, random_state=random_state)
    if selection == "stability":
        chosen = sel.medoid_run([r.labels for r in runs],
                                input_silhouettes=[row["input_silhouette"] for row in table])
    else:
        sign = sel.CRITERIA[selection]
        values = [row[selection] for row in table]
        if all(v is None for v in values):
            raise ValueError(f"no restart has a value for {selection!r}")
        chosen = max(range(len(runs)), key=lambda i: (values[i] is not None, sign * (values[i] or 0.0), -i))
    table[chosen]["selected"] = True
    return chosen, [table_row(row) for row in table]


def fit_restarts(est, X, *, callbacks=None, pretrained=None):
    """Fit ``est.n_restarts`` copies of ``est`` with seeds :func:`restart_seeds`, keep the one
    ``est.selection`` chooses (:func:`choose_restart`) and copy its fitted state into ``est``.

    Adds ``restarts_`` (the table of every restart, ``seed`` and ``selected`` included) and
    ``restart_seed_`` (the chosen run's seed, which refits it alone).
    """
    selection = check_selection(est.selection)
    seeds = restart_seeds(est.random_state, est.n_restarts)
    runs, fitted = [], []
    for seed in seeds:
        one = clone(est).set_params(n_restarts=1, random_state=seed)
        one.fit(X, callbacks=callbacks, pretrained=pretrained)
        runs.append(evaluated_run(one, X, seed, stadion=selection == "stadion"))
        fitted.append(one)
    chosen, table = choose_restart(runs, X, selection)
    for name, value in vars(fitted[chosen]).items():
        if name.endswith("_") and not name.startswith("_"):
            setattr(est, name, value)
    est.restarts_ = table
    est.restart_seed_ = seeds[chosen]
    return est


def table_row(row: dict) -> dict:
    """The public columns of a row of :func:`models.selection.build_table`."""
    return {name: row[name] for name in TABLE_COLUMNS}
