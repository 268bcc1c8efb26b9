"""Darbellay-Vajda mutual information (both engines) and relevance against the reference."""

from __future__ import annotations

import numpy as np
import pytest
from selection_helpers import correlated_data, mixed_data, ref_dv, ref_relevance

from blastscan.selection import ENGINES, AdaptiveMI, adaptive_relevance, equiprobable_bins


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("seed", range(4))
def test_adaptive_mi_matches_reference(seed, engine):
    X, _ = mixed_data(seed)
    bins = equiprobable_bins(X, [256, 16, 8, 256][seed])
    mi = AdaptiveMI(bins, engine=engine)
    cols = [bins[:, j].tolist() for j in range(bins.shape[1])]
    for z in range(bins.shape[1]):
        others = np.delete(np.arange(bins.shape[1]), z)
        want = [ref_dv(cols[z], cols[x]) for x in others]
        np.testing.assert_allclose(mi(z, others), want, rtol=0, atol=1e-12)


def test_relevance_matches_reference():
    X, y = mixed_data(5, n=300)
    bins = equiprobable_bins(X)
    want = [ref_relevance(bins[:, j].tolist(), y.tolist()) for j in range(X.shape[1])]
    np.testing.assert_allclose(adaptive_relevance(bins, y), want, rtol=0, atol=1e-12)


# --------------------------------------------------------------------------------------------
# Threads


@pytest.mark.parametrize("engine", ENGINES)
def test_threads_give_the_same_mutual_information_bit_for_bit(engine):
    X, _ = correlated_data(0)
    bins = equiprobable_bins(X)
    cand = np.arange(1, X.shape[1])
    one = AdaptiveMI(bins, engine=engine)(0, cand)
    assert one.min() > 0.1 and one.max() > 0.7  # deep partitions: every level is exercised
    for threads in (2, 3):
        mi = AdaptiveMI(bins, n_threads=threads, engine=engine)
        np.testing.assert_array_equal(mi(0, cand), one)
