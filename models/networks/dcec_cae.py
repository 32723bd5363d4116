"""DCEC's convolutional autoencoder (Guo et al., ICONIP 2017; docs/methods.md#dcec). No batch-norm.

Encoder: ``Conv 5×5 s2 'same' (32) → Conv 5×5 s2 'same' (64) → Conv 3×3 s2 (128)``, each with
ReLU, the last 'same' when the side is a multiple of 8 and 'valid' otherwise, then
``Flatten → Dense(10)`` (linear). Decoder: ``Dense(128·s·s) + ReLU`` with ``s = floor(side / 8)``,
``ConvT 3×3 s2 (64)`` (padded like the third conv), ``ConvT 5×5 s2 'same' (32)``, both with
ReLU, and a linear ``ConvT 5×5 s2 'same'`` back to C channels.

Round trips for sides that are a multiple of 4 from 8 up (8, 12, 16, 20, 28, ...): a multiple of 8
takes the 'same' path, 4 more than one the 'valid' path (28 → 14 → 7 → 3 and back 3 → 7 → 14 → 28).
"""
from __future__ import annotations

from torch import nn

from . import register_network
from .conv import ConvDenseAutoencoder, keras_init, same_conv_out


def _same(n: int) -> bool:
    return n % 8 == 0


def _conv3_out(n: int, same: bool) -> int:
    return same_conv_out(n, 2) if same else (n - 3) // 2 + 1


def _encoder_side(n: int) -> int:
    return _conv3_out(same_conv_out(same_conv_out(n, 2), 2), _same(n))


def _decoder_side(n: int) -> int:
    s = n // 8
    first = 2 * s if _same(n) else 2 * s + 1
    return first * 4


@register_network("dcec_cae")
class DCECAutoencoder(ConvDenseAutoencoder):
    """DCEC's convolutional autoencoder. ``filters`` are the three conv widths (32, 64, 128)."""

    type_name = "dcec_cae"
    title = "DCEC convolutional autoencoder"
    size_rule = "a multiple of 4 from 8 up"

    @classmethod
    def side_ok(cls, n: int) -> bool:
        return n >= 8 and _encoder_side(n) >= 1 and _decoder_side(n) == n

    def __init__(self, in_channels: int, height: int, width: int,
                 filters: list[int] | tuple[int, ...] = (32, 64, 128), embedding_dim: int = 10):
        super().__init__()
        self.check_sample_shape((in_channels, height, width))
        if len(filters) != 3:
            raise ValueError(f"the DCEC autoencoder has three conv layers; got filters {list(filters)}")
        f1, f2, f3 = (int(f) for f in filters)
        self.spec = {"type": self.type_name, "in_channels": int(in_channels), "height": int(height),
                     "width": int(width), "filters": [f1, f2, f3], "embedding_dim": int(embedding_dim)}
        pad = (1 if _same(height) else 0, 1 if _same(width) else 0)

        self.encoder_conv = nn.Sequential(
            nn.Conv2d(in_channels, f1, 5, stride=2, padding=2), nn.ReLU(),
            nn.Conv2d(f1, f2, 5, stride=2, padding=2), nn.ReLU(),
            nn.Conv2d(f2, f3, 3, stride=2, padding=pad), nn.ReLU(),
        )
        code_h, code_w = _encoder_side(height), _encoder_side(width)
        self.embedding = nn.Linear(f3 * code_h * code_w, embedding_dim)

        self._seed_shape = (f3, height // 8, width // 8)
        self.decoder_dense = nn.Sequential(
            nn.Linear(embedding_dim, f3 * self._seed_shape[1] * self._seed_shape[2]), nn.ReLU())
        self.decoder_conv = nn.Sequential(
            nn.ConvTranspose2d(f3, f2, 3, stride=2, padding=pad, output_padding=pad), nn.ReLU(),
            nn.ConvTranspose2d(f2, f1, 5, stride=2, padding=2, output_padding=1), nn.ReLU(),
            nn.ConvTranspose2d(f1, in_channels, 5, stride=2, padding=2, output_padding=1),
        )
        keras_init(self)
