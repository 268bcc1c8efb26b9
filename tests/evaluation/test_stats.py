"""Intervals with known values: Wilson and the bootstrap."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from blastscan.evaluation import (
    bootstrap_interval,
    wilson_interval,
)


def test_wilson_known_value():
    # Textbook Wilson score interval; scipy agrees. (0.7233, 0.8720) sometimes quoted for this
    # case is not the Wilson interval.
    low, high = wilson_interval(81, 100)
    assert (low, high) == pytest.approx((0.72221, 0.87485), abs=1e-5)
    ref = binomtest(81, 100).proportion_ci(confidence_level=0.95, method="wilson")
    assert (low, high) == pytest.approx((ref.low, ref.high), abs=1e-12)


def test_wilson_edges_stay_in_unit_interval():
    assert wilson_interval(0, 50)[0] == 0.0
    low, high = wilson_interval(3254, 3256)
    assert high <= 1.0 and low < 3254 / 3256 < high
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(5, 4)


def test_wilson_narrows_with_confidence():
    assert wilson_interval(40, 50, 0.9)[0] > wilson_interval(40, 50, 0.99)[0]


def test_bootstrap_interval_brackets_accuracy_and_is_reproducible():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    pred = np.where(rng.random(300) < 0.8, y, (y + 1) % 3)
    low, high = bootstrap_interval(y, pred, n_boot=500)
    assert low < np.mean(y == pred) < high
    assert (low, high) == bootstrap_interval(y, pred, n_boot=500)
    f1 = bootstrap_interval(y, pred, lambda a, b: float(np.mean(a == b)), n_boot=100)
    assert f1[0] < f1[1]
