"""DCCF (docs/methods.md#dccf): the exact Jacobian penalty against torch's own Jacobian and a hand
computation, the focal losses by hand, where gradients go, and the params. Training end to end:
test_cdc_dccf_training.py."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from deepclust.models import InvalidParams, get_method
from deepclust.models.methods.dccf import encode_with_jacobian_norm, focal_loss


def relu_encoder(d_in=6, hidden=7, k=3, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, k)).double()


# -- the contractive penalty ---------------------------------------------------------------------
def test_exact_norm_matches_torch_jacobian():
    enc = relu_encoder()
    x = torch.randn(5, 6, dtype=torch.float64)
    h, norms = encode_with_jacobian_norm(enc, x)
    torch.testing.assert_close(h, enc(x))
    expected = [torch.autograd.functional.jacobian(enc, x[i]).pow(2).sum() for i in range(5)]
    torch.testing.assert_close(norms, torch.stack(expected), rtol=1e-12, atol=0)


def test_exact_norm_matches_hand_computation_of_a_relu_layer():
    # J(x) = W2 · diag(relu'(W1 x + b1)) · W1, summed squares by explicit loops.
    enc = relu_encoder()
    w1, b1 = enc[0].weight.detach().numpy(), enc[0].bias.detach().numpy()
    w2 = enc[2].weight.detach().numpy()
    x = np.random.default_rng(1).normal(size=(3, 6))
    _, norms = encode_with_jacobian_norm(enc, torch.tensor(x))
    for n in range(3):
        active = [1.0 if sum(w1[m, i] * x[n, i] for i in range(6)) + b1[m] > 0 else 0.0 for m in range(7)]
        total = 0.0
        for j in range(3):
            for i in range(6):
                total += sum(w2[j, m] * active[m] * w1[m, i] for m in range(7)) ** 2
        assert norms[n].item() == pytest.approx(total, rel=1e-12)


def test_exact_norm_of_a_linear_map_is_its_frobenius_norm_not_the_row_sum_shortcut():
    w = torch.tensor([[1.0, -2.0, 0.5], [3.0, 1.0, -1.0]], dtype=torch.float64)
    x = torch.randn(4, 3, dtype=torch.float64)
    _, norms = encode_with_jacobian_norm(lambda v: v @ w.T, x)
    torch.testing.assert_close(norms, torch.full((4,), 16.25, dtype=torch.float64))  # Σ w² = 16.25
    # The common shortcut autograd.grad(h, x, ones) squares the column sums of J instead: 17.25.
    assert (w.sum(0) ** 2).sum().item() == pytest.approx(17.25)


def test_exact_norm_is_differentiable_in_the_weights():
    x = torch.randn(4, 5, dtype=torch.float64)
    w1 = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    w2 = torch.randn(3, 6, dtype=torch.float64, requires_grad=True)
    penalty = lambda w1, w2: encode_with_jacobian_norm(lambda v: torch.tanh(v @ w1.T) @ w2.T, x)[1]  # noqa: E731
    assert torch.autograd.gradcheck(penalty, (w1, w2))


def test_without_grad_mode_the_norm_is_a_plain_value():
    enc = relu_encoder()
    with torch.no_grad():
        h, norms = encode_with_jacobian_norm(enc, torch.randn(4, 6, dtype=torch.float64))
    assert not h.requires_grad and not norms.requires_grad and (norms > 0).all()


def test_hutchinson_is_unbiased():
    enc = relu_encoder()
    x = torch.randn(4, 6, dtype=torch.float64)
    exact = encode_with_jacobian_norm(enc, x)[1]
    torch.manual_seed(0)
    single = torch.stack([encode_with_jacobian_norm(enc, x, estimator="hutchinson")[1] for _ in range(4000)])
    torch.testing.assert_close(single.mean(0), exact, rtol=0.05, atol=0)  # mean of 1-probe estimates
    assert single.std(0).min() > 0.05 * exact.min()  # ... each of which is noisy
    many = encode_with_jacobian_norm(enc, x, estimator="hutchinson", probes=4000)[1]
    torch.testing.assert_close(many, exact, rtol=0.05, atol=0)


# -- the focal losses ----------------------------------------------------------------------------
S = np.array([[0.7, 0.2, 0.1], [0.3, 0.3, 0.4], [0.05, 0.9, 0.05]])
T = np.array([[0.8, 0.15, 0.05], [0.6, 0.1, 0.3], [0.1, 0.85, 0.05]])  # row 1: argmax T != argmax S


def hand_focal(kind, gamma=2.0):
    total = 0.0
    for i in range(3):
        if kind == "categorical":
            total += sum(-T[i, j] * (1 - S[i, j]) ** gamma * math.log(S[i, j]) for j in range(3))
            continue
        if kind == "hard":
            c = max(range(3), key=lambda j: T[i, j])
            p_t = S[i, c]
        else:
            p_t = sum(S[i, j] * T[i, j] for j in range(3))
        total += -(1 - p_t) ** gamma * math.log(p_t)
    return total / 3


@pytest.mark.parametrize("kind", ["hard", "soft", "categorical"])
@pytest.mark.parametrize("gamma", [2.0, 0.0])
def test_focal_loss_matches_hand(kind, gamma):
    got = focal_loss(torch.tensor(S), torch.tensor(T), gamma, kind)
    assert got.item() == pytest.approx(hand_focal(kind, gamma), rel=1e-12)


def test_hard_focal_uses_the_targets_argmax_as_label():
    # Row 1's p_t is s at T's label (0), 0.3, not S's own maximum 0.4.
    row = focal_loss(torch.tensor(S[1:2]), torch.tensor(T[1:2]), 2.0, "hard").item()
    assert row == pytest.approx(-(0.7 ** 2) * math.log(0.3))


def test_focal_gradient_reaches_s_but_not_the_target():
    s = torch.tensor(S, requires_grad=True)
    t = torch.tensor(T, requires_grad=True)
    g_s, g_t = torch.autograd.grad(focal_loss(s, t), (s, t), allow_unused=True)
    assert g_t is None and g_s.abs().max() > 0


# -- the method's per-batch loss -----------------------------------------------------------------
def make_method(**params):
    info = get_method("dccf")
    method = info.cls(info.cls.parse({"hidden_dims": [32, 32], **params}), 4, 0)
    torch.manual_seed(0)
    model = method.build_model((20,)).double()
    with torch.no_grad():
        model.centers.normal_()
    x = torch.randn(16, 20, dtype=torch.float64)
    target = torch.softmax(3 * torch.randn(16, 4, dtype=torch.float64), 1)
    return method, model, x, target


def grads(value, params):
    return [torch.zeros_like(p) if g is None else g
            for p, g in zip(params, torch.autograd.grad(value, params, retain_graph=True, allow_unused=True))]


def test_batch_loss_terms_match_hand_computation():
    lam, beta = 1e-2, 0.1
    method, model, x, target = make_method(contractive_weight=lam)
    terms = method.batch_loss(model, x, target)
    assert set(terms) == {"loss", "reconstruction", "contractive", "kl", "focal"}
    ae = model.autoencoder
    z = ae.encode(x)
    assert z.shape == (16, 4)  # d' = K
    s = model.soft_assign(z).detach().numpy()
    tt = target.numpy()
    rec = ((ae.decode(z) - x) ** 2).mean().item()
    jac = sum(torch.autograd.functional.jacobian(ae.encode, x[i:i + 1]).pow(2).sum().item() for i in range(16))
    kl = sum(tt[i, j] * math.log(tt[i, j] / s[i, j]) for i in range(16) for j in range(4)) / (16 * 4)
    focal = sum(-(1 - s[i, tt[i].argmax()]) ** 2 * math.log(s[i, tt[i].argmax()]) for i in range(16)) / 16
    assert terms["reconstruction"].item() == pytest.approx(rec, rel=1e-10)
    assert terms["contractive"].item() == pytest.approx(jac, rel=1e-10)  # summed over the batch
    assert terms["kl"].item() == pytest.approx(kl, rel=1e-10)  # F.kl_div mean over B·K elements
    assert terms["focal"].item() == pytest.approx(focal, rel=1e-10)
    assert terms["loss"].item() == pytest.approx(rec + lam * jac + beta * (kl + focal), rel=1e-10)


def test_reduction_options_rescale_their_terms():
    base = make_method()
    terms = base[0].batch_loss(*base[1:])
    other = make_method(contractive_reduction="mean", kl_reduction="batchmean", reconstruction_reduction="sample_sum")
    alt = other[0].batch_loss(*other[1:])
    assert alt["contractive"].item() == pytest.approx(terms["contractive"].item() / 16, rel=1e-10)
    assert alt["kl"].item() == pytest.approx(terms["kl"].item() * 4, rel=1e-10)
    assert alt["reconstruction"].item() == pytest.approx(terms["reconstruction"].item() * 20, rel=1e-10)


def test_gradients_follow_eqs_15_to_17():
    beta = 0.1
    method, model, x, target = make_method(contractive_weight=1e-2)
    ae = model.autoencoder
    enc, dec = list(ae.encoder.parameters()), list(ae.decoder.parameters())
    terms = method.batch_loss(model, x, target)
    # μ: only β·∂L_c/∂μ (eq. 15).
    (g_mu,) = grads(terms["loss"], [model.centers])
    (g_c,) = grads(beta * (terms["kl"] + terms["focal"]), [model.centers])
    torch.testing.assert_close(g_mu, g_c)
    assert g_c.abs().max() > 0
    # Decoder: only ∂L_crl/∂W_d, i.e. the reconstruction (eq. 16).
    for g, r in zip(grads(terms["loss"], dec), grads(terms["reconstruction"], dec)):
        torch.testing.assert_close(g, r)
    # Encoder: every term (eq. 17), the contractive one through the double backward.
    for name in ("reconstruction", "contractive", "kl", "focal"):
        assert max(g.abs().max() for g in grads(terms[name], enc)) > 0, name
    expected = [a + 1e-2 * b + beta * (c + d) for a, b, c, d in zip(
        *(grads(terms[n], enc) for n in ("reconstruction", "contractive", "kl", "focal")))]
    for g, e in zip(grads(terms["loss"], enc), expected):
        torch.testing.assert_close(g, e)


@pytest.mark.parametrize("params, absent", [({"contractive_weight": 0.0}, "contractive"), ({"focal": "none"}, "focal")])
def test_ablations_drop_their_term(params, absent):
    method, model, x, target = make_method(**params)
    terms = method.batch_loss(model, x, target)
    assert absent not in terms and {"reconstruction", "kl"} <= set(terms)


# -- params --------------------------------------------------------------------------------------
def test_defaults_are_the_papers_and_the_lineages():
    d = get_method("dccf").defaults
    assert (d["hidden_dims"], d["embedding_dim"], d["init"]) == ([500, 500, 1000], None, "torch_default")
    assert (d["pretrain_epochs"], d["pretrain_optimizer"], d["pretrain_lr"], d["pretrain_batch_size"]) == (
        100, "adam", 1e-3, 256)
    assert (d["contractive_weight"], d["contractive_reduction"], d["jacobian"], d["contractive_in_pretrain"]) == (
        1e-7, "sum", "exact", False)
    assert (d["clustering_weight"], d["focal"], d["focal_gamma"], d["kl_reduction"]) == (0.1, "hard", 2.0, "mean")
    assert (d["max_epochs"], d["update_interval"], d["tol"], d["batch_size"], d["optimizer"], d["lr"]) == (
        200, 1, 0.001, 256, "adam", 1e-3)
    schema = get_method("dccf").params_schema["properties"]
    assert "λ" in schema["contractive_weight"]["description"]


@pytest.mark.parametrize("params, bad", [
    ({"gamma": 2}, "gamma"),
    ({"focal": "binary"}, "focal"),
    ({"jacobian": "rowsum"}, "jacobian"),
    ({"contractive_weight": -1e-7}, "contractive_weight"),
])
def test_invalid_params_are_refused_by_name(params, bad):
    with pytest.raises(InvalidParams) as exc:
        get_method("dccf").validate(params)
    assert [e["param"] for e in exc.value.errors] == [bad]
