"""What the dataset page shows of a dataset's content: class balance, feature ranges, sample images.

The public API describes a dataset (shape, labels, size) but serves none of its values, and the
dataset page needs a glimpse of them. These two routes are the dashboard's own, outside /v1 and
the OpenAPI document: they answer only the key's tenant (the same Bearer key and the same 404 for
another tenant's id as the API) and only summaries or a small picture, never the rows themselves.
"""
from __future__ import annotations

import io

import numpy as np
from fastapi import APIRouter, Response
from sqlmodel import Session

from deepclust.app.core.npyfile import open_array
from deepclust.app.core.storage import ArtifactStore
from deepclust.app.core.tables import Dataset
from deepclust.app.errors import NOT_IMAGES
from deepclust.app.http.deps import DbDep, StoreDep, TenantDep
from deepclust.app.tenancy.ownership import owned

router = APIRouter(prefix="/dashboard/datasets", include_in_schema=False)

MAX_COLUMNS = 256          # feature ranges listed; a wider table says how many it left out
CHUNK_ROWS = 65_536        # rows read at once: a large memory-mapped dataset is never loaded whole
PER_CLASS = 6              # sample images per class (labelled), in one row each
MAX_CLASS_ROWS = 10
UNLABELLED_GRID = (4, 10)  # rows x columns of sample images without labels
TILE = 56                  # pixels of the longer side of one sample image in the picture


def _dataset(session: Session, tenant: str, dataset_id: str) -> Dataset:
    return owned(session, Dataset, dataset_id, tenant)


def _column_stats(X: np.ndarray, columns: int) -> dict[str, list[float]]:
    """min, max, mean and std of the first ``columns`` columns, one pass in chunks (float64 sums)."""
    lo = np.full(columns, np.inf)
    hi = np.full(columns, -np.inf)
    total = np.zeros(columns)
    squares = np.zeros(columns)
    for start in range(0, len(X), CHUNK_ROWS):
        chunk = np.asarray(X[start:start + CHUNK_ROWS, :columns], dtype=np.float64)
        lo = np.minimum(lo, chunk.min(axis=0))
        hi = np.maximum(hi, chunk.max(axis=0))
        total += chunk.sum(axis=0)
        squares += (chunk ** 2).sum(axis=0)
    mean = total / len(X)
    std = np.sqrt(np.maximum(squares / len(X) - mean ** 2, 0.0))
    return {"min": lo.tolist(), "max": hi.tolist(), "mean": mean.tolist(), "std": std.tolist()}


def overview(session: Session, store: ArtifactStore, tenant: str, dataset_id: str) -> dict:
    dataset = _dataset(session, tenant, dataset_id)
    counts = None
    if dataset.has_labels and dataset.labels_key:
        y = np.load(store.local_path(dataset.labels_key))
        counts = np.bincount(y, minlength=dataset.n_classes or 0).tolist()
    answer = {"dataset_id": dataset.id, "kind": dataset.kind, "class_counts": counts, "features": None}
    if dataset.kind != "images":
        X = open_array(store.local_path(dataset.data_key)).reshape(dataset.n_samples, -1)
        shown = min(X.shape[1], MAX_COLUMNS)
        answer["features"] = {"total": int(X.shape[1]), "shown": shown, **_column_stats(X, shown)}
    return answer


def _sample_indices(dataset: Dataset, store: ArtifactStore) -> list[list[int]]:
    """Rows of the picture: the first images of each class when labelled, else the first images."""
    if dataset.has_labels and dataset.labels_key:
        y = np.load(store.local_path(dataset.labels_key))
        return [np.flatnonzero(y == c)[:PER_CLASS].tolist() for c in range(min(int(y.max()) + 1, MAX_CLASS_ROWS))]
    rows, cols = UNLABELLED_GRID
    n = min(dataset.n_samples, rows * cols)
    return [list(range(start, min(start + cols, n))) for start in range(0, n, cols)]


def _tile(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """One [C,H,W] sample as an 8-bit H'xW'x3 tile: stretched to its own range, scaled up by repetition."""
    pixels = np.asarray(image, dtype=np.float32)
    lo, hi = float(pixels.min()), float(pixels.max())
    pixels = (pixels - lo) / (hi - lo) if hi > lo else np.zeros_like(pixels)
    rgb = np.repeat(pixels, 3, axis=0) if pixels.shape[0] == 1 else pixels[:3]
    rgb = np.transpose(rgb, (1, 2, 0))
    scale = max(1, TILE // max(rgb.shape[:2]))
    rgb = np.kron(rgb, np.ones((scale, scale, 1), dtype=np.float32))
    out = np.ones((*size, 3), dtype=np.float32)
    out[:rgb.shape[0], :rgb.shape[1]] = rgb
    return (out * 255).round().astype(np.uint8)


def samples_png(session: Session, store: ArtifactStore, tenant: str, dataset_id: str) -> bytes:
    from PIL import Image

    dataset = _dataset(session, tenant, dataset_id)
    if dataset.kind != "images":
        raise NOT_IMAGES(f"Dataset {dataset_id} holds feature vectors, not images: it has no sample images.",
                                {"dataset_id": dataset_id})
    X = open_array(store.local_path(dataset.data_key)).reshape(dataset.n_samples, *dataset.sample_shape)
    rows = _sample_indices(dataset, store)
    _, h, w = dataset.sample_shape
    scale = max(1, TILE // max(h, w))
    size = (h * scale, w * scale)
    gap = 4
    cols = max((len(r) for r in rows), default=1)
    canvas = np.full((len(rows) * (size[0] + gap) + gap, cols * (size[1] + gap) + gap, 3), 255, dtype=np.uint8)
    for r, indices in enumerate(rows):
        for c, index in enumerate(indices):
            top, left = gap + r * (size[0] + gap), gap + c * (size[1] + gap)
            canvas[top:top + size[0], left:left + size[1]] = _tile(X[index], size)
    buffer = io.BytesIO()
    Image.fromarray(canvas).save(buffer, format="PNG")
    return buffer.getvalue()


@router.get("/{dataset_id}/overview")
async def get_overview(dataset_id: str, db: DbDep, store: StoreDep, tenant: TenantDep) -> dict:
    """Class counts when labelled and, for feature vectors, each column's min, max, mean and std."""
    return await db.run(overview, store, tenant, dataset_id)


@router.get("/{dataset_id}/samples.png")
async def get_samples(dataset_id: str, db: DbDep, store: StoreDep, tenant: TenantDep) -> Response:
    """A few images of an image dataset, a row per class when labelled."""
    return Response(await db.run(samples_png, store, tenant, dataset_id), media_type="image/png")
