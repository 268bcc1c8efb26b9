"""Splits and duplicates: stratified, reproducible, duplicates on one side."""

from pathlib import Path

import numpy as np
from helpers import make_image_folder
from PIL import Image

from blastscan import data as D


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
