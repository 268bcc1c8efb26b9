"""The image shifts: shape, dtype and identity of each, and what each does to pixels."""

import numpy as np
import pytest
import torch

from blastscan.errors import BlastscanError
from blastscan.models.stain import TARGET_MEAN, TARGET_STD, StainNorm, normalize_stain
from blastscan.robustness import corruptions as C


@pytest.fixture
def batch() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(20, 236, (3, 16, 16, 3)).astype(np.uint8)


@pytest.mark.parametrize("name", sorted(C.PERTURBATIONS))
def test_every_perturbation_keeps_shape_dtype_and_identity(batch, name):
    p = C.PERTURBATIONS[name]
    for strength in C.DEFAULT_GRID[name]:
        out = C.perturb(batch, name, strength)
        assert out.shape == batch.shape and out.dtype == np.uint8
        assert not np.shares_memory(out, batch)
    if p.identity is not None:
        assert np.array_equal(C.perturb(batch, name, p.identity), batch)
    with pytest.raises(BlastscanError):
        C.perturb(batch.astype(np.float32), name, 1.0)


def test_unknown_perturbation():
    with pytest.raises(BlastscanError, match="unknown perturbation"):
        C.perturb(np.zeros((1, 2, 2, 3), np.uint8), "fog", 1.0)


def test_brightness_scales_and_clips():
    x = np.array([[[[100, 200, 250]]]], np.uint8)
    assert C.brightness(x, 0.5).ravel().tolist() == [50, 100, 125]
    assert C.brightness(x, 1.4).ravel().tolist() == [140, 255, 255]


def test_contrast_keeps_the_mean_and_scales_deviations(batch):
    out = C.contrast(batch, 0.6).astype(float)
    x = batch.astype(float)
    assert out.mean(axis=(1, 2, 3)) == pytest.approx(x.mean(axis=(1, 2, 3)), abs=0.6)
    assert out.std(axis=(1, 2, 3)) == pytest.approx(0.6 * x.std(axis=(1, 2, 3)), rel=0.02)


def test_hue_rotation_matches_hsv_definition():
    from matplotlib.colors import hsv_to_rgb, rgb_to_hsv

    red = np.array([[[[255, 0, 0], [128, 128, 128]]]], np.uint8)
    out = C.hue(red, 120)
    assert out[0, 0, 0].tolist() == [0, 255, 0]  # red -> green
    assert out[0, 0, 1].tolist() == [128, 128, 128]  # grey has no hue
    assert np.array_equal(C.hue(red, 360), red)
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (2, 8, 8, 3)).astype(np.uint8)
    for degrees in (-30, 15, 200):
        hsv = rgb_to_hsv(x / 255.0)
        hsv[..., 0] = (hsv[..., 0] + degrees / 360) % 1
        ref = np.clip(np.rint(hsv_to_rgb(hsv) * 255), 0, 255)
        assert np.abs(C.hue(x, degrees).astype(int) - ref).max() <= 1


def test_stain_keeps_white_and_darkens_dye():
    x = np.array([[[[255, 255, 255], [128, 64, 200]]]], np.uint8)
    darker, lighter = C.stain(x, 1.4), C.stain(x, 0.7)
    assert darker[0, 0, 0].tolist() == [255, 255, 255] == lighter[0, 0, 0].tolist()
    assert (darker[0, 0, 1] < x[0, 0, 1]).all() and (lighter[0, 0, 1] > x[0, 0, 1]).all()
    assert darker[0, 0, 1, 0] == round(255 * (128 / 255) ** 1.4)


def test_blur_smooths_and_keeps_flat_images(batch):
    flat = np.full((1, 12, 12, 3), 77, np.uint8)
    assert np.array_equal(C.blur(flat, 2.0), flat)
    stds = [C.blur(batch, s).astype(float).std() for s in (0.0, 1.0, 3.0)]
    assert stds[0] > stds[1] > stds[2]


def test_jpeg_loses_more_at_low_quality(batch):
    yy, xx = np.mgrid[:32, :32]  # JPEG is made for smooth, natural images
    smooth = np.stack([yy * 6, xx * 6, (yy + xx) * 3], axis=-1)[None].astype(np.uint8) + 20
    err = [np.abs(C.jpeg(smooth, q).astype(int) - smooth).mean() for q in (95, 10)]
    assert err[0] < 3 and err[1] > err[0]
    with pytest.raises(BlastscanError):
        C.jpeg(batch, 0)


def test_normalize_stain_hits_targets_and_removes_affine_colour_shifts():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 24, 24) * 0.5 + 0.2
    out = normalize_stain(x)
    assert out.shape == x.shape
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(out.mean(dim=(2, 3)), torch.tensor([TARGET_MEAN] * 2), atol=1e-5)
    assert torch.allclose(
        out.std(dim=(2, 3), unbiased=False), torch.tensor([TARGET_STD] * 2), atol=2e-3
    )
    # brightness, contrast and per-channel stain scales, without clipping: the same output
    gain = torch.tensor([0.7, 0.9, 1.2]).view(1, 3, 1, 1)
    shifted = (x * gain + 0.05).clamp(0, 1)
    assert torch.allclose(normalize_stain(shifted), out, atol=5e-3)
    layer = StainNorm()
    assert len(layer.state_dict()) == 0
    assert torch.allclose(layer(x), out)
    with pytest.raises(BlastscanError):
        normalize_stain(torch.rand(3, 8, 8))
