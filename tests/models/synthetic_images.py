"""Tiny generated image data sets for the image-method tests (no files, no downloads)."""
from __future__ import annotations

import numpy as np

SHAPES = ("square", "cross", "ring")


def _draw(kind: str, size: int, cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    dy, dx = yy - cy, xx - cx
    if kind == "square":  # a filled square
        return ((np.abs(dy) <= r) & (np.abs(dx) <= r)).astype(np.float32)
    if kind == "cross":  # a plus sign, arms one pixel thick either side
        return (((np.abs(dy) <= 1) & (np.abs(dx) <= r)) | ((np.abs(dx) <= 1) & (np.abs(dy) <= r))).astype(np.float32)
    if kind == "ring":  # a hollow circle
        d = np.sqrt(dy ** 2 + dx ** 2)
        return ((d <= r + 0.75) & (d >= r - 0.75)).astype(np.float32)
    raise ValueError(kind)


def shape_images(n_per_class: int = 60, size: int = 16, n_classes: int = 3, channels: int = 1,
                 noise: float = 0.05, jitter: float = 1.5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n_classes`` (≤ 3) classes of ``size``×``size`` shapes (square, cross, ring), jittered in
    position (±``jitter`` px) and size, with Gaussian pixel noise; float32 in [0, 1], shape (N, C, H, W), shuffled."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for label, kind in enumerate(SHAPES[:n_classes]):
        for _ in range(n_per_class):
            r = size * rng.uniform(0.2, 0.3)
            cy, cx = (size - 1) / 2 + rng.uniform(-jitter, jitter, size=2)
            img = _draw(kind, size, cy, cx, r)
            img = np.clip(img + noise * rng.standard_normal(img.shape), 0, 1).astype(np.float32)
            images.append(np.repeat(img[None], channels, axis=0))
            labels.append(label)
    order = rng.permutation(len(images))
    return np.stack(images)[order], np.asarray(labels)[order]
