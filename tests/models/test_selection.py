"""Label-free selection: choosing K, the restart, consensus — on data whose answer is known."""
import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs

from deepclust.models import selection as S
from deepclust.models.metrics import cluster_accuracy

TRUE_K = 5


@pytest.fixture(scope="module")
def five_blobs():
    X, y = make_blobs(n_samples=500, n_features=8, centers=TRUE_K, cluster_std=1.0, random_state=1)
    return X, y


def kmeans_runs(X, ks, seeds, subsample=0.8):
    """Single-init k-means per (K, seed) on a seeded bootstrap-style subsample, predicted on all."""
    runs = []
    for k in ks:
        for seed in seeds:
            rng = np.random.default_rng(1000 * seed + k)
            idx = rng.choice(len(X), size=int(subsample * len(X)), replace=False)
            km = KMeans(k, n_init=1, random_state=seed).fit(X[idx])
            runs.append(S.Run(k, km.predict(X), seed=seed, embedding=X, key=f"k{k}s{seed}"))
    return runs


def noisy(y, rng, flip, n_labels=None):
    """Permuted copy of ``y`` with a fraction ``flip`` of points given random labels."""
    n_labels = n_labels or int(y.max()) + 1
    perm = rng.permutation(n_labels)
    out = perm[y % n_labels]
    hit = rng.random(len(y)) < flip
    out[hit] = rng.integers(0, n_labels, hit.sum())
    return out


def test_blobs_recommend_the_true_k(five_blobs):
    X, _ = five_blobs
    sel = S.select(kmeans_runs(X, range(2, 8), range(3)), X)
    assert sel.criterion == "stability"
    assert sel.n_clusters == TRUE_K
    assert sel.scores[TRUE_K] == pytest.approx(1.0)
    assert all(v < 0.99 for k, v in sel.scores.items() if k != TRUE_K)
    # the silhouette in the input agrees on such clean data
    assert S.choose_k(sel.table, "input_silhouette") == TRUE_K
    # exactly one selected row, of the recommended K
    chosen = [row for row in sel.table if row["selected"]]
    assert len(chosen) == 1 and chosen[0]["n_clusters"] == TRUE_K
    assert chosen[0] is sel.table[sel.run_index]


def test_table_rows_carry_every_criterion(five_blobs):
    X, _ = five_blobs
    runs = kmeans_runs(X, [3, 5], [0, 1])
    table = S.build_table(runs, X)
    assert [(r["n_clusters"], r["seed"], r["key"]) for r in table] == [
        (3, 0, "k3s0"), (3, 1, "k3s1"), (5, 0, "k5s0"), (5, 1, "k5s1")]
    for row in table:
        for name in S.CRITERIA:
            assert isinstance(row[name], float), name
        assert row["selected"] is False
        # the embedding here is the input itself, so both spaces give the same numbers
        assert row["silhouette"] == pytest.approx(row["input_silhouette"])
        assert -1 <= row["silhouette"] <= 1 and row["davies_bouldin"] > 0
    # with two runs of a K, each run's stability is their ARI
    assert table[0]["stability"] == pytest.approx(table[1]["stability"])


def test_precomputed_criteria_are_kept(five_blobs):
    X, _ = five_blobs
    run = kmeans_runs(X, [5], [0])[0]
    run.embedding = None
    run.criteria = {"silhouette": 0.5, "calinski_harabasz": 10.0, "davies_bouldin": 2.0}
    (row,) = S.build_table([run])
    assert (row["silhouette"], row["calinski_harabasz"], row["davies_bouldin"]) == (0.5, 10.0, 2.0)
    assert row["input_silhouette"] is None and row["stability"] is None


def test_ties_go_to_the_largest_k():
    # pairs of blobs far apart: K=2 (the pairs) and K=4 (the blobs) are both perfectly stable
    centers = np.array([[0, 0], [0, 6], [60, 0], [60, 6]], dtype=float)
    X, _ = make_blobs(n_samples=400, centers=centers, cluster_std=0.5, random_state=0)
    table = S.build_table(kmeans_runs(X, [2, 3, 4, 5], range(4)), X)
    scores = S.scores_by_k(table)
    assert scores[2] == pytest.approx(1.0) and scores[4] == pytest.approx(1.0)
    assert S.choose_k(table) == 4


def test_a_collapsed_run_is_never_the_selected_restart(five_blobs):
    X, y = five_blobs
    good = kmeans_runs(X, [TRUE_K], range(4))
    collapsed = np.zeros(len(X), dtype=np.int64)  # everything in one cluster but a handful
    collapsed[:3] = [1, 2, 3]
    runs = good + [S.Run(TRUE_K, collapsed, seed=99)]
    for order in (runs, runs[::-1], [runs[-1], *runs[:-1]]):
        sel = S.select(order, X)
        assert order[sel.run_index].seed != 99
        assert cluster_accuracy(y, order[sel.run_index].labels) > 0.99
    # even against a single good run, where the ARI between the two ties
    pair = [S.Run(TRUE_K, collapsed, seed=99), good[0]]
    assert S.medoid_run([r.labels for r in pair]) == 1
    assert S.select(pair).run_index == 1


def test_medoid_avoids_the_outlier_restart():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 6, 3000)
    runs = [noisy(y, rng, 0.1) for _ in range(4)]
    runs.append(noisy(y % 3, rng, 0.1, n_labels=6))  # merged clusters: a bad local optimum
    assert S.medoid_run(runs) != 4
    agree = S.agreement(runs)
    assert agree[4] == agree.min()


def test_consensus_beats_the_worst_restart():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 8, 4000)
    runs = [noisy(y, rng, flip) for flip in (0.15, 0.25, 0.35, 0.45, 0.55)]
    runs.append(noisy(y // 2, rng, 0.1, n_labels=8))  # a run that merged pairs of clusters
    accs = [cluster_accuracy(y, r) for r in runs]
    labels = S.consensus_labels(runs, 8, sample_size=1500, random_state=0)
    assert labels.shape == y.shape and labels.min() >= 0 and labels.max() < 8
    acc = cluster_accuracy(y, labels)
    assert acc > min(accs) + 0.2
    assert acc > np.mean(accs)


def test_consensus_with_subsampled_runs():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, 2000)
    runs = []
    for _ in range(5):
        r = noisy(y, rng, 0.2)
        r[rng.random(len(y)) < 0.3] = S.UNLABELLED  # points outside this run's subsample
        runs.append(r)
    labels = S.consensus_labels(runs, 4, sample_size=800, random_state=0)
    some = labels >= 0
    best_single = max(cluster_accuracy(y[r >= 0], r[r >= 0]) for r in runs)  # about 0.85
    assert some.mean() > 0.99 and cluster_accuracy(y[some], labels[some]) > best_single + 0.05
    # a point no run labelled stays unlabelled
    for r in runs:
        r[7] = S.UNLABELLED
    assert S.consensus_labels(runs, 4, sample_size=800, random_state=0)[7] == S.UNLABELLED


def test_ari_compares_only_points_both_runs_labelled():
    a = np.array([0, 0, 1, 1, -1, -1])
    b = np.array([1, 1, 0, 0, 0, 1])
    assert S.pairwise_ari([a, b])[0, 1] == pytest.approx(1.0)


def test_deterministic_under_a_seed(five_blobs):
    X, _ = five_blobs
    runs = kmeans_runs(X, [4, 5, 6], range(3))
    a = S.select(runs, X, sample_size=200, random_state=7)
    b = S.select(runs, X, sample_size=200, random_state=7)
    assert a.table == b.table and a.run_index == b.run_index
    c = S.select(runs, X, sample_size=200, random_state=8)
    assert [r["input_silhouette"] for r in a.table] != [r["input_silhouette"] for r in c.table]
    labelings = [r.labels for r in runs if r.n_clusters == 5]
    np.testing.assert_array_equal(S.consensus_labels(labelings, 5, sample_size=100, random_state=3),
                                  S.consensus_labels(labelings, 5, sample_size=100, random_state=3))


def test_clear_errors():
    y = np.arange(10) % 2
    with pytest.raises(ValueError, match="unknown criterion"):
        S.choose_k([{"n_clusters": 2, "stability": 1.0}], "acc")
    with pytest.raises(ValueError, match="at least two runs per K"):
        S.select([S.Run(2, y), S.Run(3, np.arange(10) % 3)])
    with pytest.raises(ValueError, match="same"):
        S.build_table([S.Run(2, y), S.Run(2, y[:5])])
    with pytest.raises(ValueError, match="n_clusters"):
        S.consensus_labels([y], 11)


def test_plot_is_a_png(five_blobs):
    X, _ = five_blobs
    sel = S.select(kmeans_runs(X, [4, 5, 6], range(3)), X)
    png = S.plot_sweep(sel.table, recommended=sel.n_clusters, title="blobs")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    only = S.plot_sweep(sel.table, ["stability"])
    assert only[:4] == b"\x89PNG" and len(only) < len(png)
