"""Foreground coverage of Segmented images."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from blastscan import data as D


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
