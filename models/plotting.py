"""Pictures of a clustering: training curves, an embedding map, cluster sizes, examples, confusion.

Each ``*_figure`` function takes plain numbers (numpy arrays, lists, history rows) and returns a
matplotlib ``Figure``; :func:`to_png` renders one to PNG bytes. The numbers behind a picture come
from a separate function (:func:`project_embedding`, :func:`select_examples`,
:func:`confusion_counts`) so a caller can serve them as data too.

Figures are made with ``matplotlib.figure.Figure`` and rendered by the Agg canvas, never through
``pyplot``: no GUI backend, no global figure registry, safe to call from several threads.
matplotlib is an optional extra (``pip install 'deepclust[plot]'``); without it the numbers
functions still work and the figure functions raise ``ImportError`` saying so.
"""
from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

try:
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
except ImportError:  # the numbers below work without it; the figures say what to install
    colormaps = FigureCanvasAgg = Figure = None

DPI = 100
TSNE_MAX_POINTS = 10_000
# History values that are not losses: drawn on their own 0..1 axis.
EVALUATION_KEYS = ("acc", "nmi", "ari", "label_change", "view_agreement")  # 0..1, on the second axis
_NOT_PLOTTED = ("phase", "epoch", "selected_epoch")  # an epoch number, not a curve


def to_png(fig: Figure) -> bytes:
    """The figure as PNG bytes, at exactly its size in pixels (no tight cropping)."""
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def available() -> bool:
    """Whether matplotlib (the ``plot`` extra) is installed, i.e. whether figures can be drawn."""
    return Figure is not None


def _figure(size: tuple[int, int]) -> Figure:
    if Figure is None:
        raise ImportError("Drawing plots needs matplotlib: pip install 'deepclust[plot]'")
    width, height = size
    return Figure(figsize=(width / DPI, height / DPI), dpi=DPI, layout="constrained")


def cluster_colors(n_clusters: int) -> np.ndarray:
    """One RGBA colour per cluster: the qualitative tab10/tab20 palettes, a rainbow beyond 20."""
    if n_clusters <= 10:
        return colormaps["tab10"](np.arange(n_clusters))
    if n_clusters <= 20:
        return colormaps["tab20"](np.arange(n_clusters))
    return colormaps["turbo"](np.linspace(0.05, 0.95, n_clusters))


def _message(fig: Figure, text: str) -> Figure:
    fig.text(0.5, 0.5, text, ha="center", va="center", fontsize=12, color="0.4")
    return fig


# -- training curves ------------------------------------------------------------------------------

def history_figure(history: Sequence[Mapping], *, size: tuple[int, int] | None = None) -> Figure:
    """Per-epoch training curves: one panel per phase (in the order they ran) with every loss term,
    and the evaluation values (acc, nmi, label_change) on a second 0..1 axis.

    ``history`` is a list of rows ``{"phase", "epoch", "loss", <terms>...}`` as ``history_`` of a
    fitted estimator or ``GET /v1/jobs/{id}/history`` give them. Default size: 900 px wide, 260 px
    per phase.
    """
    phases = list(dict.fromkeys(row["phase"] for row in history))
    fig = _figure(size or (900, 260 * max(1, len(phases)) + 20))
    if not phases:
        return _message(fig, "No epochs yet")
    axes = fig.subplots(len(phases), 1, squeeze=False)[:, 0]
    for ax, phase in zip(axes, phases):
        rows = [row for row in history if row["phase"] == phase]
        _draw_phase(ax, phase, rows)
    axes[-1].set_xlabel("epoch")
    return fig


def _series(rows: Sequence[Mapping], key: str) -> np.ndarray:
    return np.array([np.nan if row.get(key) is None else float(row[key]) for row in rows], dtype=float)


def _draw_phase(ax, phase: str, rows: Sequence[Mapping]) -> None:
    epochs = np.array([row["epoch"] for row in rows])
    keys = list(dict.fromkeys(k for row in rows for k, v in row.items()
                              if k not in _NOT_PLOTTED and (v is None or isinstance(v, (int, float)))))
    losses = [k for k in keys if k not in EVALUATION_KEYS and np.isfinite(_series(rows, k)).any()]
    evaluations = [k for k in keys if k in EVALUATION_KEYS and np.isfinite(_series(rows, k)).any()]
    marker = "o" if len(rows) <= 30 else None
    values = []
    for key in losses:
        series = _series(rows, key)
        values.append(series[np.isfinite(series)])
        ax.plot(epochs, series, marker=marker, markersize=3, linewidth=2 if key == "loss" else 1.2,
                label=key)
    finite = np.concatenate(values) if values else np.array([])
    # Loss terms often differ by orders of magnitude: a log axis keeps every one of them visible.
    if finite.size and finite.min() > 0 and finite.max() / finite.min() > 50:
        ax.set_yscale("log")
    ax.set_title(f"{phase} ({len(rows)} epoch{'s' if len(rows) != 1 else ''})", loc="left", fontsize=11)
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if evaluations:
        twin = ax.twinx()
        for i, key in enumerate(evaluations):
            twin.plot(epochs, _series(rows, key), linestyle="--", marker=marker, markersize=3, linewidth=1.2,
                      color=colormaps["Dark2"](i + 3), label=key)
        twin.set_ylim(0, 1.02)
        twin.set_ylabel("score")
        more_handles, more_labels = twin.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    if handles:
        ax.legend(handles, labels, loc="upper right", fontsize=8, ncols=min(4, len(handles)))


# -- the embedding in two dimensions --------------------------------------------------------------

@dataclass
class EmbeddingMap:
    """A 2-D projection of (a seeded sample of) the embedding, and of the centroids."""

    method: str                      # "pca" | "tsne"
    indices: np.ndarray              # (m,) rows of the embedding that were projected
    coords: np.ndarray               # (m, 2)
    labels: np.ndarray               # (m,) their clusters
    centroid_coords: np.ndarray | None  # (K, 2), or None when no centroids were given
    n_clusters: int
    explained_variance: list[float] | None  # PCA only: the share of variance of each axis

    def to_dict(self) -> dict:
        return {"method": self.method, "indices": self.indices.tolist(),
                "points": np.round(self.coords, 6).tolist(), "labels": self.labels.tolist(),
                "centroids": None if self.centroid_coords is None else np.round(self.centroid_coords, 6).tolist(),
                "n_clusters": self.n_clusters, "explained_variance": self.explained_variance}


def sample_indices(n: int, max_points: int, random_state: int = 0) -> np.ndarray:
    """All rows, or a seeded uniform sample of ``max_points`` of them, in increasing order."""
    if n <= max_points:
        return np.arange(n)
    return np.sort(np.random.default_rng(random_state).choice(n, size=max_points, replace=False))


def project_embedding(embedding, labels, centroids=None, *, method: str = "pca", max_points: int = TSNE_MAX_POINTS,
                      n_clusters: int | None = None, random_state: int = 0) -> EmbeddingMap:
    """Project the embedding (N, d) to 2-D for a map.

    ``"pca"`` fits on every row (deterministic: full SVD) and projects a seeded sample of at most
    ``max_points`` rows plus the centroids; ``"tsne"`` runs t-SNE on that sample (at most 10 000
    rows) with the centroids appended, so they land among the points they summarise.
    """
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    embedding = np.asarray(embedding, dtype=np.float64)
    embedding = embedding.reshape(len(embedding), -1)
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) != len(embedding):
        raise ValueError(f"{len(embedding)} embedding rows but {len(labels)} labels")
    if method not in ("pca", "tsne"):
        raise ValueError(f"method must be 'pca' or 'tsne', not {method!r}")
    centroids = None if centroids is None else np.asarray(centroids, dtype=np.float64).reshape(-1, embedding.shape[1])
    k = n_clusters or int(max(labels.max(initial=-1) + 1, 0 if centroids is None else len(centroids)))
    limit = min(max_points, TSNE_MAX_POINTS) if method == "tsne" else max_points
    indices = sample_indices(len(embedding), limit, random_state)
    sample = embedding[indices]
    n_centroids = 0 if centroids is None else len(centroids)
    explained = None
    if embedding.shape[1] == 1:  # a line: spread it along x
        coords = np.hstack([sample, np.zeros_like(sample)])
        centroid_coords = None if centroids is None else np.hstack([centroids, np.zeros_like(centroids)])
    elif method == "pca":
        pca = PCA(n_components=2, svd_solver="full").fit(embedding)
        coords = pca.transform(sample)
        centroid_coords = None if centroids is None else pca.transform(centroids)
        explained = [float(v) for v in pca.explained_variance_ratio_]
    else:
        points = sample if centroids is None else np.vstack([sample, centroids])
        perplexity = float(min(30.0, max(1.0, (len(points) - 1) / 3)))
        projected = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=random_state).fit_transform(points)
        coords, centroid_coords = projected[:len(sample)], (projected[len(sample):] if n_centroids else None)
    return EmbeddingMap(method, indices, coords, labels[indices], centroid_coords, k, explained)


def embedding_figure(projection: EmbeddingMap, *, size: tuple[int, int] = (720, 600)) -> Figure:
    """The projected points coloured by cluster, the centroids as labelled black-edged crosses."""
    fig = _figure(size)
    ax = fig.add_subplot()
    colors = cluster_colors(projection.n_clusters)
    point_size = float(np.clip(4000 / max(len(projection.coords), 1), 2, 30))
    for k in range(projection.n_clusters):
        mine = projection.labels == k
        if mine.any():
            ax.scatter(projection.coords[mine, 0], projection.coords[mine, 1], s=point_size, color=colors[k],
                       alpha=0.7, linewidths=0, label=str(k))
    if projection.centroid_coords is not None:
        for k, (x, y) in enumerate(projection.centroid_coords):
            ax.scatter([x], [y], marker="X", s=160, color=colors[k % len(colors)], edgecolors="black", linewidths=1.2,
                       zorder=3)
            ax.annotate(str(k), (x, y), xytext=(6, 6), textcoords="offset points", fontsize=9, weight="bold")
    if projection.method == "pca":
        ev = projection.explained_variance
        ax.set_xlabel(f"PC 1 ({ev[0]:.0%} of variance)" if ev else "PC 1")
        ax.set_ylabel(f"PC 2 ({ev[1]:.0%} of variance)" if ev else "PC 2")
    else:
        ax.set_xlabel("t-SNE 1")
        ax.set_ylabel("t-SNE 2")
    ax.set_title(f"Embedding ({projection.method.upper()}, {len(projection.coords)} points); X = centroids",
                 loc="left", fontsize=11)
    if projection.n_clusters <= 20:
        ax.legend(title="cluster", loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, markerscale=2)
    ax.grid(alpha=0.2)
    return fig


# -- cluster sizes ----------------------------------------------------------------------------------

def sizes_figure(sizes: Sequence[int], *, size: tuple[int, int] | None = None) -> Figure:
    """A bar per cluster with its number of samples; empty clusters show as a gap labelled 0."""
    sizes = np.asarray(sizes, dtype=np.int64)
    fig = _figure(size or (max(500, 32 * len(sizes) + 160), 400))
    ax = fig.add_subplot()
    bars = ax.bar(np.arange(len(sizes)), sizes, color=cluster_colors(len(sizes)), edgecolor="0.3", linewidth=0.5)
    if len(sizes) <= 40:
        ax.bar_label(bars, fontsize=8)
        ax.set_xticks(np.arange(len(sizes)))
    ax.set_xlabel("cluster")
    ax.set_ylabel("samples")
    ax.set_title(f"Cluster sizes ({int(sizes.sum())} samples, {len(sizes)} clusters)", loc="left", fontsize=11)
    ax.grid(axis="y", alpha=0.3)
    return fig


def k_selection_figure(selection: Mapping, *, size: tuple[int, int] | None = None) -> Figure:
    """The evidence of an estimated K (``KSelection.to_dict()``): the criterion against K with the
    chosen K marked, and seed agreement (reproducibility, not the choice) beside it."""
    table = list(selection["table"])
    criterion, chosen = selection["criterion"], int(selection["chosen"])
    ks = np.array([int(r["n_clusters"]) for r in table])
    fig = _figure(size or (900, 380))
    panels = [(criterion, f"{criterion} (chooses K)")]
    if any(r.get("stability") is not None for r in table):
        panels.append(("stability", "seed agreement (reproducibility)"))
    for i, (key, title) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        values = np.array([np.nan if r.get(key) is None else float(r[key]) for r in table])
        ax.plot(ks, values, "-o", ms=4, color="tab:blue" if i == 0 else "tab:gray")
        ax.axvline(chosen, color="tab:green", ls="--", lw=1, label=f"chosen K = {chosen}")
        ax.set_xlabel("K")
        ax.set_title(title, loc="left", fontsize=10)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        if i == 0:
            ax.legend(fontsize=8)
    return fig


# -- examples of each cluster ------------------------------------------------------------------------

@dataclass
class ClusterExamples:
    cluster: int
    size: int
    most_confident: list[int]   # sample indices, most confident first
    least_confident: list[int]  # sample indices, least confident first


def select_examples(labels, confidence, n_per_cluster: int = 8, n_clusters: int | None = None) -> list[ClusterExamples]:
    """For each cluster, its ``n_per_cluster`` most and least confident members.

    Ties are broken by the sample index (stable sort), so the choice is deterministic. A cluster
    with fewer than ``2 * n_per_cluster`` members shows some samples in both lists.
    """
    labels = np.asarray(labels, dtype=np.int64)
    confidence = np.asarray(confidence, dtype=np.float64)
    if labels.shape != confidence.shape:
        raise ValueError(f"{len(labels)} labels but {len(confidence)} confidences")
    k = n_clusters or int(labels.max(initial=-1) + 1)
    out = []
    for cluster in range(k):
        members = np.flatnonzero(labels == cluster)
        by_confidence = members[np.argsort(-confidence[members], kind="stable")]
        least = members[np.argsort(confidence[members], kind="stable")]
        out.append(ClusterExamples(cluster, len(members), by_confidence[:n_per_cluster].tolist(),
                                   least[:n_per_cluster].tolist()))
    return out


def _as_display(images: np.ndarray) -> tuple[np.ndarray, bool]:
    """(n, C, H, W) -> (n, H, W) grey or (n, H, W, 3) colour, scaled to 0..1 over all of them."""
    images = np.asarray(images, dtype=np.float64)
    if images.ndim == 3:  # (n, H, W)
        images = images[:, None]
    rgb = images.shape[1] in (3, 4)
    images = np.moveaxis(images[:, :3], 1, -1) if rgb else images[:, 0]
    lo, hi = (np.percentile(images, [0.5, 99.5]) if images.size else (0.0, 1.0))
    return np.clip((images - lo) / (hi - lo if hi > lo else 1.0), 0, 1), rgb


def examples_figure(images, labels, confidence, *, n_per_cluster: int = 8, n_clusters: int | None = None,
                    size: tuple[int, int] | None = None) -> Figure:
    """One row per cluster: its most confident images on the left, its least confident on the right.

    ``images`` is the whole image dataset (N, C, H, W) (or (N, H, W)); only the chosen rows are
    read, so a memory-mapped array is fine.
    """
    chosen = select_examples(labels, confidence, n_per_cluster, n_clusters)
    shape = np.asarray(images[:1]).shape
    if len(shape) not in (3, 4):
        raise ValueError(f"images must be (N, C, H, W) or (N, H, W); got {tuple(np.shape(images))}")
    height, width = shape[-2:]
    rows = [row.most_confident + [-1] * (n_per_cluster - len(row.most_confident)) + [-2]
            + row.least_confident + [-1] * (n_per_cluster - len(row.least_confident)) for row in chosen]
    wanted = sorted({i for row in rows for i in row if i >= 0})
    display, rgb = _as_display(np.stack([np.asarray(images[i]) for i in wanted]) if wanted
                               else np.zeros((0, *shape[1:])))
    lookup = {index: display[j] for j, index in enumerate(wanted)}
    pad = max(1, height // 8)
    cell_h, cell_w = height + pad, width + pad
    columns = 2 * n_per_cluster + 1
    mosaic = np.ones((len(rows) * cell_h, columns * cell_w) + ((3,) if rgb else ()))
    for r, row in enumerate(rows):
        for c, index in enumerate(row):
            if index >= 0:
                mosaic[r * cell_h:r * cell_h + height, c * cell_w:c * cell_w + width] = lookup[index]
    scale = max(1, 40 // max(height, width))  # small images (digits) drawn larger
    default = (min(1600, columns * cell_w * scale + 200), min(4000, len(rows) * cell_h * scale + 90))
    fig = _figure(size or default)
    ax = fig.add_subplot()
    ax.imshow(mosaic, cmap=None if rgb else "gray", vmin=0, vmax=1, interpolation="nearest", aspect="equal")
    ax.set_yticks([r * cell_h + height / 2 for r in range(len(rows))],
                  [f"{row.cluster} ({row.size})" for row in chosen], fontsize=8)
    ax.set_xticks([n_per_cluster * cell_w / 2, (n_per_cluster + 1 + n_per_cluster / 2) * cell_w],
                  ["most confident", "least confident"])
    ax.xaxis.tick_top()
    ax.tick_params(length=0)
    ax.set_ylabel("cluster (size)")
    for spine in ax.spines.values():
        spine.set_visible(False)
    return fig


# -- against the labels ------------------------------------------------------------------------------

@dataclass
class Confusion:
    """``matrix[i, j]``: samples of class ``classes[i]`` put in cluster ``clusters[j]``.

    Clusters are ordered by their best one-to-one match with the classes (Hungarian, as ACC), so a
    good clustering reads as a heavy diagonal; unmatched clusters come last.
    """

    classes: list[int]
    clusters: list[int]
    matrix: np.ndarray

    def to_dict(self) -> dict:
        return {"classes": self.classes, "clusters": self.clusters, "matrix": self.matrix.tolist()}


def confusion_counts(y_true, y_pred, n_clusters: int | None = None) -> Confusion:
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{len(y_true)} labels but {len(y_pred)} cluster assignments")
    classes, t = np.unique(y_true, return_inverse=True)
    k = n_clusters or int(y_pred.max(initial=-1) + 1)
    counts = np.zeros((len(classes), k), dtype=np.int64)
    np.add.at(counts, (t, y_pred), 1)
    rows, cols = linear_sum_assignment(-counts)
    matched = [int(c) for _, c in sorted(zip(rows, cols))]
    order = matched + [c for c in range(k) if c not in matched]
    return Confusion([int(c) for c in classes], order, counts[:, order])


def confusion_figure(confusion: Confusion, *, size: tuple[int, int] | None = None) -> Figure:
    n_classes, n_clusters = confusion.matrix.shape
    fig = _figure(size or (min(1600, max(480, 34 * n_clusters + 220)), min(1600, max(420, 30 * n_classes + 150))))
    ax = fig.add_subplot()
    image = ax.imshow(confusion.matrix, cmap="Blues", aspect="auto")
    fig.colorbar(image, ax=ax, shrink=0.8, label="samples")
    if n_clusters <= 40:
        ax.set_xticks(np.arange(n_clusters), [str(c) for c in confusion.clusters], fontsize=8)
    if n_classes <= 40:
        ax.set_yticks(np.arange(n_classes), [str(c) for c in confusion.classes], fontsize=8)
    if n_classes * n_clusters <= 900:
        top = confusion.matrix.max() or 1
        for (i, j), count in np.ndenumerate(confusion.matrix):
            if count:
                ax.text(j, i, str(count), ha="center", va="center", fontsize=7,
                        color="white" if count > top / 2 else "black")
    ax.set_xlabel("cluster (matched to classes)")
    ax.set_ylabel("class")
    ax.set_title("Classes against clusters", loc="left", fontsize=11)
    return fig
