"""Random augmentations of image batches, without torchvision: for digits (``augment``), random
rotation and translation as Keras'
``ImageDataGenerator(rotation_range=10, width_shift_range=0.1, height_shift_range=0.1)`` does for
DECS (Cheng et al. 2024, §4.5; docs/methods.md#decs); for photos (``photo_augment``), pad-and-crop,
horizontal flip and colour jitter.

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


# -- photos: pad and crop, horizontal flip, colour jitter ------------------------------------------
# The usual second view of natural images (the standard CIFAR recipe): a
# random crop of the image padded by ``padding`` pixels on each side (edges extended, as the
# affine warp above does), a horizontal flip with probability ½, and a jitter of brightness,
# contrast and (colour images) saturation by factors uniform in [1 − s, 1 + s], in that order.
# The result is clamped to the clean batch's value range, so scaled and standardised inputs
# stay in theirs. One ``torch.rand`` call on the generator's device draws every number.
GRAY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R 601 luma, as torchvision's rgb_to_grayscale


def pad_crop(x: Tensor, top: Tensor, left: Tensor, padding: int) -> Tensor:
    """Each image of ``x`` (B, C, H, W) cropped to H×W at (``top``, ``left``) of itself padded
    by ``padding`` (edge pixels repeated); ``top``, ``left``: (B,) integers in [0, 2·padding]."""
    if padding == 0:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding), mode="replicate")
    rows = top.to(x.device).long()[:, None] + torch.arange(h, device=x.device)  # (B, H)
    cols = left.to(x.device).long()[:, None] + torch.arange(w, device=x.device)  # (B, W)
    batch = torch.arange(n, device=x.device)[:, None, None]
    return padded[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2).contiguous()


def grayscale(x: Tensor) -> Tensor:
    """(B, 1, H, W): the luma of RGB images, the image itself for any other channel count."""
    if x.shape[1] != 3:
        return x.mean(dim=1, keepdim=True)
    r, g, b = GRAY_WEIGHTS
    return (r * x[:, 0] + g * x[:, 1] + b * x[:, 2]).unsqueeze(1)


@torch.no_grad()
def photo_augment(x: Tensor, generator: torch.Generator, padding: int = 4, flip: bool = True,
                  brightness: float = 0.4, contrast: float = 0.4, saturation: float = 0.4) -> Tensor:
    """A randomly cropped (``padding``), flipped and colour-jittered copy of the batch ``x``."""
    if x.dim() != 4:
        raise ValueError(f"photo_augment needs a batch of images (B, C, H, W); got shape {tuple(x.shape)}")
    strengths = (brightness, contrast, saturation)
    if padding < 0 or not all(math.isfinite(s) and 0 <= s <= 1 for s in strengths):
        raise ValueError(f"padding must be non-negative and the jitter strengths in [0, 1]; got {padding}, {strengths}")
    n = x.shape[0]
    u = torch.rand((n, 6), generator=generator, device=generator.device, dtype=torch.float64).to(x.device)
    lo, hi = x.amin(), x.amax()  # tensors: no host sync
    offsets = (u[:, :2] * (2 * padding + 1)).floor().clamp_max(2 * padding)
    out = pad_crop(x, offsets[:, 0], offsets[:, 1], padding)
    if flip:
        out = torch.where((u[:, 2] < 0.5)[:, None, None, None], out.flip(3), out)
    factors = (1.0 + (2.0 * u[:, 3:] - 1.0) * torch.tensor(strengths, dtype=u.dtype, device=u.device)).to(x.dtype)
    out = out * factors[:, 0, None, None, None]
    mean = grayscale(out).mean(dim=(1, 2, 3), keepdim=True)
    out = (out - mean) * factors[:, 1, None, None, None] + mean
    if x.shape[1] > 1:
        gray = grayscale(out)
        out = (out - gray) * factors[:, 2, None, None, None] + gray
    return out.clamp(lo, hi)


# The second views AE+DAC offers, by name (``AEDACParams.augmentation``).
VIEWS = {"digits": augment, "photos": photo_augment}


def auto_augment(x: Tensor, generator: torch.Generator) -> Tensor:
    """The augmentation fit for the batch: ``photo_augment`` for three or more channels (colour
    photos), ``augment``'s small affine warps else (digits and other grayscale images)."""
    if x.dim() == 4 and x.shape[1] >= 3:
        return photo_augment(x, generator)
    return augment(x, generator)


def views_for(choice: str = "auto"):
    """The augmentation named ``choice``: ``"digits"``, ``"photos"``, ``"auto"`` (by the batch's
    channels), or None for ``"none"``."""
    if choice == "none":
        return None
    if choice == "auto":
        return auto_augment
    if choice not in VIEWS:
        raise ValueError(f"unknown augmentation {choice!r}; use 'auto', 'none' or one of {sorted(VIEWS)}")
    return VIEWS[choice]
