"""Building blocks of the image methods: convolutional autoencoders, augmentation, DECS' and
AE+DAC's loss pieces. Pure torch; the method modules assemble them."""
from __future__ import annotations

from ..contract import register_network
from .conv import ImageAutoencoder
from .dac_network import DACAutoencoder, DACModel
from .dcec_network import DCECAutoencoder
from .decs_network import DECSAutoencoder

IMAGE_AUTOENCODERS: dict[str, type[ImageAutoencoder]] = {
    cls.type_name: cls for cls in (DECSAutoencoder, DCECAutoencoder, DACAutoencoder)
}
# Rebuildable from a saved model's spec (``models.contract.build_network``).
for _cls in IMAGE_AUTOENCODERS.values():
    register_network(_cls.type_name)(_cls)
register_network("ae_dac")(DACModel)


def check_image_shape(network_type: str, sample_shape, **options) -> tuple[int, int, int]:
    """``(C, H, W)`` if network ``network_type`` can take images of ``sample_shape``.

    Raises ``ValueError`` saying which sizes it takes otherwise (the service answers 422 with
    that message). ``options`` are layout options of the network, e.g. ``layout="stl10"``.
    """
    if network_type not in IMAGE_AUTOENCODERS:
        raise ValueError(f"unknown image network {network_type!r}; known: {sorted(IMAGE_AUTOENCODERS)}")
    return IMAGE_AUTOENCODERS[network_type].check_sample_shape(sample_shape, **options)


__all__ = ["DACAutoencoder", "DACModel", "DCECAutoencoder", "DECSAutoencoder", "IMAGE_AUTOENCODERS", "ImageAutoencoder",
           "check_image_shape"]
