"""Image archives (.zip, .tar, .tar.gz) in, one canonical N×C×H×W array out.

Safe by construction: nothing is ever extracted to disk by member name. Members are read one at a
time into memory (each capped), in archive order, and only those that look like images (or the
``labels.csv``) are read at all. Before anything is read, every member is checked: an absolute
or ``..`` path, a link, a device or fifo refuses the whole archive; the member count and the
bytes the archive expands to are capped (a zip member never yields more than its declared size,
so the sum of declared sizes is a hard ceiling; a tar member's size is in its header).
``__MACOSX/``, dotfiles and non-image files are skipped.

Two passes keep memory flat whatever the archive holds: the first reads only image headers
(sizes, colour modes, count, names), which fixes the output shape; the second decodes each
image, converts and resizes it (``images.py``) and appends it to the ``.npy`` as it goes.
Samples are in archive order (``unzip -Z1`` / ``tar -tf`` order), skipped members aside.

Labels: a root ``labels.csv`` (``path,label``; header optional, extra columns ignored) wins;
otherwise, when every image sits in a first-level folder, the folder names are the labels. A
single folder wrapping everything (``digits/0/...``, the usual zip of a directory) is not a
level: folder labels are read below it.
"""
from __future__ import annotations

import csv
import io
import re
import stat
import tarfile
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from deepclust.app.core.npyfile import NpyWriter, open_array
from deepclust.app.core.settings import Settings
from deepclust.app.errors import (
    ARCHIVE_LINK,
    ARCHIVE_SPECIAL_FILE,
    DUPLICATE_MEMBER,
    ENCRYPTED_ARCHIVE,
    IMAGE_FILE_TOO_LARGE,
    INVALID_ARCHIVE,
    INVALID_LABELS,
    MISSING_LABELS,
    NO_IMAGES,
    TOO_FEW_SAMPLES,
    TOO_LARGE,
    TOO_MANY_MEMBERS,
    UNKNOWN_LABEL_PATH,
    UNSAFE_PATH,
    ApiError,
)
from deepclust.app.datasets.ingest.formats import InputFormat
from deepclust.app.datasets.ingest.images import ImageOptions, decode, is_image_name, read_header
from deepclust.app.datasets.ingest.labels import label_codes
from deepclust.app.datasets.ingest.reading import Canonical, Reading
from deepclust.app.datasets.ingest.zipcount import NotAZip, TooManyMembers, check_members

LABELS_CSV = "labels.csv"
_BLOCK_BYTES = 8 << 20


@dataclass(frozen=True)
class ArchiveLimits:
    max_members: int
    max_expanded_bytes: int
    max_image_pixels: int
    max_member_bytes: int

    @classmethod
    def of(cls, settings: Settings) -> ArchiveLimits:
        return cls(settings.max_archive_members, settings.max_expanded_bytes, settings.max_image_pixels,
                   settings.max_image_file_bytes)


def read_dataset(src: Path, fmt: InputFormat, out: Path, reading: Reading) -> Canonical:
    """A dataset upload (the reader of formats.py's zip, tar, tar.gz): the form's image_size and
    color, labels from labels.csv or the folders."""
    settings = reading.settings
    options = ImageOptions.from_form(reading.fields.get("image_size"), reading.fields.get("color"),
                                     settings.max_image_pixels)
    return read_archive(src, fmt.name, out, options=options, limits=ArchiveLimits.of(settings))


def read_rows(src: Path, fmt: InputFormat, out: Path, reading: Reading) -> np.ndarray:
    """Images to predict, made like the model's training images (``reading.image_options``)."""
    read_archive(src, fmt.name, out, options=reading.image_options(), limits=ArchiveLimits.of(reading.settings),
                 with_labels=False, min_samples=1)
    return open_array(out)


# -- refusals ----------------------------------------------------------------------------------

def _invalid_archive(fmt: str, exc: BaseException) -> ApiError:
    return INVALID_ARCHIVE(f"The {fmt} archive cannot be read: it is truncated, corrupt or not a "
                           f"{fmt} file ({type(exc).__name__}: {exc}).", format=fmt)


def _too_many_members(limit: int) -> ApiError:
    return TOO_MANY_MEMBERS(f"The archive has more than {limit} members "
                            "(DEEPCLUST_MAX_ARCHIVE_MEMBERS).", {"limit": limit})


def _too_large_expanded(size: int, limit: int) -> ApiError:
    return TOO_LARGE(f"The archive expands to more than {limit} bytes "
                     "(DEEPCLUST_MAX_EXPANDED_BYTES).", {"expanded_bytes": size, "limit": limit})


def _member_too_large(name: str, size: int, limit: int) -> ApiError:
    return IMAGE_FILE_TOO_LARGE(f"Member {name!r} is {size} bytes, more than the {limit} bytes "
                                "one image file may have (DEEPCLUST_MAX_IMAGE_FILE_BYTES).",
                                {"member": name, "size": size, "limit": limit})


def _unsafe(name: str, why: str) -> ApiError:
    return UNSAFE_PATH(f"Member {name!r} {why}; archives may hold only relative paths inside "
                       "themselves.", member=name)


def _link(name: str) -> ApiError:
    return ARCHIVE_LINK(f"Member {name!r} is a link; archives with symbolic or hard links are refused.",
                        member=name)


def _special(name: str) -> ApiError:
    return ARCHIVE_SPECIAL_FILE(f"Member {name!r} is a device, fifo or other special file; archives may "
                                "hold only regular files and folders.", member=name)


# -- walking members ---------------------------------------------------------------------------

def safe_name(raw: str) -> str:
    """The member's path as clean relative POSIX parts; refuses absolute and ``..`` paths."""
    if raw.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", raw):
        raise _unsafe(raw, "has an absolute path")
    parts = [p for p in re.split(r"[\\/]", raw) if p not in ("", ".")]
    if ".." in parts:
        raise _unsafe(raw, "climbs out with '..'")
    return "/".join(parts)


def is_skipped(name: str) -> bool:
    """macOS resource forks and hidden files are not data."""
    return any(part == "__MACOSX" or part.startswith(".") for part in name.split("/"))


Wanted = Callable[[str], bool]


@dataclass
class _Budget:
    limits: ArchiveLimits
    members: int = 0
    expanded: int = 0

    def count(self, size: int) -> None:
        self.members += 1
        self.expanded += size
        if self.members > self.limits.max_members:
            raise _too_many_members(self.limits.max_members)
        if self.expanded > self.limits.max_expanded_bytes:
            raise _too_large_expanded(self.expanded, self.limits.max_expanded_bytes)


def walk(path: Path, fmt: str, limits: ArchiveLimits, wanted: Wanted) -> Iterator[tuple[str, bytes]]:
    """``(name, bytes)`` of each member ``wanted`` accepts, in archive order; every member checked."""
    walker = _walk_zip if fmt == "zip" else _walk_tar
    return walker(path, fmt, _Budget(limits), wanted)


def _walk_zip(path: Path, fmt: str, budget: _Budget, wanted: Wanted) -> Iterator[tuple[str, bytes]]:
    try:
        # The member count from the end records, before zipfile builds a ZipInfo for every member.
        check_members(path, budget.limits.max_members)
    except TooManyMembers:
        raise _too_many_members(budget.limits.max_members) from None
    except (NotAZip, OSError) as exc:
        raise _invalid_archive(fmt, exc) from None
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            for info in infos:  # every refusal that needs no reading comes first
                budget.count(info.file_size)
            for info in infos:
                name = safe_name(info.filename)
                kind = stat.S_IFMT(info.external_attr >> 16) if info.create_system == 3 else 0
                if kind == stat.S_IFLNK:
                    raise _link(info.filename)
                if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
                    raise _special(info.filename)
                if info.is_dir() or kind == stat.S_IFDIR or is_skipped(name) or not wanted(name):
                    continue
                if info.flag_bits & 0x1:
                    raise ENCRYPTED_ARCHIVE(f"Member {name!r} is encrypted; upload an archive without "
                                            "a password.", member=name)
                if info.file_size > budget.limits.max_member_bytes:
                    raise _member_too_large(name, info.file_size, budget.limits.max_member_bytes)
                yield name, zf.read(info)  # never more than file_size bytes; the CRC is checked
    except (zipfile.BadZipFile, zlib.error, NotImplementedError, EOFError, OSError, ValueError) as exc:
        raise _invalid_archive(fmt, exc) from None


def _walk_tar(path: Path, fmt: str, budget: _Budget, wanted: Wanted) -> Iterator[tuple[str, bytes]]:
    try:
        # Stream mode reads the archive once, front to back, whatever its compression.
        with tarfile.open(path, mode="r|*") as tf:
            while (member := tf.next()) is not None:
                tf.members.clear()  # stream mode would otherwise keep every header it has seen
                budget.count(member.size)
                name = safe_name(member.name)
                if member.issym() or member.islnk():
                    raise _link(member.name)
                if member.isdir():
                    continue
                if not member.isreg():
                    raise _special(member.name)
                if is_skipped(name) or not wanted(name):
                    continue
                if member.size > budget.limits.max_member_bytes:
                    raise _member_too_large(name, member.size, budget.limits.max_member_bytes)
                yield name, tf.extractfile(member).read()
    except (tarfile.TarError, zlib.error, EOFError, OSError, ValueError) as exc:
        raise _invalid_archive(fmt, exc) from None


# -- pass 1: what the archive holds ------------------------------------------------------------

@dataclass
class Survey:
    names: list[str] = field(default_factory=list)
    sizes: Counter = field(default_factory=Counter)  # (H, W) -> count, in first-seen order
    colour_images: int = 0
    label_files: dict[str, bytes] = field(default_factory=dict)  # folder -> its labels.csv

    def options(self, given: ImageOptions) -> ImageOptions:
        """The options given, completed from the images: the most common size (ties: the first
        seen), and rgb when any image is colour, else grayscale."""
        size = given.size or self.sizes.most_common(1)[0][0]
        color = given.color or ("rgb" if self.colour_images else "grayscale")
        return ImageOptions(size, color)


def _is_labels_file(name: str) -> bool:
    return name.rsplit("/", 1)[-1] == LABELS_CSV


def survey(path: Path, fmt: str, limits: ArchiveLimits, *, read_labels: bool) -> Survey:
    result, seen = Survey(), set()
    wanted = (lambda n: is_image_name(n) or _is_labels_file(n)) if read_labels else is_image_name
    for name, data in walk(path, fmt, limits, wanted):
        if not is_image_name(name):
            result.label_files[name.rpartition("/")[0]] = data
            continue
        if name in seen:
            raise DUPLICATE_MEMBER(f"The archive holds {name!r} twice; each image path must be unique.",
                                   member=name)
        seen.add(name)
        header = read_header(data, name, limits.max_image_pixels)
        result.names.append(name)
        result.sizes[header.size] += 1
        result.colour_images += header.color == "rgb"
    return result


# -- pass 2: the pixels ------------------------------------------------------------------------

def _write_images(path: Path, fmt: str, out: Path, names: list[str], options: ImageOptions,
                  limits: ArchiveLimits) -> tuple[int, ...]:
    height, width = options.size
    sample = (options.channels, height, width)
    block = np.empty((max(1, _BLOCK_BYTES // (4 * int(np.prod(sample)))), *sample), dtype=np.float32)
    writer, filled = NpyWriter(out), 0
    try:
        for index, (name, data) in enumerate(walk(path, fmt, limits, is_image_name)):
            if index >= len(names) or names[index] != name:  # the same file, read twice: cannot happen
                raise RuntimeError(f"the archive changed between passes at member {index} ({name!r})")
            block[filled] = decode(data, name, options, limits.max_image_pixels)
            filled += 1
            if filled == len(block):
                writer.append(block)
                filled = 0
        if filled:
            writer.append(block[:filled])
        if writer.rows != len(names):
            raise RuntimeError(f"the archive changed between passes ({writer.rows} of {len(names)} images)")
        return writer.close()
    except BaseException:
        writer.abort()
        raise


# -- labels --------------------------------------------------------------------------------------

def _common_folder(names: list[str]) -> list[str]:
    """The folders every image sits in (a wrapper around everything, not a level of labels)."""
    folders = [name.split("/")[:-1] for name in names]
    common = folders[0]
    for parts in folders[1:]:
        n = 0
        while n < min(len(common), len(parts)) and common[n] == parts[n]:
            n += 1
        common = common[:n]
    return common


def _numbers_if_all(values: list[str]) -> np.ndarray:
    """Labels '0'..'9' sort as numbers, not as text."""
    if all(re.fullmatch(r"-?\d{1,18}", v) for v in values):
        return np.asarray([int(v) for v in values], dtype=np.int64)
    return np.asarray(values)


def _csv_labels(text: bytes, full: list[str], relative: list[str]) -> list[str]:
    try:
        rows = [r for r in csv.reader(io.StringIO(text.decode("utf-8-sig"))) if any(c.strip() for c in r)]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise INVALID_LABELS(f"labels.csv is not readable UTF-8 CSV ({exc}).") from None
    if not rows:
        raise INVALID_LABELS("labels.csv is empty; it needs one 'path,label' row per image.")
    header = [c.strip().lower() for c in rows[0]]
    if "path" in header and "label" in header:
        path_col, label_col, rows = header.index("path"), header.index("label"), rows[1:]
    else:
        path_col, label_col = 0, 1
    index = {name: i for i, name in enumerate(full)} | {name: i for i, name in enumerate(relative)}
    labels: list[str | None] = [None] * len(full)
    for row in rows:
        if len(row) <= max(path_col, label_col) or not row[path_col].strip() or not row[label_col].strip():
            raise INVALID_LABELS(f"labels.csv row {row!r} needs a path and a label.", row=row)
        path = "/".join(p for p in re.split(r"[\\/]", row[path_col].strip()) if p not in ("", "."))
        if path not in index:
            raise UNKNOWN_LABEL_PATH(f"labels.csv names {path!r}, which is not an image of the archive.",
                                     path=path)
        i = index[path]
        if labels[i] is not None:
            raise INVALID_LABELS(f"labels.csv gives {path!r} a label twice.", path=path)
        labels[i] = row[label_col].strip()
    missing = [full[i] for i, label in enumerate(labels) if label is None]
    if missing:
        raise MISSING_LABELS(f"labels.csv has no label for {len(missing)} image(s), e.g. "
                             f"{', '.join(repr(m) for m in missing[:3])}; every image needs one.",
                             n_missing=len(missing), examples=missing[:10])
    return labels  # type: ignore[return-value]


def archive_labels(found: Survey) -> np.ndarray | None:
    """The raw labels of the images (labels.csv, else first-level folders), or None."""
    root = _common_folder(found.names)
    skip = len(root)
    relative = ["/".join(name.split("/")[skip:]) for name in found.names]
    root_name = "/".join(root)
    text = found.label_files.get(root_name, found.label_files.get(""))
    if text is not None:
        return _numbers_if_all(_csv_labels(text, found.names, relative))
    if all("/" in name for name in relative):
        return _numbers_if_all([name.split("/", 1)[0] for name in relative])
    return None


# -- the whole thing -----------------------------------------------------------------------------

def read_archive(src: Path, fmt: str, out: Path, *, options: ImageOptions, limits: ArchiveLimits,
                 with_labels: bool = True, min_samples: int = 2) -> Canonical:
    """Write the images of archive ``src`` to the float32 ``.npy`` at ``out`` (values 0..255)."""
    found = survey(src, fmt, limits, read_labels=with_labels)
    if not found.names:
        raise NO_IMAGES("The archive holds no image (PNG, JPEG, BMP, TIFF or WebP, by file name; "
                        "__MACOSX/ and dotfiles are skipped).", format=fmt)
    if len(found.names) < min_samples:
        raise TOO_FEW_SAMPLES(f"Clustering needs at least {min_samples} images; the archive holds "
                              f"{len(found.names)}.", n_samples=len(found.names))
    options = found.options(options)
    height, width = options.size
    nbytes = len(found.names) * options.channels * height * width * 4
    if nbytes > limits.max_expanded_bytes:
        raise _too_large_expanded(nbytes, limits.max_expanded_bytes)
    raw_labels = archive_labels(found) if with_labels else None
    codes, n_classes = (None, None) if raw_labels is None else label_codes(raw_labels, len(found.names))
    shape = _write_images(src, fmt, out, found.names, options, limits)
    return Canonical(shape, "uint8", codes, n_classes)
