import numpy as np
import pytest
from sklearn.datasets import make_blobs

# Small networks and few steps: every deep method trains in about a second on two CPU cores.
TINY = {
    "hidden_dims": [32, 32],
    "embedding_dim": 4,
    "pretrain_epochs": 10,
    "pretrain_batch_size": 64,
    "maxiter": 300,
    "update_interval": 20,
    "batch_size": 64,
    "kmeans_n_init": 5,
}


@pytest.fixture
def tiny():
    """Method params for a fast deep run (copy: tests may change it)."""
    return dict(TINY)


@pytest.fixture(scope="session")
def blobs():
    """Four well-separated Gaussian blobs in 20 dimensions, standardised by the estimator."""
    X, y = make_blobs(n_samples=600, n_features=20, centers=4, cluster_std=1.0, random_state=0)
    return X.astype(np.float32), y
