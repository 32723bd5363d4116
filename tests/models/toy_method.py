"""A method the library does not ship, in the shape of AE+DAC (docs/methods.md#ae_dac), loaded as a pytest
plugin (``-p toy_method``) to show that registering a method is all it takes for the contract
suite to cover it.

It touches nothing in ``models``: its own network type (a dense encoder and decoder with a
softmax head, no centres), registered with ``register_network``; its own params; its own
phase (joint reconstruction and DAC's pairwise loss, a shuffled drop-last order, a seeded noise
augmentation, a scalar ξ raised once per epoch that ends the phase when the thresholds cross,
labels reported at every epoch's end); and its tiny preset.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from deepclust.models import FINETUNE, register_network
from deepclust.models.losses import reconstruction_loss
from deepclust.models.methods import register
from deepclust.models.methods.base import AutoencoderMethod, AutoencoderParams
from deepclust.models.networks.mlp import DenseAutoencoder
from deepclust.models.training import Phase, make_optimizer

NAME = "toyhead"


@register_network(NAME)
class HeadNet(nn.Module):
    """A dense autoencoder whose code feeds a softmax head: class probabilities, no centres."""

    centers = None

    def __init__(self, input_dim: int, hidden_dims: list[int], embedding_dim: int, n_clusters: int):
        super().__init__()
        self.spec = {"type": NAME, "input_dim": input_dim, "hidden_dims": list(hidden_dims),
                     "embedding_dim": embedding_dim, "n_clusters": n_clusters}
        self.autoencoder = DenseAutoencoder(input_dim, hidden_dims, embedding_dim)
        self.head = nn.Linear(embedding_dim, n_clusters)

    def embed(self, x):
        return self.autoencoder.encode(x)

    def soft_assign(self, z):
        return F.softmax(self.head(z), dim=1)


class ToyParams(AutoencoderParams):
    max_epochs: int = Field(20, ge=1, description="Epochs at most; the thresholds usually cross first.")
    xi_step: float = Field(0.1, gt=0, description="Raise of ξ after each epoch (DAC: 1.1·η).")
    noise: float = Field(0.05, ge=0, description="Std of the Gaussian noise added to training batches.")
    lr: float = Field(0.03, gt=0)
    marginal_weight: float = Field(2.0, ge=0, description="Weight of the entropy of the mean assignment.")
    batch_size: int = Field(32, ge=2)


def entropy(p):
    return -(p * p.clamp_min(1e-10).log()).sum()


class PairwisePhase(Phase):
    """DAC's joint step: reconstruction plus BCE on confident pairs, thresholds u(ξ) > l(ξ)."""

    name = FINETUNE
    order = "shuffle"
    drop_last = True

    def __init__(self, params: ToyParams):
        self.p, self.batch_size = params, params.batch_size
        self.transform = self.add_noise if params.noise > 0 else None
        self.xi, self.labels = 0.0, None

    def add_noise(self, x, generator):
        return x + self.p.noise * torch.randn(x.shape, generator=generator, device=x.device)

    def iterations(self, n_samples):
        return self.p.max_epochs * self.iterations_per_epoch(n_samples)

    def optimizer(self, model):
        return make_optimizer(model.parameters(), "adam", self.p.lr)

    def step(self, model, batch):
        z, x_hat = model.autoencoder(batch.x)
        rec = reconstruction_loss(x_hat, batch.x.reshape(x_hat.shape))
        p = model.soft_assign(z)
        unit = F.normalize(p, dim=1)
        s = (unit @ unit.T).clamp(1e-10, 1 - 1e-7)
        with torch.no_grad():
            pos, neg = (s >= 0.95 - self.xi).float(), (s <= 0.5 + 0.1 * self.xi).float()
        pairwise = -(pos * s.log()).mean() - (neg * (1 - s).log()).mean()
        # Against DAC's collapse from a uniform start (all pairs similar): confident and balanced
        # assignments (information maximisation), so that the toy clusters in a few epochs.
        balance = entropy(p) / len(p) - self.p.marginal_weight * entropy(p.mean(0))
        loss = 0.1 * rec + 0.3 * pairwise + balance
        return {"loss": loss, "reconstruction": rec, "pairwise": pairwise, "balance": balance}

    @torch.no_grad()
    def end_epoch(self, model, data, epoch, run):
        model.eval()
        labels = torch.cat([model.soft_assign(model.embed(x)).argmax(1) for x in data.chunks()]).cpu().numpy()
        change = None if self.labels is None else float((labels != self.labels).mean())
        self.labels = labels
        run.report_labels(self.name, (epoch + 1) * self.iterations_per_epoch(len(data)), labels, change)
        self.xi += self.p.xi_step
        return 0.95 - self.xi <= 0.5 + 0.1 * self.xi  # u(ξ) ≤ l(ξ): no confident pair is left

    def epoch_logs(self):
        return {"xi": self.xi}

    def state_dict(self):
        return {"xi": self.xi, "labels": None if self.labels is None else torch.as_tensor(self.labels)}

    def load_state_dict(self, state):
        self.xi = state["xi"]
        self.labels = None if state["labels"] is None else state["labels"].cpu().numpy()


@register
class ToyHead(AutoencoderMethod):
    name = NAME
    summary = "Test-only: a softmax head trained on DAC's pairwise loss after autoencoder pretraining."
    params_model = ToyParams
    tiny_preset = {"hidden_dims": [8], "embedding_dim": 4, "pretrain_epochs": 2, "pretrain_batch_size": 16,
                   "batch_size": 8, "max_epochs": 20, "xi_step": 0.04}

    def build_model(self, sample_shape):
        p = self.params
        return HeadNet(math.prod(sample_shape), p.hidden_dims, p.embedding_dim, self.n_clusters)

    def phases(self, n_samples, *, pretrained):
        return [*([] if pretrained else [self.pretrain_phase()]), PairwisePhase(self.params)]
