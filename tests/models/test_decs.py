"""DECS' Otsu threshold, determinacy, stability and loss against computations by hand."""
import math

import numpy as np
import pytest
import torch

from deepclust.models.methods.decs import VARIANTS, determinacy, otsu_threshold, stability, stability_loss


def t64(a):
    return torch.tensor(a, dtype=torch.float64)


def hand_otsu(values, bins=1000):
    """The DECS code's Otsu, written out with loops over bins."""
    hist = [0] * bins
    for v in values:
        hist[min(int(math.floor(v * bins)), bins - 1)] += 1
    p = [h / len(values) for h in hist]
    mu_total = sum(i * p[i] for i in range(bins))
    best, best_k, omega, mu = -1.0, 0, 0.0, 0.0
    for k in range(bins):
        omega += p[k]
        mu += k * p[k]
        score = (mu_total * omega - mu) ** 2 / (omega * (1 - omega) + 1e-6)
        if score > best:
            best, best_k = score, k
    return best_k / bins


def test_otsu_two_levels_by_hand():
    # Three values in bin 200, one in bin 700. Every split between them scores
    # (325·0.75 − 150)² / (0.75·0.25 + 1e-6); splits below bin 200 or from bin 700 score 0.
    # The first best bin is 200: t = 0.2.
    q = torch.tensor([[0.2005, 0.2005], [0.2005, 0.7005]])
    assert otsu_threshold(q).item() == pytest.approx(0.2)


def test_otsu_three_levels_by_hand():
    # Bins 100, 100, 400, 900 (p = 1/4 each). Splitting after bin 100: ω=1/2, μ_k=50, μ_T=375,
    # (187.5−50)²/(0.25+1e-6) = 75624.7. Splitting after bin 400: ω=3/4, μ_k=150,
    # (281.25−150)²/(0.1875+1e-6) = 91874.5, the larger: t = 0.4.
    q = torch.tensor([[0.1005, 0.1005], [0.4005, 0.9005]])
    assert otsu_threshold(q).item() == pytest.approx(0.4)
    assert hand_otsu([0.1005, 0.1005, 0.4005, 0.9005]) == pytest.approx(0.4)


def test_otsu_matches_the_loop_on_soft_assignments():
    torch.manual_seed(0)
    for k in (2, 4, 10):
        q = torch.softmax(3 * torch.randn(64, k), dim=1)
        assert otsu_threshold(q).item() == pytest.approx(hand_otsu(q.flatten().tolist()))


def test_otsu_is_a_constant_on_the_same_device_and_dtype():
    q = torch.softmax(torch.randn(8, 3, requires_grad=True), 1)
    t = otsu_threshold(q)
    assert t.dim() == 0 and not t.requires_grad and t.dtype == q.dtype and t.device == q.device
    assert otsu_threshold(torch.tensor([[1.0, 0.0]])).item() == pytest.approx(0.0)  # 1.0 lands in the last bin


Q = [[0.7, 0.2, 0.1], [0.5, 0.25, 0.25]]
T = 0.4
# Code: |q−t|/(1−t) at or above t = 0.4, |q−t|/t below.
FQ_CODE = [[0.3 / 0.6, 0.2 / 0.4, 0.3 / 0.4], [0.1 / 0.6, 0.15 / 0.4, 0.15 / 0.4]]
# Paper (eq. 6): the squares.
FQ_PAPER = [[0.09 / 0.36, 0.04 / 0.16, 0.09 / 0.16], [0.01 / 0.36, 0.0225 / 0.16, 0.0225 / 0.16]]


def mean(xs):
    return sum(xs) / len(xs)


def pvar(xs):
    m = mean(xs)
    return sum((x - m) ** 2 for x in xs) / len(xs)


@pytest.mark.parametrize("variant,fq", [("code", FQ_CODE), ("paper", FQ_PAPER)])
def test_determinacy_by_hand(variant, fq):
    np.testing.assert_allclose(determinacy(t64(Q), t64(T), variant).numpy(), fq, rtol=1e-12)


def test_determinacy_is_zero_at_t_and_one_at_the_ends():
    for variant in VARIANTS:
        f = determinacy(t64([[0.0, 0.3, 1.0]]), 0.3, variant)
        np.testing.assert_allclose(f.numpy(), [[1.0, 0.0, 1.0]], atol=1e-12)


def test_determinacy_guards_a_zero_threshold():
    f = determinacy(t64([[0.5, 0.5]]), t64(0.0))
    assert torch.isfinite(f).all()
    np.testing.assert_allclose(f.numpy(), [[(0.5 - 1e-3) / (1 - 1e-3)] * 2])


def test_stability_by_hand():
    # Row 0 of the code's fq: mean 7/12, population variance 1/72; λ = 0.4.
    sq = stability(t64(FQ_CODE), 0.4).numpy()
    assert sq[0] == pytest.approx(7 / 12 - 0.4 / 72, abs=1e-12)
    assert sq[0] == pytest.approx(0.5777778, abs=1e-7)
    assert sq[1] == pytest.approx(mean(FQ_CODE[1]) - 0.4 * pvar(FQ_CODE[1]), abs=1e-12)


def test_code_loss_by_hand():
    sq = [mean(r) - 0.4 * pvar(r) for r in FQ_CODE]
    expected = 1 - (mean(sq) + pvar(sq))
    loss = stability_loss(t64(Q), t64(T), "code")
    assert loss.item() == pytest.approx(expected, abs=1e-12)
    assert loss.item() == pytest.approx(0.5412072, abs=1e-6)


def test_paper_loss_by_hand():
    sq = [mean(r) - 0.8 * pvar(r) for r in FQ_PAPER]
    loss = stability_loss(t64(Q), t64(T), "paper")
    assert loss.item() == pytest.approx(1 - mean(sq), abs=1e-12)
    assert loss.item() == pytest.approx(0.7812245, abs=1e-6)
    # λ can be overridden (the paper's sensitivity study varies it).
    sq_02 = [mean(r) - 0.2 * pvar(r) for r in FQ_PAPER]
    assert stability_loss(t64(Q), t64(T), "paper", lam=0.2).item() == pytest.approx(1 - mean(sq_02), abs=1e-12)


@pytest.mark.parametrize("variant", ["code", "paper"])
def test_confident_assignments_are_perfectly_stable(variant):
    one_hot = torch.eye(4, dtype=torch.float64)[[0, 1, 2, 3, 1]]
    assert stability_loss(one_hot, 0.3, variant).item() == pytest.approx(0.0, abs=1e-12)
    uniform = torch.full((5, 4), 0.25, dtype=torch.float64)
    assert stability_loss(uniform, 0.25, variant).item() == pytest.approx(1.0)


def test_gradient_pushes_assignments_away_from_the_threshold():
    logits = torch.tensor([[1.0, 0.5, 0.0], [0.2, 0.1, 0.0]], dtype=torch.float64, requires_grad=True)
    q = torch.softmax(logits, 1)
    t = otsu_threshold(q)
    loss = stability_loss(q, t)
    loss.backward()
    with torch.no_grad():
        stepped = torch.softmax(logits - 0.5 * logits.grad, 1)
    assert stability_loss(stepped, t).item() < loss.item()
    assert (stepped.max(1).values > q.max(1).values).all()  # sharper rows


def test_variant_settings_and_unknown_variant():
    assert (VARIANTS["code"].lam, VARIANTS["code"].alpha, VARIANTS["code"].maxiter) == (0.4, 0.5, 20_000)
    assert (VARIANTS["paper"].lam, VARIANTS["paper"].alpha, VARIANTS["paper"].maxiter) == (0.8, 1.0, 10_000)
    with pytest.raises(ValueError, match="unknown DECS variant 'keras'"):
        stability_loss(t64(Q), 0.4, "keras")
