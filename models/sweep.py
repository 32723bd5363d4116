"""Sweeps over K: train every (K, seed) and tabulate the label-free evidence for each K.

Built on :mod:`models.selection` (the criteria, the choice of K) and :mod:`models.restarts` (a
fitted run as a :class:`~models.selection.Run`, the table's columns), above the estimator.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from . import selection as sel
from .estimator import DeepClusterer
from .restarts import TABLE_COLUMNS, check_selection, evaluated_run, table_row


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
        The criterion that picks K (see :mod:`models.selection`): ``"stability"``, ``"stadion"``
        (between-minus-within stability of each run, which also sees a K too small),
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
                                      random_state=random_state, stadion=selection == "stadion"))
    table = [table_row(row) for row in
             sel.select(runs, X, selection, sample_size=sample_size, random_state=random_state).table]
    if as_frame:
        import pandas as pd

        return pd.DataFrame(table, columns=list(TABLE_COLUMNS))
    return table
