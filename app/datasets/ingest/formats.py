"""The input formats: one table, read by upload and predict (which format a file is, which reader
takes it, which form options apply), and by every text that lists formats: the OpenAPI document,
help texts, the Python client and the CLI.

Pure data and string functions, importing nothing of the server: the client and the CLI read it
too (``deepclust.app.client`` stays light, tests/test_boundaries.py). A format's reader is named
by its module and imported only when a file of that format is read, so a CSV upload never loads
the archive or image code (nor Pillow).

Adding an input format: one row here, and a reader module with ``read_dataset`` (upload) and/or
``read_rows`` (predict) as in ``tabular.py``; its tests beside tests/service/datasets/test_ingest.py.
"""
from __future__ import annotations

from dataclasses import dataclass

TABLE, ARRAY, ARCHIVE, IMAGE = "table", "array", "archive", "image"

# Form fields that apply to some formats only (the others refuse them).
LABEL_COLUMN = "label_column"
IMAGE_OPTIONS = ("image_size", "color")

_TABULAR = "deepclust.app.datasets.ingest.tabular"
_ARCHIVES = "deepclust.app.datasets.ingest.archives"
_IMAGE_INPUTS = "deepclust.app.datasets.ingest.image_inputs"


@dataclass(frozen=True)
class InputFormat:
    name: str                     # as a dataset records it: "csv", "tar.gz"
    kind: str                     # TABLE (columns), ARRAY (.npy/.npz), ARCHIVE (of images), IMAGE (one file)
    suffixes: tuple[str, ...]     # the file name ends with one (lower case); the first is the usual one
    reader: str                   # the module that reads it: read_dataset(...) for upload, read_rows(...) for predict
    magic: tuple[tuple[int, bytes], ...] = ()  # (offset, bytes) telling it apart when the name says nothing
    options: tuple[str, ...] = ()  # form fields that apply to it
    dataset: bool = True          # a dataset may be uploaded in it (one image file is not a dataset)
    note: str = ""                # for help texts; formats next to each other with the same note share it

    def applies(self, option: str) -> bool:
        return option in self.options


FORMATS: tuple[InputFormat, ...] = (
    InputFormat("npy", ARRAY, (".npy",), _TABULAR, magic=((0, b"\x93NUMPY"),)),
    InputFormat("npz", ARRAY, (".npz",), _TABULAR, magic=((0, b"PK\x03\x04"),),  # a zip: see guess()
                note="arrays x, optional y"),
    InputFormat("csv", TABLE, (".csv",), _TABULAR, options=(LABEL_COLUMN,), note="numeric columns, optional header"),
    InputFormat("tsv", TABLE, (".tsv",), _TABULAR, options=(LABEL_COLUMN,), note="numeric columns, optional header"),
    InputFormat("parquet", TABLE, (".parquet", ".pq"), _TABULAR, magic=((0, b"PAR1"),), options=(LABEL_COLUMN,)),
    InputFormat("zip", ARCHIVE, (".zip",), _ARCHIVES, options=IMAGE_OPTIONS),
    InputFormat("tar", ARCHIVE, (".tar",), _ARCHIVES, magic=((257, b"ustar"),), options=IMAGE_OPTIONS),
    InputFormat("tar.gz", ARCHIVE, (".tar.gz", ".tgz"), _ARCHIVES, magic=((0, b"\x1f\x8b"),), options=IMAGE_OPTIONS),
    InputFormat("image", IMAGE, (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"), _IMAGE_INPUTS,
                dataset=False, note="PNG, JPEG, BMP, TIFF, WebP"),
)
BY_NAME = {f.name: f for f in FORMATS}
MAGIC_BYTES = max(offset + len(magic) for f in FORMATS for offset, magic in f.magic)  # what guess() reads


def of_kind(*kinds: str) -> tuple[InputFormat, ...]:
    return tuple(f for f in FORMATS if f.kind in kinds)


def from_name(filename: str) -> InputFormat | None:
    """The format a file name announces (the longest suffix wins: .tar.gz before .gz), or None."""
    name = filename.lower()
    found = [(len(s), f) for f in FORMATS for s in f.suffixes if name.endswith(s)]
    return max(found, key=lambda pair: pair[0])[1] if found else None


def from_magic(head: bytes) -> InputFormat | None:
    """The format the first ``MAGIC_BYTES`` of a file announce, or None."""
    for f in FORMATS:
        if any(head[offset:offset + len(magic)] == magic for offset, magic in f.magic):
            return f
    return None


def guess(filename: str, head: bytes) -> InputFormat | None:
    """The format from the file name, else from its first bytes (a nameless zip is taken for an
    .npz: an image archive is told by its name)."""
    return from_name(filename) or from_magic(head)


# -- what texts say (help, OpenAPI descriptions, error messages) ---------------------------------

def suffix_list(formats: tuple[InputFormat, ...] = (), *, every_suffix: bool = False) -> list[str]:
    """The suffixes of ``formats`` (default: the dataset formats that are not archives)."""
    formats = formats or of_kind(ARRAY, TABLE)
    return [s for f in formats for s in (f.suffixes if every_suffix else f.suffixes[:1])]


def names(*kinds: str) -> list[str]:
    """The formats' names, e.g. ``names(ARRAY, TABLE)`` -> npy, npz, csv, tsv, parquet."""
    return [f.name for f in of_kind(*kinds)]


def joined(items: list[str], last: str = "or", comma: bool = False) -> str:
    """``a, b, c or d`` (``comma``: ``a, b, c, or d``)."""
    if len(items) < 2:
        return "".join(items)
    return ", ".join(items[:-1]) + ("," if comma else "") + f" {last} {items[-1]}"


def described(formats: tuple[InputFormat, ...] = ()) -> str:
    """``.npy, .npz (arrays x, optional y), .csv/.tsv (numeric columns, optional header), .parquet``."""
    groups: list[tuple[list[str], str]] = []
    for f in formats or of_kind(ARRAY, TABLE):
        if groups and f.note and groups[-1][1] == f.note:
            groups[-1][0].append(f.suffixes[0])
        else:
            groups.append(([f.suffixes[0]], f.note))
    return ", ".join("/".join(suffixes) + (f" ({note})" if note else "") for suffixes, note in groups)


DATA_SUFFIXES = ", ".join(suffix_list())                                   # .npy, .npz, .csv, .tsv, .parquet
ARCHIVE_SUFFIXES = suffix_list(of_kind(ARCHIVE), every_suffix=True)      # .zip, .tar, .tar.gz, .tgz
IMAGE_SUFFIXES = BY_NAME["image"].suffixes
LABEL_COLUMN_FORMATS = [f.name for f in FORMATS if f.applies(LABEL_COLUMN)]  # csv, tsv, parquet
IMAGE_TYPES = BY_NAME["image"].note                                        # PNG, JPEG, BMP, TIFF, WebP
