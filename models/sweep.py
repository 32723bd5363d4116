"""Training many runs and choosing among them without labels: restarts of one K, sweeps over K.

Built on :mod:`models.selection` (the criteria, the choice of K, the medoid restart) and on the
estimator's public interface only. See that module for the references and the rules.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from . import selection as sel
from .device import resolve_seed

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
                  random_state=0) -> sel.Run:
    """A fitted estimator as a :class:`~models.selection.Run` over ``X``, its embedding criteria
    computed now (so the embedding itself need not be kept). ``labels`` defaults to ``labels_``."""
    labels = np.asarray(est.labels_ if labels is None else labels)
    criteria = sel.internal_criteria(est.transform(X), labels, sample_size=sample_size,
                                     random_state=random_state)
    return sel.Run(int(est.n_clusters), labels, seed=seed, criteria=criteria)


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
    return chosen, [_public(row) for row in table]


def fit_restarts(est, X, *, callbacks=None, pretrained=None):
    """Fit ``est.n_restarts`` copies of ``est`` with seeds :func:`restart_seeds`, keep the one
    ``est.selection`` chooses (:func:`choose_restart`) and copy its fitted state into ``est``.

    Adds ``restarts_`` (the table of every restart, ``seed`` and ``selected`` included) and
    ``restart_seed_`` (the chosen run's seed, which refits it alone).
    """
    from sklearn.base import clone

    selection = check_selection(est.selection)
    seeds = restart_seeds(est.random_state, est.n_restarts)
    runs, fitted = [], []
    for seed in seeds:
        one = clone(est).set_params(n_restarts=1, random_state=seed)
        one.fit(X, callbacks=callbacks, pretrained=pretrained)
        runs.append(evaluated_run(one, X, seed))
        fitted.append(one)
    chosen, table = choose_restart(runs, X, selection)
    for name, value in vars(fitted[chosen]).items():
        if name.endswith("_") and not name.startswith("_"):
            setattr(est, name, value)
    est.restarts_ = table
    est.restart_seed_ = seeds[chosen]
    return est


def sweep_k(X, method: str = "idec", n_clusters: Iterable[int] = range(2, 11), seeds: Iterable[int] = (0, 1, 2),
            *, selection: str = "stability", reuse_pretrained: bool = True, subsample: float | None = None,
            device: str = "auto",
            scaling: str = "auto", callbacks=None, sample_size: int = sel.SILHOUETTE_SAMPLE, random_state=0,
            as_frame: bool = False, **params):
    """Train ``method`` for every K in ``n_clusters`` and every seed, and tabulate the evidence.

    Parameters
    ----------
    X : array of shape (n_samples, n_features) or (n_samples, C, H, W)
        The data, as :class:`~models.DeepClusterer` takes it.
    method : str, default="idec"
        A registered method (``models.list_methods()``).
    n_clusters : iterable of int, default=range(2, 11)
        The K's to try.
    seeds : iterable of int, default=(0, 1, 2)
        One run per K and seed. ``stability`` needs at least two seeds.
    selection : str, default="stability"
        The criterion that picks K (see :mod:`models.selection`): ``"stability"``,
        ``"silhouette"``, ``"calinski_harabasz"``, ``"davies_bouldin"`` or their ``input_``
        forms. The chosen run of that K is the medoid of its seeds by pairwise ARI.
    reuse_pretrained : bool, default=True
        For methods with an autoencoder, pretrain once per seed (with the first K) and reuse
        that autoencoder for the seed's other K's, as the service's sweeps do.
    subsample : float in (0, 1), optional
        Train each seed's runs on a seeded random fraction of the points and label every point
        with ``predict`` (the resampling scheme of Ben-Hur et al. 2002 and Lange et al. 2004).
        Makes ``stability`` informative for nearly deterministic methods (k-means with many
        inits), whose runs agree at every K when only the seed changes.
    device, scaling, callbacks
        Passed to every run (see :class:`~models.DeepClusterer`).
    sample_size, random_state : int
        Size and seed of the silhouette sample.
    as_frame : bool, default=False
        Return a ``pandas.DataFrame`` (needs pandas) instead of a list of dicts.
    **params
        The method's own params, the same for every run.

    Returns
    -------
    table : list of dict or DataFrame
        One row per run: ``n_clusters``, ``seed``, ``n_nonempty`` (clusters actually used),
        ``stability`` (mean ARI with the other seeds of its K), ``silhouette``,
        ``calinski_harabasz``, ``davies_bouldin`` (in the run's embedding), the same three on the
        input (``input_...``) and ``selected`` (True for the one recommended run). Refit the
        selected run with ``DeepClusterer(method, K, random_state=seed, ...)`` to get its model
        (the same seed gives the same labels on the CPU).
    """
    from .estimator import DeepClusterer  # here: the estimator uses this module for its restarts

    check_selection(selection)
    ks, seeds = [int(k) for k in n_clusters], [int(s) for s in seeds]
    if not ks or not seeds:
        raise ValueError("sweep_k needs at least one K and one seed")
    if len(set(ks)) != len(ks) or len(set(seeds)) != len(seeds):
        raise ValueError("n_clusters and seeds must not repeat values")
    if selection == "stability" and len(seeds) < 2:
        raise ValueError("selection='stability' needs at least two seeds")

    if subsample is not None and not 0 < subsample < 1:
        raise ValueError(f"subsample must be a fraction in (0, 1), got {subsample!r}")

    runs = []
    for seed in seeds:
        part = X
        if subsample is not None:
            rng = np.random.default_rng(seed)
            part = X[np.sort(rng.choice(len(X), size=max(2, int(round(subsample * len(X)))), replace=False))]
        pretrained = None  # the seed's autoencoder, from its first K
        for k in ks:
            est = DeepClusterer(method, k, random_state=seed, device=device, scaling=scaling, **params)
            est.fit(part, callbacks=callbacks, pretrained=pretrained if reuse_pretrained else None)
            if pretrained is None:
                pretrained = getattr(est, "pretrained_state_", None)
            labels = est.predict(X) if subsample is not None else est.labels_
            runs.append(evaluated_run(est, X, seed, labels=labels, sample_size=sample_size,
                                      random_state=random_state))
    table = [_public(row) for row in
             sel.select(runs, X, selection, sample_size=sample_size, random_state=random_state).table]
    if as_frame:
        import pandas as pd

        return pd.DataFrame(table, columns=list(TABLE_COLUMNS))
    return table


def _public(row: dict) -> dict:
    return {name: row[name] for name in TABLE_COLUMNS}
