"""One image file in, one (C, H, W) uint8 array out: the decoding that ingest and predict share.

Training images and the images sent to predict go through the same three steps, so a model sees
new images exactly as it saw its training images:

1. open with Pillow, restricted to PNG, JPEG, BMP, TIFF and WebP (a file named ``.png`` that is
   really EPS or PSD is refused, never handed to another decoder), and refuse more pixels than
   ``max_pixels`` from the header alone, before anything is decoded;
2. convert to 8 bits: ``grayscale`` is Pillow's ``L`` (ITU-R 601-2 luma), ``rgb`` is ``RGB``;
   alpha is dropped, 16-bit samples keep their high byte, 32-bit and float samples are clipped to
   0..255; only the first frame of a multi-frame TIFF/WebP is used;
3. resize to ``(H, W)`` with bilinear resampling (Pillow antialiases when it shrinks) if the size
   differs; the aspect ratio is not kept.

Values stay 0..255; the model's own scaler (``divide255`` for 8-bit sources) does the rest.
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass

import numpy as np
from PIL import Image

from deepclust.app.datasets.ingest.formats import IMAGE_SUFFIXES
from deepclust.app.errors import IMAGE_TOO_LARGE, INVALID_COLOR, INVALID_IMAGE_SIZE, UNREADABLE_IMAGE, ApiError

PILLOW_FORMATS = ("PNG", "JPEG", "BMP", "TIFF", "WEBP")
COLORS = ("grayscale", "rgb")
RESAMPLE = Image.Resampling.BILINEAR
# Modes with one intensity per pixel; every other mode (RGB, RGBA, CMYK, YCbCr, palette, ...) is colour.
_GRAY_MODES = {"1", "L", "LA", "La", "I", "F", "I;16", "I;16L", "I;16B", "I;16N"}


def is_image_name(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return "." in base and base[base.rindex("."):].lower() in IMAGE_SUFFIXES


@dataclass(frozen=True)
class ImageHeader:
    """What the header says, before any pixel is decoded."""

    height: int
    width: int
    color: str  # "grayscale" | "rgb": the image's own mode

    @property
    def size(self) -> tuple[int, int]:
        return self.height, self.width


@dataclass(frozen=True)
class ImageOptions:
    """How every image of one dataset is made: ``None`` means "decide from the images"."""

    size: tuple[int, int] | None = None  # (H, W)
    color: str | None = None

    @classmethod
    def from_form(cls, image_size: str | None, color: str | None, max_pixels: int) -> ImageOptions:
        return cls(parse_image_size(image_size, max_pixels), parse_color(color))

    @classmethod
    def for_sample_shape(cls, sample_shape: list[int]) -> ImageOptions:
        """The options that reproduce images of ``[C, H, W]`` (1 channel: grayscale, 3: rgb)."""
        channels, height, width = sample_shape
        return cls((height, width), "grayscale" if channels == 1 else "rgb")

    @property
    def channels(self) -> int:
        return 1 if self.color == "grayscale" else 3


def parse_image_size(text: str | None, max_pixels: int) -> tuple[int, int] | None:
    if text is None or not text.strip():
        return None
    match = re.fullmatch(r"\s*(\d+)\s*[,x×]\s*(\d+)\s*", text)
    if not match:
        raise INVALID_IMAGE_SIZE(f"image_size must be 'H,W' (two positive integers, e.g. '28,28'); "
                                 f"got {text!r}.", image_size=text)
    height, width = int(match[1]), int(match[2])
    if height < 1 or width < 1 or height * width > max_pixels:
        raise INVALID_IMAGE_SIZE(f"image_size {height},{width} must have positive sides and at most "
                                 f"{max_pixels} pixels (DEEPCLUST_MAX_IMAGE_PIXELS).", image_size=text, max_pixels=max_pixels)
    return height, width


def parse_color(text: str | None) -> str | None:
    if text is None or not text.strip():
        return None
    color = text.strip().lower()
    if color not in COLORS:
        raise INVALID_COLOR(f"color must be 'grayscale' or 'rgb'; got {text!r}.", color=text)
    return color


def unreadable(name: str, exc: BaseException | str) -> ApiError:
    reason = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
    return UNREADABLE_IMAGE(f"Image {name!r} cannot be read as PNG, JPEG, BMP, TIFF or WebP ({reason}); "
                            "fix or remove it.", member=name)


def too_many_pixels(name: str, pixels: int | None, max_pixels: int) -> ApiError:
    return IMAGE_TOO_LARGE(f"Image {name!r} has more than {max_pixels} pixels "
                           "(DEEPCLUST_MAX_IMAGE_PIXELS): refused as a possible decompression bomb.",
                           {"member": name, "pixels": pixels, "limit": max_pixels})


def open_image(data: bytes, name: str, max_pixels: int) -> Image.Image:
    """The image in ``data``, opened lazily (header only) and checked against the pixel cap."""
    try:
        image = Image.open(io.BytesIO(data), formats=PILLOW_FORMATS)
    except Image.DecompressionBombError:  # Pillow's own guard, when its limit is below ours
        raise too_many_pixels(name, None, max_pixels) from None
    except Exception as exc:  # noqa: BLE001 -- untrusted bytes: any failure of the decoder is the file's fault
        raise unreadable(name, exc) from None
    width, height = image.size
    if width * height > max_pixels:
        raise too_many_pixels(name, width * height, max_pixels)
    if width < 1 or height < 1:
        raise unreadable(name, f"it is {width}×{height} pixels")
    return image


def read_header(data: bytes, name: str, max_pixels: int) -> ImageHeader:
    image = open_image(data, name, max_pixels)
    width, height = image.size
    return ImageHeader(height, width, "grayscale" if image.mode in _GRAY_MODES else "rgb")


def _eight_bit(image: Image.Image, color: str) -> Image.Image:
    if image.mode.startswith("I;16"):
        image = Image.fromarray((np.asarray(image).astype(np.uint32) >> 8).astype(np.uint8), "L")
    elif image.mode in ("I", "F"):
        image = Image.fromarray(np.clip(np.asarray(image), 0, 255).astype(np.uint8), "L")
    mode = "L" if color == "grayscale" else "RGB"
    return image if image.mode == mode else image.convert(mode)


def decode(data: bytes, name: str, options: ImageOptions, max_pixels: int) -> np.ndarray:
    """The pixels of one image file as a (C, H, W) uint8 array, made as ``options`` say."""
    image = open_image(data, name, max_pixels)
    height, width = options.size
    try:
        image = _eight_bit(image, options.color)
        if image.size != (width, height):
            image = image.resize((width, height), RESAMPLE)
        pixels = np.asarray(image, dtype=np.uint8)
    except Image.DecompressionBombError:
        raise too_many_pixels(name, None, max_pixels) from None
    except Exception as exc:  # noqa: BLE001 -- truncated or corrupt data shows only now, when it is decoded
        raise unreadable(name, exc) from None
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
