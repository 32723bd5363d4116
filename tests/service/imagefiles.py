"""Image files and archives made in the test itself with Pillow: the tests read no dataset from outside the repository."""
from __future__ import annotations

import io
import struct
import tarfile
import zipfile
import zlib

import numpy as np
from PIL import Image

Members = list[tuple[str, bytes]]


def image_bytes(pixels: np.ndarray, fmt: str = "PNG", **save_options) -> bytes:
    """``pixels`` (H, W) or (H, W, 3|4) uint8, encoded as ``fmt``."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, fmt, **save_options)
    return buffer.getvalue()


def zip_bytes(members: Members, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as zf:
        for name, data in members:
            info = zipfile.ZipInfo(name)  # a ZipInfo keeps the name exactly as given
            info.compress_type = compression
            zf.writestr(info, data)
    return buffer.getvalue()


def zip_member(name: str, data: bytes, *, mode: int = 0) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    if mode:
        info.create_system, info.external_attr = 3, mode << 16
    return info, data


def mark_encrypted(content: bytes, name: str) -> bytes:
    """Set the 'encrypted' flag of member ``name`` (zipfile cannot write encrypted members)."""
    data = bytearray(content)
    with zipfile.ZipFile(io.BytesIO(content)) as zf:
        data[zf.getinfo(name).header_offset + 6] |= 0x1  # local header: general purpose flags
    at = data.find(b"PK\x01\x02")
    while at >= 0:  # central directory entries
        length = int.from_bytes(data[at + 28:at + 30], "little")
        if data[at + 46:at + 46 + length] == name.encode():
            data[at + 8] |= 0x1
        at = data.find(b"PK\x01\x02", at + 4)
    return bytes(data)


def zip_with_infos(members: list[tuple[zipfile.ZipInfo, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for info, data in members:
            zf.writestr(info, data)
    return buffer.getvalue()


def tar_bytes(members: Members | list[tarfile.TarInfo | tuple[str, bytes]], compression: str = "") -> bytes:
    """A tar (``compression`` "" or "gz"); a bare TarInfo is written as it is (links, devices)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=f"w:{compression}" if compression else "w",
                      format=tarfile.PAX_FORMAT) as tf:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                tf.addfile(member)
                continue
            name, data = member
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def tar_special(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


def archive_bytes(container: str, members: Members) -> tuple[str, bytes]:
    """(file name, bytes) of ``members`` packed as ``container``: zip, tar, tar.gz or tgz."""
    if container == "zip":
        return "images.zip", zip_bytes(members)
    compression = "gz" if container in ("tar.gz", "tgz") else ""
    return f"images.{container}", tar_bytes(members, compression)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header announces width×height pixels (and holds none): a decompression bomb's face."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def shape_image(label: int, size: int = 16, seed: int = 0) -> np.ndarray:
    """A (size, size) uint8 image of class ``label`` (0: horizontal bar, 1: vertical bar, 2: ring),
    jittered in position and intensity so each class is a cloud, not a point."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    c = size // 2 + rng.integers(-1, 2, size=2)
    if label % 3 == 0:
        mask = abs(yy - c[0]) <= size // 8
    elif label % 3 == 1:
        mask = abs(xx - c[1]) <= size // 8
    else:
        r = np.hypot(yy - c[0], xx - c[1])
        mask = (r >= size * 0.25) & (r <= size * 0.4)
    image = np.where(mask, rng.integers(180, 256), rng.integers(0, 40)).astype(np.float64)
    image += rng.normal(0, 8, size=(size, size))
    return np.clip(image, 0, 255).astype(np.uint8)


def class_archive(n_per_class: int, n_classes: int = 3, size: int = 16, seed: int = 0) -> tuple[Members, np.ndarray]:
    """PNG members in folders ``c0/``, ``c1/``, ... (interleaved), and each member's pixels (N, H, W)."""
    members, pixels = [], []
    for i in range(n_per_class):
        for label in range(n_classes):
            image = shape_image(label, size, seed=seed * 100_000 + i * n_classes + label)
            members.append((f"c{label}/img{i:04d}.png", image_bytes(image)))
            pixels.append(image)
    return members, np.stack(pixels)
