"""AE+DAC (Yu et al. 2021): a fully convolutional autoencoder trained jointly with Deep Adaptive
Clustering's pairwise loss on a softmax head (docs/methods.md#ae_dac).

No code is public; it is reconstructed from the paper and DAC. Pretrain the autoencoder on
reconstruction; then, per batch, ``α·L_r + β·L_c`` on encoder, decoder and head, where ``L_c`` is
binary cross-entropy on the pairs whose label-feature cosine similarity is at least ``u(ξ)``
(same cluster) or at most ``l(ξ)`` (different clusters). ξ rises once per epoch until the
thresholds meet (75 epochs with the paper's constants). Predictions come from the head.

The defaults add DAC's second view (pairs selected on the clean batch without gradient, the loss
fitted on an augmented copy), DAC's RMSProp 1e-3, a floor on ``u(ξ)``, and end on the joint epoch
whose labels hold best under the second view rather than the last one (``select_epoch``);
``variant="paper"`` restores the paper's values (docs/methods/ae_dac.md: what departs and the
numbers behind it).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import Tensor

from ..losses import reconstruction_loss
from ..networks.dac import DACAutoencoder, DACModel
from ..phases import FINETUNE
from ..training import Phase, PretrainPhase, make_optimizer
from ..training.augment import views_for
from ..training.guard import cluster_health, degenerate
from . import register
from .base import ClusteringMethod, ImageMethod, Params

# -- the adaptive pair loss --------------------------------------------------------------------
# AE+DAC's clustering pieces (Yu et al. 2021, §3.2–3.5; docs/methods.md#ae_dac), pure tensor functions.
#
# The head's softmax outputs are the label features; L2-normalised, their dot products are the
# cosine similarities s_ij of the batch's pairs. Pairs with ``s ≥ u(ξ)`` are taken as same-cluster,
# pairs with ``s ≤ l(ξ)`` as different-cluster, the rest are left out (DAC's selection: both kinds
# are selected, the paper's eq. 4 is a slip). The clustering loss is binary cross-entropy on the
# selected pairs. ξ starts at 0 and grows once per epoch by gradient descent on ``u(ξ) − l(ξ)``
# until ``u ≤ l``.

U0 = 0.95  # u(ξ) = 0.95 − ξ
L0 = 0.5  # l(ξ) = 0.5 + 0.1·ξ
L_SLOPE = 0.1
XI_LR = 0.005  # η, the learning rate of ξ
LOG_EPS = 1e-10  # s is clipped to [1e-10, 1] inside the logs (DAC-tensorflow)
PAIR_REDUCTIONS = ("all_pairs", "selected")
RECON_REDUCTIONS = ("mean", "paper")


def label_features(probs: Tensor) -> Tensor:
    """The head's softmax rows scaled to unit L2 norm."""
    return F.normalize(probs, p=2.0, dim=1)


def cosine_similarity_matrix(probs: Tensor) -> Tensor:
    """``s_ij = l̂_i · l̂_j`` (B×B) of the L2-normalised label features; in [0, 1] for softmax rows."""
    features = label_features(probs)
    return features @ features.T


@dataclass(frozen=True)
class Thresholds:
    """``u(ξ) = u0 − ξ``, ``l(ξ) = l0 + slope·ξ``, and the step of ξ per epoch.

    ξ ← ξ − η·∂(u − l)/∂ξ = ξ + (1 + slope)·η: with the paper's constants +0.0055 per epoch,
    so ``u ≤ l`` from ξ ≥ 0.45/1.1, after 75 epochs. DAC's own constants are l0 = 0.455 and
    η = 0.009 (46 epochs).
    """

    u0: float = U0
    l0: float = L0
    slope: float = L_SLOPE
    eta: float = XI_LR
    upper_floor: float | None = None  # u never below it (not in the paper); ``done`` ignores it

    def upper(self, xi: float) -> float:
        if self.upper_floor is not None:
            return max(self.u0 - xi, self.upper_floor)
        return self.u0 - xi

    def lower(self, xi: float) -> float:
        return self.l0 + self.slope * xi

    def xi_after(self, epochs: int) -> float:
        """ξ after ``epochs`` epochs from ξ₀ = 0 (a product, not a running sum: exact on resume)."""
        return epochs * (1.0 + self.slope) * self.eta

    def done(self, xi: float) -> bool:
        """Training ends once the thresholds meet: ``u(ξ) ≤ l(ξ)`` (of the unfloored ``u``: a
        floor holds the late selection back without changing the schedule's length)."""
        return self.u0 - xi <= self.lower(xi)

    def epochs_to_stop(self, cap: int = 1_000_000) -> int:
        """The number of epochs after which ``done`` holds (``cap`` if it never does by then)."""
        for epoch in range(cap + 1):
            if self.done(self.xi_after(epoch)):
                return epoch
        return cap


@torch.no_grad()
def select_pairs(similarity: Tensor, upper: float, lower: float) -> tuple[Tensor, Tensor]:
    """Boolean masks of the positive (``s ≥ u``) and negative (``s ≤ l``) pairs; no gradient."""
    return similarity >= upper, similarity <= lower


def pairwise_clustering_loss(similarity: Tensor, positive: Tensor, negative: Tensor,
                             reduction: str = "all_pairs") -> Tensor:
    """``L_c``: binary cross-entropy of the selected pairs' similarities.

    ``"all_pairs"`` (DAC-tensorflow, the default): ``mean(pos·(−log s)) + mean(neg·(−log(1−s)))``
    with both means over all B² pairs. ``"selected"``: the summed terms over the number of
    selected pairs.
    """
    if reduction not in PAIR_REDUCTIONS:
        raise ValueError(f"unknown pair reduction {reduction!r}; use one of {PAIR_REDUCTIONS}")
    pos_term = -similarity.clamp(LOG_EPS, 1.0).log() * positive
    neg_term = -(1.0 - similarity).clamp(LOG_EPS, 1.0).log() * negative
    if reduction == "all_pairs":
        return pos_term.mean() + neg_term.mean()
    selected = (positive.sum() + negative.sum()).clamp_min(1)
    return (pos_term.sum() + neg_term.sum()) / selected


def dac_reconstruction_loss(x_hat: Tensor, x: Tensor, reduction: str = "mean") -> Tensor:
    """``L_r``: ``"mean"`` over all elements (Keras mse, the default), or ``"paper"``:
    ``(1/2n)·Σ‖x − x̂‖²``, half the per-sample squared error averaged over the batch."""
    if reduction == "mean":
        return reconstruction_loss(x_hat, x, "mean")
    if reduction == "paper":
        return 0.5 * reconstruction_loss(x_hat, x, "sample_sum")
    raise ValueError(f"unknown reconstruction reduction {reduction!r}; use one of {RECON_REDUCTIONS}")


def dac_batch_loss(probs: Tensor, x_hat: Tensor, x: Tensor, xi: float, *, alpha: float = 0.5,
                   beta: float = 0.3, thresholds: Thresholds = Thresholds(),
                   pair_reduction: str = "all_pairs", recon_reduction: str = "mean",
                   pair_probs: Tensor | None = None) -> dict[str, Tensor]:
    """``α·L_r + β·L_c`` of one batch, with its terms and the share of pairs selected.

    ``pair_probs``: the head's output on another view of the same rows (DAC's code: the clean
    images, ``probs`` being of their augmented copy), from which the pairs are selected, without
    gradient; by default ``probs`` itself."""
    similarity = cosine_similarity_matrix(probs)
    if pair_probs is None:
        selecting = similarity
    else:
        with torch.no_grad():
            selecting = cosine_similarity_matrix(pair_probs.detach())
    positive, negative = select_pairs(selecting, thresholds.upper(xi), thresholds.lower(xi))
    clustering = pairwise_clustering_loss(similarity, positive, negative, pair_reduction)
    reconstruction = dac_reconstruction_loss(x_hat, x, recon_reduction)
    n_pairs = similarity.numel()
    return {
        "loss": alpha * reconstruction + beta * clustering,
        "reconstruction": reconstruction,
        "clustering": clustering,
        "positive_pairs": positive.sum() / n_pairs,
        "negative_pairs": negative.sum() / n_pairs,
    }


# -- the method --------------------------------------------------------------------------------
STL10_SIDE = 96  # from this size on, layout "auto" takes the STL-10 encoder (Yu et al. 2021, Table 3)
OPTIMIZERS = ("rmsprop", "adam")
AUGMENTATIONS = ("auto", "digits", "photos", "none")
EPOCH_SELECTIONS = ("last", "view_agreement")
AGREEMENT_VIEW_SEED = 20_211_101  # the one augmented copy an epoch's agreement is measured on, every epoch
RMSPROP_RHO = 0.9  # DAC's optimiser: TensorFlow's and Keras' RMSProp decay (torch's default is 0.99)

# The values ``variant="paper"`` gives every param that departs from the paper (unless given):
# the paper's Adam 1e-4, no second view, α = 0.5, no floor on u(ξ), 100 pretraining epochs (the
# paper gives none; our guess). The field defaults below are the measured ones
# (docs/methods/ae_dac.md has the numbers).
PAPER = {"augmentation": "none", "optimizer": "adam", "lr": 1e-4, "alpha": 0.5, "upper_floor": None,
         "pretrain_epochs": 100, "select_epoch": "last"}


class AEDACParams(Params):
    variant: Literal["default", "paper"] = Field(
        "default", description="'default': the measured defaults (two views, RMSProp 1e-3, ...); 'paper': every "
                               "departure back at the paper's value (no augmentation, Adam 1e-4, α=0.5, no floor) "
                               "unless given.")
    layout: Literal["auto", "table3", "stl10"] = Field(
        "auto", description="Encoder layout of the paper's Table 3: 'table3' (4 stride-2 convs, Fashion-MNIST/CIFAR), "
                            "'stl10' (96×96), 'auto': stl10 when both sides are at least 96.")
    head_hidden: int = Field(64, ge=1, le=4096, description="Width of the head's hidden layer.")
    pretrain_epochs: int = Field(100, ge=0, le=10_000,
                                 description="Autoencoder pretraining epochs (not in the paper; a guess).")
    pretrain_batch_size: int = Field(128, ge=1, le=65_536)
    pretrain_lr: float = Field(1e-3, gt=0, le=10, description="Adam learning rate of pretraining.")
    batch_size: int = Field(128, ge=2, le=65_536, description="Joint-training batch size (pairs are formed within it).")
    optimizer: Literal[OPTIMIZERS] = Field(
        "rmsprop", description="Joint-training optimiser: 'rmsprop' (DAC's code, decay 0.9) or 'adam' (the paper).")
    lr: float = Field(1e-3, gt=0, le=10, description="Joint-training learning rate (paper: Adam 1e-4).")
    alpha: float = Field(0.5, ge=0, le=1000, description="Weight α of the reconstruction loss (paper 0.5).")
    beta: float = Field(0.3, ge=0, le=1000, description="Weight β of the pairwise clustering loss.")
    xi_lr: float = Field(0.005, gt=0, le=1,
                         description="η: ξ rises by 1.1·η per epoch; training ends when u(ξ)=0.95−ξ ≤ l(ξ)=0.5+0.1ξ.")
    max_epochs: int = Field(200, ge=1, le=100_000, description="Joint-training epochs at most.")
    pair_reduction: Literal[PAIR_REDUCTIONS] = Field(
        "all_pairs", description="'all_pairs': each BCE term averaged over all B² pairs (DAC); "
                                 "'selected': over the selected pairs.")
    recon_reduction: Literal[RECON_REDUCTIONS] = Field(
        "mean", description="'mean' over all elements (Keras mse); 'paper': (1/2n)·Σ‖x−x̂‖².")
    augmentation: Literal[AUGMENTATIONS] = Field(
        "auto", description="Second view of joint training (DAC's code): pairs are selected on the clean batch, the "
                            "loss is fitted on an augmented copy. 'digits': rotation ±10°, shift ±10%; 'photos': "
                            "pad-4 crop, horizontal flip, brightness/contrast/saturation jitter ±0.4; 'auto': photos "
                            "for 3+ channels, digits else; 'none': one view (the paper).")
    upper_floor: float | None = Field(
        0.7, ge=0, le=1, description="Floor of the upper threshold u(ξ) (not in the paper, whose value is None: no "
                                     "floor). Keeps the late schedule from taking cross-class pairs as positive; the "
                                     "schedule's length is unchanged.")
    select_epoch: Literal[EPOCH_SELECTIONS] = Field(
        "view_agreement",
        description="Which joint epoch's model is the result: 'last' (the paper), or 'view_agreement': of the epochs "
                    "whose clusters are all non-empty and none holds over half the data, the one whose labels agree "
                    "most between the clean images and one augmented copy of each (no labels used; the labelling "
                    "oscillates late in the schedule). Costs one more inference pass per epoch.")

    @model_validator(mode="before")
    @classmethod
    def _variant_defaults(cls, data):
        """``variant="paper"`` sets every departure from the paper back, unless given explicitly."""
        if isinstance(data, dict) and data.get("variant") == "paper":
            data = {**PAPER, **data}
        return data


@torch.no_grad()
def labels_and_view_labels(model, data, view) -> tuple[Tensor, Tensor | None, int]:
    """The head's label of every sample (eval mode); given a ``view`` transform, its label of one
    augmented copy of each, drawn from a generator seeded the same every time (so epochs are
    compared on the same copies, and a resumed run draws what an uninterrupted one would); K."""
    model.eval()
    ae = model.autoencoder
    generator = torch.Generator(device=data.device).manual_seed(AGREEMENT_VIEW_SEED) if view else None
    labels, view_labels, k = [], [], 0
    for x in data.chunks():
        probs = model.soft_assign(model.embed(x))
        k = int(probs.shape[1])
        labels.append(probs.argmax(1))
        if view is not None:
            copy = view(x, generator).reshape(-1, *ae.sample_shape)
            view_labels.append(ae.cluster_probs(ae.encode(copy)).argmax(1))
    return torch.cat(labels), (torch.cat(view_labels) if view is not None else None), k


class PairwisePhase(Phase):
    """Joint training: one encoder pass per batch feeds the decoder and the head.

    With ``select_epoch="view_agreement"`` the phase keeps a copy of the model at the epoch with
    the highest agreement between the labels of the clean images and of an augmented copy (among
    the epochs whose labelling is not degenerate by the guard's test) and ends on it. A labelling
    that holds under DAC's own augmentation is one the pairwise loss has settled; the late
    schedule, which selects ever looser pairs, moves the labels back and forth (on MNIST each
    seed passed ACC 0.95 and ended 0.04-0.20 below). When the guard restored an earlier state, the
    guard's choice stands.
    """

    name = FINETUNE
    order = "shuffle"

    def __init__(self, params: AEDACParams):
        self.p, self.batch_size = params, params.batch_size
        self.second_view = views_for(params.augmentation)
        self.thresholds = Thresholds(eta=params.xi_lr, upper_floor=params.upper_floor)
        self.epochs_done = 0
        self.labels: np.ndarray | None = None
        self.label_change: float | None = None
        # the selection's copy: the second view when training has one, else the data kind's own
        self.agreement_view = (None if params.select_epoch == "last"
                               else self.second_view or views_for("auto"))
        self.agreement: float | None = None
        self.best: dict | None = None  # {"epoch", "agreement", "model"}: the epoch kept so far

    @property
    def xi(self) -> float:
        return self.thresholds.xi_after(self.epochs_done)

    def iterations(self, n_samples):
        epochs = min(self.p.max_epochs, self.thresholds.epochs_to_stop(cap=self.p.max_epochs))
        return epochs * self.iterations_per_epoch(n_samples)

    def optimizer(self, model):
        if self.p.optimizer == "rmsprop":
            return torch.optim.RMSprop(model.autoencoder.parameters(), lr=self.p.lr, alpha=RMSPROP_RHO)
        return make_optimizer(model.autoencoder.parameters(), "adam", self.p.lr)

    def step(self, model, batch):
        ae = model.autoencoder
        clean = batch.x.reshape(-1, *ae.sample_shape)
        pair_probs = None
        if batch.view is not None:  # two views: the pairs from the clean rows, the loss on their copy
            with torch.no_grad():
                pair_probs = ae.cluster_probs(ae.encode(clean))
            x = batch.view.reshape(-1, *ae.sample_shape)
        else:
            x = clean
        z = ae.encode(x)
        return dac_batch_loss(ae.cluster_probs(z), ae.decode(z), x, self.xi,
                              alpha=self.p.alpha, beta=self.p.beta, thresholds=self.thresholds,
                              pair_reduction=self.p.pair_reduction, recon_reduction=self.p.recon_reduction,
                              pair_probs=pair_probs)

    def end_epoch(self, model, data, epoch, run):
        labels, view_labels, k = labels_and_view_labels(model, data, self.agreement_view)
        self.epochs_done = epoch + 1
        if view_labels is not None:
            self._consider(model, labels, view_labels, k)
        labels = labels.cpu().numpy()
        self.label_change = None if self.labels is None else float(np.mean(labels != self.labels))
        self.labels = labels
        run.report_labels(self.name, self.epochs_done * self.iterations_per_epoch(len(data)), labels,
                          self.label_change)
        return self.thresholds.done(self.xi)

    def _consider(self, model, labels: Tensor, view_labels: Tensor, k: int) -> None:
        """Keep this epoch's model if its agreement is the highest so far (ties: the later one)
        and its labelling is healthy. One small host read per epoch, not per batch."""
        self.agreement = float((labels == view_labels).float().mean())
        if degenerate(cluster_health(labels.cpu().numpy(), k), k):
            return
        if self.best is None or self.agreement >= self.best["agreement"]:
            self.best = {"epoch": self.epochs_done, "agreement": self.agreement,
                         "model": {name: v.detach().clone() for name, v in model.state_dict().items()}}

    def end(self, model, data, run):
        guard_restored = run.guard.restored is not None and run.guard.restored["phase"] == self.name
        if self.best is None or guard_restored or self.best["epoch"] == self.epochs_done:
            return
        model.load_state_dict(self.best["model"])

    def epoch_logs(self):
        # the thresholds the epoch just used; its selected pair fractions are the loss terms
        # "positive_pairs" and "negative_pairs" (epoch means), in the same row
        xi = self.thresholds.xi_after(max(self.epochs_done - 1, 0))
        logs = {"xi": self.xi, "upper": self.thresholds.upper(xi), "lower": self.thresholds.lower(xi)}
        if self.label_change is not None:
            logs["label_change"] = self.label_change
        if self.agreement is not None:
            # the epoch's agreement, and the epoch the result would be if the phase ended here
            logs["view_agreement"] = self.agreement
            if self.best is not None:
                logs["selected_epoch"] = self.best["epoch"]
        return logs

    def state_dict(self):
        return {"epochs_done": self.epochs_done, "label_change": self.label_change,
                "labels": None if self.labels is None else torch.as_tensor(self.labels),
                "agreement": self.agreement, "best": self.best}

    def load_state_dict(self, state):
        self.epochs_done = int(state["epochs_done"])
        self.label_change = state["label_change"]
        self.labels = None if state["labels"] is None else state["labels"].cpu().numpy()
        self.agreement = state.get("agreement")
        self.best = state.get("best")


@register
class AEDAC(ImageMethod, ClusteringMethod):
    name = "ae_dac"
    summary = ("Autoencoder + Deep Adaptive Clustering: a fully convolutional autoencoder trained jointly with "
               "pairwise same/different-cluster labels on a softmax head, thresholds tightening every epoch.")
    params_model = AEDACParams
    network_type = DACAutoencoder.type_name
    tiny_preset = {"pretrain_epochs": 3, "pretrain_batch_size": 16, "batch_size": 16, "head_hidden": 8,
                   "lr": 1e-3, "xi_lr": 0.1}

    @classmethod
    def network_options(cls, params, sample_shape):
        layout = params.layout
        if layout == "auto":
            shape = tuple(sample_shape)
            layout = "stl10" if len(shape) == 3 and min(shape[1:]) >= STL10_SIDE else "table3"
        return {"layout": layout}

    def build_model(self, sample_shape):
        p = self.params
        layout = self.network_options(p, sample_shape)["layout"]
        return DACModel(DACAutoencoder(*sample_shape, n_clusters=self.n_clusters, layout=layout,
                                       head_hidden=p.head_hidden))

    def pretrain_objective(self, autoencoder, x):
        z, x_hat = autoencoder(x)
        rec = dac_reconstruction_loss(x_hat, x.reshape(x_hat.shape), self.params.recon_reduction)
        return {"loss": rec, "reconstruction": rec}

    def phases(self, n_samples, *, pretrained):
        p = self.params
        pretrain = PretrainPhase(self.pretrain_objective,
                                 lambda ae: make_optimizer(ae.parameters(), "adam", p.pretrain_lr),
                                 epochs=p.pretrain_epochs, batch_size=p.pretrain_batch_size)
        return [*([] if pretrained else [pretrain]), PairwisePhase(p)]
