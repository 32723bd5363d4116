"""What a clustering method is: a params schema with its paper's defaults, a network, and the
phases the training loop runs (``models.training``).

A method module subclasses ``ClusteringMethod`` (or ``AutoencoderMethod`` for the deep ones, with
``ImageMethod`` first among the bases for one on a convolutional autoencoder) and registers it
with ``@register``; nothing else in the library needs to change.
"""
from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import InvalidParams
from ..networks import ClusterNetwork
from ..networks.conv import check_image_shape
from ..networks.mlp import INITS, ClusterModel, DenseAutoencoder
from ..training import KMeansInitPhase, Phase, PretrainPhase, make_optimizer, reconstruction_objective

InputKind = Literal["features", "images"]


class Params(BaseModel):
    """Base of every params schema: unknown keys are an error, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class AutoencoderParams(Params):
    """The dense autoencoder and its pretraining (DEC-keras defaults, docs/methods.md#dec)."""

    hidden_dims: list[int] = Field([500, 500, 2000], description="Encoder widths; the decoder mirrors them.")
    embedding_dim: int = Field(10, ge=1, le=4096, description="Width of the linear embedding layer.")
    init: Literal[INITS] = Field("glorot_uniform",
                                 description="Dense layer initialisation (docs/methods.md#initialisation).")
    pretrain_epochs: int = Field(200, ge=0, le=10_000, description="Autoencoder pretraining epochs.")
    pretrain_batch_size: int = Field(256, ge=1, le=65_536)
    pretrain_optimizer: Literal["adam", "sgd"] = "adam"
    pretrain_lr: float = Field(1e-3, gt=0, le=10)
    pretrain_momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum (ignored by Adam).")
    kmeans_n_init: int = Field(20, ge=1, le=1000, description="k-means restarts for the centre init.")
    kmeans_backend: Literal["auto", "torch", "sklearn"] = Field(
        "auto", description="Where k-means runs: 'auto' is torch on a GPU, scikit-learn on the CPU.")


class ClusteringMethod:
    """A registered method. Subclasses set the class attributes and implement ``build_model`` and
    ``phases``; the loop runs the phases (nothing overrides the loop)."""

    name: ClassVar[str]
    summary: ClassVar[str]
    input_kinds: ClassVar[tuple[str, ...]] = ("features", "images")
    params_model: ClassVar[type[Params]]
    centers_space: ClassVar[str] = "embedding"
    # Params for a run of about a second on a few hundred small samples: what the contract
    # tests (tests/models/test_contract.py) and the service tests train every method with.
    tiny_preset: ClassVar[dict] = {}

    def __init__(self, params: Params, n_clusters: int, seed: int):
        self.params = params
        self.n_clusters = n_clusters
        self.seed = seed

    @classmethod
    def validate(cls, params: dict | None) -> dict:
        """Full params with defaults filled in; ``InvalidParams`` naming every bad or unknown key."""
        return cls.parse(params).model_dump()

    @classmethod
    def parse(cls, params: dict | None) -> Params:
        try:
            return cls.params_model(**(params or {}))
        except ValidationError as exc:
            allowed = sorted(cls.params_model.model_fields)
            errors = []
            for err in exc.errors():
                param = ".".join(str(p) for p in err["loc"]) or "params"
                message = err["msg"]
                if err["type"] == "extra_forbidden":
                    message = f"unknown parameter; allowed: {', '.join(allowed)}"
                errors.append({"param": param, "message": message})
            raise InvalidParams(cls.name, errors) from None

    def build_model(self, sample_shape: tuple[int, ...]) -> ClusterNetwork:
        """The untrained network (the RNG is seeded just before: its init is reproducible)."""
        raise NotImplementedError

    def phases(self, n_samples: int, *, pretrained: bool) -> list[Phase]:
        """The phases to run, in order. ``pretrained``: the autoencoder already holds reused
        weights (``fit(pretrained=...)``), so there is nothing to pretrain."""
        raise NotImplementedError


class AutoencoderMethod(ClusteringMethod):
    """A deep method on the dense autoencoder: pretrain (or reuse) it, k-means init, fine-tune."""

    params_model = AutoencoderParams

    def build_model(self, sample_shape):
        p = self.params
        ae = DenseAutoencoder(int(np.prod(sample_shape)), p.hidden_dims, p.embedding_dim, p.init)
        return ClusterModel(ae, self.n_clusters, p.embedding_dim, getattr(p, "alpha", 1.0))

    def pretrain_objective(self, autoencoder, x):
        """The pretraining loss; methods with extra terms (CDC, DCCF) override it."""
        return reconstruction_objective(autoencoder, x)

    def pretrain_phase(self) -> Phase:
        p = self.params
        phase = PretrainPhase(
            self.pretrain_objective,
            lambda ae: make_optimizer(ae.parameters(), p.pretrain_optimizer, p.pretrain_lr, p.pretrain_momentum),
            epochs=p.pretrain_epochs, batch_size=p.pretrain_batch_size)
        # Plain reconstruction: the same shapes and no data-dependent branch every step, so the
        # step can be captured whole on a GPU (models.training.accel, setting "capture").
        phase.static_step = type(self).pretrain_objective is AutoencoderMethod.pretrain_objective
        return phase

    def init_phase(self) -> Phase:
        return KMeansInitPhase(n_init=self.params.kmeans_n_init, seed=self.seed, backend=self.params.kmeans_backend)

    def finetune_phase(self, n_samples: int) -> Phase:
        raise NotImplementedError

    def phases(self, n_samples, *, pretrained):
        return [*([] if pretrained else [self.pretrain_phase()]), self.init_phase(), self.finetune_phase(n_samples)]


class ImageMethod:
    """Mixin of a method on a convolutional autoencoder (put it first among the bases): it trains
    on image datasets only, on a network that takes some image sizes and not others, and says
    which before any training starts.

    Subclasses set ``network_type`` (a registered ``models.networks.conv.ImageAutoencoder``) and
    may override ``network_options`` (layout options that depend on the params or the image size).
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
