"""deepclust's deep clustering library: methods, training, metrics, persistence.

Pure torch/numpy/scikit-learn; it knows nothing of the service around it.
"""
from . import metrics, selection
from .callbacks import Callback
from .checkpoint import load_checkpoint, save_checkpoint
from .contract import ClusterNetwork, build_network, register_network
from .errors import InvalidParams, LossNotFinite, TrainingCancelled
from .estimator import DeepClusterer
from .methods import MethodInfo, get_method, list_methods, tiny_preset
from .methods._image import check_sample_shape
from .phases import FINALIZE, FINETUNE, INIT, PHASES, PRETRAIN
from .sweep import sweep_k

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
    "LossNotFinite",
    "MethodInfo",
    "TrainingCancelled",
    "build_network",
    "check_sample_shape",
    "get_method",
    "list_methods",
    "load_checkpoint",
    "metrics",
    "register_network",
    "save_checkpoint",
    "selection",
    "sweep_k",
    "tiny_preset",
]
