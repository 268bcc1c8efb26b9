"""Finding a dataset: layouts, class folders, unreadable and hidden files, the manifest."""

from pathlib import Path

import numpy as np
import pytest
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


def test_a_dataset_scan_skips_hidden_files_and_folders(tmp_path):

    for name in ("a", "b"):
        (tmp_path / name / ".thumbs").mkdir(parents=True)
        Image.new("RGB", (8, 8), "pink").save(tmp_path / name / "x.png")
        Image.new("RGB", (8, 8), "pink").save(tmp_path / name / ".thumbs" / "y.png")
        (tmp_path / name / "._x.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    dataset = D.scan_dataset(tmp_path)
    assert [Path(s.path).name for s in dataset.samples] == ["x.png", "x.png"]
    assert not dataset.skipped  # not even reported: they are not images
