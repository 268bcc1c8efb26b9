"""The decoded-image cache."""

from pathlib import Path

import numpy as np

from blastscan import data as D


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

    monkeypatch.setattr("blastscan.data.cache.load_image_array", no_decoding)
    np.testing.assert_array_equal(D.load_images(ds, 16, tmp_path / "cache"), first)
