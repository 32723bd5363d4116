"""Training machinery shared by every method: pretraining, k-means init, the clustering loop."""
from .clustering import ClusteringSchedule, predict_soft, run_clustering
from .init import kmeans_init
from .optim import make_optimizer
from .pretrain import pretrain_autoencoder
from .run import Run

__all__ = [
    "ClusteringSchedule", "Run", "kmeans_init", "make_optimizer", "predict_soft",
    "pretrain_autoencoder", "run_clustering",
]
