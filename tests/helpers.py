"""Test helpers importable from every test module (tests/ is on pytest's pythonpath)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

ASSETS = Path(__file__).resolve().parent / "assets"  # small files the tests read
REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "all-idb-taleqani"


def make_image_folder(
    root: Path, classes=("Benign", "Early", "Pre", "Pro"), per_class=6, size=32, seed=0
) -> Path:
    """One folder per class of small synthetic 'smears': each class has its own colour blob."""
    rng = np.random.default_rng(seed)
    for label, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(150, 230, (size, size, 3)).astype(np.uint8)
            cy, cx = rng.integers(size // 4, 3 * size // 4, 2)
            yy, xx = np.mgrid[:size, :size]
            blob = (yy - cy) ** 2 + (xx - cx) ** 2 < (size // 6 + label) ** 2
            pixels[blob] = np.array([60 * label % 255, 40, 200 - 40 * label], dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"img-{i:03d}.png")
    return root
