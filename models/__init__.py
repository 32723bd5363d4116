"""deepclust's deep clustering library: methods, training, metrics, persistence.

Pure torch/numpy/scikit-learn; it knows nothing of the service around it.
"""
from . import k_estimation, metrics, selection
from .errors import InvalidParams, LossNotFinite, TrainingCancelled
from .estimator import DeepClusterer
from .k_estimation import KSelection, estimate_k
from .methods import MethodInfo, check_sample_shape, get_method, list_methods, tiny_preset
from .networks import ClusterNetwork, build_network, register_network
from .phases import FINALIZE, FINETUNE, INIT, PHASES, PRETRAIN
from .sweep import sweep_k
from .training.callbacks import Callback
from .training.checkpoint import load_checkpoint, save_checkpoint

__all__ = [
    "FINALIZE",
    "FINETUNE",
    "INIT",
    "PHASES",
    "PRETRAIN",
    "Callback",
    "ClusterNetwork",
    "DeepClusterer",
    "InvalidParams",
    "KSelection",
    "LossNotFinite",
    "MethodInfo",
    "TrainingCancelled",
    "build_network",
    "check_sample_shape",
    "estimate_k",
    "get_method",
    "k_estimation",
    "list_methods",
    "load_checkpoint",
    "metrics",
    "register_network",
    "save_checkpoint",
    "selection",
    "sweep_k",
    "tiny_preset",
]
