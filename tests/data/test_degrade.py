"""Acquisition shifts for training: stain jitter in OD space, saturation, blur, noise, JPEG,
stain deposits and air bubbles."""

import torch

from blastscan import data as D
from blastscan.data import degrade as G
from blastscan.training import RELIGHTING, recipe_config


def test_stain_deconvolution_round_trips_and_unit_jitter_is_identity():
    x = torch.rand(4, 3, 8, 8) * 0.9 + 0.05
    torch.testing.assert_close(G.stain_image(G.stain_concentrations(x)), x)
    same = G.jitter_stains(x, torch.ones(4, 3), torch.zeros(4, 3))
    torch.testing.assert_close(same, x, atol=1e-5, rtol=1e-5)


def test_more_haematoxylin_darkens_and_blues_the_image():
    x = torch.full((1, 3, 4, 4), 0.7)
    more = G.jitter_stains(x, torch.tensor([[1.5, 1.0, 1.0]]), torch.zeros(1, 3))
    assert (more < x).all()  # more dye absorbs more light
    drop = (x - more)[0].mean((1, 2))
    assert drop[0] > drop[2]  # haematoxylin absorbs red more than blue


def test_blur_keeps_constant_images_and_smooths_edges():
    flat = torch.full((2, 3, 16, 16), 0.4)
    torch.testing.assert_close(G.gaussian_blur(flat, torch.tensor([1.0, 2.0])), flat)
    edge = torch.zeros(1, 3, 16, 16)
    edge[..., 8:] = 1
    blurred = G.gaussian_blur(edge, torch.tensor([1.5]))
    assert 0.05 < blurred[0, 0, 0, 7] < 0.5 < blurred[0, 0, 0, 8] < 0.95


def test_shift_recipe_augments_reproducibly_within_range_and_changes_pixels():
    config = recipe_config("shift")
    options = {k: getattr(config, k) for k in RELIGHTING}
    x = torch.rand(16, 3, 32, 32)
    a = D.augment(x, torch.Generator().manual_seed(5), **options)
    b = D.augment(x, torch.Generator().manual_seed(5), **options)
    plain = D.augment(x, torch.Generator().manual_seed(5))
    assert a.shape == x.shape and a.dtype == x.dtype and torch.equal(a, b)
    assert a.min() >= 0 and a.max() <= 1
    assert (a - plain).abs().mean() > 0.02


def test_jpeg_roundtrip_is_lossy_at_low_quality_and_keeps_shape():
    x = torch.rand(2, 3, 16, 16)
    out = G.jpeg_roundtrip(x, [10, 95])
    assert out.shape == x.shape
    low, high = ((out - x).abs().mean((1, 2, 3))).tolist()
    assert low > high


def test_specks_are_small_dark_and_violet_and_reproducible():
    x = torch.full((3, 3, 64, 64), 0.9)
    a = G.add_specks(x, torch.Generator().manual_seed(1))
    assert torch.equal(a, G.add_specks(x, torch.Generator().manual_seed(1)))
    changed = (a - x).abs().amax(1) > 0.05  # (N, H, W)
    # specks cover a few per cent of the field at most, and only darken it
    assert changed.float().mean() < 0.1 and (a <= x + 1e-6).all()
    dark = a.permute(0, 2, 3, 1)[changed]  # (pixels, 3)
    assert len(dark) and (dark[:, 1] < dark[:, 2]).float().mean() > 0.9  # violet: green lowest


def test_bubbles_darken_a_ring_and_lighten_inside():
    x = torch.full((2, 3, 96, 96), 0.5)
    a = G.add_bubbles(x, torch.Generator().manual_seed(2))
    assert a.shape == x.shape and (a > 0.52).any() and (a < 0.45).any()


def test_slide_artefacts_touch_about_their_share_and_keep_range():
    x = torch.rand(200, 3, 32, 32) * 0.5 + 0.4
    out = G.slide_artefacts(x, torch.Generator().manual_seed(3), share=0.3)
    touched = ((out - x).abs().flatten(1).amax(1) > 1e-6).float().mean()
    assert 0.35 < touched < 0.65  # 1 - 0.7^2 = 0.51 have specks, bubbles or both
    assert out.min() >= 0 and out.max() <= 1 and out.dtype == x.dtype
    assert torch.equal(G.slide_artefacts(x, torch.Generator().manual_seed(3), share=0.0), x)
