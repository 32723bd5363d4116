"""The contractive penalty ‖J(x)‖²_F of an encoder (Rifai et al. 2011; DCCF eq. 6, METHODS §4.2).

``J(x) = ∂h/∂x`` is the K×D Jacobian of the encoder at one sample. The exact norm takes K
vector-Jacobian products (one batched backward pass) and keeps their graph, so the penalty can
be trained on. It is *not* ``autograd.grad(h, x, ones)``, which gives the row sums of J.
``"hutchinson"`` estimates it without bias as ``E_v ‖Jᵀv‖²`` with ``v ~ N(0, I_K)``.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

ESTIMATORS = ("exact", "hutchinson")


def encode_with_jacobian_norm(encoder: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, *,
                              estimator: str = "exact", probes: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """``(h, n)``: the encoding ``h = encoder(x)`` (B×K) and each sample's ‖J(x_i)‖²_F (B,).

    ``encoder`` must treat rows independently (no batch statistics), so the gradient of a sum
    over the batch is each sample's own. Both outputs stay differentiable in the encoder's
    parameters when grad mode is on.
    """
    differentiable = torch.is_grad_enabled()
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        h = encoder(x)
        batch, k = h.shape
        if estimator == "exact":
            grad_outputs = torch.eye(k, dtype=h.dtype, device=h.device).unsqueeze(1).expand(k, batch, k)
        elif estimator == "hutchinson":
            grad_outputs = torch.randn(probes, batch, k, dtype=h.dtype, device=h.device)
        else:
            raise ValueError(f"unknown Jacobian estimator {estimator!r}; use one of {ESTIMATORS}")
        # (rows of Jᵀ per sample): one VJP per row of grad_outputs, batched.
        (vjp,) = torch.autograd.grad(h, x, grad_outputs, is_grads_batched=True, create_graph=differentiable)
    squares = vjp.pow(2).flatten(2).sum(2)  # (K or probes, B)
    norms = squares.sum(0) if estimator == "exact" else squares.mean(0)
    return (h, norms) if differentiable else (h.detach(), norms.detach())
