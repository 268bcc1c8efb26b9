"""Binned variables: equiprobable bin codes, their cumulative counts and median cuts.

Every estimator of the package works on uint8 bin codes (at most MAX_BINS per variable); the
median cut here is the one rule all of them use to halve a cell of binned samples, and
`_feature_chunks` bounds the memory of their per-feature tables.
"""

from __future__ import annotations

import numpy as np

MAX_BINS = 256
_CHUNK_ELEMENTS = 2**24  # bound on the per-chunk tables of the relevance passes (64 MiB int32)


def equiprobable_bins(X: np.ndarray, n_bins: int = MAX_BINS) -> np.ndarray:
    """Bin each column into `n_bins` equiprobable bins, or its distinct values when fewer.

    A value's bin is its lowest rank scaled to `n_bins`, so tied values always share a bin
    (the bins are equiprobable up to ties). Returns uint8 codes, shape (n, m).
    """
    n, m = X.shape
    order = np.argsort(X, axis=0, kind="stable")
    xs = np.take_along_axis(X, order, axis=0)
    new = np.ones((n, m), dtype=bool)
    new[1:] = xs[1:] != xs[:-1]
    lowest_rank = np.maximum.accumulate(np.where(new, np.arange(n)[:, None], 0), axis=0)
    distinct = np.cumsum(new, axis=0) - 1
    few = distinct[-1] + 1 <= n_bins
    codes = np.where(few, distinct, lowest_rank * n_bins // n).astype(np.uint8)
    out = np.empty((n, m), dtype=np.uint8)
    np.put_along_axis(out, order, codes, axis=0)
    return out


def _cumulative_counts(bins_t: np.ndarray) -> np.ndarray:
    """cum[j, t] = samples of feature j with bin < t; shape (m, MAX_BINS + 1)."""
    m = bins_t.shape[0]
    keys = bins_t.astype(np.int64) + (np.arange(m) * MAX_BINS)[:, None]
    hist = np.bincount(keys.ravel(), minlength=m * MAX_BINS).reshape(m, MAX_BINS)
    cum = np.zeros((m, MAX_BINS + 1), dtype=np.int64)
    np.cumsum(hist, axis=1, out=cum[:, 1:])
    return cum


def _median_cut(
    med: np.ndarray, below: np.ndarray, upto: np.ndarray, count: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Cut of a cell at its median bin: (last bin of the lower part, samples in the lower part).

    With binned data many samples share the median bin, so the cut goes just above it (`upto`
    samples below) or just below it (`below` samples), whichever halves the cell better, never
    emptying the lower part. A lower part of 0 or `count` means the cell cannot be cut.
    """
    use_below = ((upto == count) | (np.abs(2 * below - count) < np.abs(2 * upto - count))) & (
        below > 0
    )
    return med - use_below, np.where(use_below, below, upto)


def _root_cuts(cum: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Median cut of every feature over all samples (the root cell of each partition)."""
    half = (n + 1) // 2
    med = np.argmax(cum[:, 1:] >= half, axis=1)
    rows = np.arange(cum.shape[0])
    return _median_cut(med, cum[rows, med], cum[rows, med + 1], np.full(len(rows), n))


def _feature_chunks(m: int, per_feature: int) -> list[slice]:
    """Slices of features whose tables of `per_feature` elements each fit _CHUNK_ELEMENTS."""
    size = max(1, min(m, _CHUNK_ELEMENTS // max(per_feature, 1)))
    return [slice(start, start + size) for start in range(0, m, size)]
