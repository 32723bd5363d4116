"""deepclust's deep clustering library: methods, training, metrics, persistence.

Pure torch/numpy/scikit-learn; it knows nothing of the service around it.
"""
from . import metrics
from .callbacks import Callback
from .checkpoint import load_checkpoint, save_checkpoint
from .errors import InvalidParams, TrainingCancelled
from .estimator import DeepClusterer
from .methods import MethodInfo, get_method, list_methods

__all__ = [
    "Callback",
    "DeepClusterer",
    "InvalidParams",
    "MethodInfo",
    "TrainingCancelled",
    "get_method",
    "list_methods",
    "load_checkpoint",
    "metrics",
    "save_checkpoint",
]
