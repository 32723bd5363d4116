"""Random rotation and translation of image batches, as Keras'
``ImageDataGenerator(rotation_range=10, width_shift_range=0.1, height_shift_range=0.1)`` does for
DECS (METHODS §3.2), without torchvision.

Each image gets its own angle, uniform in ±``degrees``, and its own shift, uniform in
±``translate`` of its width and height (continuous, not whole pixels). The warp is bilinear
(``affine_grid``/``grid_sample``, Keras' default ``order=1``) on the batch's own device, and
points that fall outside the image take the nearest edge pixel (``padding_mode="border"``, Keras'
``fill_mode="nearest"``; torchvision would fill with zeros). The rotation is about the image
centre; Keras' centre sits half a pixel off, which no statistic of the augmentation notices.

All randomness comes from the ``torch.Generator`` passed in, drawn on that generator's device, so
a training loop that seeds one per step replays the same augmented batches after a resume.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def random_affine(n: int, generator: torch.Generator, degrees: float = 10.0,
                  translate: float = 0.1) -> tuple[Tensor, Tensor]:
    """``n`` random angles in degrees (n,) and shifts as fractions of (width, height) (n, 2)."""
    u = torch.rand((n, 3), generator=generator, device=generator.device, dtype=torch.float64)
    angles = (2.0 * u[:, 0] - 1.0) * degrees
    shifts = (2.0 * u[:, 1:] - 1.0) * translate
    return angles, shifts


def affine_theta(angles: Tensor, shifts: Tensor, height: int, width: int) -> Tensor:
    """``affine_grid`` matrices (n, 2, 3) that rotate by ``angles`` (degrees) about the centre and
    shift by ``shifts`` (fractions of width, height).

    An output pixel at offset p from the centre (in pixels) samples the input at ``R p + b``;
    in ``affine_grid``'s normalised coordinates, where x spans the width W and y the height H,
    that is ``S⁻¹ R S`` with ``S = diag(W/2, H/2)``, which keeps non-square images unsheared.
    """
    rad = torch.deg2rad(angles.to(torch.float64))
    cos, sin = torch.cos(rad), torch.sin(rad)
    theta = torch.zeros((len(angles), 2, 3), dtype=torch.float64, device=angles.device)
    theta[:, 0, 0] = cos
    theta[:, 0, 1] = -sin * (height / width)
    theta[:, 1, 0] = sin * (width / height)
    theta[:, 1, 1] = cos
    theta[:, :, 2] = 2.0 * shifts.to(torch.float64)  # a shift of f·W pixels is 2f in normalised units
    return theta


def warp(x: Tensor, theta: Tensor) -> Tensor:
    """Resample images (B, C, H, W) through ``theta``, bilinear, edges extended outward."""
    theta = theta.to(device=x.device, dtype=x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


@torch.no_grad()
def augment(x: Tensor, generator: torch.Generator, degrees: float = 10.0, translate: float = 0.1) -> Tensor:
    """A randomly rotated (±``degrees``) and shifted (±``translate``) copy of the batch ``x``."""
    if x.dim() != 4:
        raise ValueError(f"augment needs a batch of images (B, C, H, W); got shape {tuple(x.shape)}")
    if not math.isfinite(degrees) or not math.isfinite(translate) or degrees < 0 or translate < 0:
        raise ValueError(f"degrees and translate must be finite and non-negative; got {degrees}, {translate}")
    angles, shifts = random_affine(x.shape[0], generator, degrees, translate)
    return warp(x, affine_theta(angles, shifts, x.shape[2], x.shape[3]))
