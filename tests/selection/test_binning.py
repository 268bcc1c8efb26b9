"""equiprobable_bins against a literal reference."""

from __future__ import annotations

import pytest
from selection_helpers import mixed_data

from blastscan.selection import equiprobable_bins


def ref_bins(x: list[float], n_bins: int) -> list[int]:
    """Distinct-value index when few, else floor(lowest rank * n_bins / n)."""
    distinct = sorted(set(x))
    if len(distinct) <= n_bins:
        return [distinct.index(v) for v in x]
    ranked = sorted(x)
    return [ranked.index(v) * n_bins // len(x) for v in x]


@pytest.mark.parametrize("n_bins", [4, 16, 256])
def test_bins_match_reference(n_bins):
    X, _ = mixed_data(0, n=60)
    got = equiprobable_bins(X, n_bins)
    for j in range(X.shape[1]):
        assert got[:, j].tolist() == ref_bins(X[:, j].tolist(), n_bins)
