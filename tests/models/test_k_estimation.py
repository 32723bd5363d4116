"""K without labels (models.k_estimation) and n_clusters="auto": on data whose K is known."""
import numpy as np
import pytest
from sklearn.datasets import make_blobs

from deepclust.models import (DeepClusterer, KSelection, TrainingCancelled, estimate_k,
                              load_checkpoint)
from deepclust.models import k_estimation as ke
from deepclust.models import selection as S
from stop_after import StopAfter


@pytest.mark.parametrize("sizes,seed", [
    ([300, 120, 60], 3),
    ([250, 60, 180, 90, 140], 5),
    ([200, 50, 120, 80, 160, 60, 100, 140], 8),
])
def test_blobs_of_unequal_sizes_recover_k(sizes, seed):
    X, _ = make_blobs(n_samples=sizes, n_features=6, cluster_std=1.0, random_state=seed)
    result = estimate_k(X, (2, 11), seed=0)
    assert isinstance(result, KSelection) and result.criterion == ke.DEFAULT_CRITERION
    assert result.chosen == len(sizes)
    assert [row["n_clusters"] for row in result.table] == list(range(2, 12))
    assert all(ke.DEFAULT_CRITERION in row and "stability" in row for row in result.table)
    again = estimate_k(X, (2, 11), seed=0)
    assert again.table == result.table  # seeded: the same call, the same answer


def pairs_of_close_blobs(sep=6.0, n=100, d=4, seed=1):
    """Six blobs: two pairs of close blobs and two single ones. Merging each pair (K = 4) is the
    solution every k-means seed finds; the true K is 6."""
    rng = np.random.default_rng(seed)
    centres = []
    for group in range(4):
        base = np.zeros(d)
        base[group % d] = 12.0
        if group < 2:
            offset = np.zeros(d)
            offset[(group + 1) % d] = sep / 2
            centres += [base + offset, base - offset]
        else:
            centres.append(base)
    return np.concatenate([rng.normal(c, 1.0, size=(n, d)) for c in centres])


def test_a_seed_stable_k_too_small_is_not_chosen():
    X = pairs_of_close_blobs()
    result = estimate_k(X, (2, 9), seed=0)
    by_k = {row["n_clusters"]: row for row in result.table}
    assert by_k[4]["stability"] == pytest.approx(1.0)  # K - 2: every seed merges the same pairs
    assert S.choose_k(result.table, "stability") == 4  # so seed agreement would choose it
    assert result.chosen == 6


@pytest.mark.parametrize("criterion", ["dip_merge", "prediction_strength", "gap"])
def test_the_other_criteria_on_blobs(criterion):
    X, _ = make_blobs(n_samples=[250, 60, 180, 90, 140], n_features=6, cluster_std=1.0, random_state=5)
    result = estimate_k(X, (2, 9), criterion, seed=0, columns=())
    assert result.chosen == 5 and all(criterion in row for row in result.table)


def test_k_range_is_bounded_and_checked():
    X, _ = make_blobs(n_samples=12, n_features=2, centers=2, random_state=0)
    assert [r["n_clusters"] for r in estimate_k(X, (2, 30), "gap", columns=()).table] == list(range(2, 12))
    with pytest.raises(ValueError, match="leaves no K"):
        estimate_k(X, (20, 30))
    with pytest.raises(ValueError, match="unknown K criterion"):
        estimate_k(X, (2, 5), "silhouette")


def test_fast_ari_matches_scikit_learn():
    from sklearn.metrics import adjusted_rand_score

    rng = np.random.default_rng(0)
    for _ in range(5):
        a, b = rng.integers(0, 4, 200), rng.integers(0, 6, 200)
        b[:120] = a[:120]
        assert ke.fast_ari(a, b) == pytest.approx(adjusted_rand_score(a, b))


# -- n_clusters="auto" in the estimator ------------------------------------------------------------
@pytest.fixture(scope="module")
def five():
    X, _ = make_blobs(n_samples=[200, 100, 150, 80, 120], n_features=10, random_state=0)
    return X.astype(np.float32)


def auto(tiny, **extra):
    return DeepClusterer("dec", "auto", random_state=0, scaling="standard", k_range=(2, 10), **{**tiny, **extra})




def test_auto_estimates_k_after_pretraining(five, tiny, tmp_path):
    est = auto(tiny).fit(five)
    assert est.n_clusters == "auto" and est.n_clusters_ == 5 == est.k_selection_.chosen
    assert est.cluster_centers_.shape[0] == 5 and est.predict_proba(five).shape == (len(five), 5)
    (warning,) = [w for w in est.warnings_ if w["code"] == "k_estimated"]
    assert warning["details"]["criterion"] == ke.DEFAULT_CRITERION and warning["details"]["chosen"] == 5
    assert [r["phase"] for r in est.history_].count("pretrain") == tiny["pretrain_epochs"]
    est.save(tmp_path / "m")
    loaded = DeepClusterer.load(tmp_path / "m")
    assert loaded.n_clusters_ == 5 and loaded.k_selection_.chosen == 5
    np.testing.assert_array_equal(loaded.predict(five), est.predict(five))
    # the same K and model as a fit at that K reusing the pretrained autoencoder
    fixed = DeepClusterer("dec", 5, random_state=0, scaling="standard", **tiny).fit(five, pretrained=est)
    np.testing.assert_array_equal(fixed.labels_, est.labels_)


@pytest.mark.parametrize("stop_after", [4, 13])  # inside pretraining; inside fine-tuning, after K was chosen
def test_auto_is_exact_under_resume(five, tiny, tmp_path, stop_after):
    tiny["tol"] = 0.0
    reference = auto(tiny).fit(five)
    with pytest.raises(TrainingCancelled):
        auto(tiny).fit(five, callbacks=[StopAfter(tmp_path / "ckpt.pt", stop_after)])
    state = load_checkpoint(tmp_path / "ckpt.pt")
    if stop_after > tiny["pretrain_epochs"]:
        assert state["k_selection"]["chosen"] == reference.n_clusters_  # the checkpoint remembers K
    resumed = auto(tiny).fit(five, resume_from=state)
    assert resumed.n_clusters_ == reference.n_clusters_
    assert resumed.k_selection_.table == reference.k_selection_.table
    np.testing.assert_array_equal(resumed.labels_, reference.labels_)
    np.testing.assert_array_equal(resumed.cluster_centers_, reference.cluster_centers_)
    assert resumed.history_ == reference.history_


def test_auto_on_kmeans_and_refusals(five, tiny):
    est = DeepClusterer("kmeans", "auto", random_state=0, k_range=(2, 8), n_init=2).fit(five)
    assert est.n_clusters_ == 5
    with pytest.raises(ValueError, match="k_range"):
        DeepClusterer("kmeans", "auto", k_range=(5, 2)).fit(five)
    with pytest.raises(ValueError, match="n_restarts"):
        DeepClusterer("dec", "auto", n_restarts=2, **tiny).fit(five)
    with pytest.raises(ValueError, match="k_criterion"):
        DeepClusterer("dec", "auto", k_criterion="nope", **tiny).fit(five)
