"""Label-free model selection: choosing K, choosing among restarts, consensus labelling.

Everything here works on label vectors (and optionally the data or each run's embedding); it
trains nothing and never sees ground truth, so it serves the estimator, the service's sweeps and
any clustering at all (k-means, a deep method, another library).

A *run* is one clustering of the same ``n`` points: its ``n_clusters`` (K), a ``labels`` vector
of length ``n`` and, optionally, its ``embedding`` and seed. Points a run did not cluster (e.g.
outside its bootstrap subsample) carry the label ``-1`` and are left out of every comparison
that involves that run.

Criteria, each computed per run and then averaged per K:

``stability`` (default for choosing K)
    The mean adjusted Rand index (ARI) between this run and the other runs of the same K, on
    the points both clustered. Runs of a K differ by seed and/or by bootstrap subsample; a K
    that reflects structure in the data reproduces, one that does not is cut differently every
    time [1]_ [2]_. The ARI is already corrected for chance, which stands in for the
    random-labelling normalisation of [2]_. Undefined (``None``) for a K with a single run.
``silhouette``, ``calinski_harabasz``, ``davies_bouldin``
    Internal criteria in the run's own embedding (where the method clusters); silhouette on a
    seeded sample. Larger is better except for Davies–Bouldin.
``input_silhouette``, ``input_calinski_harabasz``, ``input_davies_bouldin``
    The same on the input data, one space shared by every run, so comparable across runs and K.
``stadion``
    Between-minus-within stability of the run's clustering in its own embedding
    (``models.k_estimation.stadion_of_partition``, Mourer et al. 2023): unlike ``stability``, it
    sees a K that is too small (a cluster that splits stably). The choice of K for the service's
    sweeps; ``stability`` stays in the table as reproducibility.

Choosing K (:func:`choose_k`): the K with the best mean criterion; values within a relative
tolerance of the best count as ties, and ties go to the **largest** K — the rule of [1]_ (the
largest K whose clusterings still agree): a finer partition that reproduces as well as a coarser
one says more about the data. Blobs grouped in pairs, for instance, are as stable at K=2 as at
the number of blobs, and the latter is the answer.

Choosing a restart of one K (:func:`medoid_run`): the run with the highest mean ARI to the
others — the medoid of the runs under the ARI — so a lucky or unlucky seed, or a run that
collapsed clusters, does not decide the answer. Ties go to the run with more non-empty
clusters, then the higher input silhouette when given, then the earlier run.

Consensus (:func:`consensus_labels`): evidence accumulation [3]_: the co-association matrix
(how often two points share a cluster across runs) on a seeded sample, average-linkage
clustering of ``1 - co-association`` into K groups, then every point goes to the group whose
sample members it co-clusters with most often.

References
----------
.. [1] A. Ben-Hur, A. Elisseeff, I. Guyon. "A stability based method for discovering structure
   in clustered data." Pacific Symposium on Biocomputing, 2002.
.. [2] T. Lange, V. Roth, M. L. Braun, J. M. Buhmann. "Stability-based validation of clustering
   solutions." Neural Computation 16(6), 2004.
.. [3] A. L. N. Fred, A. K. Jain. "Combining multiple clusterings using evidence accumulation."
   IEEE TPAMI 27(6), 2005.
"""
from __future__ import annotations

import io
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np
from sklearn import metrics as skm
from sklearn.cluster import AgglomerativeClustering

UNLABELLED = -1
SILHOUETTE_SAMPLE = 2_000
CONSENSUS_SAMPLE = 2_000
TIE_TOLERANCE = 1e-3

# criterion name -> +1 when larger is better, -1 when smaller is better
CRITERIA: dict[str, int] = {
    "stability": +1,
    "silhouette": +1,
    "calinski_harabasz": +1,
    "davies_bouldin": -1,
    "stadion": +1,
    "input_silhouette": +1,
    "input_calinski_harabasz": +1,
    "input_davies_bouldin": -1,
}
INTERNAL = ("silhouette", "calinski_harabasz", "davies_bouldin")


@dataclass
class Run:
    """One clustering of the ``n`` points of a sweep.

    ``criteria`` may carry precomputed internal criteria (e.g. ``silhouette`` in the embedding,
    as a trained job already reports them); they are then not recomputed from ``embedding``.
    ``key`` is any identifier the caller wants in the table (a job id, say).
    """

    n_clusters: int
    labels: np.ndarray
    seed: int | None = None
    embedding: np.ndarray | None = None
    criteria: dict[str, float | None] = field(default_factory=dict)
    key: Any = None


@dataclass
class Selection:
    """What :func:`select` found: the recommended K, the index of the chosen run, the evidence."""

    n_clusters: int
    run_index: int
    criterion: str
    table: list[dict]
    scores: dict[int, float | None]  # mean criterion per K


# -- criteria of one run -------------------------------------------------------------------------
def internal_criteria(data, labels, *, sample_size: int = SILHOUETTE_SAMPLE, random_state=0,
                      prefix: str = "") -> dict[str, float | None]:
    """Silhouette (on a seeded sample of ``sample_size`` points), Calinski–Harabasz, Davies–Bouldin.

    Points labelled ``-1`` are ignored. Each value is ``None`` where undefined: fewer than two
    non-empty clusters, or as many clusters as points.
    """
    data = _as_matrix(data)
    labels = np.asarray(labels)
    if len(data) != len(labels):
        raise ValueError(f"data has {len(data)} rows but labels has {len(labels)}")
    keep = labels != UNLABELLED
    data, labels = data[keep], labels[keep]
    names = [prefix + name for name in INTERNAL]
    k = len(np.unique(labels))
    if k < 2 or k >= len(labels):
        return dict.fromkeys(names)
    rng = np.random.default_rng(random_state)
    idx = rng.choice(len(labels), size=min(sample_size, len(labels)), replace=False)
    sil = None
    if len(np.unique(labels[idx])) >= 2 and len(np.unique(labels[idx])) < len(idx):
        sil = float(skm.silhouette_score(data[idx], labels[idx]))
    values = (sil, float(skm.calinski_harabasz_score(data, labels)),
              float(skm.davies_bouldin_score(data, labels)))
    return dict(zip(names, values))


def n_nonempty(labels) -> int:
    """Number of distinct clusters actually used (``-1`` excluded)."""
    labels = np.asarray(labels)
    return int(len(np.unique(labels[labels != UNLABELLED])))


# -- agreement between runs ----------------------------------------------------------------------
def pairwise_ari(labelings: Sequence) -> np.ndarray:
    """Symmetric (R, R) matrix of ARI between runs, each pair on the points both labelled.

    The diagonal is 1. A pair sharing fewer than two points gets NaN.
    """
    labelings = _as_labelings(labelings)
    r = len(labelings)
    out = np.eye(r)
    for i, j in combinations(range(r), 2):
        a, b = labelings[i], labelings[j]
        both = (a != UNLABELLED) & (b != UNLABELLED)
        value = skm.adjusted_rand_score(a[both], b[both]) if both.sum() >= 2 else np.nan
        out[i, j] = out[j, i] = value
    return out


def agreement(labelings: Sequence) -> np.ndarray:
    """Each run's mean ARI with the other runs (NaN when there is no other run)."""
    ari = pairwise_ari(labelings)
    r = len(ari)
    if r < 2:
        return np.full(r, np.nan)
    off = ari.copy()
    np.fill_diagonal(off, np.nan)
    finite = np.isfinite(off)
    sums = np.where(finite, off, 0.0).sum(axis=1)
    counts = finite.sum(axis=1)
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def stability(labelings: Sequence) -> float | None:
    """Mean pairwise ARI between runs of one K [1]_ [2]_; ``None`` with fewer than two runs."""
    values = agreement(labelings)
    values = values[np.isfinite(values)]
    return float(values.mean()) if len(values) else None


def medoid_run(labelings: Sequence, *, input_silhouettes: Sequence[float | None] | None = None) -> int:
    """Index of the run that agrees most with the others (the medoid under pairwise ARI).

    Ties (within 1e-9) go to more non-empty clusters, then higher input silhouette (if given),
    then the earlier run. With a single run, that run.
    """
    labelings = _as_labelings(labelings)
    if not labelings:
        raise ValueError("medoid_run needs at least one run")
    agree = np.nan_to_num(agreement(labelings), nan=-np.inf)
    sil = list(input_silhouettes) if input_silhouettes is not None else [None] * len(labelings)

    def key(i):
        s = sil[i]
        return (round(float(agree[i]), 9), n_nonempty(labelings[i]),
                -np.inf if s is None or not math.isfinite(s) else s, -i)

    return max(range(len(labelings)), key=key)


# -- consensus -----------------------------------------------------------------------------------
def consensus_labels(labelings: Sequence, n_clusters: int, *, sample_size: int = CONSENSUS_SAMPLE,
                     random_state=0) -> np.ndarray:
    """Consensus labelling of several runs by evidence accumulation [3]_.

    1. Co-association on a seeded sample of ``sample_size`` points: the fraction of runs (among
       those that labelled both) that put two points in the same cluster; a pair no run labelled
       together gets the mean co-association of the other pairs.
    2. Average-linkage agglomerative clustering of ``1 - co-association`` into ``n_clusters``.
    3. Every point (the sample included) joins the group whose members it shares a cluster with
       most often, averaged over the runs that labelled it: in run r, point x scores
       ``P(member of group g has x's label in r)``. Points no run labelled get ``-1``.
    """
    labelings = _as_labelings(labelings)
    if not labelings:
        raise ValueError("consensus_labels needs at least one run")
    n = len(labelings[0])
    if n_clusters < 2 or n_clusters > n:
        raise ValueError(f"n_clusters must be in [2, {n}], got {n_clusters}")
    rng = np.random.default_rng(random_state)
    sample = np.sort(rng.choice(n, size=min(sample_size, n), replace=False))
    if len(sample) < n_clusters:
        raise ValueError(f"the consensus sample ({len(sample)} points) is smaller than n_clusters")

    same = np.zeros((len(sample), len(sample)))
    both = np.zeros_like(same)
    for labels in labelings:
        lab = labels[sample]
        present = (lab != UNLABELLED).astype(np.float64)
        onehot = _one_hot(lab)
        same += onehot @ onehot.T
        both += np.outer(present, present)
    known = both > 0
    coassoc = np.where(known, same / np.maximum(both, 1), 0.0)
    # a pair no run labelled together carries no evidence: give it the mean co-association (the
    # chance of two points sharing a cluster), not 0, or such points end up as lone groups
    np.fill_diagonal(known, False)
    prior = coassoc[known].mean() if known.any() else 0.0
    coassoc[~(both > 0)] = prior
    np.fill_diagonal(coassoc, 1.0)
    groups = AgglomerativeClustering(n_clusters=n_clusters, metric="precomputed",
                                     linkage="average").fit_predict(1.0 - coassoc)
    return _assign_to_groups(labelings, sample, groups, n_clusters)


def _assign_to_groups(labelings, sample, groups, n_clusters) -> np.ndarray:
    n = len(labelings[0])
    score = np.zeros((n, n_clusters))
    counted = np.zeros(n)
    for labels in labelings:
        lab_sample = labels[sample]
        ok = lab_sample != UNLABELLED
        if not ok.any():
            continue
        n_labels = int(labels.max()) + 1
        # share[l, g]: of group g's sample members this run labelled, the fraction with label l
        share = np.zeros((n_labels, n_clusters))
        np.add.at(share, (lab_sample[ok], groups[ok]), 1.0)
        share /= np.maximum(share.sum(axis=0, keepdims=True), 1.0)
        has = labels != UNLABELLED
        score[has] += share[labels[has]]
        counted += has
    out = np.argmax(score, axis=1)
    out[counted == 0] = UNLABELLED
    return out.astype(np.int64)


# -- the table and the choice of K ---------------------------------------------------------------
def build_table(runs: Sequence[Run], X=None, *, sample_size: int = SILHOUETTE_SAMPLE,
                random_state=0) -> list[dict]:
    """One row per run: ``n_clusters``, ``seed``, ``key``, ``n_nonempty``, every criterion.

    Embedding criteria come from ``run.criteria`` when given, else from ``run.embedding`` (else
    ``None``); input criteria from ``X`` (else ``None``). ``stability`` is the run's mean ARI
    with the other runs of its K. ``selected`` is left ``False``; :func:`select` sets it.
    """
    runs = list(runs)
    if not runs:
        raise ValueError("no runs to evaluate")
    n = len(runs[0].labels)
    for run in runs:
        if len(run.labels) != n:
            raise ValueError(f"every run must label the same {n} points; one has {len(run.labels)}")
    if X is not None:
        if len(X) != n:
            raise ValueError(f"X has {len(X)} rows but the runs label {n} points")
        X = _as_matrix(X)  # once (a memory-mapped dataset is read here), not once per run

    rows = []
    for run in runs:
        row = {"n_clusters": int(run.n_clusters), "seed": run.seed, "key": run.key,
               "n_nonempty": n_nonempty(run.labels)}
        embedded = {name: run.criteria.get(name) for name in INTERNAL}
        if run.embedding is not None and any(name not in run.criteria for name in INTERNAL):
            embedded = internal_criteria(run.embedding, run.labels, sample_size=sample_size,
                                         random_state=random_state)
        row.update(embedded)
        row["stadion"] = run.criteria.get("stadion")
        if row["stadion"] is None and run.embedding is not None and "stadion" not in run.criteria:
            from .k_estimation import stadion_of_partition

            row["stadion"] = stadion_of_partition(run.embedding, run.labels, seed=random_state)
        if X is not None:
            row.update(internal_criteria(X, run.labels, sample_size=sample_size,
                                         random_state=random_state, prefix="input_"))
        else:
            row.update({"input_" + name: None for name in INTERNAL})
        rows.append(row)

    for idx in _indices_by_k(runs).values():
        values = agreement([runs[i].labels for i in idx])
        for i, value in zip(idx, values):
            rows[i]["stability"] = float(value) if np.isfinite(value) else None
    for row in rows:
        row["selected"] = False
    return rows


def scores_by_k(table: Sequence[Mapping], criterion: str = "stability") -> dict[int, float | None]:
    """Mean of ``criterion`` over the rows of each K (``None`` rows skipped; ``None`` if all are)."""
    _check_criterion(criterion)
    values: dict[int, list[float]] = defaultdict(list)
    for row in table:
        k = int(row["n_clusters"])
        values.setdefault(k, [])
        v = row.get(criterion)
        if v is not None and math.isfinite(v):
            values[k].append(float(v))
    return {k: (float(np.mean(v)) if v else None) for k, v in sorted(values.items())}


def choose_k(table: Sequence[Mapping], criterion: str = "stability", *, tol: float = TIE_TOLERANCE) -> int:
    """The K whose mean ``criterion`` is best; ties within ``tol * max(1, |best|)`` go to the largest K.

    Raises ``ValueError`` when no K has a value (e.g. stability with one run per K).
    """
    scores = scores_by_k(table, criterion)
    sign = CRITERIA[criterion]
    defined = {k: sign * v for k, v in scores.items() if v is not None}
    if not defined:
        hint = " (stability needs at least two runs per K)" if criterion == "stability" else ""
        raise ValueError(f"no K has a value for {criterion!r}{hint}")
    best = max(defined.values())
    margin = tol * max(1.0, abs(best))
    return max(k for k, v in defined.items() if v >= best - margin)


def select(runs: Sequence[Run], X=None, criterion: str = "stability", *,
           sample_size: int = SILHOUETTE_SAMPLE, tol: float = TIE_TOLERANCE, random_state=0) -> Selection:
    """Build the table, choose K by ``criterion``, then the medoid run of that K.

    The chosen run's row has ``selected=True``. Labels of the data are never an input.
    """
    runs = list(runs)
    _check_criterion(criterion)
    table = build_table(runs, X, sample_size=sample_size, random_state=random_state)
    k = choose_k(table, criterion, tol=tol)
    idx = _indices_by_k(runs)[k]
    chosen = idx[medoid_run([runs[i].labels for i in idx],
                            input_silhouettes=[table[i]["input_silhouette"] for i in idx])]
    table[chosen]["selected"] = True
    return Selection(n_clusters=k, run_index=chosen, criterion=criterion, table=table,
                     scores=scores_by_k(table, criterion))


# -- plot ----------------------------------------------------------------------------------------
def plot_sweep(table: Sequence[Mapping], criteria: Iterable[str] | None = None, *,
               recommended: int | None = None, title: str | None = None) -> bytes:
    """PNG of each criterion against K: one dot per run (seed spread), the mean per K as a line.

    ``criteria`` defaults to those with at least one value in the table; ``recommended`` draws a
    vertical marker. Needs matplotlib (the ``plot`` extra); drawn off-screen with Agg.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("plot_sweep needs matplotlib: pip install 'deepclust[plot]'") from exc

    table = list(table)
    names = [c for c in (criteria or CRITERIA) if any(row.get(c) is not None for row in table)]
    for name in names:
        _check_criterion(name)
    if not names:
        raise ValueError("the table has no criterion values to plot")
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig = Figure(figsize=(4.2 * cols, 3.2 * rows), dpi=100)
    FigureCanvasAgg(fig)
    for n, name in enumerate(names):
        ax = fig.add_subplot(rows, cols, n + 1)
        pts = [(int(r["n_clusters"]), float(r[name])) for r in table if r.get(name) is not None]
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=14, alpha=0.55, color="tab:blue",
                   label="runs")
        means = {k: v for k, v in scores_by_k(table, name).items() if v is not None}
        ax.plot(list(means), list(means.values()), "-o", color="tab:orange", ms=4, label="mean per K")
        if recommended is not None:
            ax.axvline(recommended, color="tab:green", ls="--", lw=1, label=f"K={recommended}")
        better = "higher" if CRITERIA[name] > 0 else "lower"
        ax.set_title(f"{name} ({better} is better)", fontsize=9)
        ax.set_xlabel("K")
        ax.xaxis.get_major_locator().set_params(integer=True)
        if n == 0:
            ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


# -- helpers -------------------------------------------------------------------------------------
def _as_matrix(data) -> np.ndarray:
    """2-D floating array (images flattened); float32 stays float32 to spare memory."""
    data = np.asarray(data)
    if not np.issubdtype(data.dtype, np.floating):
        data = data.astype(np.float64)
    return data.reshape(len(data), -1)


def _as_labelings(labelings) -> list[np.ndarray]:
    out = [np.asarray(getattr(x, "labels", x), dtype=np.int64).ravel() for x in labelings]
    if out and any(len(x) != len(out[0]) for x in out):
        raise ValueError("every run must label the same points")
    return out


def _one_hot(labels: np.ndarray) -> np.ndarray:
    ok = labels != UNLABELLED
    onehot = np.zeros((len(labels), int(labels.max()) + 1 if ok.any() else 1))
    onehot[np.flatnonzero(ok), labels[ok]] = 1.0
    return onehot


def _indices_by_k(runs: Sequence[Run]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = defaultdict(list)
    for i, run in enumerate(runs):
        out[int(run.n_clusters)].append(i)
    return dict(out)


def _check_criterion(name: str) -> None:
    if name not in CRITERIA:
        raise ValueError(f"unknown criterion {name!r}; choose one of {sorted(CRITERIA)}")
