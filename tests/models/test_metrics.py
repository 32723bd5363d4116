import numpy as np
import pytest
from sklearn.datasets import make_blobs

from deepclust.models.metrics import (SILHOUETTE_MAX_SAMPLES, ari, cluster_accuracy, cluster_sizes, clustering_report,
                            internal_metrics, nmi)


def test_accuracy_finds_the_best_matching():
    y_true = [0, 0, 0, 1, 1, 2, 2, 2]
    y_pred = [2, 2, 1, 0, 0, 1, 1, 1]  # 2->0, 0->1, 1->2 matches 7 of 8
    assert cluster_accuracy(y_true, y_pred) == pytest.approx(7 / 8)
    assert cluster_accuracy(y_true, y_true) == 1.0


def test_accuracy_with_more_clusters_than_classes():
    # Unmatched cluster 3 counts as wrong.
    assert cluster_accuracy([0, 0, 1, 1], [0, 3, 1, 1]) == pytest.approx(3 / 4)
    with pytest.raises(ValueError, match="4 labels but y_pred has 3"):
        cluster_accuracy([0, 0, 1, 1], [0, 1, 1])


def test_nmi_is_the_arithmetic_normalisation():
    y_true, y_pred = np.array([0, 0, 1, 1]), np.array([0, 0, 0, 1])
    # H(true) = ln 2, H(pred) = H(1/4, 3/4); I = H(true) - H(true|pred)
    h_t = np.log(2)
    h_p = -(0.25 * np.log(0.25) + 0.75 * np.log(0.75))
    h_t_given_p = 0.75 * -(1 / 3 * np.log(1 / 3) + 2 / 3 * np.log(2 / 3))
    expected = (h_t - h_t_given_p) / ((h_t + h_p) / 2)
    assert nmi(y_true, y_pred) == pytest.approx(expected)
    assert ari(y_true, y_true) == 1.0


def test_internal_metrics_and_sizes():
    X, y = make_blobs(300, centers=[[0, 0], [10, 10], [-10, 10]], random_state=0)
    m = internal_metrics(X, y)
    assert 0.5 < m["silhouette"] <= 1 and m["calinski_harabasz"] > 100 and 0 < m["davies_bouldin"] < 1
    assert internal_metrics(X, np.zeros(300)) == {"silhouette": None, "calinski_harabasz": None,
                                                   "davies_bouldin": None}
    assert cluster_sizes([0, 2, 2], 4) == [1, 0, 2, 0]


def test_silhouette_is_sampled_and_seeded_on_large_data():
    X, y = make_blobs(SILHOUETTE_MAX_SAMPLES + 2000, centers=3, random_state=0)
    a, b = internal_metrics(X, y, random_state=1), internal_metrics(X, y, random_state=1)
    assert a == b
    assert internal_metrics(X, y, random_state=2)["silhouette"] != a["silhouette"]
    assert clustering_report(X, y)["silhouette_sample_size"] == SILHOUETTE_MAX_SAMPLES == 2_000


def test_report_shape():
    X, y = make_blobs(100, centers=2, random_state=0)
    report = clustering_report(X, y, y_true=y, n_clusters=3)
    assert report["cluster_sizes"] == [50, 50, 0]
    assert report["silhouette_sample_size"] == 100
    assert report["external"] == {"acc": 1.0, "nmi": pytest.approx(1.0), "ari": 1.0}
    assert clustering_report(X, y)["external"] is None
