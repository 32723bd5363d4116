"""Choosing K without labels, in one embedding, with cheap fits.

Every criterion here works on one matrix ``Z`` (a pretrained embedding, or any features) and
fits k-means (scikit-learn, a few restarts) at each candidate K, so choosing K costs seconds on
top of the one pretraining that produced ``Z`` -- not a deep training per K.
:func:`estimate_k` returns a :class:`KSelection`: the criterion, the chosen K and a table with
one row per K (``{"n_clusters", <criterion>, ..., "stability"}``).

Criteria (``docs/k_selection.md`` has the details and the benchmark that chose the default):

``stadion`` (default)
    Between-minus-within stability (Mourer, Forest, Lebbah, Azzag, Lacaille 2023 [1]_):
    ``B(K, ε) − W(K, ε)``. ``B`` is how stable the K-clustering is under additive uniform noise
    of level ε (the ARI between the clustering of the data and the same centres' assignment of
    the perturbed data); ``W`` is how stably each of its clusters itself splits into 2..5
    sub-clusters under the same noise (weighted by cluster size). A K that is too small
    leaves a cluster with a stable split inside (high ``W``); a K that is too large cuts
    through dense regions (low ``B``). The score of K is the maximum of its path over ε up to
    the level at which every K's path has fallen under the one-cluster path (the paper's
    "Stadion-max" with crossing). Largest score wins.
``dip_merge``
    Over-cluster, then merge (as DipDECK does, Leiber et al. 2021 [2]_): k-means at the largest
    K; the points of each pair of clusters projected on the line between their centres; the
    pair whose projection is most unimodal by Hartigan's dip test [3]_ (highest p-value) is
    merged while that p-value is at least 0.05 (unimodality not rejected; DipDECK uses 0.9 on an
    embedding its own loss keeps compressing, see ``DIP_THRESHOLD``), k-means re-converging
    after each merge. The table's value at K is the largest pairwise p-value on
    the merge path at K; the choice is the first K at which no pair reaches the threshold.
``prediction_strength``
    Tibshirani & Walther 2005 [4]_: cluster two random halves; for each test cluster, the
    fraction of its pairs that the training half's centres also put together; the minimum over
    test clusters, averaged over repeats. The largest K with strength ≥ 0.8.
``gap``
    The gap statistic (Tibshirani, Walther, Hastie 2001 [5]_): ``E*[log W_K] − log W_K`` against
    uniform reference data in the principal-axes box; the smallest K with
    ``gap(K) ≥ gap(K+1) − s(K+1)``.
``stability`` (always in the table, as *reproducibility*)
    Seed agreement: the mean pairwise ARI of single-init k-means runs with different seeds
    (``models.selection.stability``). High when the K-solution is unique, which a K that is
    too small often is (one obvious merge every seed makes); it is not a choice of K here.

References
----------
.. [1] A. Mourer, F. Forest, M. Lebbah, H. Azzag, J. Lacaille. "Selecting the number of clusters
   K with a stability trade-off: an internal validation criterion." PAKDD 2023 (arXiv 2006.08530);
   reference code: the ``skstab`` package (StadionEstimator).
.. [2] C. Leiber, L. G. M. Bauer, B. Schelling, C. Böhm, C. Plant. "Dip-based deep embedded
   clustering with k-estimation." KDD 2021.
.. [3] J. A. Hartigan, P. M. Hartigan. "The dip test of unimodality." Annals of Statistics
   13(1), 1985 (the ``diptest`` package's implementation and p-value table).
.. [4] R. Tibshirani, G. Walther. "Cluster validation by prediction strength." Journal of
   Computational and Graphical Statistics 14(3), 2005.
.. [5] R. Tibshirani, G. Walther, T. Hastie. "Estimating the number of clusters in a data set
   via the gap statistic." JRSS B 63(2), 2001.
"""
from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from sklearn.cluster import KMeans
from threadpoolctl import threadpool_limits

from . import selection as sel

DEFAULT_CRITERION = "stadion"
K_CRITERIA = ("stadion", "dip_merge", "prediction_strength", "gap")
REPRODUCIBILITY = "stability"
DEFAULT_K_RANGE = (2, 30)

# Stadion (the skstab defaults): uniform additive noise, 10 levels from 0 to sqrt(d) (in units of
# the data's RMS standard deviation), 2..5 sub-clusters for the within-cluster stability.
STADION_LEVELS = 10
STADION_RUNS = 5
STADION_OMEGA = (2, 3, 4, 5)
# Merge while the most unimodal pair's dip p-value is at least this: unimodality not rejected at
# the 5 % level. DipDECK merges at p >= 0.9, in an embedding its loss keeps compressing; with
# k-means alone on a fixed embedding, 0.9 leaves a Gaussian split in two about half the time
# (n = 100), and on synthetic blobs (not the benchmark sets) it overestimated every K, 0.05 none.
DIP_THRESHOLD = 0.05
DIP_SIZE_FACTOR = 2.0  # DipDECK's max_cluster_size_diff_factor
PS_THRESHOLD = 0.8  # Tibshirani & Walther: 0.8-0.9
PS_REPEATS = 5
GAP_REFERENCES = 10
SEED_RUNS = 10


@dataclass
class KSelection:
    """What :func:`estimate_k` found: ``chosen`` K by ``criterion``, and one row per K."""

    criterion: str
    chosen: int
    table: list[dict]
    seconds: dict[str, float] = field(default_factory=dict)  # cost of each computed column

    @classmethod
    def from_dict(cls, d: dict) -> "KSelection":
        return cls(d["criterion"], int(d["chosen"]), [dict(row) for row in d["table"]])

    def to_dict(self) -> dict:
        """JSON-able: ``{"criterion", "chosen", "table"}`` (the API's ``k_selection``)."""
        return {"criterion": self.criterion, "chosen": int(self.chosen),
                "table": [{k: _plain(v) for k, v in row.items()} for row in self.table]}


def estimate_k(Z, k_range: Sequence[int] | tuple[int, int] = DEFAULT_K_RANGE, criterion: str = DEFAULT_CRITERION, *,
               seed: int = 0, n_init: int = 3, columns: Iterable[str] | None = None,
               sample_size: int | None = 10_000) -> KSelection:
    """Estimate the number of clusters of ``Z`` (n_samples, d) without labels.

    Parameters
    ----------
    Z : array (n_samples, d)
        The data, typically a pretrained embedding (images are flattened).
    k_range : (min, max) or a sequence of K's
        A pair is the inclusive range; the K's are bounded by ``n_samples - 1``. At least 2.
    criterion : str
        One of :data:`K_CRITERIA`; its column decides ``chosen``.
    seed : int
        Seeds every k-means fit, perturbation and split: the same call gives the same answer.
    n_init : int
        k-means restarts of every reference fit.
    columns : iterable of str, optional
        Columns to compute beside ``criterion`` (default: ``("stability",)``, reproducibility);
        ``K_CRITERIA + ("stability",)`` tabulates everything.
    sample_size : int or None
        Points used (a seeded random subset when ``Z`` has more; None: all).
    """
    if criterion not in K_CRITERIA:
        raise ValueError(f"unknown K criterion {criterion!r}; choose one of {list(K_CRITERIA)}")
    Z = sel._as_matrix(Z).astype(np.float64)
    if not np.isfinite(Z).all():
        raise ValueError("Z contains NaN or infinite values")
    ks = k_candidates(k_range, len(Z))
    rng = np.random.default_rng(seed)
    if sample_size is not None and len(Z) > sample_size:
        Z = Z[np.sort(rng.choice(len(Z), size=sample_size, replace=False))]
    wanted = [criterion, *[c for c in (columns if columns is not None else (REPRODUCIBILITY,)) if c != criterion]]
    for name in wanted:
        if name not in (*K_CRITERIA, REPRODUCIBILITY):
            raise ValueError(f"unknown column {name!r}; choose among {[*K_CRITERIA, REPRODUCIBILITY]}")

    table = [{"n_clusters": k} for k in ks]
    seconds, choices = {}, {}
    for name in wanted:
        start = time.perf_counter()
        # Hundreds of small k-means fits: OpenMP threads cost more than they give on them (and
        # spin against any other work on the machine), so each fit runs on one thread.
        with threadpool_limits(limits=1):
            values, choice = _COMPUTE[name](Z, ks, seed=seed, n_init=n_init)
        seconds[name] = round(time.perf_counter() - start, 3)
        choices[name] = choice
        for row, value in zip(table, values):
            if isinstance(value, dict):
                row.update(value)
            else:
                row[name] = value
    return KSelection(criterion=criterion, chosen=int(choices[criterion]), table=table, seconds=seconds)


def k_candidates(k_range, n_samples: int) -> list[int]:
    """The K's of ``k_range`` (an inclusive ``(min, max)`` pair or a sequence), at least 2 and
    below ``n_samples``; ``ValueError`` when none is left."""
    if isinstance(k_range, tuple) and len(k_range) == 2 or (isinstance(k_range, list) and len(k_range) == 2):
        lo, hi = (int(v) for v in k_range)
        if lo > hi:
            raise ValueError(f"k_range {list(k_range)}: min is above max")
        ks = range(lo, hi + 1)
    else:
        ks = k_range
    ks = sorted({int(k) for k in ks if 2 <= int(k) < n_samples})
    if not ks:
        raise ValueError(f"k_range {k_range!r} leaves no K in [2, {n_samples - 1}] for {n_samples} samples")
    return ks


# -- helpers -------------------------------------------------------------------------------------
def _kmeans(Z, k, seed, n_init) -> KMeans:
    return KMeans(n_clusters=k, n_init=n_init, random_state=int(seed) % (2**31 - 1)).fit(Z)


def _assign(Z, centers) -> np.ndarray:
    """Nearest centre of each row (what ``KMeans.predict`` does, without its validation cost)."""
    d = (Z * Z).sum(1)[:, None] - 2.0 * Z @ centers.T + (centers * centers).sum(1)[None, :]
    return d.argmin(1)


def fast_ari(a: np.ndarray, b: np.ndarray) -> float:
    """Adjusted Rand index of two label vectors of small non-negative ints (1.0 when both are
    a single cluster, as scikit-learn's)."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    n = len(a)
    if n < 2:
        return 1.0
    kb = int(b.max()) + 1
    table = np.bincount(a * kb + b, minlength=(int(a.max()) + 1) * kb).astype(np.float64)
    comb = lambda x: x * (x - 1) / 2.0  # noqa: E731
    index = comb(table).sum()
    rows = comb(table.reshape(-1, kb).sum(1)).sum()
    cols = comb(table.reshape(-1, kb).sum(0)).sum()
    total = comb(float(n))
    expected = rows * cols / total
    maximum = (rows + cols) / 2.0
    if maximum == expected:
        return 1.0
    return float((index - expected) / (maximum - expected))


def _plain(v):
    if isinstance(v, (np.floating, float)):
        return None if not math.isfinite(float(v)) else round(float(v), 6)
    if isinstance(v, np.integer):
        return int(v)
    return v


# -- Stadion -------------------------------------------------------------------------------------
def _stability_paths(Z, labels, centers, noises, levels) -> np.ndarray:
    """ARI between ``labels`` and the assignment of each perturbed copy, per level (mean of runs)."""
    out = np.empty(len(levels))
    for i, eps in enumerate(levels):
        if eps == 0:
            out[i] = 1.0
            continue
        out[i] = np.mean([fast_ari(labels, _assign(Z + eps * noise, centers)) for noise in noises])
    return out


def _within_paths(Z, labels, noises, levels, *, seed, n_init, omega=STADION_OMEGA) -> np.ndarray:
    """Size-weighted mean over clusters of the mean over K' in ``omega`` of each cluster's own
    split stability (skstab's within-cluster stability)."""
    n = len(Z)
    out = np.zeros(len(levels))
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        weight = len(members) / n
        valid = [k for k in omega if k < len(members)]
        if not valid:
            out += weight
            continue
        paths = []
        for k in valid:
            km = _kmeans(Z[members], k, seed + 7919 * (int(c) + 1) + k, 1)  # one k-means++ init: many small fits
            paths.append(_stability_paths(Z[members], km.labels_, km.cluster_centers_,
                                          [noise[members] for noise in noises], levels))
        out += weight * np.mean(paths, axis=0)
    return out


def stadion_paths(Z, ks, *, seed=0, n_init=3, levels=STADION_LEVELS, runs=STADION_RUNS):
    """Between, within and Stadion paths (K × ε) for K = 1 and every K of ``ks``, and the ε grid."""
    Z = np.asarray(Z, dtype=np.float64)
    rng = np.random.default_rng(seed + 1)
    scale = float(np.sqrt(Z.var(axis=0).mean())) or 1.0
    eps = np.linspace(0.0, math.sqrt(Z.shape[1]), levels) * scale
    noises = [rng.uniform(-1.0, 1.0, size=Z.shape) for _ in range(runs)]
    all_ks = [1, *ks]
    between = np.ones((len(all_ks), levels))
    within = np.zeros((len(all_ks), levels))
    for i, k in enumerate(all_ks):
        if k == 1:
            labels = np.zeros(len(Z), dtype=np.int64)
        else:
            km = _kmeans(Z, k, seed + k, n_init)
            labels = km.labels_.astype(np.int64)
            between[i] = _stability_paths(Z, labels, km.cluster_centers_, noises, eps)
        within[i] = _within_paths(Z, labels, noises, eps, seed=seed + 104729 * k, n_init=n_init)
    return all_ks, between, within, between - within, eps


def _crossing(stadion: np.ndarray) -> int:
    """skstab's crossing: the number of ε levels up to the last one at which some K's path is
    still above the one-cluster path (row 0); all levels when none crosses."""
    crossed = (stadion[1:] <= stadion[0] + 1e-12).all(axis=0)
    if not crossed.any():
        return stadion.shape[1]
    for level in range(crossed.size - 1, -1, -1):
        if not crossed[level]:
            return level + 1
    return crossed.size


def _stadion(Z, ks, *, seed, n_init):
    all_ks, between, within, stadion, _ = stadion_paths(Z, ks, seed=seed, n_init=n_init)
    limit = max(_crossing(stadion), 2)  # at least one level with noise
    score = stadion[:, :limit].max(axis=1)
    at = stadion[:, :limit].argmax(axis=1)
    rows = [{"stadion": float(score[i]), "stadion_between": float(between[i, at[i]]),
             "stadion_within": float(within[i, at[i]])} for i in range(1, len(all_ks))]
    best = max(range(len(ks)), key=lambda i: (round(score[i + 1], 9), -i))  # ties: the smaller K
    return rows, ks[best]


def stadion_of_partition(Z, labels, *, seed: int = 0, levels: int = STADION_LEVELS, runs: int = STADION_RUNS,
                         sample_size: int | None = 10_000) -> float | None:
    """Stadion of one given clustering of ``Z`` (e.g. a trained run's labels in its own
    embedding): the reference partition is ``labels`` and its centres the clusters' means; the
    score is the maximum over ε of B − W up to the crossing with the one-cluster path. This is
    how a sweep scores each of its runs by ``stadion``. None with fewer than two clusters."""
    Z = sel._as_matrix(Z).astype(np.float64)
    labels = np.unique(np.asarray(labels), return_inverse=True)[1].astype(np.int64)
    rng = np.random.default_rng(seed)
    if sample_size is not None and len(Z) > sample_size:
        keep = np.sort(rng.choice(len(Z), size=sample_size, replace=False))
        Z, labels = Z[keep], np.unique(labels[keep], return_inverse=True)[1].astype(np.int64)
    k = int(labels.max()) + 1
    if k < 2:
        return None
    centers = np.stack([Z[labels == c].mean(0) for c in range(k)])
    noise_rng = np.random.default_rng(seed + 1)
    scale = float(np.sqrt(Z.var(axis=0).mean())) or 1.0
    eps = np.linspace(0.0, math.sqrt(Z.shape[1]), levels) * scale
    noises = [noise_rng.uniform(-1.0, 1.0, size=Z.shape) for _ in range(runs)]
    with threadpool_limits(limits=1):
        one = np.zeros(len(Z), dtype=np.int64)
        path_1 = 1.0 - _within_paths(Z, one, noises, eps, seed=seed + 104729, n_init=1)
        path_k = (_stability_paths(Z, labels, centers, noises, eps)
                  - _within_paths(Z, labels, noises, eps, seed=seed + 104729 * k, n_init=1))
    limit = max(_crossing(np.stack([path_1, path_k])), 2)
    return float(path_k[:limit].max())


# -- dip test merging ----------------------------------------------------------------------------
def dip_pvalue(x: np.ndarray) -> float:
    """p-value of Hartigan's dip test of unimodality of the 1-D sample ``x`` (the ``diptest``
    package: its interpolation table, as DipDECK's ``pval_strategy="table"``)."""
    try:
        import diptest
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("the dip test needs the diptest package: pip install 'deepclust[library]'") from exc
    x = np.asarray(x, dtype=np.float64)
    if len(x) < 4 or np.ptp(x) == 0:
        return 1.0
    return float(diptest.diptest(x)[1])


def _pair_pvalue(Z, labels, centers, i, j) -> float:
    """DipDECK's dip p-value of clusters i and j: both projected on the line between their
    centres; when one is more than twice the other, also with only the larger one's points
    nearest the smaller one's centre (twice as many), the smaller p-value kept."""
    direction = centers[i] - centers[j]
    a, b = Z[labels == i], Z[labels == j]
    p = dip_pvalue(np.concatenate([a, b]) @ direction)
    if len(a) > DIP_SIZE_FACTOR * len(b) or len(b) > DIP_SIZE_FACTOR * len(a):
        small, large, centre = (b, a, centers[j]) if len(a) > len(b) else (a, b, centers[i])
        take = max(int(DIP_SIZE_FACTOR * len(small)), 50 - len(small), 1)
        nearest = np.argsort(((large - centre) ** 2).sum(1))[:take]
        p = min(p, dip_pvalue(np.concatenate([small, large[nearest]]) @ direction))
    return p


def dip_matrix(Z, labels, centers) -> np.ndarray:
    k = len(centers)
    out = np.zeros((k, k))
    for i in range(k - 1):
        for j in range(i + 1, k):
            out[i, j] = out[j, i] = _pair_pvalue(Z, labels, centers, i, j)
    return out


def _dip_merge(Z, ks, *, seed, n_init, threshold=DIP_THRESHOLD):
    k = max(ks)
    km = _kmeans(Z, k, seed + k, n_init)
    labels, centers = km.labels_.astype(np.int64), km.cluster_centers_
    path: dict[int, float] = {}
    chosen = None
    while True:
        pvals = dip_matrix(Z, labels, centers)
        i, j = np.unravel_index(np.argmax(pvals), pvals.shape)
        path[k] = float(pvals[i, j])
        if chosen is None and (pvals[i, j] < threshold or k == min(ks)):
            chosen = k
        if k == min(ks):
            break
        # merge i and j (forced below the threshold only to fill the table), then let k-means
        # re-converge from the merged centres
        merged = np.where(labels == j, i, labels)
        keep = [c for c in range(k) if c != j]
        init = np.stack([Z[merged == c].mean(0) for c in keep])
        k -= 1
        km = KMeans(n_clusters=k, init=init, n_init=1).fit(Z)
        labels, centers = km.labels_.astype(np.int64), km.cluster_centers_
    return [{"dip_merge": path.get(k)} for k in ks], chosen


# -- prediction strength -------------------------------------------------------------------------
def _prediction_strength(Z, ks, *, seed, n_init, repeats=PS_REPEATS, threshold=PS_THRESHOLD):
    rng = np.random.default_rng(seed + 2)
    splits = []
    for _ in range(repeats):
        perm = rng.permutation(len(Z))
        splits.append((perm[: len(Z) // 2], perm[len(Z) // 2:]))
    values = []
    for k in ks:
        strengths = []
        for r, (train, test) in enumerate(splits):
            if min(len(train), len(test)) <= k:
                continue
            km_train = _kmeans(Z[train], k, seed + 31 * r + k, n_init)
            km_test = _kmeans(Z[test], k, seed + 31 * r + k + 17, n_init)
            predicted = _assign(Z[test], km_train.cluster_centers_)
            worst = 1.0
            for c in range(k):
                members = predicted[km_test.labels_ == c]
                m = len(members)
                if m < 2:
                    continue
                counts = np.bincount(members, minlength=k).astype(np.float64)
                worst = min(worst, float((counts * (counts - 1)).sum() / (m * (m - 1))))
            strengths.append(worst)
        values.append(float(np.mean(strengths)) if strengths else None)
    passing = [k for k, v in zip(ks, values) if v is not None and v >= threshold]
    if passing:
        chosen = max(passing)
    else:
        chosen = max(zip(ks, values), key=lambda kv: -1.0 if kv[1] is None else kv[1])[0]
    return values, chosen


# -- gap statistic -------------------------------------------------------------------------------
def _gap(Z, ks, *, seed, n_init, references=GAP_REFERENCES):
    rng = np.random.default_rng(seed + 3)
    centred = Z - Z.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    rotated = centred @ vt.T
    lo, hi = rotated.min(0), rotated.max(0)
    refs = [rng.uniform(lo, hi, size=rotated.shape) @ vt for _ in range(references)]
    rows = []
    for k in ks:
        log_w = math.log(max(_kmeans(Z, k, seed + k, n_init).inertia_, 1e-300))
        ref_logs = np.array([math.log(max(_kmeans(ref, k, seed + 13 * b + k, 1).inertia_, 1e-300))
                             for b, ref in enumerate(refs)])
        rows.append({"gap": float(ref_logs.mean() - log_w),
                     "gap_se": float(ref_logs.std() * math.sqrt(1.0 + 1.0 / references))})
    chosen = ks[-1]
    for i in range(len(ks) - 1):
        if rows[i]["gap"] >= rows[i + 1]["gap"] - rows[i + 1]["gap_se"]:
            chosen = ks[i]
            break
    return rows, chosen


# -- reproducibility (seed agreement) ------------------------------------------------------------
def _seed_agreement(Z, ks, *, seed, n_init, runs=SEED_RUNS):
    values = []
    for k in ks:
        labelings = [KMeans(n_clusters=k, n_init=1, random_state=seed + 1000 * r + k).fit(Z).labels_
                     for r in range(runs)]
        values.append(sel.stability(labelings))
    table = [{"n_clusters": k, REPRODUCIBILITY: v} for k, v in zip(ks, values)]
    return values, sel.choose_k(table, REPRODUCIBILITY)


_COMPUTE = {
    "stadion": _stadion,
    "dip_merge": _dip_merge,
    "prediction_strength": _prediction_strength,
    "gap": _gap,
    REPRODUCIBILITY: _seed_agreement,
}
