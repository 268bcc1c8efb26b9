from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import make_image_folder
from PIL import Image

from blastscan import data as D
from blastscan.errors import BlastscanError


def test_discovers_kaggle_layout_in_kaggle_order(tmp_path: Path):
    make_image_folder(tmp_path / "ds" / "Original", classes=("Pro", "Benign", "Pre", "Early"))
    ds = D.scan_dataset(tmp_path / "ds")
    assert ds.classes == ["Benign", "Early", "Pre", "Pro"]
    assert ds.display_names == ["Benign", "Early Pre-B", "Pre-B", "Pro-B"]
    assert len(ds.samples) == 24 and np.bincount(ds.labels).tolist() == [6, 6, 6, 6]


def test_any_one_folder_per_class_layout(tmp_path: Path):
    make_image_folder(tmp_path, classes=("cats", "dogs"), per_class=3)
    ds = D.scan_dataset(tmp_path)
    assert ds.classes == ["cats", "dogs"] and ds.display_names == ["cats", "dogs"]


def test_a_saved_split_finds_its_images_in_nested_class_folders_moved_elsewhere(tmp_path: Path):
    """Benign/day1/img-000.png and Pro/day1/img-000.png must not be taken for one image."""
    import json

    for name in ("old", "new"):
        make_image_folder(tmp_path / name / "Benign" / "day1", classes=("",), per_class=2)
        make_image_folder(tmp_path / name / "Pro" / "day1", classes=("",), per_class=2, seed=1)
    old = D.scan_dataset(tmp_path / "old")
    assert [Path(s.path).name for s in old.samples].count("img-000.png") == 2
    paths = [s.path for s in old.samples]
    (tmp_path / "split.json").write_text(json.dumps({"train": paths[:3], "test": paths[3:]}))
    new = D.scan_dataset(tmp_path / "new")
    split = D.saved_split(tmp_path, new)
    moved = [new.samples[i].path for i in np.concatenate([split["train"], split["test"]])]
    assert [p.replace("/new/", "/old/") for p in moved] == paths


def test_unreadable_files_are_skipped_and_listed(image_folder: Path):
    (image_folder / "Pre" / "broken.jpg").write_bytes(b"not an image")
    ds = D.scan_dataset(image_folder)
    assert len(ds.samples) == 24
    assert [Path(p).name for p, _ in ds.skipped] == ["broken.jpg"]


def test_empty_class_and_single_class_are_clear_errors(tmp_path: Path):
    make_image_folder(tmp_path / "a", classes=("x",), per_class=2)
    with pytest.raises(BlastscanError, match="at least two"):
        D.scan_dataset(tmp_path / "a")
    make_image_folder(tmp_path / "b", classes=("x", "y"), per_class=2)
    (tmp_path / "b" / "z").mkdir()
    with pytest.raises(BlastscanError, match="hold no images"):
        D.scan_dataset(tmp_path / "b")
    with pytest.raises(BlastscanError, match="no such folder"):
        D.scan_dataset(tmp_path / "missing")


def test_manifest_and_cache(image_folder: Path, tmp_path: Path, monkeypatch):
    ds = D.scan_dataset(image_folder)
    D.write_manifest(ds, tmp_path / "run" / "manifest.csv")
    lines = (tmp_path / "run" / "manifest.csv").read_text().splitlines()
    assert lines[0] == "path,class,label,sha256,width,height" and len(lines) == 25
    first = D.load_images(ds, 16, tmp_path / "cache")
    assert first.shape == (24, 16, 16, 3) and first.dtype == np.uint8
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 1

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again despite the cache")

    monkeypatch.setattr(D, "load_image_array", no_decoding)
    np.testing.assert_array_equal(D.load_images(ds, 16, tmp_path / "cache"), first)


def test_split_is_stratified_reproducible_and_keeps_duplicates_together():
    labels = np.repeat([0, 1, 2, 3], [50, 100, 90, 80])
    groups = np.arange(len(labels))
    groups[1::2] = groups[::2][: len(groups[1::2])]  # pairs of duplicates
    train, test = D.stratified_group_split(labels, groups, 0.3, seed=3)
    again = D.stratified_group_split(labels, groups, 0.3, seed=3)
    assert np.array_equal(train, again[0]) and np.array_equal(test, again[1])
    assert set(train).isdisjoint(test) and len(train) + len(test) == len(labels)
    assert not set(groups[train]) & set(groups[test])
    for cls in range(4):
        share = np.mean(labels[test] == cls) / np.mean(labels == cls)
        assert 0.9 < share * len(test) / len(labels) / 0.3 < 1.1


def test_near_duplicates_are_grouped(tmp_path: Path):
    make_image_folder(tmp_path, classes=("a", "b"), per_class=4, size=32)
    original = tmp_path / "a" / "img-000.png"
    pixels = np.asarray(Image.open(original)).astype(int)
    Image.fromarray(np.clip(pixels + 2, 0, 255).astype(np.uint8)).save(
        tmp_path / "a" / "img-000b.png"
    )
    (tmp_path / "b" / "copy.png").write_bytes((tmp_path / "b" / "img-001.png").read_bytes())
    ds = D.scan_dataset(tmp_path)
    groups = D.duplicate_groups(ds, D.load_images(ds, 32, tmp_path / "c"))
    by_name = {Path(s.path).name + s.class_name: g for s, g in zip(ds.samples, groups, strict=True)}
    assert by_name["img-000.pnga"] == by_name["img-000b.pnga"]
    assert by_name["copy.pngb"] == by_name["img-001.pngb"]
    assert len(set(groups)) == len(ds.samples) - 2


def test_duplicates_are_searched_at_one_size_whatever_the_run_decoded(tmp_path: Path):
    make_image_folder(tmp_path, classes=("a", "b"), per_class=4, size=32)
    ds = D.scan_dataset(tmp_path)
    ramp = np.broadcast_to(np.arange(32, dtype=np.uint8)[:, None, None] * 8, (32, 32, 3))
    alike = np.stack([ramp] * len(ds.samples))  # one picture 8 times: would make one group
    assert len(set(D.duplicate_groups(ds, alike))) == 1

    expected = D.duplicate_groups(ds, D.load_images(ds, D.DUPLICATE_SEARCH_SIZE, tmp_path / "c"))
    for run_images in (None, alike, D.load_images(ds, 64, tmp_path / "c")):
        found = D.find_duplicate_groups(ds, tmp_path / "c", run_images)
        np.testing.assert_array_equal(found, expected)


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


def test_open_rgb_converts_odd_modes(tmp_path: Path):
    Image.new("LA", (5, 4), (100, 0)).save(tmp_path / "gray_alpha.png")
    Image.new("CMYK", (5, 4), (0, 0, 0, 0)).save(tmp_path / "cmyk.jpg")
    Image.fromarray(np.full((4, 5), 40000, dtype=np.uint16)).save(tmp_path / "deep.png")
    for name in ("gray_alpha.png", "cmyk.jpg", "deep.png"):
        image = D.open_rgb(tmp_path / name)
        assert image.mode == "RGB" and image.size == (5, 4)
    assert np.asarray(D.open_rgb(tmp_path / "gray_alpha.png")).min() == 255  # transparent on white


def _black_with_square(side: int, size: int = 40, value: int = 200) -> np.ndarray:
    image = np.zeros((size, size, 3), dtype=np.uint8)
    image[:side, :side] = value
    return image


def test_foreground_fraction_counts_pixels_above_the_level():
    assert D.foreground_fraction(_black_with_square(20)) == pytest.approx(0.25)
    assert D.foreground_fraction(np.zeros((8, 8, 3), np.uint8)) == 0.0
    faint = _black_with_square(40, value=D.FOREGROUND_LEVEL)  # at the level: still background
    assert D.foreground_fraction(faint) == 0.0
    assert D.foreground_fraction(faint[..., 0], level=D.FOREGROUND_LEVEL - 1) == 1.0  # 2-D


def test_dataset_coverage_finds_the_nearly_empty_class(tmp_path: Path):
    """Synthetic Segmented set: one class of full cells, one of nearly empty images (as Pro)."""
    sides = {"Benign": [20, 16, 12], "Pro": [1, 2, 20]}  # 1x1 and 2x2 of 40x40 < 0.5%
    for cls, values in sides.items():
        folder = tmp_path / "Segmented" / cls
        folder.mkdir(parents=True)
        for i, side in enumerate(values):
            Image.fromarray(_black_with_square(side)).save(folder / f"img{i}.png")
    (tmp_path / "Original").mkdir()
    summary = D.dataset_coverage(tmp_path, "Segmented")
    assert summary["n_images"] == 6 and summary["nearly_empty"] == 2
    benign, pro = summary["per_class"]["Benign"], summary["per_class"]["Pro-B"]
    assert benign["nearly_empty"] == 0 and benign["median_foreground"] == pytest.approx(0.16)
    assert pro["nearly_empty"] == 2 and pro["nearly_empty_fraction"] == pytest.approx(2 / 3)
    assert pro["p10_foreground"] < D.NEARLY_EMPTY_BELOW


def test_to_float_tensor_is_nchw_channels_last_in_unit_range():
    batch = np.random.default_rng(0).integers(0, 256, (2, 5, 4, 3), dtype=np.uint8)
    x = D.to_float_tensor(batch)
    assert x.shape == (2, 3, 5, 4) and x.dtype == torch.float32
    assert x.is_contiguous(memory_format=torch.channels_last)
    np.testing.assert_allclose(x.permute(0, 2, 3, 1).numpy(), batch / 255.0, rtol=1e-6)


def test_batches_for_cuda_go_through_pinned_memory_without_blocking(monkeypatch):
    """No GPU here: record what the copy does instead of doing it."""
    calls = []
    real_to = torch.Tensor.to

    def pin(self):
        calls.append("pin")
        return self

    def to(self, device, *args, **kwargs):
        if torch.device(device).type == "cuda":
            calls.append(("to", torch.device(device).type, kwargs.get("non_blocking")))
            return self
        return real_to(self, device, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "pin_memory", pin)
    monkeypatch.setattr(torch.Tensor, "to", to)
    D.to_float_tensor(np.zeros((1, 2, 2, 3), np.uint8), "cuda")
    assert calls == ["pin", ("to", "cuda", True)]
    calls.clear()
    D.to_float_tensor(np.zeros((1, 2, 2, 3), np.uint8), "cpu")
    assert calls == []  # nothing to pin for the CPU


def test_a_dataset_scan_skips_hidden_files_and_folders(tmp_path):
    from PIL import Image

    for name in ("a", "b"):
        (tmp_path / name / ".thumbs").mkdir(parents=True)
        Image.new("RGB", (8, 8), "pink").save(tmp_path / name / "x.png")
        Image.new("RGB", (8, 8), "pink").save(tmp_path / name / ".thumbs" / "y.png")
        (tmp_path / name / "._x.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    dataset = D.scan_dataset(tmp_path)
    assert [Path(s.path).name for s in dataset.samples] == ["x.png", "x.png"]
    assert not dataset.skipped  # not even reported: they are not images
