"""Each loss and building block against a computation by hand (plain numpy, explicit loops)."""
import math

import numpy as np
import pytest
import torch

from deepclust.models.losses import (kl_divergence, reconstruction_loss, soft_assign, student_t_kernel,
                           target_distribution)

Z = np.array([[0.0, 0.0], [1.0, 2.0], [3.0, -1.0]])
MU = np.array([[0.0, 1.0], [2.0, 2.0]])


def hand_soft_assign(z, mu, alpha):
    q = np.zeros((len(z), len(mu)))
    for i in range(len(z)):
        for j in range(len(mu)):
            d2 = sum((z[i, k] - mu[j, k]) ** 2 for k in range(z.shape[1]))
            q[i, j] = (1 + d2 / alpha) ** (-(alpha + 1) / 2)
        q[i] /= q[i].sum()
    return q


def t(a):
    return torch.tensor(a, dtype=torch.float64)


def test_student_t_kernel_values():
    assert student_t_kernel(t([0.0, 1.0, 3.0]), 1.0).tolist() == pytest.approx([1.0, 0.5, 0.25])
    assert student_t_kernel(t([2.0]), 2.0).item() == pytest.approx(2.0 ** -1.5)


@pytest.mark.parametrize("alpha", [1.0, 0.5, 3.0])
def test_soft_assign_matches_hand(alpha):
    q = soft_assign(t(Z), t(MU), alpha).numpy()
    np.testing.assert_allclose(q, hand_soft_assign(Z, MU, alpha), rtol=1e-12)
    np.testing.assert_allclose(q.sum(1), 1.0)


def test_soft_assign_first_row_by_hand():
    # z=(0,0): d² to (0,1) is 1, to (2,2) is 8 -> kernels 1/2 and 1/9.
    q = soft_assign(t(Z[:1]), t(MU), 1.0).numpy()[0]
    np.testing.assert_allclose(q, [0.5 / (0.5 + 1 / 9), (1 / 9) / (0.5 + 1 / 9)])


def test_target_distribution_matches_hand():
    q = np.array([[0.7, 0.3], [0.4, 0.6], [0.9, 0.1]])
    f = q.sum(0)
    p = np.array([[q[i, j] ** 2 / f[j] for j in range(2)] for i in range(3)])
    p /= p.sum(1, keepdims=True)
    np.testing.assert_allclose(target_distribution(t(q)).numpy(), p, rtol=1e-12)
    # Sharpening: the dominant assignment of each row grows.
    assert (target_distribution(t(q)).numpy().max(1) > q.max(1)).all()


P = np.array([[0.8, 0.2], [0.1, 0.9]])
Q = np.array([[0.6, 0.4], [0.3, 0.7]])


def hand_kl_rows():
    return np.array([sum(P[i, j] * math.log(P[i, j] / Q[i, j]) for j in range(2)) for i in range(2)])


def test_kl_batchmean_is_keras_kld():
    assert kl_divergence(t(P), t(Q), "batchmean").item() == pytest.approx(hand_kl_rows().mean(), rel=1e-12)


def test_kl_batchmean_clips_like_keras():
    p, q = np.array([[1.0, 0.0]]), np.array([[0.5, 0.5]])
    expected = 1.0 * math.log(1.0 / 0.5) + 1e-7 * math.log(1e-7 / 0.5)
    assert kl_divergence(t(p), t(q), "batchmean").item() == pytest.approx(expected, rel=1e-9)


def test_kl_mean_and_sum_reductions():
    assert kl_divergence(t(P), t(Q), "mean").item() == pytest.approx(hand_kl_rows().sum() / P.size, rel=1e-12)
    assert kl_divergence(t(P), t(Q), "sum").item() == pytest.approx(hand_kl_rows().sum(), rel=1e-12)
    with pytest.raises(ValueError, match="unknown KL reduction"):
        kl_divergence(t(P), t(Q), "median")


def test_reconstruction_reductions():
    x = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    x_hat = np.array([[1.0, 0.0, 3.0], [1.0, 1.0, 1.0]])
    sq = (x - x_hat) ** 2  # rows: [0,4,0] and [1,1,1]
    assert reconstruction_loss(t(x_hat), t(x), "mean").item() == pytest.approx(sq.sum() / 6)
    assert reconstruction_loss(t(x_hat), t(x), "sample_sum").item() == pytest.approx((4 + 3) / 2)
    with pytest.raises(ValueError, match="unknown reconstruction reduction"):
        reconstruction_loss(t(x_hat), t(x), "max")
