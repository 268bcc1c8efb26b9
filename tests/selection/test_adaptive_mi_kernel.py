"""The compiled kernel (engine "numba") against the numpy engine, pair by pair."""

from __future__ import annotations

import numpy as np
import pytest
from selection_helpers import ALPHA, correlated_data, mixed_data

from blastscan.selection import AdaptiveMI, equiprobable_bins


def assert_same_mi(bins: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """Every pair's I(z; x) from both engines: the same zeros, the rest within rounding."""
    fast, slow = AdaptiveMI(bins, alpha, engine="numba"), AdaptiveMI(bins, alpha, engine="numpy")
    values = []
    for z in range(bins.shape[1]):
        cand = np.delete(np.arange(bins.shape[1]), z)
        a, b = fast(z, cand), slow(z, cand)
        np.testing.assert_array_equal(a == 0, b == 0)
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=0)
        values.append(b)
    return np.concatenate(values)


@pytest.mark.parametrize(
    ("make", "n_bins", "alpha"),
    [
        (lambda: correlated_data(2, n=800, m=30)[0], 256, ALPHA),  # deep partitions
        (lambda: correlated_data(3, n=517, m=20)[0], 256, 0.5),  # small cells open (n % 64 != 0)
        (lambda: mixed_data(6, n=333, m=12)[0], 256, ALPHA),  # ties, constant, 3 values
        (lambda: mixed_data(7, n=300, m=12)[0], 6, 0.2),  # few bins: heavy ties
        (lambda: correlated_data(4, n=40, m=10)[0], 256, 0.9),  # tiny n, nearly every cut
    ],
)
def test_numba_engine_matches_numpy_engine(make, n_bins, alpha):
    values = assert_same_mi(equiprobable_bins(make(), n_bins), alpha)
    assert (values > 0).any()


def test_numba_engine_matches_numpy_engine_on_heavy_ties():
    """ReLU-like features: half the samples share the lowest bin, so median cuts hit ties."""
    rng = np.random.default_rng(8)
    factor = rng.normal(size=(1200, 1))
    X = np.maximum(factor + rng.uniform(0.1, 1.5, 16) * rng.normal(size=(1200, 16)), 0)
    X[:, 3] = np.round(X[:, 3], 1)
    values = assert_same_mi(equiprobable_bins(X))
    assert (values > 0.3).any()
