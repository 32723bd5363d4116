"""Image archives on POST /v1/datasets: every container and image format, labels, sizes, colours,
and every refusal with its status, code and nothing stored. All images are made here with Pillow."""
from __future__ import annotations

import io
import tarfile
import zipfile

import numpy as np
import pytest
from PIL import Image

from deepclust.app.core.db import engine_for, new_session
from deepclust.app.core.npyfile import open_array
from deepclust.app.core.tables import Dataset

from ..conftest import artifacts, npy_bytes, upload
from ..imagefiles import (
    archive_bytes,
    class_archive,
    image_bytes,
    mark_encrypted,
    png_header_only,
    tar_bytes,
    tar_special,
    zip_bytes,
    zip_member,
    zip_with_infos,
)
from ..http.test_bad_input import assert_error

RNG = np.random.default_rng(7)


def gray(h: int = 8, w: int = 6) -> np.ndarray:
    return RNG.integers(0, 256, size=(h, w), dtype=np.uint8)


def rgb(h: int = 8, w: int = 6) -> np.ndarray:
    return RNG.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def stored(backend, body: dict, name: str = "x.npy") -> np.ndarray:
    return np.asarray(open_array(backend.data_dir / "artifacts" / "datasets" / body["id"] / name))


def created(response) -> dict:
    assert response.status_code == 201, response.text
    return response.json()


def dataset_row(backend, dataset_id: str) -> Dataset:
    with new_session(engine_for(backend.settings.database_url)) as session:
        return session.get(Dataset, dataset_id)


def luma(pixels: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(pixels).convert("L"))


# -- containers, image formats, labels ---------------------------------------------------------

@pytest.mark.parametrize("container", ["zip", "tar", "tar.gz", "tgz"])
def test_each_container_with_folder_labels(api, backend, container):
    members, pixels = class_archive(n_per_class=4, n_classes=3, size=16)
    filename, content = archive_bytes(container, members)
    body = created(upload(api, filename, content, name="shapes"))
    assert body["format"] == ("tar.gz" if container == "tgz" else container)
    assert (body["n_samples"], body["n_features"], body["sample_shape"]) == (12, 256, [1, 16, 16])
    assert body["has_labels"] is True and body["n_classes"] == 3
    x = stored(backend, body)
    assert x.dtype == np.float32 and x.shape == (12, 1, 16, 16)
    np.testing.assert_array_equal(x[:, 0], pixels)  # lossless PNG, in archive order, values 0..255
    np.testing.assert_array_equal(stored(backend, body, "y.npy"), [0, 1, 2] * 4)
    row = dataset_row(backend, body["id"])
    assert row.kind == "images" and row.source_dtype == "uint8"  # trained with /255, like uint8 arrays


LOSSLESS = {"PNG": {}, "BMP": {}, "TIFF": {}, "TIFF-deflate": {"compression": "tiff_adobe_deflate"},
            "WEBP": {"lossless": True}}


@pytest.mark.parametrize("fmt", LOSSLESS, ids=list(LOSSLESS))
def test_each_lossless_image_format_is_stored_exactly(api, backend, fmt):
    images = [rgb(), rgb()]
    suffix = {"PNG": "png", "BMP": "bmp", "WEBP": "webp"}.get(fmt, "tiff")
    members = [(f"img{i}.{suffix}", image_bytes(p, fmt.split("-")[0], **LOSSLESS[fmt])) for i, p in enumerate(images)]
    body = created(upload(api, "imgs.zip", zip_bytes(members)))
    assert body["sample_shape"] == [3, 8, 6] and body["has_labels"] is False
    np.testing.assert_array_equal(stored(backend, body), np.stack(images).transpose(0, 3, 1, 2))


def test_jpeg_is_decoded_by_pillow(api, backend):
    images = [np.full((8, 8), 40 * i, dtype=np.uint8) + gray(8, 8) // 8 for i in range(3)]
    members = [(f"p{i}.jpg", image_bytes(p, "JPEG", quality=95)) for i, p in enumerate(images)]
    members.append(("p3.JPEG", image_bytes(images[0], "JPEG", quality=95)))  # suffixes are case-blind
    body = created(upload(api, "imgs.tar", tar_bytes(members)))
    x = stored(backend, body)
    assert x.shape == (4, 1, 8, 8)
    decoded = np.stack([np.asarray(Image.open(io.BytesIO(data))) for _, data in members])
    np.testing.assert_array_equal(x[:, 0], decoded)
    assert np.abs(x[:3, 0] - np.stack(images)).mean() < 3  # and close to what was encoded


def test_labels_csv_wins_over_folders_and_skips_what_is_not_an_image(api, backend):
    images = [gray() for _ in range(4)]
    members = [("data/a/0.png", image_bytes(images[0])), ("data/a/1.png", image_bytes(images[1])),
               ("data/b/2.png", image_bytes(images[2])), ("data/b/3.png", image_bytes(images[3])),
               ("data/labels.csv", (b"path,class_name,label\na/0.png,x,cat\nb/2.png,y,dog\n"
                                    b"data/a/1.png,z,dog\n./b/3.png,w,cat\n")),
               ("__MACOSX/data/a/._0.png", b"\0\0resource fork"), ("data/.hidden.png", b"junk"),
               ("data/.git/x.png", b"junk"), ("data/README.txt", b"notes"), ("data/b/", b"")]
    body = created(upload(api, "pets.zip", zip_bytes(members)))
    assert body["n_samples"] == 4 and body["n_classes"] == 2
    np.testing.assert_array_equal(stored(backend, body)[:, 0], np.stack(images))
    np.testing.assert_array_equal(stored(backend, body, "y.npy"), [0, 1, 1, 0])  # cat, dog, dog, cat


def test_labels_csv_without_header_and_numeric_labels_sort_as_numbers(api, backend):
    members = [(f"{i}.png", image_bytes(gray())) for i in range(3)]
    members.append(("labels.csv", b"0.png,10\n1.png,2\n2.png,10\n"))
    body = created(upload(api, "n.tar.gz", tar_bytes(members, "gz")))
    np.testing.assert_array_equal(stored(backend, body, "y.npy"), [1, 0, 1])  # 2 < 10


def test_images_at_the_root_have_no_labels_unless_a_labels_file_is_given(api, backend):
    members = [(f"img{i}.png", image_bytes(gray())) for i in range(3)]
    body = created(upload(api, "flat.zip", zip_bytes(members)))
    assert body["has_labels"] is False and body["n_classes"] is None
    labelled = created(upload(api, "flat.zip", zip_bytes(members), labels=("y.txt", b"a\nb\na\n")))
    assert labelled["n_classes"] == 2
    np.testing.assert_array_equal(stored(backend, labelled, "y.npy"), [0, 1, 0])
    # one folder around everything is a wrapper, not one class
    wrapped = created(upload(api, "wrapped.zip", zip_bytes([(f"all/{n}", d) for n, d in members])))
    assert wrapped["has_labels"] is False


def test_samples_follow_archive_order(api, backend):
    images = [gray() for _ in range(3)]
    members = [("b/z.png", image_bytes(images[0])), ("a/y.png", image_bytes(images[1])),
               ("b/a.png", image_bytes(images[2]))]
    body = created(upload(api, "order.tgz", tar_bytes(members, "gz")))
    np.testing.assert_array_equal(stored(backend, body)[:, 0], np.stack(images))
    np.testing.assert_array_equal(stored(backend, body, "y.npy"), [1, 0, 1])


# -- sizes and colours -------------------------------------------------------------------------

def test_mixed_sizes_take_the_most_common_and_resize_the_others(api, backend):
    common = [gray(8, 6) for _ in range(3)]
    odd = gray(20, 10)
    members = [("0.png", image_bytes(common[0])), ("1.png", image_bytes(odd)),
               ("2.png", image_bytes(common[1])), ("3.png", image_bytes(common[2]))]
    body = created(upload(api, "sizes.zip", zip_bytes(members)))
    assert body["sample_shape"] == [1, 8, 6]
    x = stored(backend, body)
    np.testing.assert_array_equal(x[[0, 2, 3], 0], np.stack(common))
    expected = np.asarray(Image.fromarray(odd).resize((6, 8), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(x[1, 0], expected)


def test_image_size_option_resizes_every_image(api, backend):
    images = [gray(8, 6), gray(8, 6)]
    members = [(f"{i}.png", image_bytes(p)) for i, p in enumerate(images)]
    body = created(upload(api, "s.zip", zip_bytes(members), image_size="4, 5"))
    assert body["sample_shape"] == [1, 4, 5]
    expected = [np.asarray(Image.fromarray(p).resize((5, 4), Image.Resampling.BILINEAR)) for p in images]
    np.testing.assert_array_equal(stored(backend, body)[:, 0], np.stack(expected))


def test_grayscale_archive_is_one_channel_and_mixed_modes_become_rgb(api, backend):
    g, c = gray(), rgb()
    mixed = created(upload(api, "m.zip", zip_bytes([("g.png", image_bytes(g)), ("c.png", image_bytes(c))])))
    assert mixed["sample_shape"] == [3, 8, 6]  # rgb as soon as one image is colour
    x = stored(backend, mixed)
    np.testing.assert_array_equal(x[0], np.repeat(g[None], 3, axis=0))  # gray replicated in R, G, B
    np.testing.assert_array_equal(x[1], c.transpose(2, 0, 1))


def test_color_option_converts(api, backend):
    g, c = gray(), rgb()
    members = [("g.png", image_bytes(g)), ("c.png", image_bytes(c)),
               ("a.png", image_bytes(np.dstack([c, np.full((8, 6), 128, np.uint8)])))]  # RGBA: alpha dropped
    body = created(upload(api, "m.zip", zip_bytes(members), color="grayscale"))
    assert body["sample_shape"] == [1, 8, 6]
    np.testing.assert_array_equal(stored(backend, body)[:, 0], np.stack([g, luma(c), luma(c)]))
    gray_only = zip_bytes([("g.png", image_bytes(g)), ("h.png", image_bytes(g))])
    forced = created(upload(api, "g.zip", gray_only, color="RGB"))
    assert forced["sample_shape"] == [3, 8, 6]


def test_palette_and_16_bit_images(api, backend):
    c = rgb()
    palette = Image.fromarray(c).quantize(16)
    deep = (gray().astype(np.uint16) * 257)  # 16-bit gray: the high byte is the 8-bit value
    buffer = io.BytesIO()
    palette.save(buffer, "PNG")
    members = [("p.png", buffer.getvalue()), ("d.png", image_bytes(deep))]
    body = created(upload(api, "modes.zip", zip_bytes(members)))
    assert body["sample_shape"] == [3, 8, 6]
    x = stored(backend, body)
    np.testing.assert_array_equal(x[0], np.asarray(palette.convert("RGB")).transpose(2, 0, 1))
    np.testing.assert_array_equal(x[1], np.repeat((deep >> 8)[None], 3, axis=0))


# -- refusals: status, code, message, nothing stored --------------------------------------------

def ok_png() -> bytes:
    return image_bytes(gray())


def truncated_png() -> bytes:
    data = image_bytes(gray(64, 64))
    return data[: len(data) // 2]


REFUSED = {
    "zip absolute path": (("a.zip", zip_bytes([("ok.png", ok_png()), ("/etc/x.png", ok_png())])), 422, "unsafe_path"),
    "zip windows path": (("a.zip", zip_bytes([("ok.png", ok_png()), ("C:\\x.png", ok_png())])), 422, "unsafe_path"),
    "zip dot-dot": (("a.zip", zip_bytes([("ok.png", ok_png()), ("a/../../x.png", ok_png())])), 422, "unsafe_path"),
    "tar absolute path": (("a.tar", tar_bytes([("ok.png", ok_png()), ("/tmp/x.png", ok_png())])), 422, "unsafe_path"),
    "tar dot-dot": (("a.tar.gz", tar_bytes([("ok.png", ok_png()), ("../x.png", ok_png())], "gz")), 422,
                    "unsafe_path"),
    "tar symlink": (("a.tar", tar_bytes([("ok.png", ok_png()), tar_special("l.png", tarfile.SYMTYPE, "/etc/passwd")])),
                    422, "archive_link"),
    "tar hardlink": (("a.tar", tar_bytes([("ok.png", ok_png()), tar_special("h.png", tarfile.LNKTYPE, "ok.png")])),
                     422, "archive_link"),
    "tar device": (("a.tar", tar_bytes([("ok.png", ok_png()), tar_special("dev", tarfile.CHRTYPE)])), 422,
                   "archive_special_file"),
    "tar fifo": (("a.tgz", tar_bytes([("ok.png", ok_png()), tar_special("f", tarfile.FIFOTYPE)], "gz")), 422,
                 "archive_special_file"),
    "zip symlink": (("a.zip", zip_with_infos([zip_member("ok.png", ok_png()),
                                               zip_member("l.png", b"/etc/passwd", mode=0o120777)])),
                    422, "archive_link"),
    "zip encrypted": (("a.zip", mark_encrypted(zip_bytes([("ok.png", ok_png()), ("e.png", ok_png())]), "e.png")),
                      422, "encrypted_archive"),
    "no images": (("a.zip", zip_bytes([("notes.txt", b"hello"), ("data.csv", b"1,2\n")])), 422, "no_images"),
    "only hidden images": (("a.tar", tar_bytes([("__MACOSX/._x.png", ok_png()), (".y.png", ok_png())])), 422,
                           "no_images"),
    "empty zip": (("a.zip", zip_bytes([])), 422, "no_images"),
    "a single image file": (("x.png", ok_png()), 415, "unsupported_format"),
    "one image": (("a.zip", zip_bytes([("x.png", ok_png())])), 422, "too_few_samples"),
    "garbage png": (("a.zip", zip_bytes([("ok.png", ok_png()), ("bad.png", b"not an image at all")])), 422,
                    "unreadable_image"),
    "gif named png": (("a.zip", zip_bytes([("ok.png", ok_png()), ("g.png", image_bytes(gray(), "GIF"))])), 422,
                      "unreadable_image"),
    "truncated png": (("a.zip", zip_bytes([("ok.png", image_bytes(gray(64, 64))), ("t.png", truncated_png())])),
                      422, "unreadable_image"),
    "duplicate member": (("a.tar", tar_bytes([("x.png", ok_png()), ("x.png", ok_png())])), 422, "duplicate_member"),
    "corrupt zip": (("a.zip", b"PK\x03\x04 this is not a zip"), 422, "invalid_archive"),
    "corrupt tar.gz": (("a.tar.gz", tar_bytes([(f"{i}.png", image_bytes(gray(32, 32))) for i in range(4)],
                                              "gz")[:400]), 422, "invalid_archive"),
    "not a tar": (("a.tar", b"just some text, no tar headers here" * 20), 422, "invalid_archive"),
    "labels.csv missing one": (("a.zip", zip_bytes([("x.png", ok_png()), ("y.png", ok_png()),
                                                    ("labels.csv", b"path,label\nx.png,1\n")])), 422, "missing_labels"),
    "labels.csv unknown path": (("a.zip", zip_bytes([("x.png", ok_png()), ("y.png", ok_png()),
                                                     ("labels.csv", b"x.png,1\ny.png,2\nz.png,3\n")])),
                                422, "unknown_label_path"),
    "labels.csv row without label": (("a.zip", zip_bytes([("x.png", ok_png()), ("y.png", ok_png()),
                                                          ("labels.csv", b"x.png,1\ny.png\n")])), 422,
                                     "invalid_labels"),
}


@pytest.mark.parametrize("case", REFUSED, ids=list(REFUSED))
def test_bad_archive_is_refused_and_leaves_nothing(api, backend, case):
    (filename, content), status, code = REFUSED[case]
    before = artifacts(backend.data_dir)
    error = assert_error(upload(api, filename, content), status, code)
    if code in ("unsafe_path", "archive_link", "archive_special_file", "unreadable_image", "duplicate_member"):
        assert error["details"]["member"] in error["message"].replace("\\\\", "\\")  # names the culprit
    assert artifacts(backend.data_dir) == before
    assert api.get("/v1/datasets").json()["total"] == 0


BAD_OPTIONS = {
    "image_size one number": (("a.zip", {"image_size": "28"}), "invalid_image_size"),
    "image_size zero": (("a.zip", {"image_size": "0,28"}), "invalid_image_size"),
    "color unknown": (("a.zip", {"color": "sepia"}), "invalid_color"),
    "image_size on npy": (("x.npy", {"image_size": "2,2"}), "image_options_unsupported"),
    "label_column on zip": (("a.zip", {"label_column": "label"}), "label_column_unsupported"),
    "labels file and folder labels": (("f.zip", {"labels": ("y.txt", b"1\n2\n")}), "labels_given_twice"),
}


@pytest.mark.parametrize("case", BAD_OPTIONS, ids=list(BAD_OPTIONS))
def test_bad_options_are_refused_and_leave_nothing(api, backend, case):
    (filename, fields), code = BAD_OPTIONS[case]
    content = {"a.zip": zip_bytes([("x.png", ok_png()), ("y.png", ok_png())]),
               "f.zip": zip_bytes([("a/x.png", ok_png()), ("b/y.png", ok_png())]),
               "x.npy": npy_bytes(np.zeros((3, 2)))}[filename]
    before = artifacts(backend.data_dir)
    assert_error(upload(api, filename, content, **fields), 422, code)
    assert artifacts(backend.data_dir) == before
    assert api.get("/v1/datasets").json()["total"] == 0


def refused_under_limits(backend, limits: dict, filename: str, content: bytes, status: int, code: str) -> dict:
    with backend.client(backend.app(**limits)) as api:
        before = artifacts(backend.data_dir)
        error = assert_error(upload(api, filename, content), status, code)
        assert artifacts(backend.data_dir) == before
        assert api.get("/v1/datasets").json()["total"] == 0
    return error


def test_member_count_cap(backend):
    members = [(f"{i}.png", ok_png()) for i in range(6)]
    for filename, content in [("a.zip", zip_bytes(members)), ("a.tar", tar_bytes(members))]:
        error = refused_under_limits(backend, {"max_archive_members": 5}, filename, content, 413, "too_many_members")
        assert error["details"]["limit"] == 5


def test_a_zip_member_count_is_read_from_its_end_records_before_zipfile_lists_it(backend, monkeypatch):
    """5.2 M members once cost 2.2 GB before the 413: zipfile builds every ZipInfo first. The count
    now comes from the end-of-central-directory record, so zipfile never lists an archive (or an
    .npz) that is refused; a record that understates the count is caught by walking the headers."""
    import zipfile

    members = [(f"{i}.png", ok_png()) for i in range(6)]
    honest = zip_bytes(members)
    eocd = honest.rfind(b"PK\x05\x06")
    lying = bytearray(honest)
    lying[eocd + 8:eocd + 12] = (1).to_bytes(2, "little") * 2  # "one member", over a directory of six
    npz = io.BytesIO()
    with zipfile.ZipFile(npz, "w") as bundle:
        for i in range(1100):
            bundle.writestr(f"a{i}.npy", b"")

    def listing(*_args, **_kwargs):
        raise AssertionError("zipfile read the whole central directory")

    monkeypatch.setattr(zipfile.ZipFile, "_RealGetContents", listing)
    for content in (honest, bytes(lying)):
        refused_under_limits(backend, {"max_archive_members": 5}, "a.zip", content, 413, "too_many_members")
    refused_under_limits(backend, {}, "a.npz", npz.getvalue(), 413, "too_many_members")


def test_expanded_bytes_cap_stops_a_zip_bomb(backend):
    bomb = [("x.png", ok_png()), ("y.png", ok_png()), ("zeros.bin", b"\0" * 2_000_000)]
    content = zip_bytes(bomb)
    assert len(content) < 10_000
    refused_under_limits(backend, {"max_expanded_bytes": 1_000_000}, "bomb.zip", content, 413, "too_large")
    refused_under_limits(backend, {"max_expanded_bytes": 1_000_000}, "bomb.tgz", tar_bytes(bomb, "gz"), 413,
                         "too_large")


def test_decoded_array_counts_against_the_expanded_cap(backend):
    flat = [(f"{i}.png", image_bytes(np.zeros((100, 100), np.uint8))) for i in range(10)]  # 400 kB as float32
    error = refused_under_limits(backend, {"max_expanded_bytes": 200_000}, "a.zip", zip_bytes(flat), 413, "too_large")
    assert error["details"]["expanded_bytes"] == 10 * 100 * 100 * 4


def test_pixels_per_image_cap(backend):
    members = [("x.png", ok_png()), ("big.png", image_bytes(np.zeros((40, 40), np.uint8)))]
    error = refused_under_limits(backend, {"max_image_pixels": 1000}, "a.zip", zip_bytes(members), 413,
                                 "image_too_large")
    assert error["details"] == {"member": "big.png", "pixels": 1600, "limit": 1000}


def test_pillow_decompression_bomb_guard_is_a_413(backend):
    # 20000×20000 pixels announced: past twice Pillow's MAX_IMAGE_PIXELS, so Pillow itself refuses
    # to open it even when our own cap is set far higher.
    members = [("x.png", ok_png()), ("bomb.png", png_header_only(20_000, 20_000))]
    refused_under_limits(backend, {"max_image_pixels": 10**10}, "a.zip", zip_bytes(members), 413, "image_too_large")


def test_image_file_size_cap(backend):
    members = [("x.png", ok_png()), ("y.png", image_bytes(gray(64, 64)))]
    refused_under_limits(backend, {"max_image_file_bytes": 1000}, "a.tar", tar_bytes(members), 413,
                         "image_file_too_large")


def test_archive_upload_over_the_upload_limit(backend):
    members = [(f"{i}.png", image_bytes(gray(64, 64))) for i in range(4)]
    refused_under_limits(backend, {"max_upload_bytes": 5000}, "a.zip", zip_bytes(members, zipfile.ZIP_STORED), 413,
                         "too_large")
