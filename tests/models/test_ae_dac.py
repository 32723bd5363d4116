"""AE+DAC: label features, similarities, pair selection, the pairwise loss and the ξ schedule; the
two views (pairs from the clean batch without gradient, the loss on its augmented copy), resume
with them, the joint epoch kept by view agreement, and the params that depart from the paper with
``variant="paper"`` restoring it."""
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from deepclust.models import DeepClusterer, TrainingCancelled, get_method, load_checkpoint, save_checkpoint
from deepclust.models.methods.ae_dac import (PAPER, AEDACParams, PairwisePhase, Thresholds, cosine_similarity_matrix,
                                             dac_batch_loss, dac_reconstruction_loss, label_features,
                                             pairwise_clustering_loss, select_pairs)
from deepclust.models.networks.dac import DACAutoencoder, DACModel
from deepclust.models.training import Batch
from deepclust.models.training.augment import augment, auto_augment, photo_augment
from stop_after import StopAfter

# Four samples' softmax rows: a and b agree, c is elsewhere, d leans towards a.
PROBS = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.8, 0.2, 0.0]], dtype=torch.float64)
D_NORM = math.sqrt(0.8 ** 2 + 0.2 ** 2)
S_AD = 0.8 / D_NORM  # 0.9701
S_CD = 0.2 / D_NORM  # 0.2425


def test_label_features_are_unit_rows():
    f = label_features(torch.tensor([[3.0, 4.0], [0.5, 0.5]]))
    torch.testing.assert_close(f, torch.tensor([[0.6, 0.8], [2 ** -0.5, 2 ** -0.5]]))


def test_similarity_matrix_by_hand():
    s = cosine_similarity_matrix(PROBS)
    expected = torch.tensor([[1, 1, 0, S_AD], [1, 1, 0, S_AD], [0, 0, 1, S_CD], [S_AD, S_AD, S_CD, 1]],
                            dtype=torch.float64)
    torch.testing.assert_close(s, expected)


def test_masks_at_the_initial_thresholds():
    s = cosine_similarity_matrix(PROBS)
    th = Thresholds()
    pos, neg = select_pairs(s, th.upper(0.0), th.lower(0.0))  # u = 0.95, l = 0.5
    assert pos.dtype == torch.bool and not pos.requires_grad
    expected_pos = torch.tensor([[1, 1, 0, 1], [1, 1, 0, 1], [0, 0, 1, 0], [1, 1, 0, 1]], dtype=torch.bool)
    expected_neg = torch.tensor([[0, 0, 1, 0], [0, 0, 1, 0], [1, 1, 0, 1], [0, 0, 1, 0]], dtype=torch.bool)
    assert torch.equal(pos, expected_pos) and torch.equal(neg, expected_neg)
    # At ξ = 0.2 (u = 0.75, l = 0.52) the same pairs stay selected.
    pos, neg = select_pairs(s, th.upper(0.2), th.lower(0.2))
    assert pos[0, 3] and neg[2, 3]
    # A pair between the thresholds is left out of both.
    pos, neg = select_pairs(torch.tensor([[0.7]]), 0.95, 0.5)
    assert not pos.any() and not neg.any()
    # The bounds themselves are selected (≥ u, ≤ l).
    pos, neg = select_pairs(torch.tensor([[0.95, 0.5]]), 0.95, 0.5)
    assert pos.tolist() == [[True, False]] and neg.tolist() == [[False, True]]


def test_pairwise_loss_by_hand():
    s = cosine_similarity_matrix(PROBS)
    pos, neg = select_pairs(s, 0.95, 0.5)
    # Positive pairs: the 4 diagonal and (a,b),(b,a) terms are −log 1 = 0; (a,d),(d,a),(b,d),(d,b)
    # give −log s_ad. Negative pairs: (a,c),(c,a),(b,c),(c,b) give −log 1 = 0; (c,d),(d,c) give
    # −log(1 − s_cd). Both means over all 16 pairs.
    expected = 4 * -math.log(S_AD) / 16 + 2 * -math.log(1 - S_CD) / 16
    assert pairwise_clustering_loss(s, pos, neg).item() == pytest.approx(expected, rel=1e-12)
    # Over the selected pairs only: 10 positive + 6 negative = 16 here, the same; drop the diagonal.
    eye = torch.eye(4, dtype=torch.bool)
    selected = (4 * -math.log(S_AD) + 2 * -math.log(1 - S_CD)) / 12
    assert pairwise_clustering_loss(s, pos & ~eye, neg, "selected").item() == pytest.approx(selected, rel=1e-12)


def test_pairwise_loss_clips_the_logs():
    s = torch.tensor([[0.0, 1.0 + 1e-7]], dtype=torch.float64)
    loss = pairwise_clustering_loss(s, torch.tensor([[True, False]]), torch.tensor([[False, True]]))
    assert loss.item() == pytest.approx(2 * -math.log(1e-10) / 2)
    with pytest.raises(ValueError, match="unknown pair reduction"):
        pairwise_clustering_loss(s, s > 0, s > 0, "sum")


def test_loss_gradient_flows_through_the_similarities_not_the_masks():
    logits = torch.tensor([[2.0, 0.0], [1.5, 0.2], [0.0, 2.0]], requires_grad=True)
    probs = torch.softmax(logits, 1)
    s = cosine_similarity_matrix(probs)
    pos, neg = select_pairs(s, 0.9, 0.6)
    loss = pairwise_clustering_loss(s, pos, neg)
    loss.backward()
    with torch.no_grad():
        stepped = logits - 1.0 * logits.grad
        s2 = cosine_similarity_matrix(torch.softmax(stepped, 1))
        assert pairwise_clustering_loss(s2, pos, neg).item() < loss.item()


def test_xi_schedule_paper_constants():
    th = Thresholds()
    assert (th.upper(0.0), th.lower(0.0)) == (0.95, 0.5)
    assert th.xi_after(1) == pytest.approx(0.0055)  # ξ + 1.1·η with η = 0.005
    assert th.upper(th.xi_after(10)) == pytest.approx(0.95 - 0.055)
    assert th.lower(th.xi_after(10)) == pytest.approx(0.5 + 0.0055)
    # u ≤ l once ξ ≥ 0.45 / 1.1 = 0.409: not after 74 epochs (ξ = 0.407), after 75 (ξ = 0.4125).
    assert not th.done(th.xi_after(74)) and th.done(th.xi_after(75))
    assert th.epochs_to_stop() == 75


def test_xi_schedule_original_dac_constants():
    # DAC: l = 0.455 + 0.1λ, η = 0.009: λ += 0.0099 per epoch, done after 46 epochs.
    assert Thresholds(l0=0.455, eta=0.009).epochs_to_stop() == 46


def test_reconstruction_reductions():
    x = torch.zeros(2, 1, 2, 2)
    x_hat = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]], [[[1.0, 1.0], [1.0, 1.0]]]])
    # Mean over all 8 elements: 5/8. Paper: ½ · mean over samples of (1, 4) = 1.25.
    assert dac_reconstruction_loss(x_hat, x).item() == pytest.approx(5 / 8)
    assert dac_reconstruction_loss(x_hat, x, "paper").item() == pytest.approx(1.25)
    with pytest.raises(ValueError, match="unknown reconstruction reduction"):
        dac_reconstruction_loss(x_hat, x, "sum")


def test_batch_loss_is_the_weighted_sum():
    x = torch.zeros(4, 1, 2, 2, dtype=torch.float64)
    x_hat = torch.full_like(x, 0.5)
    terms = dac_batch_loss(PROBS, x_hat, x, xi=0.0, alpha=0.5, beta=0.3)
    assert terms["reconstruction"].item() == pytest.approx(0.25)
    expected_lc = 4 * -math.log(S_AD) / 16 + 2 * -math.log(1 - S_CD) / 16
    assert terms["clustering"].item() == pytest.approx(expected_lc)
    assert terms["loss"].item() == pytest.approx(0.5 * 0.25 + 0.3 * expected_lc)
    assert terms["positive_pairs"].item() == pytest.approx(10 / 16)
    assert terms["negative_pairs"].item() == pytest.approx(6 / 16)


def test_upper_floor_holds_u_without_changing_the_schedule_length():
    th = Thresholds(upper_floor=0.7)
    assert th.upper(0.1) == pytest.approx(0.85) and th.upper(0.3) == 0.7 and th.upper(0.4) == 0.7
    assert th.lower(0.3) == Thresholds().lower(0.3)
    assert th.epochs_to_stop() == Thresholds().epochs_to_stop() == 75


# -- two views ---------------------------------------------------------------------------------
def test_pairs_from_another_view_carry_no_gradient_and_set_the_masks():
    logits = torch.tensor([[2.0, 0.0], [1.5, 0.2], [0.0, 2.0]], requires_grad=True)
    clean_logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [0.0, 2.0]], requires_grad=True)
    probs, clean = torch.softmax(logits, 1), torch.softmax(clean_logits, 1)
    x = torch.zeros(3, 1, 2, 2)
    terms = dac_batch_loss(probs, x, x, 0.0, pair_probs=clean)
    terms["loss"].backward()
    assert clean_logits.grad is None and logits.grad is not None
    pos, neg = select_pairs(cosine_similarity_matrix(clean), 0.95, 0.5)
    assert terms["positive_pairs"].item() == pytest.approx(pos.float().mean().item())
    assert terms["negative_pairs"].item() == pytest.approx(neg.float().mean().item())
    expected = pairwise_clustering_loss(cosine_similarity_matrix(probs), pos, neg)
    assert terms["clustering"].item() == pytest.approx(expected.item())
    # The masks differ from the ones the augmented view would select on its own.
    own, _ = select_pairs(cosine_similarity_matrix(probs), 0.95, 0.5)
    assert not torch.equal(own, pos)


def test_the_two_view_step_selects_on_the_clean_batch_without_gradient_and_fits_the_copy():
    torch.manual_seed(0)
    model = DACModel(DACAutoencoder(1, 8, 8, n_clusters=3, head_hidden=4)).train()
    phase = PairwisePhase(AEDACParams(batch_size=8))
    assert phase.second_view is auto_augment
    x = torch.rand(8, 1, 8, 8)
    view = phase.second_view(x, torch.Generator().manual_seed(1))
    assert not torch.allclose(view, x)
    seen, encode = [], model.autoencoder.encode

    def recording_encode(inp):
        seen.append((inp.clone(), torch.is_grad_enabled()))
        return encode(inp)

    model.autoencoder.encode = recording_encode
    terms = phase.step(model, Batch(x, torch.arange(8), view))
    assert [(torch.equal(a, x), torch.equal(a, view), grad) for a, grad in seen] == [
        (True, False, False), (False, True, True)]
    terms["loss"].backward()  # the loss is on the copy: its graph reaches the weights
    assert model.autoencoder.head[0].weight.grad is not None
    # One view (augmentation "none"): a single encoder pass, with gradient, on the batch itself.
    seen.clear()
    PairwisePhase(AEDACParams(batch_size=8, augmentation="none")).step(model, Batch(x, torch.arange(8)))
    assert len(seen) == 1 and torch.equal(seen[0][0], x) and seen[0][1]


def test_augmentation_names_choose_the_view():
    assert PairwisePhase(AEDACParams(augmentation="none")).second_view is None
    assert PairwisePhase(AEDACParams(augmentation="digits")).second_view is augment
    assert PairwisePhase(AEDACParams(augmentation="photos")).second_view is photo_augment


# -- params: the measured defaults and the paper's values ----------------------------------------
def test_paper_variant_restores_every_departure_unless_given():
    method = get_method("ae_dac")
    defaults = method.defaults
    assert (defaults["variant"], defaults["augmentation"], defaults["optimizer"]) == ("default", "auto", "rmsprop")
    paper = method.validate({"variant": "paper"})
    assert {k: paper[k] for k in PAPER} == PAPER
    assert (paper["augmentation"], paper["optimizer"], paper["lr"], paper["alpha"], paper["upper_floor"]) == (
        "none", "adam", 1e-4, 0.5, None)
    assert (paper["beta"], paper["xi_lr"], paper["batch_size"]) == (0.3, 0.005, 128)
    assert {k: defaults[k] for k in PAPER} != PAPER  # the defaults depart somewhere
    mixed = method.validate({"variant": "paper", "augmentation": "digits", "lr": 3e-4})
    assert (mixed["augmentation"], mixed["lr"], mixed["optimizer"]) == ("digits", 3e-4, "adam")
    assert method.validate(paper) == paper
    assert "augment" not in defaults




@pytest.mark.parametrize("channels", [1, 3])
def test_resume_mid_joint_training_with_two_views_is_bit_identical(tmp_path, channels):
    X = np.random.default_rng(0).random((40, channels, 8, 8)).astype(np.float32)
    # select_epoch: the kept epoch's copy travels in the checkpoint too
    params = {"pretrain_epochs": 2, "pretrain_batch_size": 16, "batch_size": 16, "head_hidden": 4, "xi_lr": 0.1,
              "select_epoch": "view_agreement"}
    make = lambda: DeepClusterer("ae_dac", 3, random_state=1, **params)  # noqa: E731
    reference = make().fit(X)
    joint = [h for h in reference.history_ if h["phase"] == "finetune"]
    assert len(joint) == 4 and all("upper" in h and "positive_pairs" in h and "view_agreement" in h for h in joint)
    with pytest.raises(TrainingCancelled):
        make().fit(X, callbacks=[StopAfter(tmp_path / "ckpt.pt", 4)])  # 2 pretraining + 2 joint epochs
    state = load_checkpoint(tmp_path / "ckpt.pt")
    assert (state["phase"], state["iteration"]) == ("finetune", 6)
    resumed = make().fit(X, resume_from=state)
    np.testing.assert_array_equal(resumed.predict_proba(X), reference.predict_proba(X))
    np.testing.assert_array_equal(resumed.labels_, reference.labels_)
    assert resumed.history_ == reference.history_
    weights = reference.model_.state_dict()
    for name, value in resumed.model_.state_dict().items():
        assert torch.equal(value, weights[name]), name
    # The second view changed the run: one view from the same start ends elsewhere.
    single = DeepClusterer("ae_dac", 3, random_state=1, augmentation="none", **params).fit(X)
    assert single.history_[:2] == reference.history_[:2]  # the same pretraining
    assert single.history_[2]["loss"] != reference.history_[2]["loss"]
    assert not torch.equal(single.model_.state_dict()["autoencoder.head.0.weight"], weights["autoencoder.head.0.weight"])


# -- the joint epoch the result is (select_epoch) --------------------------------------------------
def test_view_agreement_keeps_the_most_agreeing_healthy_epoch_and_ends_on_it(tmp_path):
    torch.manual_seed(0)
    model = DACModel(DACAutoencoder(1, 8, 8, n_clusters=3, head_hidden=4))
    phase = PairwisePhase(AEDACParams(select_epoch="view_agreement"))
    assert phase.agreement_view is auto_augment  # the training's second view
    clean = torch.tensor([0, 0, 1, 1, 2, 2])
    epochs = [  # the view's labels after epochs 1..4
        torch.tensor([0, 0, 1, 1, 0, 0]),  # 4 of 6 agree
        torch.tensor([0, 0, 0, 0, 0, 0]),  # epoch 2 is degenerate (its clean labels below): not kept
        torch.tensor([0, 0, 1, 1, 2, 0]),  # 5 of 6: the best healthy one
        torch.tensor([1, 0, 1, 2, 2, 0]),  # 3 of 6
    ]
    states = {}
    for epoch, view in enumerate(epochs, start=1):
        with torch.no_grad():
            for weight in model.parameters():
                weight.add_(torch.randn_like(weight))  # each epoch's model differs
        phase.epochs_done = epoch
        labels = torch.zeros(6, dtype=torch.long) if epoch == 2 else clean
        phase._consider(model, labels, view, 3)
        states[epoch] = {k: v.clone() for k, v in model.state_dict().items()}
        kept = {1: 1, 2: 1, 3: 3, 4: 3}[epoch]
        assert phase.epoch_logs()["selected_epoch"] == kept
    assert phase.agreement == pytest.approx(0.5) and phase.best["agreement"] == pytest.approx(5 / 6)
    # The kept copy travels in a checkpoint (loaded without unpickling objects) and ends a resumed run.
    save_checkpoint({"phase_state": phase.state_dict()}, tmp_path / "ckpt.pt")
    resumed = PairwisePhase(AEDACParams(select_epoch="view_agreement"))
    resumed.load_state_dict(load_checkpoint(tmp_path / "ckpt.pt")["phase_state"])
    assert (resumed.best["epoch"], resumed.epochs_done, resumed.epoch_logs()["selected_epoch"]) == (3, 4, 3)
    other = DACModel(DACAutoencoder(1, 8, 8, n_clusters=3, head_hidden=4))
    resumed.end(other, None, SimpleNamespace(guard=SimpleNamespace(restored=None)))
    assert all(torch.equal(v, states[3][k]) for k, v in other.state_dict().items())
    # The guard restored an earlier state: its choice stands.
    guard_restored = SimpleNamespace(guard=SimpleNamespace(restored={"phase": phase.name, "epoch": 2}))
    phase.end(model, None, guard_restored)
    assert all(torch.equal(v, states[4][k]) for k, v in model.state_dict().items())
    phase.end(model, None, SimpleNamespace(guard=SimpleNamespace(restored=None)))
    assert all(torch.equal(v, states[3][k]) for k, v in model.state_dict().items())


def test_select_last_measures_nothing_and_one_view_training_still_measures_on_the_auto_copy():
    assert get_method("ae_dac").defaults["select_epoch"] == "view_agreement"
    assert get_method("ae_dac").validate({"variant": "paper"})["select_epoch"] == "last"
    assert PairwisePhase(AEDACParams(select_epoch="last")).agreement_view is None
    agreeing = {"select_epoch": "view_agreement"}
    assert PairwisePhase(AEDACParams(augmentation="none", **agreeing)).agreement_view is auto_augment
    assert PairwisePhase(AEDACParams(augmentation="photos", **agreeing)).agreement_view is photo_augment

