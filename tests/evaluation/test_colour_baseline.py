"""What colour alone gives away: a class tint is read, and nothing else."""

from __future__ import annotations

import numpy as np
import pytest


def _tinted_smears(n: int, tints: np.ndarray, seed: int = 0) -> np.ndarray:
    """Light backgrounds of the given RGB tints, each with a dark disc at a random place."""
    rng = np.random.default_rng(seed)
    images = np.empty((n, 24, 24, 3), np.float32)
    yy, xx = np.mgrid[:24, :24]
    for i in range(n):
        images[i] = tints[i] + rng.normal(0, 3, (24, 24, 3))
        cy, cx = rng.integers(6, 18, 2)
        images[i][(yy - cy) ** 2 + (xx - cx) ** 2 < 16] = (70, 30, 110)
    return np.clip(images, 0, 255).astype(np.uint8)


def test_colour_baseline_reads_a_class_tint_and_nothing_else():
    from blastscan.evaluation import MAJORITY, colour_baseline

    labels = np.repeat([0, 1, 2], 40)
    train, test = np.arange(0, 120, 2), np.arange(1, 120, 2)
    background = "lighter half of the pixels: mean RGB"
    class_tints = np.array([(230, 200, 210), (215, 205, 220), (225, 215, 200)])[labels]
    tinted = colour_baseline(_tinted_smears(120, class_tints), labels, train, test)
    assert tinted["baselines"][background]["accuracy"]["value"] == 1.0
    assert tinted["baselines"][MAJORITY]["accuracy"]["value"] == pytest.approx(1 / 3)
    rng = np.random.default_rng(1)
    random_tints = np.array([(230, 200, 210), (215, 205, 220), (225, 215, 200)])[
        rng.integers(0, 3, 120)
    ]
    untinted = colour_baseline(_tinted_smears(120, random_tints), labels, train, test)
    for result in untinted["baselines"].values():
        assert result["accuracy"]["high"] > 1 / 3 > result["accuracy"]["value"] - 0.2
        assert result["accuracy"]["n"] == 60
