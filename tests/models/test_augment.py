"""Augmentation: seeded, Keras-like rotation ±10° and shift ±10% with edge ('nearest') fill; the
photo view (pad-and-crop, flip, colour jitter); the choice of view by name and channels."""
import pytest
import torch

from deepclust.models.training.augment import (affine_theta, augment, auto_augment, pad_crop, photo_augment,
                                               random_affine, views_for, warp)


def gen(seed):
    g = torch.Generator()
    g.manual_seed(seed)
    return g


@pytest.fixture
def images():
    torch.manual_seed(0)
    return torch.rand(6, 3, 16, 20)


def test_same_seed_same_batch_and_different_seeds_differ(images):
    a = augment(images, gen(1))
    b = augment(images, gen(1))
    c = augment(images, gen(2))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    assert a.shape == images.shape and a.dtype == images.dtype
    # Each image of the batch gets its own transform.
    same = torch.stack([images[0]] * 4)
    out = augment(same, gen(3))
    assert not torch.allclose(out[0], out[1])


def test_zero_angle_and_shift_is_the_identity(images):
    torch.testing.assert_close(augment(images, gen(0), degrees=0.0, translate=0.0), images, rtol=0, atol=1e-5)


def test_parameters_are_uniform_in_the_keras_ranges():
    angles, shifts = random_affine(20_000, gen(0))
    assert angles.abs().max() <= 10 and shifts.abs().max() <= 0.1
    assert angles.min() < -9.9 and angles.max() > 9.9 and shifts.min() < -0.099 and shifts.max() > 0.099
    assert angles.mean().abs() < 0.2 and angles.std().item() == pytest.approx(20 / 12 ** 0.5, rel=0.02)
    assert shifts.std(0).tolist() == pytest.approx([0.2 / 12 ** 0.5] * 2, rel=0.02)


def test_whole_pixel_shift_moves_the_image_and_repeats_the_edge():
    x = torch.arange(4 * 5, dtype=torch.float32).reshape(1, 1, 4, 5)
    # Shift of one pixel along the width (1/5 of it): output column j samples input column j+1.
    out = warp(x, affine_theta(torch.zeros(1), torch.tensor([[1 / 5, 0.0]]), 4, 5))
    expected = torch.cat([x[..., 1:], x[..., -1:]], dim=-1)  # the last column repeated: 'nearest' fill
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)
    # One pixel along the height (1/4 of it), the other way.
    out = warp(x, affine_theta(torch.zeros(1), torch.tensor([[0.0, -1 / 4]]), 4, 5))
    expected = torch.cat([x[..., :1, :], x[..., :-1, :]], dim=-2)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)


def test_quarter_turn_is_rot90_about_the_centre():
    x = torch.arange(25, dtype=torch.float32).reshape(1, 1, 5, 5)
    out = warp(x, affine_theta(torch.tensor([90.0]), torch.zeros(1, 2), 5, 5))
    # Output (row r, col c) at offset p = (c-2, r-2) samples R p = (-(r-2), c-2): input row c, column 4-r.
    expected = torch.rot90(x, k=1, dims=(2, 3))  # rot90(x)[r, c] = x[c, 4-r]
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-4)


def test_non_square_rotation_is_not_sheared():
    # A 180° turn of a 4×6 image is an exact flip of both axes, whatever the aspect ratio.
    x = torch.rand(2, 1, 4, 6)
    out = warp(x, affine_theta(torch.tensor([180.0, 180.0]), torch.zeros(2, 2), 4, 6))
    torch.testing.assert_close(out, torch.flip(x, dims=(2, 3)), rtol=0, atol=1e-5)


def test_edge_fill_keeps_a_constant_image_constant():
    """Keras' 'nearest' fill: no zeros creep in at the borders (torchvision's default would)."""
    x = torch.full((8, 1, 12, 12), 0.7)
    out = augment(x, gen(5), degrees=10, translate=0.1)
    torch.testing.assert_close(out, x, rtol=0, atol=1e-6)


def test_small_rotation_moves_pixels_but_keeps_the_mass_roughly():
    x = torch.zeros(1, 1, 28, 28)
    x[..., 10:18, 10:18] = 1.0  # a centred square stays mostly inside the frame
    out = warp(x, affine_theta(torch.tensor([10.0]), torch.zeros(1, 2), 28, 28))
    assert not torch.allclose(out, x)
    assert out.sum().item() == pytest.approx(x.sum().item(), rel=0.05)


def test_batches_must_be_images():
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        augment(torch.rand(4, 784), gen(0))
    with pytest.raises(ValueError, match="non-negative"):
        augment(torch.rand(1, 1, 8, 8), gen(0), degrees=-1)


# -- photos ----------------------------------------------------------------------------------------
def test_photo_augment_is_seeded_per_image_and_keeps_the_range(images):
    a, b, c = photo_augment(images, gen(1)), photo_augment(images, gen(1)), photo_augment(images, gen(2))
    assert torch.equal(a, b) and not torch.allclose(a, c)
    assert a.shape == images.shape and a.dtype == images.dtype
    assert a.min() >= images.min() and a.max() <= images.max()
    out = photo_augment(torch.stack([images[0]] * 4), gen(3))
    assert not torch.allclose(out[0], out[1])


def test_photo_augment_without_crop_flip_or_jitter_is_the_identity(images):
    same = photo_augment(images, gen(0), padding=0, flip=False, brightness=0, contrast=0, saturation=0)
    torch.testing.assert_close(same, images, rtol=0, atol=1e-6)


def test_pad_crop_by_hand():
    x = torch.arange(16.0).reshape(1, 1, 4, 4).repeat(2, 1, 1, 1)
    # Offset (padding, padding) is the image itself; (0, 0) shifts it down and right by one,
    # the first row and column repeated (edge padding).
    out = pad_crop(x, torch.tensor([1, 0]), torch.tensor([1, 0]), padding=1)
    assert torch.equal(out[0], x[0])
    expected = torch.tensor([[0.0, 0, 1, 2], [0, 0, 1, 2], [4, 4, 5, 6], [8, 8, 9, 10]])
    assert torch.equal(out[1, 0], expected)


def test_photo_augment_flips_about_half_the_images():
    x = torch.rand(400, 3, 8, 8)
    out = photo_augment(x, gen(0), padding=0, brightness=0, contrast=0, saturation=0)
    flipped = [torch.allclose(o, i.flip(2), rtol=0, atol=1e-6) for o, i in zip(out, x)]
    kept = [torch.allclose(o, i, rtol=0, atol=1e-6) for o, i in zip(out, x)]
    assert all(f or k for f, k in zip(flipped, kept)) and 150 < sum(flipped) < 250


def test_views_by_name_and_auto_by_channels(images):
    assert views_for("none") is None and views_for("digits") is augment and views_for("photos") is photo_augment
    with pytest.raises(ValueError, match="unknown augmentation"):
        views_for("mnist")
    assert torch.equal(auto_augment(images, gen(4)), photo_augment(images, gen(4)))  # 3 channels
    gray = images[:, :1]
    assert torch.equal(auto_augment(gray, gen(4)), augment(gray, gen(4)))
