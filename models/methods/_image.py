"""What the image methods share: they train on image datasets only, on a convolutional network that
takes some image sizes and not others, and they say which before any training starts."""
from __future__ import annotations

from typing import ClassVar

from ..images import check_image_shape


class ImageMethod:
    """Mixin of a method on a convolutional autoencoder (put it first among the bases).

    Subclasses set ``network_type`` (a ``models.images`` network) and may override
    ``network_options`` (layout options that depend on the params or the image size).
    """

    input_kinds: ClassVar[tuple[str, ...]] = ("images",)
    network_type: ClassVar[str]

    @classmethod
    def network_options(cls, params, sample_shape) -> dict:
        return {}

    @classmethod
    def check_sample_shape(cls, sample_shape, params: dict | None = None) -> tuple[int, int, int]:
        """``(C, H, W)`` if the method's network takes such images, else ``ValueError`` naming
        the sizes it takes. ``params`` as the job gives them (``InvalidParams`` if they are bad)."""
        parsed = cls.parse(params)
        return check_image_shape(cls.network_type, sample_shape, **cls.network_options(parsed, sample_shape))


def check_sample_shape(method: str, sample_shape, params: dict | None = None) -> None:
    """``ValueError`` (a 422 for the service) if ``method`` cannot train on samples of
    ``sample_shape`` — ``[D]`` for a feature matrix, ``[C, H, W]`` for images: the wrong input
    kind, or an image size its network cannot take (the message names the sizes it can)."""
    from . import get_method

    info = get_method(method)
    shape = tuple(int(s) for s in sample_shape)
    kind = "images" if len(shape) > 1 else "features"
    if kind not in info.input_kinds:
        raise ValueError(f"method '{method}' does not accept {kind}; it takes {', '.join(info.input_kinds)}")
    if issubclass(info.cls, ImageMethod):
        info.cls.check_sample_shape(shape, params)
