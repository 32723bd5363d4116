"""Training machinery shared by every method: the loop, its phase interface, the phases the DEC
family is made of (pretraining, k-means init, target fine-tuning), and the plumbing around them:
``callbacks`` (the protocol training talks through), ``data`` (batches on the device),
``device`` (device and seed), ``memory``, ``augment`` (random rotation and shift of images),
``checkpoint`` (save/load) and ``optim``."""
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
