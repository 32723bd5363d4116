"""The GPU speed settings (models/training/accel.py): each behind a setting, and on the CPU
none of them changes a bit of any result (benchmarks/bit_identity.py checks every method with
all of them asked for; this checks a deep method per kind of step here)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import make_blobs

from deepclust.models import DeepClusterer, tiny_preset
from deepclust.models.training import accel
from deepclust.models.training.optim import make_optimizer

ALL_ON = {"DEEPCLUST_TF32": "on", "DEEPCLUST_ADAM": "fused", "DEEPCLUST_AUTOCAST": "bf16",
          "DEEPCLUST_CAPTURE": "cudagraphs"}


def test_cpu_resolves_to_all_off_whatever_is_asked(monkeypatch):
    for name, value in ALL_ON.items():
        monkeypatch.setenv(name, value)
    assert accel.resolve("cpu") == accel.Accel() and not accel.resolve("cpu").any


def test_cuda_defaults_environment_and_override(monkeypatch):
    cuda = torch.device("cuda", 0)
    assert accel.resolve(cuda) == accel.Accel(tf32=True, adam="fused", autocast="off", capture="off")
    for name, value in ALL_ON.items():
        monkeypatch.setenv(name, value)
    assert accel.resolve(cuda) == accel.Accel(tf32=True, adam="fused", autocast="bf16", capture="cudagraphs")
    with accel.override(tf32="off", adam="single", autocast="off", capture="compile"):
        assert accel.resolve(cuda) == accel.Accel(tf32=False, adam="single", autocast="off", capture="compile")
    assert accel.resolve(cuda).capture == "cudagraphs"  # the override ended with its block
    monkeypatch.setenv("DEEPCLUST_CAPTURE", "always")
    with pytest.raises(ValueError, match="DEEPCLUST_CAPTURE"):
        accel.resolve(cuda)
    with pytest.raises(ValueError, match="speed setting"):
        with accel.override(tf32="maybe"):
            pass


def test_adam_is_torchs_default_on_the_cpu(monkeypatch):
    monkeypatch.setenv("DEEPCLUST_ADAM", "fused")
    layer = torch.nn.Linear(3, 2)
    opt = make_optimizer(layer.parameters(), "adam", 1e-3)
    assert not opt.defaults.get("fused") and not opt.defaults.get("foreach")
    assert accel.adam_options(list(layer.parameters())) == {}


def test_autocast_wraps_only_the_autoencoder_passes_and_is_undone():
    from deepclust.models.networks.mlp import ClusterModel, DenseAutoencoder

    model = ClusterModel(DenseAutoencoder(6, [8], 3), 2, 3)
    x = torch.randn(5, 6)
    with accel.autocast_autoencoder(model.autoencoder, torch.device("cpu")):
        z, x_hat = model.autoencoder(x)
        q = model(x)
        assert z.dtype == x_hat.dtype == q.dtype == torch.float32  # float32 out of bf16 passes
        assert not torch.equal(z, model.autoencoder.encoder(x))  # it did run in bf16
    assert "encode" not in vars(model.autoencoder) and torch.equal(model.autoencoder.encode(x),
                                                                     model.autoencoder.encoder(x))


def test_only_static_steps_are_compiled_and_restored():
    class P:
        static_step = True

        def step(self, model, batch):
            return {}

    class Q(P):
        static_step = False

    p, q = P(), Q()
    with accel.compiled_steps([p, q], "compile"):
        assert "step" in vars(p) and "step" not in vars(q)
    assert "step" not in vars(p)


def test_which_steps_are_static():
    from deepclust.models.methods import get_method

    def phases(method, **params):
        info = get_method(method)
        m = info.cls(info.cls.parse({**tiny_preset(method), **params}), 3, 0)
        return {type(p).__name__: getattr(p, "static_step", False) for p in m.phases(90, pretrained=False)}

    assert phases("dec") == {"PretrainPhase": True, "KMeansInitPhase": False, "TargetPhase": True}
    assert phases("idec")["TargetPhase"] and phases("dcec")["TargetPhase"]
    assert phases("cdc") == {"PretrainPhase": False, "KMeansInitPhase": False, "TargetPhase": False}
    assert not phases("dccf")["PretrainPhase"]


@pytest.mark.parametrize("method", ["idec", "dcec"])
def test_cpu_results_bit_identical_with_every_setting_asked_for(method, monkeypatch):
    torch.set_num_threads(1)
    X, _ = make_blobs(n_samples=96, n_features=64, centers=3, random_state=0)
    X = X.astype(np.float32)
    X = X.reshape(-1, 1, 8, 8) if method == "dcec" else X[:, :6]

    def fit():
        est = DeepClusterer(method, 3, random_state=0, device="cpu", **tiny_preset(method)).fit(X)
        return est.labels_, est.predict_proba(X), est.history_

    before = fit()
    for name, value in ALL_ON.items():
        monkeypatch.setenv(name, value)
    after = fit()
    assert np.array_equal(before[0], after[0]) and np.array_equal(before[1], after[1]) and before[2] == after[2]
