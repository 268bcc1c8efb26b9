"""Augmentation: dihedral turns, lamps, hue and colour transfer."""

import torch

from blastscan import data as D


def test_hue_augmentation_turns_colours_and_keeps_each_pixels_extremes():
    x = torch.rand(6, 3, 8, 8)
    plain = D.augment(x, torch.Generator().manual_seed(3))
    turned = D.augment(x, torch.Generator().manual_seed(3), hue=40.0)
    assert (turned - plain).abs().max() > 0.05  # the hue moved
    torch.testing.assert_close(turned.amax(1), plain.amax(1))  # value kept
    torch.testing.assert_close(turned.amin(1), plain.amin(1))  # and saturation with it
    assert turned.min() >= 0 and turned.max() <= 1


def test_rotate_hue_takes_one_angle_per_image():
    red = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1).repeat(3, 1, 1, 1)
    out = D.rotate_hue(red, torch.tensor([0.0, 120.0, -120.0]))
    assert out[:, :, 0, 0].tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 1]]


def test_augment_keeps_shape_range_and_is_reproducible():
    x = torch.rand(8, 3, 16, 16)
    a = D.augment(x, torch.Generator().manual_seed(1), color_jitter=0.3)
    b = D.augment(x, torch.Generator().manual_seed(1), color_jitter=0.3)
    assert a.shape == x.shape and torch.equal(a, b)
    assert a.min() >= 0 and a.max() <= 1
    plain = D.augment(x, torch.Generator().manual_seed(2))
    # flips and 90-degree turns only permute pixels
    torch.testing.assert_close(plain.flatten(1).sort(1).values, x.flatten(1).sort(1).values)


def test_brighten_clips_half_the_images_at_8_bits_and_keeps_old_draws():
    x = ((torch.rand(64, 3, 8, 8) * 0.5 + 0.5) * 255).round() / 255  # 8-bit levels
    plain = D.augment(x, torch.Generator().manual_seed(3))
    bright = D.augment(x, torch.Generator().manual_seed(3), brighten=0.4)
    # flips and turns are drawn first and identically, so the unbrightened half is unchanged
    same = (bright == plain).flatten(1).all(1)
    assert 16 < int(same.sum()) < 48
    changed = bright[~same]
    ratio = changed.sum((1, 2, 3)) / plain[~same].sum((1, 2, 3))
    assert (ratio > 1).all() and (ratio < 1.4).all()
    assert changed.max() == 1 and torch.equal(changed, (changed * 255).round() / 255)
    assert torch.equal(bright, D.augment(x, torch.Generator().manual_seed(3), brighten=0.4))


def test_darken_dims_the_other_half_and_leaves_the_brightened_half_as_it_was():
    x = ((torch.rand(64, 3, 8, 8) * 0.5 + 0.5) * 255).round() / 255
    plain = D.augment(x, torch.Generator().manual_seed(3))
    bright = D.augment(x, torch.Generator().manual_seed(3), brighten=0.4)
    both = D.augment(x, torch.Generator().manual_seed(3), brighten=0.4, darken=0.4)
    brightened = ~(bright == plain).flatten(1).all(1)
    assert torch.equal(both[brightened], bright[brightened])
    ratio = both[~brightened].sum((1, 2, 3)) / plain[~brightened].sum((1, 2, 3))
    assert (ratio < 1).all() and (ratio > 0.55).all()  # nothing clips when dimmed: ~ 1 - 0.4 u
    dimmed = both[~brightened]
    assert torch.equal(dimmed, (dimmed * 255).round() / 255)


def test_transfer_colour_gives_each_channel_the_target_mean_and_spread():
    x = torch.rand(4, 3, 16, 16) * 0.4 + 0.3
    mean = torch.tensor([0.6, 0.5, 0.7]).view(1, 3, 1, 1)
    std = torch.tensor([0.05, 0.08, 0.03]).view(1, 3, 1, 1)
    moved = D.transfer_colour(x, mean, std)
    got_mean, got_std = D.channel_statistics(moved)
    torch.testing.assert_close(got_mean, mean.expand(4, 3, 1, 1), atol=1e-5, rtol=0)
    torch.testing.assert_close(got_std, std.expand(4, 3, 1, 1), atol=1e-5, rtol=0)
    # an affine map per channel: the pixels keep their order, so the cells stay where they are
    assert torch.equal(moved.flatten(2).argsort(2), x.flatten(2).argsort(2))


def test_recolour_gives_the_chosen_images_another_batch_images_colour_and_keeps_old_draws():
    # 16 images, each a flat colour of its own plus the same texture: easy to tell apart
    texture = torch.rand(1, 3, 12, 12) * 0.1
    x = torch.linspace(0.1, 0.8, 16).view(16, 1, 1, 1) + texture
    plain = D.augment(x, torch.Generator().manual_seed(5))
    mixed = D.augment(x, torch.Generator().manual_seed(5), recolour=0.5)
    kept = (mixed == plain).flatten(1).all(1)
    assert 2 < int(kept.sum()) < 14  # about half recoloured, the rest as without recolour
    mean, _ = D.channel_statistics(plain)
    new_mean, _ = D.channel_statistics(mixed)
    for i in (~kept).nonzero().flatten().tolist():  # each took some batch image's colour
        assert torch.isclose(new_mean[i], mean, atol=1e-5).all(1).flatten(1).all(1).any()
    assert torch.equal(mixed, D.augment(x, torch.Generator().manual_seed(5), recolour=0.5))
    everything = D.augment(x, torch.Generator().manual_seed(5), recolour=1.0)
    assert not torch.allclose(D.channel_statistics(everything)[0], mean)


def test_keep_lab_spares_a_share_every_shift_but_the_dihedral_turns():
    x = torch.rand(64, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    shifts = dict(
        hue=50.0, brighten=0.5, darken=0.5, color_jitter=0.1, stain_jitter=0.3, saturation=0.7,
        blur=1.5, noise=0.08, jpeg=0.3, artefacts=0.3,
    )  # fmt: skip
    dihedral_only = D.augment(x.clone(), torch.Generator().manual_seed(1))
    all_kept = D.augment(x.clone(), torch.Generator().manual_seed(1), keep_lab=1.0, **shifts)
    torch.testing.assert_close(all_kept, dihedral_only)  # the turns are drawn first, as always
    half = D.augment(x.clone(), torch.Generator().manual_seed(1), keep_lab=0.5, **shifts)
    kept = (half - dihedral_only).abs().amax(dim=(1, 2, 3)) == 0
    assert 20 <= int(kept.sum()) <= 44


def test_shift_chance_lets_each_colour_shift_reach_about_that_share_of_images():
    x = torch.rand(200, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    colour = dict(hue=50.0, brighten=0.5, darken=0.5, stain_jitter=0.3, saturation=0.7)
    dihedral_only = D.augment(x.clone(), torch.Generator().manual_seed(2))
    never = D.augment(x.clone(), torch.Generator().manual_seed(2), shift_chance=0.0, **colour)
    torch.testing.assert_close(never, dihedral_only)
    sometimes = D.augment(x.clone(), torch.Generator().manual_seed(2), shift_chance=0.3, **colour)
    assert torch.equal(
        sometimes,
        D.augment(x.clone(), torch.Generator().manual_seed(2), shift_chance=0.3, **colour),
    )
    untouched = (sometimes - dihedral_only).abs().amax(dim=(1, 2, 3)) == 0
    # five shifts, each missing an image with chance 0.7: 0.7^5 = 17% of 200 untouched
    assert 15 <= int(untouched.sum()) <= 55
    assert sometimes.min() >= 0 and sometimes.max() <= 1
