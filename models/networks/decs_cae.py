"""DECS' convolutional autoencoder, as the authors' code builds it (docs/methods.md#decs).

Encoder: three blocks of ``Conv 3×3 s1 'same' + ReLU → BN → MaxPool 2``, a fourth
``Conv 3×3 s1 + ReLU → BN`` whose padding is 'same' when the side is a multiple of 8 and
'valid' otherwise, then ``Flatten → Dense(d)`` (linear embedding, d = 10).
Decoder: ``Dense(s·s·256) + ReLU`` with ``s = floor(side / 8)``, three stride-2 transposed convs
(+ ReLU → BN; the first 'same' or 'valid' like the fourth conv), and a linear ``ConvT 3×3 s1``
back to C channels. Batch-norm comes *after* the ReLU, as in the Keras code.

The layout only round-trips for sides that are a multiple of 8 (8, 16, 32, ...) or 4 more than a
multiple of 8 from 28 up (28, 36, ...): 28 → 14 → 7 → 3 → 1 and back 3 → 7 → 14 → 28.
"""
from __future__ import annotations

from torch import nn

from . import register_network
from .conv import ConvDenseAutoencoder, batch_norm2d, keras_init


def _same(n: int) -> bool:
    """The code's ``pad3``: 'same' when the side is a multiple of 8."""
    return n % 8 == 0


def _encoder_out(n: int) -> int:
    pooled = n // 2 // 2 // 2
    return pooled if _same(n) else pooled - 2  # fourth conv, 'valid' 3×3 drops 2


def _decoder_out(n: int) -> int:
    s = n // 8
    first = 2 * s if _same(n) else 2 * s + 1  # stride-2 ConvT, 'same' doubles, 'valid' gives 2s+1
    return first * 4  # two more 'same' stride-2 ConvTs; the final stride-1 ConvT keeps the size


@register_network("decs_cae")
class DECSAutoencoder(ConvDenseAutoencoder):
    """DECS' convolutional autoencoder (code layout, docs/methods.md#decs).

    ``filters`` are the four conv widths (32, 64, 128, 256 in the paper's code).
    """

    type_name = "decs_cae"
    title = "DECS convolutional autoencoder"
    size_rule = "a multiple of 8, or 4 more than a multiple of 8 from 28 up"

    @classmethod
    def side_ok(cls, n: int) -> bool:
        return n >= 8 and _encoder_out(n) >= 1 and _decoder_out(n) == n

    def __init__(self, in_channels: int, height: int, width: int,
                 filters: list[int] | tuple[int, ...] = (32, 64, 128, 256), embedding_dim: int = 10):
        super().__init__()
        self.check_sample_shape((in_channels, height, width))
        if len(filters) != 4:
            raise ValueError(f"the DECS autoencoder has four conv layers; got filters {list(filters)}")
        f1, f2, f3, f4 = (int(f) for f in filters)
        self.spec = {"type": self.type_name, "in_channels": int(in_channels), "height": int(height),
                     "width": int(width), "filters": [f1, f2, f3, f4], "embedding_dim": int(embedding_dim)}
        pad = (1 if _same(height) else 0, 1 if _same(width) else 0)

        def conv_block(c_in, c_out, padding=1):
            return [nn.Conv2d(c_in, c_out, 3, padding=padding), nn.ReLU(), batch_norm2d(c_out)]

        self.encoder_conv = nn.Sequential(
            *conv_block(in_channels, f1), nn.MaxPool2d(2),
            *conv_block(f1, f2), nn.MaxPool2d(2),
            *conv_block(f2, f3), nn.MaxPool2d(2),
            *conv_block(f3, f4, padding=pad),
        )
        self._code_shape = (f4, _encoder_out(height), _encoder_out(width))
        self.embedding = nn.Linear(f4 * self._code_shape[1] * self._code_shape[2], embedding_dim)

        self._seed_shape = (f4, height // 8, width // 8)
        self.decoder_dense = nn.Sequential(
            nn.Linear(embedding_dim, f4 * self._seed_shape[1] * self._seed_shape[2]), nn.ReLU())
        self.decoder_conv = nn.Sequential(
            nn.ConvTranspose2d(f4, f3, 3, stride=2, padding=pad, output_padding=pad), nn.ReLU(),
            batch_norm2d(f3),
            nn.ConvTranspose2d(f3, f2, 3, stride=2, padding=1, output_padding=1), nn.ReLU(), batch_norm2d(f2),
            nn.ConvTranspose2d(f2, f1, 3, stride=2, padding=1, output_padding=1), nn.ReLU(), batch_norm2d(f1),
            nn.ConvTranspose2d(f1, in_channels, 3, stride=1, padding=1),
        )
        keras_init(self)
