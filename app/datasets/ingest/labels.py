"""Labels: a labels file (a .npy vector or one label per line), a column, an .npz's ``y`` or an
archive's folders become int64 class codes; they only ever feed evaluation metrics."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from deepclust.app.datasets.ingest.reading import checked_npy, npy_header
from deepclust.app.errors import INVALID_LABELS, LABELS_LENGTH_MISMATCH, TOO_MANY_CLASSES, ApiError

# More classes than this cannot be scored: the accuracy's matching matrix is (classes x clusters).
MAX_CLASSES = 4096
MAX_LABEL_CHARS = 1000


def read_labels_file(path: Path, filename: str, n_samples: int | None = None) -> np.ndarray:
    """Labels from a .npy vector or a text file with one label per line.

    With ``n_samples``, the count is checked before the labels are kept: from the .npy header, or
    line by line for text, which is streamed and kept as one int64 code per line (never as a list
    of strings); the codes are those ``label_codes`` gives the text labels.
    """
    with open(path, "rb") as f:
        is_npy = f.read(6) == b"\x93NUMPY"
    if is_npy or filename.lower().endswith(".npy"):
        header = npy_header(path, "labels file")
        if n_samples is not None and header.shape and header.shape[0] != n_samples:
            raise _length_mismatch(header.shape[0], n_samples)
        return np.asarray(checked_npy(path, "labels file"))
    if n_samples is None:
        n_samples = _count_lines(path)
    ids, names = _text_label_ids(path, n_samples)
    # Renumber in sorted order of the names, as np.unique does.
    rank = np.empty(len(names), dtype=np.int64)
    rank[np.argsort(np.asarray(names))] = np.arange(len(names))
    return rank[ids]


def _text_label_ids(path: Path, n_samples: int) -> tuple[np.ndarray, list[str]]:
    ids = np.empty(n_samples, dtype=np.int64)
    table: dict[str, int] = {}
    count, gap = 0, None  # gap: the first empty line, an error only if a label follows it
    try:
        with open(path, encoding="utf-8", newline="\n") as f:
            line_no = 0
            while line := f.readline(MAX_LABEL_CHARS + 2):  # a huge "line" is never read whole
                line_no += 1
                label = line.strip()
                if len(label) > MAX_LABEL_CHARS:
                    raise INVALID_LABELS(f"Line {line_no} of the labels file is longer than "
                                         f"{MAX_LABEL_CHARS} characters; one label per line.")
                if not label:
                    gap = gap or line_no
                    continue
                if gap is not None:
                    raise INVALID_LABELS(f"Line {gap} of the labels file is empty; one label per line.")
                if count == n_samples:
                    raise _length_mismatch(_count_lines(path), n_samples)
                code = table.setdefault(label, len(table))
                if len(table) > MAX_CLASSES:
                    raise _too_many_classes(MAX_CLASSES)
                ids[count] = code
                count += 1
    except UnicodeDecodeError:
        raise INVALID_LABELS("The labels file is neither a .npy nor UTF-8 text with one label per line.") from None
    if count == 0:
        raise INVALID_LABELS("The labels file is empty.")
    if count != n_samples:
        raise _length_mismatch(count, n_samples)
    return ids, list(table)


def _count_lines(path: Path) -> int:
    """Non-empty lines, for the message of a mismatch (streamed, nothing kept)."""
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip())


def _length_mismatch(n_labels: int, n_samples: int) -> ApiError:
    return LABELS_LENGTH_MISMATCH(f"There are {n_labels} labels for {n_samples} samples.",
                                  n_labels=n_labels, n_samples=n_samples)


def _too_many_classes(limit: int) -> ApiError:
    return TOO_MANY_CLASSES(f"The labels name more than {limit} classes; labels are class names or "
                            "numbers for scoring the clustering, with at most that many classes.", limit=limit)


def label_codes(values: np.ndarray, n_samples: int) -> tuple[np.ndarray, int]:
    """Class codes 0..C-1 (the names or numbers only matter up to a permutation for the metrics)."""
    values = np.asarray(values)
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1:
        raise INVALID_LABELS(f"Labels must be a vector; got shape {list(values.shape)}.")
    if values.dtype.kind not in "biufUS":
        raise INVALID_LABELS(f"Labels of dtype {values.dtype} are not understood; use integers or text.")
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        raise INVALID_LABELS("Labels contain NaN or infinity.")
    if len(values) != n_samples:
        raise _length_mismatch(len(values), n_samples)
    classes, codes = np.unique(values, return_inverse=True)
    if len(classes) > MAX_CLASSES:
        raise _too_many_classes(MAX_CLASSES)
    return codes.astype(np.int64), len(classes)
