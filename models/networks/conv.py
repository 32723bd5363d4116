"""What the convolutional autoencoders share: Keras-equivalent layers, size rules, the base class,
and ``check_image_shape``, the size check of any registered image network.

The reference code of every image method is Keras, so layers are built to match it
(docs/methods.md#initialisation): glorot-uniform weights with zero bias, batch-norm with Keras' momentum 0.99
(PyTorch ``momentum=0.01``) and eps 1e-3, and 'same'/'valid' padding with the same output sizes.
"""
from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import Tensor, nn

from . import NETWORKS

KERAS_BN_MOMENTUM = 0.01  # Keras momentum 0.99 is the weight of the old running value.
KERAS_BN_EPS = 1e-3


class _LoneValueBatchNorm:
    """Batch-norm that, in training mode, takes a batch with one value per channel the way Keras
    does instead of refusing it as PyTorch does: the value is its own mean with zero variance,
    so the output is the shift β, and the running mean and variance move towards it and 0.

    A training batch of one sample happens whenever N % batch_size == 1 (the short last batch
    of a pass); on a 1×1 feature map or after a dense layer, that is one value per channel."""

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and x.numel() == x.shape[1]):
            return super().forward(x)
        shape = (1, -1) + (1,) * (x.dim() - 2)
        if self.track_running_stats:
            with torch.no_grad():
                self.running_mean.mul_(1 - self.momentum).add_(self.momentum * x.reshape(-1))
                self.running_var.mul_(1 - self.momentum)
                self.num_batches_tracked.add_(1)
        return self.bias.reshape(shape).expand_as(x) + 0 * x


class KerasBatchNorm2d(_LoneValueBatchNorm, nn.BatchNorm2d):
    pass


class KerasBatchNorm1d(_LoneValueBatchNorm, nn.BatchNorm1d):
    pass


def batch_norm2d(channels: int) -> nn.BatchNorm2d:
    return KerasBatchNorm2d(channels, eps=KERAS_BN_EPS, momentum=KERAS_BN_MOMENTUM)


def batch_norm1d(features: int) -> nn.BatchNorm1d:
    return KerasBatchNorm1d(features, eps=KERAS_BN_EPS, momentum=KERAS_BN_MOMENTUM)


def keras_init(module: nn.Module) -> None:
    """Glorot-uniform weights and zero biases on every conv, transposed conv and dense layer."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.xavier_uniform_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


def same_conv_out(n: int, stride: int) -> int:
    """Output side of a Keras 'same' convolution: ceil(n / stride)."""
    return -(-n // stride)


def same_padding(kernel: int) -> int:
    """PyTorch padding that gives Keras 'same' output sizes for an odd kernel."""
    return kernel // 2


def transposed_output_padding(n_in: int, n_out: int, kernel: int, stride: int, padding: int) -> int:
    """``output_padding`` that makes a transposed conv map side ``n_in`` to ``n_out``."""
    base = (n_in - 1) * stride - 2 * padding + kernel
    extra = n_out - base
    if not 0 <= extra < stride:
        raise ValueError(f"a stride-{stride} transposed conv cannot map {n_in} to {n_out}")
    return extra


def _examples(ok, limit: int = 64) -> str:
    return ", ".join(str(n) for n in range(1, limit + 1) if ok(n))


class ImageAutoencoder(nn.Module):
    """Base of the convolutional autoencoders: images (B, C, H, W) in, embedding and image out.

    Subclasses set ``type_name``, ``title`` and ``size_rule`` (the accepted sides in words),
    implement ``side_ok`` (can one side of the image take this length?), and store their
    JSON-able constructor arguments in ``self.spec`` so ``from_spec`` rebuilds them; they are
    registered under ``type_name`` with ``@register_network``.
    """

    type_name: ClassVar[str]
    title: ClassVar[str]
    size_rule: ClassVar[str]

    spec: dict

    @classmethod
    def side_ok(cls, n: int) -> bool:
        raise NotImplementedError

    @classmethod
    def accepted_sides(cls, limit: int = 64) -> list[int]:
        """The image sides up to ``limit`` this network takes (height and width independently)."""
        return [n for n in range(1, limit + 1) if cls.side_ok(n)]

    @classmethod
    def _image_dims(cls, sample_shape) -> tuple[int, int, int]:
        """``(C, H, W)`` of one sample; ``ValueError`` unless it is an image with channels."""
        shape = tuple(int(s) for s in sample_shape)
        if len(shape) != 3:
            raise ValueError(f"the {cls.title} needs images (channels, height, width); "
                             f"got samples of shape {shape}")
        if shape[0] < 1:
            raise ValueError(f"the {cls.title} needs at least one image channel; got {shape[0]}")
        return shape

    @classmethod
    def check_sample_shape(cls, sample_shape) -> tuple[int, int, int]:
        """``(C, H, W)`` if this network can take such images; else ``ValueError`` naming the sizes."""
        shape = cls._image_dims(sample_shape)
        _, height, width = shape
        if not (cls.side_ok(height) and cls.side_ok(width)):
            raise ValueError(
                f"the {cls.title} takes images whose height and width are each {cls.size_rule} "
                f"(up to 64: {_examples(cls.side_ok)}); got {height}×{width}")
        return shape

    @classmethod
    def from_spec(cls, spec: dict) -> "ImageAutoencoder":
        if spec.get("type") != cls.type_name:
            raise ValueError(f"spec of type {spec.get('type')!r} given to {cls.type_name!r}")
        return cls(**{k: v for k, v in spec.items() if k != "type"})

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        return (self.spec["in_channels"], self.spec["height"], self.spec["width"])

    @property
    def embedding_dim(self) -> int:
        raise NotImplementedError

    def encoder_parameters(self) -> list[nn.Parameter]:
        """The parameters ``encode`` uses (what DEC-style fine-tuning moves when it drops the decoder)."""
        return [p for name, p in self.named_parameters() if not name.startswith("decoder")]

    def encode(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def decode(self, z: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        z = self.encode(x)
        return z, self.decode(z)

    def _as_images(self, x: Tensor) -> Tensor:
        """Accept flattened rows too (the training data may hand them over as (B, C·H·W))."""
        shape = self.sample_shape
        if tuple(x.shape[1:]) == shape:
            return x
        if x.dim() == 2 and x.shape[1] == math.prod(shape):
            return x.reshape(-1, *shape)
        raise ValueError(f"the {self.title} was built for images of shape {shape}; "
                         f"got a batch of shape {tuple(x.shape)}")


class ConvDenseAutoencoder(ImageAutoencoder):
    """The layout DECS and DCEC share: ``encoder_conv`` → flatten → ``embedding``, and
    ``decoder_dense`` → reshape to ``_seed_shape`` → ``decoder_conv``. Subclasses build those
    four modules and ``_seed_shape``; the embedding width is ``spec["embedding_dim"]``."""

    _seed_shape: tuple[int, int, int]

    @property
    def embedding_dim(self) -> int:
        return self.spec["embedding_dim"]

    def encode(self, x: Tensor) -> Tensor:
        return self.embedding(self.encoder_conv(self._as_images(x)).flatten(1))

    def decode(self, z: Tensor) -> Tensor:
        return self.decoder_conv(self.decoder_dense(z).reshape(-1, *self._seed_shape))


def image_networks() -> dict[str, type[ImageAutoencoder]]:
    """The registered convolutional autoencoders by type name."""
    return {name: cls for name, cls in NETWORKS.items() if isinstance(cls, type) and issubclass(cls, ImageAutoencoder)}


def check_image_shape(network_type: str, sample_shape, **options) -> tuple[int, int, int]:
    """``(C, H, W)`` if network ``network_type`` can take images of ``sample_shape``.

    Raises ``ValueError`` saying which sizes it takes otherwise (the service answers 422 with
    that message). ``options`` are layout options of the network, e.g. ``layout="stl10"``.
    """
    known = image_networks()
    if network_type not in known:
        raise ValueError(f"unknown image network {network_type!r}; known: {sorted(known)}")
    return known[network_type].check_sample_shape(sample_shape, **options)
