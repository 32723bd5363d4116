"""AE+DAC's fully convolutional autoencoder and its clustering head (Yu et al. 2021, Table 3;
docs/methods.md#ae_dac).

Every encoder layer is ``Conv (stride s, 'same') → BN → ReLU``; every decoder layer but the last
is ``ConvT 3×3 s2 → BN → ReLU``; the last is a linear ``ConvT 3×3 s2`` back to C channels.
Transposed convs take the output padding that retraces the encoder's sizes (28 → 14 → 7 → 4 → 2
and back 2 → 4 → 7 → 14 → 28), so any side from the layout's minimum up round-trips.

Two layouts:

- ``"table3"`` (Fashion-MNIST, CIFAR): four 3×3 stride-2 convs with 8, 16, 32, 64 channels;
  the head reads the flattened code (2×2×64 = 256 for 28×28 and 32×32).
- ``"stl10"`` (96×96): ``5×5 s4 (16)``, ``3×3 s2`` with 32, 64, 128, then ``3×3 s1 (256)``;
  five stride-2 deconvs (128, 64, 32, 16, C) back; the head reads the code global-average-pooled
  to 256, the one reading (docs/methods.md#ae_dac) that fits the table's "FC (256, 64)".

Clustering head (the DAC stream): ``Linear(·, 64) → BN → ReLU → Linear(64, K) → BN → ReLU →
Softmax``; the ReLU before the softmax is in the paper's table and in the original DAC.
"""
from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from . import register_network
from .conv import (ImageAutoencoder, batch_norm1d, batch_norm2d, keras_init, same_conv_out, same_padding,
                   transposed_output_padding)

# (channels, kernel, stride) per encoder layer, decoder channels (the last one becomes C),
# how the head reads the code, and the smallest side the layout is meant for.
LAYOUTS = {
    "table3": {"encoder": [(8, 3, 2), (16, 3, 2), (32, 3, 2), (64, 3, 2)],
               "decoder": [32, 16, 8], "head_input": "flatten", "min_side": 8},
    "stl10": {"encoder": [(16, 5, 4), (32, 3, 2), (64, 3, 2), (128, 3, 2), (256, 3, 1)],
              "decoder": [128, 64, 32, 16], "head_input": "gap", "min_side": 32},
}


def _encoder_sides(n: int, encoder: list) -> list[int]:
    sides = [n]
    for _, _, stride in encoder:
        sides.append(same_conv_out(sides[-1], stride))
    return sides


def _decoder_targets(n: int, layers: int) -> list[int]:
    """Sides the stride-2 deconvs must produce, from the code up to ``n`` (ceil-halving back)."""
    sides = [n]
    for _ in range(layers):
        sides.append(same_conv_out(sides[-1], 2))
    return sides[::-1]


@register_network("dac_fcae")
class DACAutoencoder(ImageAutoencoder):
    """AE+DAC's fully convolutional autoencoder with its clustering head.

    ``encode`` gives the flattened conv code (the shared representation), ``decode`` the image,
    ``cluster_probs`` the head's softmax over the K clusters from that code.
    """

    type_name = "dac_fcae"
    title = "AE+DAC convolutional autoencoder"
    size_rule = "at least 8 (layout 'table3') or at least 32 (layout 'stl10')"  # any side from there on
    layouts: ClassVar[dict] = LAYOUTS

    @classmethod
    def side_ok(cls, n: int, layout: str = "table3") -> bool:
        return n >= LAYOUTS[layout]["min_side"]

    @classmethod
    def check_sample_shape(cls, sample_shape, layout: str = "table3") -> tuple[int, int, int]:
        if layout not in LAYOUTS:
            raise ValueError(f"unknown AE+DAC layout {layout!r}; use one of {sorted(LAYOUTS)}")
        shape = cls._image_dims(sample_shape)
        minimum = LAYOUTS[layout]["min_side"]
        if min(shape[1:]) < minimum:
            raise ValueError(f"the {cls.title} (layout {layout!r}) takes images whose height and width "
                             f"are each at least {minimum}; got {shape[1]}×{shape[2]}")
        return shape

    def __init__(self, in_channels: int, height: int, width: int, n_clusters: int,
                 layout: str = "table3", head_hidden: int = 64):
        super().__init__()
        self.check_sample_shape((in_channels, height, width), layout)
        if n_clusters < 2:
            raise ValueError(f"the AE+DAC head needs at least 2 clusters; got {n_clusters}")
        self.spec = {"type": self.type_name, "in_channels": int(in_channels), "height": int(height),
                     "width": int(width), "n_clusters": int(n_clusters), "layout": layout,
                     "head_hidden": int(head_hidden)}
        plan = LAYOUTS[layout]
        encoder = plan["encoder"]
        hs, ws = _encoder_sides(height, encoder), _encoder_sides(width, encoder)
        layers: list[nn.Module] = []
        c_in = in_channels
        for c_out, kernel, stride in encoder:
            layers += [nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=same_padding(kernel)),
                       batch_norm2d(c_out), nn.ReLU()]
            c_in = c_out
        self.encoder_conv = nn.Sequential(*layers)
        self._code_shape = (c_in, hs[-1], ws[-1])

        channels = [*plan["decoder"], in_channels]
        th, tw = _decoder_targets(height, len(channels)), _decoder_targets(width, len(channels))
        if (th[0], tw[0]) != (hs[-1], ws[-1]):  # cannot happen with stride-2 decoders; guards new layouts
            raise ValueError(f"layout {layout!r} does not round-trip {height}×{width}")
        layers = []
        for i, c_out in enumerate(channels):
            op = (transposed_output_padding(th[i], th[i + 1], 3, 2, 1),
                  transposed_output_padding(tw[i], tw[i + 1], 3, 2, 1))
            layers.append(nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=op))
            if i < len(channels) - 1:
                layers += [batch_norm2d(c_out), nn.ReLU()]
            c_in = c_out
        self.decoder_conv = nn.Sequential(*layers)

        code_c, code_h, code_w = self._code_shape
        head_in = code_c * code_h * code_w if plan["head_input"] == "flatten" else code_c
        self.head = nn.Sequential(
            nn.Linear(head_in, head_hidden), batch_norm1d(head_hidden), nn.ReLU(),
            nn.Linear(head_hidden, n_clusters), batch_norm1d(n_clusters), nn.ReLU(),
        )
        keras_init(self)

    @property
    def embedding_dim(self) -> int:
        c, h, w = self._code_shape
        return c * h * w

    @property
    def n_clusters(self) -> int:
        return self.spec["n_clusters"]

    def encode(self, x: Tensor) -> Tensor:
        return self.encoder_conv(self._as_images(x)).flatten(1)

    def decode(self, z: Tensor) -> Tensor:
        return self.decoder_conv(z.reshape(-1, *self._code_shape))

    def head_input(self, z: Tensor) -> Tensor:
        if LAYOUTS[self.spec["layout"]]["head_input"] == "gap":
            return z.reshape(-1, *self._code_shape).mean(dim=(2, 3))
        return z

    def cluster_probs(self, z: Tensor) -> Tensor:
        """The head's softmax over clusters, the label features of DAC, from the code ``z``."""
        return torch.softmax(self.head(self.head_input(z)), dim=1)


@register_network("ae_dac")
class DACModel(nn.Module):
    """AE+DAC as a clustering network (``models.networks.ClusterNetwork``): the embedding is the
    autoencoder's code, the soft assignment its head's softmax; there are no centres."""

    centers = None

    def __init__(self, autoencoder: DACAutoencoder):
        super().__init__()
        self.autoencoder = autoencoder

    @property
    def spec(self) -> dict:
        return {"type": "ae_dac", "autoencoder": self.autoencoder.spec}

    @classmethod
    def from_spec(cls, spec: dict) -> "DACModel":
        return cls(DACAutoencoder.from_spec(spec["autoencoder"]))

    def embed(self, x: Tensor) -> Tensor:
        return self.autoencoder.encode(x)

    def soft_assign(self, z: Tensor) -> Tensor:
        return self.autoencoder.cluster_probs(z)

    def forward(self, x: Tensor) -> Tensor:
        return self.soft_assign(self.embed(x))
