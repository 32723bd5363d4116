"""Training machinery shared by every method: the loop, its phase interface, and the phases the
DEC family is made of (pretraining, k-means init, target fine-tuning)."""
from .clustering import TargetPhase, predict_soft
from .init import KMeansInitPhase, embed_all, kmeans_init
from .loop import train
from .optim import make_optimizer
from .phase import Batch, Phase, Transform
from .pretrain import PretrainPhase, reconstruction_objective
from .run import Run

__all__ = [
    "Batch", "KMeansInitPhase", "Phase", "PretrainPhase", "Run", "TargetPhase", "Transform", "embed_all",
    "kmeans_init", "make_optimizer", "predict_soft", "reconstruction_objective", "train",
]
