"""Images sent to predict (one image file or an image archive), made exactly like the training images.

Everything needed to replay the training preprocessing is in the model itself: its input
``sample_shape`` ``[C, H, W]`` gives the size and the colour mode (1 channel: grayscale, 3: rgb),
and its fitted scaler says whether it was trained on 8-bit pixel values (``divide255``, what
every uint8 source, archives included, is trained with). Decoding, conversion and resizing are
the same functions ingest uses (``images.py``); the model's scaler does the rest, as it did in
training. That holds for a model imported without its dataset too.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from deepclust.app.core.results import ModelCard
from deepclust.app.datasets.ingest.archives import ArchiveLimits
from deepclust.app.datasets.ingest.formats import InputFormat
from deepclust.app.datasets.ingest.reading import Reading
from deepclust.app.errors import IMAGE_FILE_TOO_LARGE, IMAGE_INPUT_UNSUPPORTED
from deepclust.app.datasets.ingest.images import ImageOptions, decode
from deepclust.models import DeepClusterer


def training_image_options(card: ModelCard, model: DeepClusterer) -> ImageOptions:
    """How the model's training images were made; 422 if image files cannot be made like them."""
    shape = list(card.sample_shape)
    if len(shape) != 3 or shape[0] not in (1, 3):
        raise IMAGE_INPUT_UNSUPPORTED(f"Model {card.id} takes samples of shape {shape}; image files can "
                                      "be sent only to a model trained on 1-channel (grayscale) or 3-channel (rgb) images. Send "
                                      "the rows as JSON instances or a feature file.", sample_shape=shape)
    if model.scaler_.kind != "divide255":
        raise IMAGE_INPUT_UNSUPPORTED(f"Model {card.id} was trained on image arrays that were not 8-bit "
                                      "pixels, so image files cannot be scaled like its training data; send an .npy or .npz "
                                      "preprocessed like the training data.", sample_shape=shape)
    return ImageOptions.for_sample_shape(shape)


def read_rows(src: Path, fmt: InputFormat, out: Path, reading: Reading) -> np.ndarray:
    """One image file to predict (the reader of formats.py's ``image``), as a (1, C, H, W) float32
    row made like the model's training images (``reading.image_options``)."""
    options = reading.image_options()
    limits = ArchiveLimits.of(reading.settings)
    if reading.size > limits.max_member_bytes:
        raise IMAGE_FILE_TOO_LARGE(f"The image is {reading.size} bytes, more than the "
                                   f"{limits.max_member_bytes} bytes one image file may have (DEEPCLUST_MAX_IMAGE_FILE_BYTES).",
                                   {"size": reading.size, "limit": limits.max_member_bytes})
    pixels = decode(src.read_bytes(), reading.filename, options, limits.max_image_pixels)
    return pixels[None].astype(np.float32)
