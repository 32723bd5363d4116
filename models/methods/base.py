"""What a clustering method is: a params schema with its paper's defaults, and a training recipe.

A method module subclasses ``ClusteringMethod`` (or ``AutoencoderMethod`` for the deep ones) and
registers it with ``@register``; nothing else in the library needs to change.
"""
from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..data import ArrayData
from ..errors import InvalidParams
from ..networks import INITS, ClusterModel, DenseAutoencoder
from ..training import Run, kmeans_init, make_optimizer, pretrain_autoencoder
from ..training.pretrain import reconstruction_objective

InputKind = Literal["features", "images"]


class Params(BaseModel):
    """Base of every params schema: unknown keys are an error, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class AutoencoderParams(Params):
    """The dense autoencoder and its pretraining (DEC-keras defaults, METHODS §6.1)."""

    hidden_dims: list[int] = Field([500, 500, 2000], description="Encoder widths; the decoder mirrors them.")
    embedding_dim: int = Field(10, ge=1, le=4096, description="Width of the linear embedding layer.")
    init: Literal[INITS] = Field("glorot_uniform", description="Dense layer initialisation (METHODS §1.1).")
    pretrain_epochs: int = Field(200, ge=0, le=10_000, description="Autoencoder pretraining epochs.")
    pretrain_batch_size: int = Field(256, ge=1, le=65_536)
    pretrain_optimizer: Literal["adam", "sgd"] = "adam"
    pretrain_lr: float = Field(1e-3, gt=0, le=10)
    pretrain_momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum (ignored by Adam).")
    kmeans_n_init: int = Field(20, ge=1, le=1000, description="k-means restarts for the centre init.")


class ClusteringMethod:
    """A registered method. Subclasses set the class attributes and implement ``train``."""

    name: ClassVar[str]
    summary: ClassVar[str]
    input_kinds: ClassVar[tuple[str, ...]] = ("features", "images")
    params_model: ClassVar[type[Params]]
    centers_space: ClassVar[str] = "embedding"

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

    def build_model(self, sample_shape: tuple[int, ...]) -> ClusterModel:
        raise NotImplementedError

    @classmethod
    def model_from_spec(cls, spec: dict) -> ClusterModel:
        return ClusterModel.from_spec(spec)

    def train(self, model: ClusterModel, data: ArrayData, run: Run, *,
              pretrained: dict | None, resume: dict | None) -> None:
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

    def finetune(self, model: ClusterModel, data: ArrayData, run: Run, initial_labels: np.ndarray,
                 resume: dict | None) -> None:
        raise NotImplementedError

    def train(self, model, data, run, *, pretrained, resume):
        p = self.params
        ae = model.autoencoder
        phase = resume["phase"] if resume else None
        if phase == "finetune":
            model.load_state_dict(resume["model"])
            run.base_state["pretrained"] = resume["pretrained"]
            self.finetune(model, data, run, None, resume)
            return
        if pretrained is not None:
            ae.load_state_dict(pretrained)
        else:
            optimizer = make_optimizer(ae.parameters(), p.pretrain_optimizer, p.pretrain_lr, p.pretrain_momentum)
            start = 0
            if phase == "pretrain":
                ae.load_state_dict(resume["model"])
                optimizer.load_state_dict(resume["optimizer"])
                start = int(resume["epoch"])
            pretrain_autoencoder(ae, data, optimizer, epochs=p.pretrain_epochs,
                                 batch_size=p.pretrain_batch_size, seed=self.seed, run=run,
                                 objective=self.pretrain_objective, start_epoch=start)
        # Kept with the fitted model and in every later checkpoint, for `pretrained=` reuse.
        run.base_state["pretrained"] = {k: v.detach().cpu().clone() for k, v in ae.state_dict().items()}
        run.callbacks.on_phase_begin("init", 1)
        labels = kmeans_init(model, data, n_init=p.kmeans_n_init, seed=self.seed)
        run.callbacks.raise_if_stopped()
        self.finetune(model, data, run, labels, None)
