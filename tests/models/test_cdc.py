"""CDC (docs/methods.md#cdc): every loss term against a hand computation, where gradients flow and where
they are stopped, and the params. Training end to end: test_cdc_dccf_training.py."""
import math

import numpy as np
import pytest
import torch

from deepclust.models import InvalidParams, get_method
from deepclust.models.losses import kl_divergence, target_distribution
from deepclust.models.methods.cdc import (affinity_loss, correlation_loss, embedding_target, pair_kl,
                                          pairwise_sq_dist, pairwise_t, sharpen_pairs)

SMALL = {"hidden_dims": [32, 32], "embedding_dim": 5}


# -- hand computations (explicit loops over the batch) -------------------------------------------
def hand_pairwise(a, norm):
    b = len(a)
    ker = np.zeros((b, b))
    for i in range(b):
        for j in range(b):
            d2 = sum((a[i, k] - a[j, k]) ** 2 for k in range(a.shape[1]))
            ker[i, j] = 1.0 / (1.0 + d2)
    c = np.zeros((b, b))
    if norm == "row":
        for i in range(b):
            c[i] = ker[i] / sum(ker[i])
        return np.clip(c, 1e-10, 1.0)
    total = sum(ker[i, j] for i in range(b) for j in range(b) if i != j)
    for i in range(b):
        for j in range(b):
            c[i, j] = 0.0 if i == j else ker[i, j] / total
    return c


def hand_sharpen(c, norm):
    b = len(c)
    f = [sum(c[i, j] for i in range(b)) for j in range(b)]
    w = np.array([[c[i, j] ** 2 / f[j] for j in range(b)] for i in range(b)])
    s = np.array([w[i] / w[i].sum() for i in range(b)])
    if norm == "global":
        np.fill_diagonal(s, 0.0)
        s = s / s.sum()
    return s


def hand_kl(p, r, norm):
    b = len(p)
    if norm == "row":  # Keras kld: clip to [1e-7, 1], sum over the row, mean over rows
        p, r = np.clip(p, 1e-7, 1), np.clip(r, 1e-7, 1)
        return sum(sum(p[i, j] * math.log(p[i, j] / r[i, j]) for j in range(b)) for i in range(b)) / b
    return sum(p[i, j] * math.log(p[i, j] / r[i, j]) for i in range(b) for j in range(b) if i != j)


RNG = np.random.default_rng(0)
Z = RNG.normal(size=(5, 3))
X = RNG.uniform(size=(5, 8))
Q = RNG.dirichlet(np.ones(4), size=5)


def t(a, grad=False):
    return torch.tensor(a, dtype=torch.float64, requires_grad=grad)


# -- the pairwise distributions ------------------------------------------------------------------
def test_pairwise_sq_dist_is_exact_with_zero_diagonal():
    d = pairwise_sq_dist(t(X)).numpy()
    assert (np.diag(d) == 0).all()
    np.testing.assert_allclose(d[1, 3], ((X[1] - X[3]) ** 2).sum(), rtol=1e-12)


@pytest.mark.parametrize("norm", ["row", "global"])
def test_pairwise_t_matches_hand(norm):
    c = pairwise_t(t(Z), 1.0, norm).numpy()
    np.testing.assert_allclose(c, hand_pairwise(Z, norm), rtol=1e-12)
    if norm == "row":  # each row a distribution over the batch, itself included
        np.testing.assert_allclose(c.sum(1), 1.0)
        assert (np.diag(c) >= c.max(1) - 1e-15).all()
    else:  # one joint distribution over the pairs k != l
        assert (np.diag(c) == 0).all() and c.sum() == pytest.approx(1.0)


def test_pairwise_row_clips_negligible_pairs_to_1e_10():
    far = np.array([[0.0, 0.0], [1e6, 0.0]])  # kernel 1/(1+1e12): far below the clip
    c = pairwise_t(t(far)).numpy()
    assert c[0, 1] == 1e-10 and c[1, 0] == 1e-10
    assert c[0, 0] == pytest.approx(1.0)


@pytest.mark.parametrize("norm", ["row", "global"])
def test_sharpen_pairs_matches_hand(norm):
    c = hand_pairwise(Z, norm)
    np.testing.assert_allclose(sharpen_pairs(t(c), norm).numpy(), hand_sharpen(c, norm), rtol=1e-12)


def test_sharpen_rows_is_the_dec_target():
    c = pairwise_t(t(Z))
    torch.testing.assert_close(sharpen_pairs(c, "row"), target_distribution(c))


# -- the loss terms ------------------------------------------------------------------------------
def test_correlation_loss_code_matches_hand():
    # L_cr(Z,X) = KLrow( sharpen(C(Z)) || C(X) ): the code sharpens the embedding side.
    expected = hand_kl(hand_sharpen(hand_pairwise(Z, "row"), "row"), hand_pairwise(X, "row"), "row")
    got = correlation_loss(embedding_target(t(Z)), t(X))
    assert got.item() == pytest.approx(expected, rel=1e-10)


def test_correlation_loss_paper_matches_hand():
    # eq. 6: KL(C_Z || C_X) with eq. 5's global normalisation, no sharpening.
    expected = hand_kl(hand_pairwise(Z, "global"), hand_pairwise(X, "global"), "global")
    got = correlation_loss(embedding_target(t(Z), norm="global", sharpen=False), t(X), norm="global")
    assert got.item() == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("norm", ["row", "global"])
def test_affinity_loss_matches_hand(norm):
    # L_a = KL( sharpen(C(Q)) || C(Z) ).
    expected = hand_kl(hand_sharpen(hand_pairwise(Q, norm), norm), hand_pairwise(Z, norm), norm)
    assert affinity_loss(t(Q), t(Z), norm=norm).item() == pytest.approx(expected, rel=1e-10)


def test_row_kl_uses_keras_clipping():
    p = np.array([[1.0, 0.0], [0.5, 0.5]])
    r = np.array([[0.5, 0.5], [1e-12, 1.0]])
    assert pair_kl(t(p), t(r)).item() == pytest.approx(hand_kl(p, r, "row"), rel=1e-10)


def test_a_batch_of_one_gives_zero_losses():
    for norm in ("row", "global"):
        one = t(Z[:1])
        assert correlation_loss(embedding_target(one, norm=norm, sharpen=norm == "row"), t(X[:1]), norm=norm) == 0
        assert affinity_loss(t(Q[:1]), one, norm=norm) == 0


# -- gradients -----------------------------------------------------------------------------------
def test_correlation_gradient_flows_through_the_sharpened_target():
    # docs/methods.md#cdc, departure 3: no stop-gradient on sharpen(C(Z)). Since C(X) is a constant, every bit of
    # L_cr(Z,X)'s gradient comes through the target; gradcheck verifies it against finite
    # differences of the whole expression.
    z = t(Z, grad=True)
    f = lambda z: correlation_loss(embedding_target(z), t(X))  # noqa: E731
    assert torch.autograd.gradcheck(f, (z,))
    (g,) = torch.autograd.grad(f(z), z)
    assert g.abs().max() > 1e-4
    detached = correlation_loss(embedding_target(z).detach(), t(X))
    assert not detached.requires_grad


def test_affinity_gradient_reaches_both_q_and_z():
    q, z = t(Q, grad=True), t(Z, grad=True)
    assert torch.autograd.gradcheck(lambda q, z: affinity_loss(q, z), (q, z))
    gq, gz = torch.autograd.grad(affinity_loss(q, z), (q, z))
    assert gq.abs().max() > 1e-4 and gz.abs().max() > 1e-4


def make_method(**params):
    info = get_method("cdc")
    method = info.cls(info.cls.parse({**SMALL, **params}), 4, 0)
    torch.manual_seed(0)
    model = method.build_model((20,)).double()
    with torch.no_grad():
        model.centers.normal_()
    x = torch.randn(16, 20, dtype=torch.float64)
    target = torch.softmax(torch.randn(16, 4, dtype=torch.float64), 1)
    return method, model, x, target


def grads(value, params):
    return torch.autograd.grad(value, params, retain_graph=True, allow_unused=True)


def assert_grads_equal(got, expected):
    for g, e in zip(got, expected):
        e = torch.zeros_like(g) if e is None else e
        torch.testing.assert_close(g, e, rtol=1e-9, atol=1e-12)


def test_code_variant_gradients():
    method, model, x, target = make_method(corr_weight=0.3, affinity_weight=0.75)
    enc, dec = list(model.autoencoder.encoder.parameters()), list(model.autoencoder.decoder.parameters())
    terms = method.batch_loss(model, x, target)
    assert set(terms) == {"loss", "kl", "affinity", "corr_embedding", "corr_output"}
    assert terms["loss"].item() == pytest.approx(
        (terms["kl"] + 0.75 * terms["affinity"] + 0.3 * (terms["corr_embedding"] + terms["corr_output"])).item())
    # The decoder gets only β·∂L_cr(Z,X')/∂W': there is no reconstruction term in fine-tuning.
    assert_grads_equal(grads(terms["loss"], dec), [0.3 * g for g in grads(terms["corr_output"], dec)])
    assert max(g.abs().max() for g in grads(terms["corr_output"], dec)) > 0
    # The centres get L_c + η·L_a, the affinity part through the (not detached) sharpened C(Q).
    (g_mu,) = grads(terms["loss"], [model.centers])
    (g_kl,), (g_aff,) = grads(terms["kl"], [model.centers]), grads(terms["affinity"], [model.centers])
    torch.testing.assert_close(g_mu, g_kl + 0.75 * g_aff)
    assert g_aff.abs().max() > 0
    # The encoder gets every term.
    for name in ("kl", "affinity", "corr_embedding", "corr_output"):
        assert max(g.abs().max() for g in grads(terms[name], enc)) > 0, name


def test_paper_variant_gradients_follow_algorithm_1():
    lam, beta, eta = 0.2, 0.3, 0.75
    method, model, x, target = make_method(variant="paper", pretrain_corr_weight=lam, corr_weight=beta,
                                           affinity_weight=eta)
    ae = model.autoencoder
    enc, dec = list(ae.encoder.parameters()), list(ae.decoder.parameters())
    terms = method.batch_loss(model, x, target)
    assert {"reconstruction", "kl", "affinity", "corr_embedding", "corr_output"} <= set(terms)

    # Reference objectives written out with a plain forward pass.
    z = ae.encode(x)
    x_hat = ae.decode(z)
    q = model.soft_assign(z)
    cz = embedding_target(z, norm="global", sharpen=False)
    l_c = kl_divergence(target, q, "batchmean")
    l_dc = (l_c + eta * affinity_loss(q, z, norm="global")
            + beta * (correlation_loss(cz, x, norm="global") + correlation_loss(cz, x_hat, norm="global")))
    z_fixed = z.detach()
    x_hat_fixed = ae.decode(z_fixed)
    l_ae = (torch.nn.functional.mse_loss(x_hat_fixed, x)
            + lam * correlation_loss(embedding_target(z_fixed, norm="global", sharpen=False), x_hat_fixed,
                                     norm="global"))
    assert_grads_equal(grads(terms["loss"], dec), grads(l_ae, dec))      # W' on L_AE only
    assert_grads_equal(grads(terms["loss"], enc), grads(l_dc, enc))      # W on L_DC only
    (g_mu,) = grads(terms["loss"], [model.centers])                      # μ on L_c + η·L_a
    (g_ref,) = grads(l_c + eta * affinity_loss(q, z, norm="global"), [model.centers])
    torch.testing.assert_close(g_mu, g_ref)


def test_pretrain_objective_is_mse_plus_weighted_correlations():
    method, model, x, _ = make_method(pretrain_corr_weight=0.5)
    terms = method.pretrain_objective(model.autoencoder, x)
    z, x_hat = model.autoencoder(x)
    target = embedding_target(z)
    assert terms["reconstruction"].item() == pytest.approx(((x_hat - x) ** 2).mean().item())
    assert terms["corr_embedding"].item() == pytest.approx(correlation_loss(target, x).item())
    assert terms["corr_output"].item() == pytest.approx(correlation_loss(target, x_hat).item())
    assert terms["loss"].item() == pytest.approx(
        (terms["reconstruction"] + 0.5 * (terms["corr_embedding"] + terms["corr_output"])).item())
    dec = list(model.autoencoder.decoder.parameters())
    assert max(g.abs().max() for g in grads(terms["corr_output"], dec)) > 0


# -- params --------------------------------------------------------------------------------------
def test_defaults_and_schema_are_the_codes():
    info = get_method("cdc")
    d = info.defaults
    assert (d["variant"], d["hidden_dims"], d["embedding_dim"], d["init"]) == ("code", [500, 500, 2000], 10,
                                                                             "glorot_uniform")
    assert (d["pretrain_optimizer"], d["pretrain_epochs"], d["pretrain_batch_size"]) == ("adam", 30, 64)
    assert (d["optimizer"], d["lr"], d["momentum"], d["batch_size"]) == ("sgd", 0.01, 0.9, 64)
    assert (d["maxiter"], d["update_interval"], d["tol"]) == (5000, 50, None)
    assert (d["pretrain_corr_weight"], d["corr_weight"], d["affinity_weight"]) == (1e-3, 1e-3, 0.75)
    props = info.params_schema["properties"]
    assert props["affinity_weight"]["minimum"] == 0 and "η" in props["affinity_weight"]["description"]
    assert set(props["variant"]["enum"]) == {"code", "paper"}


@pytest.mark.parametrize("params, bad", [
    ({"lambda": 0.1}, "lambda"),
    ({"variant": "both"}, "variant"),
    ({"corr_weight": -1}, "corr_weight"),
    ({"maxiter": 0}, "maxiter"),
])
def test_invalid_params_are_refused_by_name(params, bad):
    with pytest.raises(InvalidParams) as exc:
        get_method("cdc").validate(params)
    assert [e["param"] for e in exc.value.errors] == [bad]
    if bad == "lambda":
        assert "unknown parameter" in exc.value.errors[0]["message"]
