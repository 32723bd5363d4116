"""k-means in torch, on the training device: k-means++ seeding and Lloyd iterations with every
restart batched, distances computed in chunks; and the choice between it and scikit-learn.

Why not scikit-learn everywhere: on a GPU the embedding would go to the host and back for a
fit that the device does in a fraction of the time (issue #26). On the CPU scikit-learn's
Lloyd in C is faster on low-dimensional embeddings (1.7-2.6x on 10-d blobs; see benchmarks/README.md "GPU"),
and stays the default there: ``backend="auto"`` is torch on CUDA, scikit-learn on the CPU.
Its inertia is within 0.5% of scikit-learn's on the same data (tests/models/test_kmeans.py).
"""
from __future__ import annotations

import math

import numpy as np
import torch

BACKENDS = ("auto", "torch", "sklearn")

# Elements of one chunk's distance block (restarts × rows × K): about 256 MiB in fp32.
CHUNK_ELEMENTS = 64 * 1024 * 1024


def _chunk_rows(n_restarts: int, k: int) -> int:
    return max(1, CHUNK_ELEMENTS // max(1, n_restarts * k))


def _sq_dist_to(points: torch.Tensor, centers: torch.Tensor, point_norms: torch.Tensor) -> torch.Tensor:
    """Squared distances (R, n, K) of ``points`` (n, d) to each restart's ``centers`` (R, K, d)."""
    c_norms = (centers * centers).sum(-1)  # (R, K)
    cross = torch.einsum("nd,rkd->rnk", points, centers)
    return (point_norms[None, :, None] - 2 * cross + c_norms[:, None, :]).clamp_min_(0)


def _plusplus(X: torch.Tensor, norms: torch.Tensor, k: int, n_restarts: int,
              generator: torch.Generator) -> torch.Tensor:
    """Greedy k-means++ (scikit-learn's: 2 + log K candidates per centre, the one that lowers the
    potential most), for every restart at once. Returns centres (R, K, d)."""
    n, d = X.shape
    trials = 2 + int(math.log(k))
    rows = _chunk_rows(n_restarts * trials, 1)
    first = torch.randint(n, (n_restarts,), generator=generator, device=X.device)
    centers = X.new_empty(n_restarts, k, d)
    centers[:, 0] = X[first]
    closest = torch.cat([_sq_dist_to(X[s:s + rows], centers[:, :1], norms[s:s + rows])[..., 0]
                         for s in range(0, n, rows)], dim=1)  # (R, n)
    for c in range(1, k):
        weights = closest.clamp_min(0) + 1e-30
        candidates = torch.multinomial(weights, trials, replacement=True, generator=generator)  # (R, T)
        cand_points = X[candidates]  # (R, T, d)
        # Potential after adding each candidate: sum over rows of min(closest, d(row, candidate)).
        potential = X.new_zeros(n_restarts, trials)
        best_new = []  # each chunk's distances to the candidates, to update `closest`
        for s in range(0, n, rows):
            d_c = _sq_dist_to(X[s:s + rows], cand_points, norms[s:s + rows])  # (R, n_s, T)
            potential += torch.minimum(closest[:, s:s + rows, None], d_c).sum(1)
            best_new.append(d_c)
        choice = potential.argmin(1)  # (R,)
        centers[:, c] = cand_points[torch.arange(n_restarts, device=X.device), choice]
        pick = choice.view(-1, 1, 1)
        chosen = torch.cat([b.gather(2, pick.expand(-1, b.shape[1], 1))[..., 0] for b in best_new], dim=1)
        closest = torch.minimum(closest, chosen)
    return centers


def _assign(X: torch.Tensor, norms: torch.Tensor, centers: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels (R, n) and each row's squared distance to its centre (R, n)."""
    R, k, _ = centers.shape
    rows = _chunk_rows(R, k)
    labels, dists = [], []
    for s in range(0, X.shape[0], rows):
        d = _sq_dist_to(X[s:s + rows], centers, norms[s:s + rows])
        m = d.min(-1)
        labels.append(m.indices)
        dists.append(m.values)
    return torch.cat(labels, 1), torch.cat(dists, 1)


def _means(X: torch.Tensor, labels: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """New centres (R, K, d): the mean of each cluster; an empty cluster keeps its old centre."""
    R, k, d = old.shape
    sums = X.new_zeros(R, k, d).scatter_add_(1, labels[..., None].expand(-1, -1, d), X.expand(R, -1, -1))
    counts = X.new_zeros(R, k).scatter_add_(1, labels, X.new_ones(labels.shape))
    return torch.where(counts[..., None] > 0, sums / counts.clamp_min(1)[..., None], old)


@torch.no_grad()
def torch_kmeans(X: torch.Tensor | np.ndarray, n_clusters: int, *, n_init: int = 10, max_iter: int = 300,
                 tol: float = 1e-4, seed: int = 0, device: str | torch.device | None = None,
                 check_every: int = 5, as_tensor: bool = False) -> tuple[np.ndarray, np.ndarray, float]:
    """k-means of ``X`` (n, d) with ``n_init`` k-means++ restarts batched on one device.

    Returns ``(centers (K, d), labels (n,), inertia)`` of the best restart, as scikit-learn's
    ``KMeans(n_clusters, n_init=n_init, tol=tol)`` would (its tolerance: relative to the mean
    variance of the features). Convergence is read from the device every ``check_every``
    iterations only, so the loop does not wait on the device at each step. ``as_tensor``: the
    centres stay a tensor on the device.
    """
    X = torch.as_tensor(X, dtype=torch.float32, device=device)
    if X.ndim != 2 or X.shape[0] < n_clusters:
        raise ValueError(f"k-means needs at least {n_clusters} rows of a 2-D array, got shape {tuple(X.shape)}")
    generator = torch.Generator(device=X.device).manual_seed(seed)
    norms = (X * X).sum(1)
    threshold = tol * X.var(0).mean()
    centers = _plusplus(X, norms, n_clusters, n_init, generator)
    for it in range(max_iter):
        labels, _ = _assign(X, norms, centers)
        new = _means(X, labels, centers)
        shift = ((new - centers) ** 2).sum((1, 2))
        centers = new
        if (it + 1) % check_every == 0 and bool((shift <= threshold).all()):
            break
    labels, dists = _assign(X, norms, centers)
    inertia = dists.sum(1)
    best = int(inertia.argmin())
    best_centers = centers[best] if as_tensor else centers[best].cpu().numpy()
    return best_centers, labels[best].cpu().numpy().astype(np.int64), float(inertia[best])


def resolve_backend(backend: str, device: torch.device | str) -> str:
    """``"torch"`` or ``"sklearn"``: ``"auto"`` is torch on a CUDA device, scikit-learn elsewhere."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown k-means backend {backend!r}; use one of {BACKENDS}")
    if backend == "auto":
        return "torch" if torch.device(device).type == "cuda" else "sklearn"
    return backend


def fit_kmeans(X: torch.Tensor, n_clusters: int, *, n_init: int, seed: int, max_iter: int = 300,
               backend: str = "auto") -> tuple[torch.Tensor, np.ndarray, float]:
    """k-means of the rows of ``X`` (a tensor on the training device): ``(centers (K, d) float32
    on X's device, labels (n,) int64, inertia)``. scikit-learn's path is the one every method
    always took (the data goes to the host); torch's stays on the device."""
    if resolve_backend(backend, X.device) == "torch":
        centers, labels, inertia = torch_kmeans(X, n_clusters, n_init=n_init, max_iter=max_iter, seed=seed,
                                                device=X.device, as_tensor=True)
        return centers, labels, inertia
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=n_clusters, n_init=n_init, max_iter=max_iter, random_state=seed).fit(X.cpu().numpy())
    centers = torch.as_tensor(km.cluster_centers_, dtype=torch.float32).to(X.device)
    return centers, km.labels_.astype(np.int64), float(km.inertia_)
