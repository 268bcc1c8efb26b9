"""How much of each Segmented image is cell, and how much black background."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from blastscan.data.files import DISPLAY_NAMES, discover_classes, resolve_class_root
from blastscan.data.images import open_rgb

# A pixel is foreground when any channel exceeds this level (0-255). The Segmented set draws
# cells on black; JPEG ringing and the palest halo leave faint non-zero pixels around them,
# hence not 0. At 60 the count of nearly empty Pro images (238 of 804) matches the dataset's
# SOURCE.md; the count depends on the level (docs/results.md gives 0-60).
FOREGROUND_LEVEL = 60


# Below this foreground fraction an image is "nearly empty" (as in the dataset's SOURCE.md).
NEARLY_EMPTY_BELOW = 0.005


def foreground_fraction(image: np.ndarray, level: int = FOREGROUND_LEVEL) -> float:
    """Fraction of pixels brighter than `level` in any channel of an (H, W[, C]) uint8 image."""
    pixels = np.asarray(image)
    brightest = pixels.max(axis=-1) if pixels.ndim == 3 else pixels
    return float(np.mean(brightest > level))


def foreground_fractions(
    paths: Sequence[str | Path], level: int = FOREGROUND_LEVEL, workers: int = 4
) -> np.ndarray:
    """`foreground_fraction` of every image file, decoded at full size (threads; JPEG is I/O)."""

    def one(path: str | Path) -> float:
        return foreground_fraction(np.asarray(open_rgb(path)), level)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return np.array(list(pool.map(one, paths)), dtype=np.float64)


def coverage_summary(
    fractions: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    empty_below: float = NEARLY_EMPTY_BELOW,
    level: int = FOREGROUND_LEVEL,
) -> dict:
    """Per class: images, median and 10th-percentile foreground, and how many are nearly empty.

    Nearly empty images carry little but "this is empty" for a classifier to learn from; when
    one class holds most of them (Segmented Pro-B), emptiness itself becomes a class cue.
    """
    fractions, labels = np.asarray(fractions, dtype=np.float64), np.asarray(labels)
    per_class = {}
    for k, name in enumerate(class_names):
        f = fractions[labels == k]
        empty = int(np.sum(f < empty_below))
        per_class[name] = {
            "n": int(len(f)),
            "median_foreground": float(np.median(f)) if len(f) else None,
            "p10_foreground": float(np.percentile(f, 10)) if len(f) else None,
            "nearly_empty": empty,
            "nearly_empty_fraction": empty / len(f) if len(f) else 0.0,
        }
    return {
        "level": level,
        "nearly_empty_below": empty_below,
        "rule": f"foreground = any channel > {level}/255; nearly empty = foreground < "
        f"{100 * empty_below:g}% of the image",
        "n_images": int(len(fractions)),
        "nearly_empty": int(np.sum(fractions < empty_below)),
        "per_class": per_class,
    }


def dataset_coverage(
    data_dir: str | Path,
    variant: str = "Segmented",
    level: int = FOREGROUND_LEVEL,
    empty_below: float = NEARLY_EMPTY_BELOW,
) -> dict:
    """`coverage_summary` of every image of a dataset folder (e.g. the Kaggle Segmented set)."""
    root = resolve_class_root(data_dir, variant)
    classes = discover_classes(root)
    paths = [p for _, files in classes for p in files]
    labels = np.concatenate([np.full(len(files), k) for k, (_, files) in enumerate(classes)])
    names = [DISPLAY_NAMES.get(name, name) for name, _ in classes]
    fractions = foreground_fractions(paths, level)
    return coverage_summary(fractions, labels, names, empty_below, level)
