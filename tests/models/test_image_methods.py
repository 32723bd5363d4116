"""DECS, AE+DAC and DCEC as methods: params, input checks, and short runs on generated shapes.

Each method is fitted once per module on 180 generated 16×16 images of three shapes (square,
cross, ring) and must separate them well above chance (1/3): DECS and DCEC with ACC ≥ 0.8,
AE+DAC ≥ 0.7. Runs this small are volatile for DECS and AE+DAC (other seeds end anywhere from
0.5 to 1.0: DECS's stability loss and DAC's tightening thresholds can merge clusters), so the
seeds are fixed. Pretraining gets enough steps for batch-norm's running statistics (Keras
momentum 0.99, starting at mean 0 and variance 1) to settle: with fewer, the eval-mode embeddings
k-means and the labels see drift from the training-mode ones the clustering loss sees.
"""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from deepclust.models import Callback, DeepClusterer, check_sample_shape, get_method, list_methods
from deepclust.models.methods.ae_dac import AEDAC, Thresholds
from deepclust.models.metrics import clustering_report

sys.path.insert(0, str(Path(__file__).parent))
from synthetic_images import shape_images  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny networks run far faster on one thread than contending for two."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def shapes():
    return shape_images(n_per_class=60, size=16, jitter=0.5, seed=0)


def acc(y, labels):
    return clustering_report(np.zeros((len(labels), 2)), labels, y)["external"]["acc"]


class Labels(Callback):
    def __init__(self):
        self.reports = []

    def on_labels(self, phase, iteration, labels, label_change):
        self.reports.append((phase, iteration, labels.copy(), label_change))


def fit(method, X, seed=0, **params):
    labels = Labels()
    est = DeepClusterer(method, 3, random_state=seed, **params).fit(X, callbacks=[labels])
    return est, labels.reports


# -- registry, params, input checks ------------------------------------------------------------------
def test_image_methods_are_registered_for_images_only():
    kinds = {m.name: m.input_kinds for m in list_methods()}
    assert kinds["decs"] == kinds["ae_dac"] == kinds["dcec"] == ("images",)
    assert "images" in kinds["dec"] and "images" in kinds["idec"] and "features" in kinds["dec"]


def test_decs_defaults_follow_the_code_and_the_paper_variant_its_text():
    code = get_method("decs").defaults
    assert (code["variant"], code["alpha"], code["lam"], code["maxiter"]) == ("code", 0.5, 0.4, 20_000)
    assert (code["pretrain_epochs"], code["batch_size"], code["pretrain_batch_size"], code["lr"]) == (500, 256, 256, 1e-3)
    assert code["augment"] and code["pretrain_augment"] and code["filters"] == [32, 64, 128, 256]
    assert code["embedding_dim"] == 10 and code["update_interval"] == 30
    paper = get_method("decs").validate({"variant": "paper"})
    assert (paper["alpha"], paper["lam"], paper["maxiter"]) == (1.0, 0.8, 10_000)
    # What is given explicitly wins over the variant's value.
    mixed = get_method("decs").validate({"variant": "paper", "maxiter": 500, "alpha": 0.7})
    assert (mixed["alpha"], mixed["lam"], mixed["maxiter"]) == (0.7, 0.8, 500)
    assert get_method("decs").validate(paper) == paper  # the filled-in params validate to themselves


def test_ae_dac_and_dcec_defaults():
    dac = get_method("ae_dac").defaults
    assert (dac["beta"], dac["batch_size"], dac["xi_lr"]) == (0.3, 128, 0.005)
    assert (dac["optimizer"], dac["lr"], dac["augmentation"], dac["upper_floor"]) == ("rmsprop", 1e-3, "auto", 0.7)
    assert (dac["alpha"], dac["pretrain_epochs"]) == (0.5, 100)
    assert (dac["pair_reduction"], dac["recon_reduction"], dac["layout"]) == ("all_pairs", "mean", "auto")
    dcec = get_method("dcec").defaults
    assert dcec["filters"] == [32, 64, 128] and dcec["embedding_dim"] == 10
    assert (dcec["gamma"], dcec["update_interval"], dcec["tol"], dcec["maxiter"]) == (0.1, 140, 0.001, 20_000)
    assert (dcec["optimizer"], dcec["lr"], dcec["pretrain_epochs"], dcec["batch_size"]) == ("adam", 1e-3, 200, 256)


@pytest.mark.parametrize("method,shape,message", [
    ("decs", (1, 55, 55), r"DECS .*got 55×55"),
    ("dcec", (1, 10, 10), r"DCEC .*multiple of 4 from 8 up.*got 10×10"),
    ("ae_dac", (3, 6, 6), r"at least 8; got 6×6"),
    ("decs", (256,), r"method 'decs' does not accept features; it takes images"),
    ("ae_dac", (784,), r"method 'ae_dac' does not accept features"),
])
def test_check_sample_shape_names_what_the_method_takes(method, shape, message):
    with pytest.raises(ValueError, match=message):
        check_sample_shape(method, shape)


@pytest.mark.parametrize("method,shape,params", [
    ("decs", (1, 16, 16), None), ("decs", (3, 28, 28), {"variant": "paper"}), ("dcec", (1, 28, 28), None),
    ("ae_dac", (3, 32, 32), None), ("ae_dac", (3, 96, 96), {"layout": "stl10"}),
    ("dec", (1, 55, 55), None), ("kmeans", (4,), None),
])
def test_check_sample_shape_accepts_what_the_method_takes(method, shape, params):
    check_sample_shape(method, shape, params)


def test_fit_refuses_a_size_the_network_cannot_take():
    X = np.random.default_rng(0).random((12, 1, 20, 20), dtype=np.float32)
    with pytest.raises(ValueError, match=r"multiple of 8, or 4 more .*got 20×20"):
        DeepClusterer("decs", 2, random_state=0, pretrain_epochs=1).fit(X)


def test_ae_dac_layout_auto_takes_the_stl10_encoder_from_96_px():
    method = AEDAC(AEDAC.parse({}), 10, 0)
    assert method.build_model((3, 96, 96)).spec["autoencoder"]["layout"] == "stl10"
    assert method.build_model((3, 32, 32)).spec["autoencoder"]["layout"] == "table3"
    assert AEDAC(AEDAC.parse({"layout": "table3"}), 10, 0).build_model((3, 96, 96)).autoencoder.embedding_dim == 6 * 6 * 64


# -- DECS ------------------------------------------------------------------------------------------
DECS_RUN = {"filters": [8, 8, 16, 16], "embedding_dim": 10, "pretrain_epochs": 60, "pretrain_batch_size": 16,
            "maxiter": 30, "batch_size": 60, "update_interval": 10, "kmeans_n_init": 3}


@pytest.fixture(scope="module")
def decs_run(shapes):
    X, _ = shapes
    return fit("decs", X, seed=1, **DECS_RUN)


def test_decs_separates_the_shapes(decs_run, shapes):
    est, reports = decs_run
    _, y = shapes
    assert acc(y, est.labels_) >= 0.8
    assert est.cluster_centers_.shape == (3, 10) and est.transform(shapes[0]).shape == (180, 10)


def test_decs_reports_labels_every_interval_and_logs_the_threshold(decs_run):
    est, reports = decs_run
    assert [(phase, it) for phase, it, _, _ in reports] == [("init", 0), ("finetune", 0), ("finetune", 10),
                                                              ("finetune", 20)]
    finetune = [h for h in est.history_ if h["phase"] == "finetune"]
    assert len(finetune) == 10  # 30 iterations of 3 sequential batches per pass
    assert all(0 < h["threshold"] < 1 and 0 <= h["loss"] <= 1 for h in finetune)
    assert len([h for h in est.history_ if h["phase"] == "pretrain"]) == 60


def test_decs_trains_the_encoder_and_centres_but_not_the_decoder(decs_run):
    est, _ = decs_run
    pretrained = est.pretrained_state_
    state = est.model_.autoencoder.state_dict()
    for name, value in state.items():
        if name.startswith("decoder"):
            assert torch.equal(value, pretrained[name]), name
    assert not torch.equal(state["embedding.weight"], pretrained["embedding.weight"])
    # One training-mode forward per step moves the running statistics (the Otsu pass is in eval mode):
    # 11 pretraining steps per epoch (180 // 16, the last short batch dropped) and 30 clustering steps.
    bn = est.model_.autoencoder.encoder_conv[2]
    assert isinstance(bn, torch.nn.BatchNorm2d) and int(bn.num_batches_tracked) == 60 * 11 + 30


def test_decs_pretraining_augments_only_when_asked(shapes):
    X, _ = shapes
    tiny = {"filters": [4, 4, 8, 8], "embedding_dim": 4, "pretrain_epochs": 2, "pretrain_batch_size": 32,
            "maxiter": 1, "batch_size": 32, "kmeans_n_init": 1}
    on, _ = fit("decs", X[:64], **tiny)
    off, _ = fit("decs", X[:64], **tiny, pretrain_augment=False)
    again, _ = fit("decs", X[:64], **tiny)
    first = [h["loss"] for h in on.history_ if h["phase"] == "pretrain"]
    assert first == [h["loss"] for h in again.history_ if h["phase"] == "pretrain"]  # seeded per step
    assert first != [h["loss"] for h in off.history_ if h["phase"] == "pretrain"]


def test_decs_paper_variant_runs(shapes):
    X, _ = shapes
    est, _ = fit("decs", X[:64], variant="paper", filters=[4, 4, 8, 8], embedding_dim=4, pretrain_epochs=1,
                 pretrain_batch_size=32, maxiter=4, batch_size=32, kmeans_n_init=1)
    assert est.params_["alpha"] == 1.0 and est.model_.alpha == 1.0 and est.params_["lam"] == 0.8
    assert all(np.isfinite(h["loss"]) for h in est.history_)


# -- AE+DAC ----------------------------------------------------------------------------------------
# The paper's joint phase (one view, Adam) at a faster rate: on 180 images of three shapes the
# defaults' second view and RMSProp 1e-3 empty a cluster within a few epochs (the guard then ends
# the phase), so this run checks the schedule and the head on the paper's path; the two views
# have tests of their own (test_ae_dac.py).
DAC_RUN = {"variant": "paper", "pretrain_epochs": 20, "pretrain_batch_size": 16, "batch_size": 32, "lr": 1e-3,
           "xi_lr": 0.02}


@pytest.fixture(scope="module")
def dac_run(shapes):
    X, _ = shapes
    return fit("ae_dac", X, seed=0, **DAC_RUN)


def test_ae_dac_separates_the_shapes(dac_run, shapes):
    est, _ = dac_run
    _, y = shapes
    assert acc(y, est.labels_) >= 0.7


def test_ae_dac_raises_xi_every_epoch_until_the_thresholds_meet(dac_run):
    est, reports = dac_run
    finetune = [h for h in est.history_ if h["phase"] == "finetune"]
    # ξ += 1.1·0.02 per epoch; u(ξ) ≤ l(ξ) from ξ ≥ 0.45 / 1.1, after 19 epochs.
    assert Thresholds(eta=0.02).epochs_to_stop() == 19 == len(finetune)
    assert [h["xi"] for h in finetune] == pytest.approx([0.022 * (e + 1) for e in range(19)])
    assert 0.95 - finetune[-1]["xi"] <= 0.5 + 0.1 * finetune[-1]["xi"] < 0.95 - finetune[-2]["xi"]
    # Labels from the head after every epoch (6 steps of 32 out of 180, shuffled, the last one short).
    assert [it for phase, it, _, _ in reports] == [6 * (e + 1) for e in range(19)]
    assert all(0 <= h["positive_pairs"] <= 1 and 0 <= h["negative_pairs"] <= 1 for h in finetune)
    # As u falls and l rises, more pairs are selected.
    assert finetune[-1]["positive_pairs"] + finetune[-1]["negative_pairs"] > \
        finetune[0]["positive_pairs"] + finetune[0]["negative_pairs"]


def test_ae_dac_predicts_with_its_head_and_centres_are_mean_codes(dac_run, shapes):
    est, _ = dac_run
    X, _ = shapes
    model = est.model_.eval()
    with torch.no_grad():
        probs = model.autoencoder.cluster_probs(model.autoencoder.encode(torch.as_tensor(X)))
    np.testing.assert_allclose(est.predict_proba(X), probs.numpy(), rtol=1e-5, atol=1e-6)
    codes = est.transform(X)
    assert codes.shape == (180, 64)  # 16 → 8 → 4 → 2 → 1: 1×1×64
    for k in range(3):
        np.testing.assert_allclose(est.cluster_centers_[k], codes[est.labels_ == k].mean(0), rtol=1e-4, atol=1e-5)


def test_ae_dac_trains_the_decoder_jointly(dac_run):
    est, _ = dac_run
    state, pretrained = est.model_.autoencoder.state_dict(), est.pretrained_state_
    assert not torch.equal(state["decoder_conv.0.weight"], pretrained["decoder_conv.0.weight"])
    assert not torch.equal(state["head.0.weight"], pretrained["head.0.weight"])


def test_ae_dac_paper_reconstruction_and_selected_pairs_run(shapes):
    X, _ = shapes
    est, _ = fit("ae_dac", X[:48], pretrain_epochs=1, batch_size=16, xi_lr=0.2, recon_reduction="paper",
                 pair_reduction="selected")
    rows = [h for h in est.history_ if h["phase"] == "finetune"]
    assert len(rows) == 2 and all(np.isfinite(h["loss"]) for h in rows)
    # ½·Σ over 256 pixels is far above the mean-over-pixels reconstruction of the default.
    assert rows[0]["reconstruction"] > 1.0


# -- DCEC and the dense baselines on images ------------------------------------------------------------
@pytest.fixture(scope="module")
def dcec_run(shapes):
    X, _ = shapes
    return fit("dcec", X, filters=[8, 16, 16], pretrain_epochs=20, pretrain_batch_size=16, maxiter=60,
               update_interval=10, batch_size=32, kmeans_n_init=5)


def test_dcec_separates_the_shapes_and_keeps_its_decoder(dcec_run, shapes):
    est, reports = dcec_run
    _, y = shapes
    assert acc(y, est.labels_) >= 0.9
    finetune = [h for h in est.history_ if h["phase"] == "finetune"]
    assert finetune and all({"reconstruction", "kl"} <= set(h) for h in finetune)
    state, pretrained = est.model_.autoencoder.state_dict(), est.pretrained_state_
    assert not torch.equal(state["decoder_conv.0.weight"], pretrained["decoder_conv.0.weight"])
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in est.model_.modules())


@pytest.mark.parametrize("method", ["dec", "idec"])
def test_dense_baselines_run_on_flattened_images(method, shapes):
    X, y = shapes
    est, _ = fit(method, X, hidden_dims=[64, 32], embedding_dim=8, pretrain_epochs=15, pretrain_batch_size=16,
                 maxiter=60, update_interval=10, batch_size=32, kmeans_n_init=5)
    assert est.sample_shape_ == (1, 16, 16) and est.n_features_in_ == 256
    assert acc(y, est.labels_) > 0.5
    np.testing.assert_array_equal(est.predict(X.reshape(len(X), -1)), est.labels_)


@pytest.mark.parametrize("method,params", [
    ("decs", {"filters": [4, 4, 8, 8], "embedding_dim": 4, "pretrain_epochs": 1, "pretrain_batch_size": 16,
              "maxiter": 4, "batch_size": 16, "kmeans_n_init": 1}),
    ("ae_dac", {"pretrain_epochs": 1, "pretrain_batch_size": 16, "batch_size": 16, "xi_lr": 0.3}),
])
def test_a_last_batch_of_one_sample_trains(method, params):
    """17 samples in batches of 16: every pass ends on a batch of one (N % batch_size == 1)."""
    X = np.random.default_rng(0).random((17, 1, 28, 28), dtype=np.float32)
    est = DeepClusterer(method, 2, random_state=0, **params).fit(X)
    assert all(np.isfinite(h["loss"]) for h in est.history_ if h.get("loss") is not None)
    assert est.labels_.shape == (17,)


def test_the_result_is_exactly_the_model_after_the_selected_epoch():
    """select_epoch="view_agreement" ends on the epoch it kept: the same weights and labels as the
    same run stopped after that epoch."""
    X, _ = shape_images(n_per_class=40, size=16, jitter=0.5, seed=0)
    params = {"pretrain_epochs": 10, "pretrain_batch_size": 16, "batch_size": 32, "xi_lr": 0.05}
    selected = DeepClusterer("ae_dac", 3, random_state=2, guard="off", select_epoch="view_agreement",
                             **params).fit(X)
    joint = [h for h in selected.history_ if h["phase"] == "finetune"]
    assert len(joint) == 8 and all(0.0 <= h["view_agreement"] <= 1.0 for h in joint)
    epoch = joint[-1]["selected_epoch"]
    assert epoch < len(joint)  # on this run an earlier epoch is kept (later ones agree less or degenerate)
    assert all(h["selected_epoch"] == epoch for h in joint[epoch - 1:])  # kept from when it happened
    cut = DeepClusterer("ae_dac", 3, random_state=2, guard="off", max_epochs=epoch, **params).fit(X)
    np.testing.assert_array_equal(selected.labels_, cut.labels_)
    weights = cut.model_.state_dict()
    assert all(torch.equal(v, weights[k]) for k, v in selected.model_.state_dict().items())
