"""mRMR feature ranking as MATLAB's ``fscmrmr`` does it, as a scikit-learn selector.

fscmrmr (MATLAB documentation, "Algorithms") ranks features by a forward scheme on the mutual
information quotient MIQ(x) = V(x) / W(x), with relevance V(x) = I(x; y) and redundancy W(x) the
mean of I(x; z) over the features z already selected:

1. the most relevant feature first;
2. then, while any remain, the features with nonzero relevance and zero redundancy, most
   relevant first;
3. then repeatedly the feature with the largest MIQ;
4. the features with zero relevance last (MATLAB: "in random order"; here in input order, so a
   fit is reproducible).

Mutual information is estimated as fscmrmr documents it: every variable is discretised into 256
equiprobable bins (or its distinct values when fewer), and each pair gets an adaptive bivariate
partition (Darbellay & Vajda, 1999). A plain plug-in estimate on the fixed 256 x 256 grid is
badly biased at a few thousand samples (two independent features look about 3 nats redundant,
see docs/mrmr.md), which is why the adaptive estimator is the default and "plugin" is only kept
for comparison.

No library implements the Darbellay-Vajda partition, so it is written here, twice. The
default engine, "numba", is a compiled kernel (`blastscan._dv_kernel`) that partitions one pair
at a time with an explicit stack, candidates spread over threads (`n_jobs`). The "numpy" engine
is the reference it is tested against: vectorised across the candidate features, the first two
levels of every pair's partition run as dense byte and bit-count operations over a
(candidates x samples) matrix, the samples of the third level's cells are extracted from it
densely too, and deeper levels work on flat per-sample arrays. Both cut the same cells at the
same medians and tests; only the order of the final sums differs (rounding, about 1e-15
relative). With either, the result does not depend on the number of threads.

`scores_` is the MIQ at selection. MATLAB's `scores` are on another, smaller scale that no
definition tried reproduces (docs/mrmr.md, "Fidelity to MATLAB").
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from scipy.stats import chi2
from sklearn.base import BaseEstimator
from sklearn.feature_selection import SelectorMixin
from sklearn.utils.validation import check_is_fitted

from blastscan.errors import BlastscanError
from blastscan.io import atomic_write

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data
except ImportError:  # pragma: no cover - older scikit-learn

    def validate_data(estimator, X, y, **kwargs):
        return estimator._validate_data(X, y, **kwargs)


MAX_BINS = 256
ESTIMATORS = ("adaptive", "plugin")
ENGINES = ("numba", "numpy")  # the adaptive pairwise MI: compiled kernel, numpy reference
# Redundancy sums at or below this are "zero": an adaptive MI is exactly 0 when the partition
# stops at the root and otherwise clearly positive, so only rounding lives below it.
ZERO_REDUNDANCY = 1e-12
_CHUNK_ELEMENTS = 2**24  # bound on the per-chunk tables of the relevance passes (64 MiB int32)
_MIN_THREAD_CHUNK = 32  # fewer candidates per thread than this are not worth a thread

MIFunction = Callable[[int, np.ndarray], np.ndarray]


# --------------------------------------------------------------------------------------------
# Discretisation and marginals


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


# --------------------------------------------------------------------------------------------
# Small statistics shared by the estimators


def _chi2_2x2(table: np.ndarray) -> np.ndarray:
    """Pearson chi-square of 2x2 tables given as rows (a, b, c, d); 0 where a margin is 0."""
    a, b, c, d = (table[:, i].astype(np.float64) for i in range(4))
    margins = (a + b) * (c + d) * (a + c) * (b + d)
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = (a + b + c + d) * (a * d - b * c) ** 2 / margins
    return np.where(margins > 0, stat, 0.0)


def _cell_information(count: np.ndarray, nz: np.ndarray, nx: np.ndarray, n: int) -> np.ndarray:
    """A partition cell's share of I(z; x): p log(p / (p_z p_x)), with p_z, p_x its margins."""
    count = count.astype(np.float64)
    return count / n * np.log(count * n / (nz.astype(np.float64) * nx))


def _split_threshold(alpha: float, dof: int) -> float:
    """Chi-square value above which a cell is cut (significance `alpha`)."""
    return float(chi2.ppf(1.0 - alpha, dof))


# --------------------------------------------------------------------------------------------
# Bit-packed rows: k-th set bit and prefix counts in O(samples / 8)

# _SELECT[b, r]: position (0 = most significant, np.packbits order) of the (r+1)-th set bit of b
_SELECT = np.zeros((256, 8), dtype=np.int64)
for _b in range(256):
    _pos = np.flatnonzero(np.unpackbits(np.array([_b], dtype=np.uint8)))
    _SELECT[_b, : len(_pos)] = _pos
_LEADING = np.array([0x00, 0x80, 0xC0, 0xE0, 0xF0, 0xF8, 0xFC, 0xFE], dtype=np.uint8)
_BYTE_POPCOUNT = np.array([bin(b).count("1") for b in range(256)], dtype=np.uint8)
# set bits per byte: numpy >= 2.0 has it built in, a table lookup does it on 1.26
_popcount = getattr(np, "bitwise_count", lambda a: _BYTE_POPCOUNT[a])


class _BitRows:
    """Boolean rows packed 8 per byte with cumulative per-byte counts.

    Order statistics of a cell (its median sample) and counts over a prefix of a sorted order
    are then a search over n/8 bytes instead of a cumulative sum over n samples.
    """

    def __init__(self, mask: np.ndarray) -> None:
        self.width = mask.shape[1]
        self.packed = np.packbits(mask, axis=1)
        self.byte_count = _popcount(self.packed)
        self.cum = np.cumsum(self.byte_count, axis=1, dtype=np.int32)
        self.rows = np.arange(mask.shape[0])

    def count_prefix(self, length: np.ndarray) -> np.ndarray:
        """Set bits among the first `length` columns of each row."""
        length = np.clip(length, 0, self.width)
        full, rest = length // 8, length % 8
        before = np.where(full > 0, self.cum[self.rows, np.maximum(full - 1, 0)], 0)
        last = np.minimum(full, self.packed.shape[1] - 1)
        partial = _popcount(self.packed[self.rows, last] & _LEADING[rest])
        return before + np.where(rest > 0, partial, 0)

    def kth(self, k: np.ndarray) -> np.ndarray:
        """Column of the k-th set bit (k >= 1) of each row; garbage (but in range) if k is 0."""
        byte = np.argmax(self.cum >= k[:, None], axis=1)
        before = self.cum[self.rows, byte] - self.byte_count[self.rows, byte]
        rank = np.clip(k - before - 1, 0, 7)
        col = byte * 8 + _SELECT[self.packed[self.rows, byte], rank]
        return np.minimum(col, self.width - 1)


# --------------------------------------------------------------------------------------------
# Darbellay-Vajda mutual information of one feature against many


@dataclass
class _Cells:
    """Open cells of many partitions: owner (candidate), bin ranges [z0, z1] x [x0, x1], size."""

    owner: np.ndarray
    z0: np.ndarray
    z1: np.ndarray
    x0: np.ndarray
    x1: np.ndarray
    count: np.ndarray

    def take(self, keep: np.ndarray) -> _Cells:
        return _Cells(*(a[keep] for a in vars(self).values()))


def _children(cells: _Cells, zcut: np.ndarray, xcut: np.ndarray, table: np.ndarray) -> _Cells:
    """The four sub-cells of each cell, quadrant q = 2 * (z above cut) + (x above cut)."""
    rep = np.repeat(np.arange(len(cells.count)), 4)
    q = np.tile(np.arange(4), len(cells.count))
    z_hi, x_hi = q >= 2, (q & 1) == 1
    return _Cells(
        owner=cells.owner[rep],
        z0=np.where(z_hi, zcut[rep] + 1, cells.z0[rep]),
        z1=np.where(z_hi, cells.z1[rep], zcut[rep]),
        x0=np.where(x_hi, xcut[rep] + 1, cells.x0[rep]),
        x1=np.where(x_hi, cells.x1[rep], xcut[rep]),
        count=table.reshape(-1),
    )


def _quadrant_table(low_low: np.ndarray, z_low: np.ndarray, x_low: np.ndarray, count) -> np.ndarray:
    """2x2 counts (z low & x low, z low & x high, z high & x low, both high) from one cell and
    the two margins the median cuts fixed."""
    return np.stack(
        [low_low, z_low - low_low, x_low - low_low, count - z_low - x_low + low_low], axis=-1
    )


def _cell_cuts(values: np.ndarray, cell: np.ndarray, lo: np.ndarray, hi: np.ndarray, count):
    """Median cut of every cell along one axis, from a histogram of its samples' bins."""
    width = hi - lo + 1
    offset = np.zeros(len(width), dtype=np.int64)
    np.cumsum(width[:-1], out=offset[1:])
    keys = (offset - lo)[cell]
    keys += values
    hist = np.bincount(keys, minlength=int(offset[-1] + width[-1]))
    cum = np.cumsum(hist)
    start = cum[offset] - hist[offset]
    pos = np.searchsorted(cum, start + (count + 1) // 2, side="left")
    upto = cum[pos] - start
    return _median_cut(pos - offset + lo, upto - hist[pos], upto, count)


class AdaptiveMI:
    """I(z; x) of one binned feature z against many, by Darbellay-Vajda adaptive partitioning.

    Each pair's rank plane is cut recursively into 2x2 cells at the marginal medians of the
    cell's own samples; a cell is cut only if a chi-square test (3 degrees of freedom,
    significance `alpha`) says its four sub-cell counts are not uniform. The estimate is the
    sum over the final cells of p log(p / (p_z p_x)), with p_z, p_x the cell's marginal
    probabilities. Independent features usually stop at the root and give exactly 0.

    `engine` "numba" runs the compiled kernel of `blastscan._dv_kernel` (compiled on first use
    and cached on disk), "numpy" the vectorised reference; they agree up to rounding.
    """

    def __init__(
        self, bins: np.ndarray, alpha: float = 0.05, n_threads: int = 1, engine: str = "numba"
    ) -> None:
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
        self.n, self.m = bins.shape
        self.threshold = _split_threshold(alpha, 3)
        self.n_threads = n_threads
        self.engine = engine
        self.codes = np.ascontiguousarray(bins.T)  # (m, n) uint8
        self.cum = _cumulative_counts(self.codes)
        self.cut, self.low = _root_cuts(self.cum, self.n)
        self.low_bits = np.packbits(self.codes <= self.cut[:, None], axis=1)
        # intp: np.take converts any other index dtype to it, a pass over k x n per pick
        self.order = np.argsort(self.codes, axis=1, kind="stable")
        self.sorted_codes = np.take_along_axis(self.codes, self.order, axis=1)
        if engine == "numba":
            from blastscan import _dv_kernel

            self._kernel = _dv_kernel.information
            self._tables = (
                self.codes,
                self.order.astype(np.int64, copy=False),
                self.sorted_codes,
                self.cum,
                self.cut.astype(np.int64, copy=False),
                self.low.astype(np.int64, copy=False),
                _dv_kernel.root_words(self.codes, self.cut),
            )

    def __call__(self, z: int, cand: np.ndarray) -> np.ndarray:
        """I(z; x) in nats for every feature index x in `cand`.

        With `n_threads` > 1 the candidates are shared among that many threads (the compiled
        kernel releases the GIL; numpy releases it in the per-sample passes); every pair's
        partition only involves its own cells, so the result is the same, bit for bit.
        """
        if self.engine == "numba":
            return self._kernel(z, cand, self._tables, self.threshold, self.n_threads)
        chunks = min(self.n_threads, len(cand) // _MIN_THREAD_CHUNK)
        if chunks <= 1:
            return self._information(z, cand)
        with ThreadPoolExecutor(chunks) as pool:
            parts = pool.map(partial(self._information, z), np.array_split(cand, chunks))
            return np.concatenate(list(parts))

    def _information(self, z: int, cand: np.ndarray) -> np.ndarray:
        mi = np.zeros(len(cand))
        split, table = self._root(z, cand)
        if split.any():
            mi[split] = _Level2(self, z, cand[split], table[split]).information()
        return mi

    def _root(self, z: int, cand: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Which pairs cut their root cell, and the root 2x2 counts (popcounts of median bits)."""
        n = self.n
        low_low = _popcount(self.low_bits[cand] & self.low_bits[z]).sum(1, dtype=np.int64)
        x_low = self.low[cand]
        z_low = np.full(len(cand), self.low[z])
        table = _quadrant_table(low_low, z_low, x_low, n)
        cuttable = (x_low > 0) & (x_low < n) & (0 < self.low[z] < n)
        return cuttable & (_chi2_2x2(table) > self.threshold), table

    def refine(
        self,
        cells: _Cells,
        cell: np.ndarray,
        zv: np.ndarray,
        xv: np.ndarray,
        z: int,
        cand: np.ndarray,
    ) -> np.ndarray:
        """Finish partitions from open `cells` and their samples (cell id, z bin, x bin).

        `cell` is intp and `zv`, `xv` uint8: every per-sample pass then runs without casts
        (an int32 index is converted to intp by each gather that uses it).
        """
        info = np.zeros(len(cand))
        while len(cells.count):
            zcut, z_low = _cell_cuts(zv, cell, cells.z0, cells.z1, cells.count)
            xcut, x_low = _cell_cuts(xv, cell, cells.x0, cells.x1, cells.count)
            quad = _quadrants(cell, zv > _as_bins(zcut)[cell], xv > _as_bins(xcut)[cell])
            table = np.bincount(quad, minlength=4 * len(cells.count)).reshape(-1, 4)
            cut = self._significant(table, z_low, x_low, cells.count)
            self._close(cells.take(~cut), z, cand, info)
            children = _children(cells.take(cut), zcut[cut], xcut[cut], table[cut])
            cells, slot = self.open_children(cut, children, z, cand, info)
            cell, zv, xv = _keep_samples(slot[quad], zv, xv)
        return info

    def open_children(
        self, cut: np.ndarray, children: _Cells, z: int, cand: np.ndarray, info: np.ndarray
    ) -> tuple[_Cells, np.ndarray]:
        """Close the children too small to pass the test (a 2x2 chi-square is at most the
        cell's size); map parent * 4 + quadrant to the open child's id, or -1."""
        is_open = children.count > self.threshold
        self._close(children.take(~is_open), z, cand, info)
        ids = np.full(len(is_open), -1, dtype=np.intp)
        ids[is_open] = np.arange(int(is_open.sum()), dtype=np.intp)
        slot = np.full(4 * len(cut), -1, dtype=np.intp)
        slot[(np.flatnonzero(cut)[:, None] * 4 + np.arange(4)).ravel()] = ids
        return children.take(is_open), slot

    def _significant(self, table, z_low, x_low, count) -> np.ndarray:
        ok = (z_low > 0) & (z_low < count) & (x_low > 0) & (x_low < count)
        return ok & (_chi2_2x2(table) > self.threshold)

    def _close(self, cells: _Cells, z: int, cand: np.ndarray, info: np.ndarray) -> None:
        """Add final cells' information to their owners (empty cells add nothing)."""
        cells = cells.take(cells.count > 0)
        nz = self.cum[z, cells.z1 + 1] - self.cum[z, cells.z0]
        feat = cand[cells.owner]
        nx = self.cum[feat, cells.x1 + 1] - self.cum[feat, cells.x0]
        part = _cell_information(cells.count, nz, nx, self.n)
        info += np.bincount(cells.owner, weights=part, minlength=len(info))


def _keep_samples(cell: np.ndarray, zv: np.ndarray, xv: np.ndarray):
    """Drop samples whose cell was closed (new id -1).

    Through the kept positions rather than a boolean mask: on numpy 2.x, `a[mask]` over
    millions of samples costs about 5 ns per element and array, `flatnonzero` plus `take`
    about 1."""
    keep = np.flatnonzero(cell >= 0)
    return cell.take(keep), zv.take(keep), xv.take(keep)


def _as_bins(cut: np.ndarray) -> np.ndarray:
    """Cuts as uint8, to compare with uint8 bin codes without a cast per sample.

    A real cut is a bin in [0, 255]; cells that are not cut may carry any value, which
    only has to stay in range."""
    return np.clip(cut, 0, MAX_BINS - 1).astype(np.uint8)


def _pick(mask: np.ndarray, if_false: np.ndarray, if_true: np.ndarray) -> np.ndarray:
    """np.where for boolean operands as bit operations (np.where broadcasts far slower)."""
    return (if_true & mask) | (if_false & ~mask)


def _quadrants(cell: np.ndarray, z_high: np.ndarray, x_high: np.ndarray) -> np.ndarray:
    """cell * 4 + 2 * z_high + x_high, computed in place in the cell's dtype."""
    quad = cell << 2
    quad += np.left_shift(z_high.view(np.uint8), 1)
    quad += x_high
    return quad


class _Level2:
    """Second level of many Darbellay-Vajda partitions at once: the four root quadrants.

    Every pair here cut its root, so each candidate's samples fall in four quadrants. Medians,
    counts and tests of the quadrants are computed on dense (candidates x samples) byte rows:
    in z order (the shared pick's order) for z medians and 2x2 counts, in each candidate's own
    x order for x medians. Quadrant q = 2 * (z high) + (x high).
    """

    def __init__(self, dv: AdaptiveMI, z: int, cand: np.ndarray, table: np.ndarray) -> None:
        self.dv, self.z, self.cand, self.count = dv, z, cand, table
        self.k, self.n = len(cand), dv.n
        self.rows = np.arange(self.k)
        self.zcut, self.zlow = int(dv.cut[z]), int(dv.low[z])
        self.xcut = dv.cut[cand]
        self.zorder_codes = dv.sorted_codes[z].astype(np.int64)
        self.x_by_z = np.take(dv.codes[cand], dv.order[z], axis=1)  # x bins in z order
        self.halves = (self.x_by_z[:, : self.zlow], self.x_by_z[:, self.zlow :])
        self.above = [h > self.xcut.astype(np.uint8)[:, None] for h in self.halves]
        # members of each quadrant, as bits along its z half (z order)
        self.members = [
            _BitRows(~self.above[0]),
            _BitRows(self.above[0]),
            _BitRows(~self.above[1]),
            _BitRows(self.above[1]),
        ]

    def offset(self, q: int) -> int:
        """Position in z order where quadrant q's half starts."""
        return self.zlow if q >= 2 else 0

    def information(self) -> np.ndarray:
        zcut, zlow_q = self._z_cuts()
        xcut, xlow_q = self._x_cuts()
        low_low = self._low_low(zcut, xcut)
        table = _quadrant_table(low_low, zlow_q, xlow_q, self.count)
        flat = self.count.ravel()
        cut = self.dv._significant(table.reshape(-1, 4), zlow_q.ravel(), xlow_q.ravel(), flat)
        quads = self._quadrant_cells()
        info = np.zeros(self.k)
        self.dv._close(quads.take(~cut), self.z, self.cand, info)
        if cut.any():
            children = _children(
                quads.take(cut), zcut.ravel()[cut], xcut.ravel()[cut], table.reshape(-1, 4)[cut]
            )
            cells, slot = self.dv.open_children(cut, children, self.z, self.cand, info)
            if len(cells.count):
                cell, zv, xv = self._deeper_samples(slot, cut.reshape(self.k, 4), zcut, xcut)
                info += self.dv.refine(cells, cell, zv, xv, self.z, self.cand)
        return info

    def _quadrant_cells(self) -> _Cells:
        k, zc = self.k, self.zcut
        zeros, top = np.zeros(k, np.int64), np.full(k, MAX_BINS - 1)
        xc = self.xcut
        z0 = np.stack([zeros, zeros, zeros + zc + 1, zeros + zc + 1], 1)
        z1 = np.stack([zeros + zc, zeros + zc, top, top], 1)
        x0 = np.stack([zeros, xc + 1, zeros, xc + 1], 1)
        x1 = np.stack([xc, top, xc, top], 1)
        owner = np.repeat(self.rows, 4)
        return _Cells(owner, z0.ravel(), z1.ravel(), x0.ravel(), x1.ravel(), self.count.ravel())

    def _z_cuts(self) -> tuple[np.ndarray, np.ndarray]:
        """Median cut along z of each quadrant: its middle member in z order."""
        cum_z = self.dv.cum[self.z]
        cuts, lows = [], []
        for q, bits in enumerate(self.members):
            count = self.count[:, q]
            pos = self.offset(q) + bits.kth((count + 1) // 2)
            med = self.zorder_codes[pos]
            upto = bits.count_prefix(cum_z[med + 1] - self.offset(q))
            below = bits.count_prefix(cum_z[med] - self.offset(q))
            cut, low = _median_cut(med, below, upto, count)
            cuts.append(cut)
            lows.append(low)
        return np.stack(cuts, 1), np.stack(lows, 1)

    def _x_cuts(self) -> tuple[np.ndarray, np.ndarray]:
        """Median cut along x of each quadrant: its middle member in the candidate's x order."""
        dv = self.dv
        z_by_x = np.take(dv.codes[self.z], dv.order[self.cand])  # z bins in each x order
        z_low = z_by_x <= self.zcut
        side = [_BitRows(z_low), _BitRows(~z_low)]
        cum_x = dv.cum[self.cand]
        sorted_x = dv.sorted_codes[self.cand]
        cuts, lows = [], []
        for q in range(4):
            bits, count = side[q >> 1], self.count[:, q]
            # members of the x-high quadrant come after the x-low quadrant's in x order
            skip = self.count[:, q - 1] if q & 1 else np.zeros(self.k, np.int64)
            pos = bits.kth(skip + (count + 1) // 2)
            med = sorted_x[self.rows, pos].astype(np.int64)
            upto = bits.count_prefix(cum_x[self.rows, med + 1]) - skip
            below = bits.count_prefix(cum_x[self.rows, med]) - skip
            cut, low = _median_cut(med, below, upto, count)
            cuts.append(cut)
            lows.append(low)
        return np.stack(cuts, 1), np.stack(lows, 1)

    def _low_low(self, zcut: np.ndarray, xcut: np.ndarray) -> np.ndarray:
        """Members of each quadrant with z <= its z cut and x <= its x cut."""
        cum_z = self.dv.cum[self.z]
        out = np.empty((self.k, 4), dtype=np.int64)
        for q in range(4):
            half = self.halves[q >> 1]
            limit = np.clip(xcut[:, q], 0, MAX_BINS - 1).astype(np.uint8)[:, None]
            length = cum_z[zcut[:, q] + 1] - self.offset(q)
            out[:, q] = _BitRows(half <= limit).count_prefix(length)
            if q & 1:  # x <= cut also counts the x-low quadrant's members
                out[:, q] -= self.members[q - 1].count_prefix(length)
        return out

    def _deeper_samples(
        self, slot: np.ndarray, cut: np.ndarray, zcut: np.ndarray, xcut: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Samples of the open sub-cells of the cut quadrants: (cell id, z bin, x bin).

        Each z half is handled densely over its (rows x half width) byte matrix: a sample's
        quadrant (x above the root cut) and sub-cell (above the quadrant's cuts) are uint8
        broadcasts, and its open cell a lookup in the row's 8 slots (-1: closed or not cut).
        Only then are the samples of open cells extracted.
        """
        slots = slot.reshape(self.k, 16)
        zc, xc = _as_bins(zcut), _as_bins(xcut)
        cells, zv, xv = [], [], []
        for h in (0, 1):
            rows = np.flatnonzero(cut[:, 2 * h] | cut[:, 2 * h + 1])
            if not len(rows):
                continue
            start = self.offset(2 * h)
            x = self.halves[h][rows]
            z = self.zorder_codes[start : start + x.shape[1]].astype(np.uint8)
            x_high = self.above[h][rows]
            z_high = _pick(x_high, z > zc[rows, 2 * h, None], z > zc[rows, 2 * h + 1, None])
            x_above = _pick(x_high, x > xc[rows, 2 * h, None], x > xc[rows, 2 * h + 1, None])
            local = np.left_shift(x_high.view(np.uint8), 2)
            local |= np.left_shift(z_high.view(np.uint8), 1)
            local |= x_above
            index = (np.arange(len(rows)) * 8)[:, None] + local
            cell = slots[rows, 8 * h : 8 * h + 8].ravel()[index.ravel()]
            kept = _keep_samples(cell, np.tile(z, len(rows)), x.ravel())
            for out, part in zip((cells, zv, xv), kept, strict=True):
                out.append(part)
        return np.concatenate(cells), np.concatenate(zv), np.concatenate(xv)


# --------------------------------------------------------------------------------------------
# Plug-in estimates on the fixed grid (kept to measure their bias, see docs/mrmr.md)


def _plugin_information(joint: np.ndarray, n: int) -> np.ndarray:
    """I of each (a x b) count table in `joint` (shape (m, a, b)) from its empirical frequencies."""
    p = joint / n
    pa = p.sum(2, keepdims=True)
    pb = p.sum(1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p / (pa * pb)), 0.0)
    return terms.sum((1, 2))


def _feature_chunks(m: int, per_feature: int) -> list[slice]:
    """Slices of features whose tables of `per_feature` elements each fit _CHUNK_ELEMENTS."""
    size = max(1, min(m, _CHUNK_ELEMENTS // max(per_feature, 1)))
    return [slice(start, start + size) for start in range(0, m, size)]


def plugin_relevance(bins: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Plug-in I(x; y) on the (bins x classes) table of every feature."""
    n, m = bins.shape
    classes = int(y.max()) + 1
    out = np.zeros(m)
    for chunk in _feature_chunks(m, MAX_BINS * classes):
        codes = bins[:, chunk].astype(np.int64)
        f = codes.shape[1]
        keys = (np.arange(f) * MAX_BINS * classes)[None, :] + codes * classes + y[:, None]
        joint = np.bincount(keys.ravel(), minlength=f * MAX_BINS * classes)
        out[chunk] = _plugin_information(joint.reshape(f, MAX_BINS, classes), n)
    return out


class PluginMI:
    """Plug-in I(z; x) on the fixed 256 x 256 grid of bins, for one feature against many.

    H(z, x) comes from sorting the 16-bit joint codes of each pair (numpy radix-sorts them) and
    summing c log c over runs, so no 65,536-cell table is built per pair.
    """

    def __init__(self, bins: np.ndarray) -> None:
        self.n, self.m = bins.shape
        self.codes = np.ascontiguousarray(bins.T)
        n = self.n
        r = np.arange(n + 1, dtype=np.float64)
        r_log_r = np.where(r > 0, r * np.log(np.maximum(r, 1)), 0.0)
        self.run_gain = np.diff(r_log_r, prepend=0.0)  # c log c of a run = sum of gains 1..c
        hist = np.diff(_cumulative_counts(self.codes), axis=1)
        self.entropy = math.log(n) - (hist * np.log(np.maximum(hist, 1))).sum(1) / n

    def __call__(self, z: int, cand: np.ndarray) -> np.ndarray:
        n = self.n
        joint = (self.codes[z].astype(np.uint16) << 8) | self.codes[cand]
        joint.sort(axis=1, kind="stable")
        new = np.ones(joint.shape, dtype=bool)
        new[:, 1:] = joint[:, 1:] != joint[:, :-1]
        pos = np.arange(n)
        run_start = np.maximum.accumulate(np.where(new, pos, 0), axis=1)
        c_log_c = self.run_gain[pos - run_start + 1].sum(1)
        joint_entropy = math.log(n) - c_log_c / n
        return self.entropy[z] + self.entropy[cand] - joint_entropy


# --------------------------------------------------------------------------------------------
# Relevance with a discrete target


def adaptive_relevance(bins: np.ndarray, y: np.ndarray, alpha: float = 0.05) -> np.ndarray:
    """I(x; y) of every binned feature with class codes `y`, by adaptive partitioning of x.

    Darbellay-Vajda's scheme with y kept at its classes (classes have no order, so cutting them
    at a "median class" would be arbitrary): an x interval is cut at its median only when a
    chi-square test on its 2 x classes table says the class mix differs between the halves.
    As in Darbellay-Vajda's cell test, the degrees of freedom are the sub-cells minus one
    (2 x classes seen - 1), which makes the test conservative: about 0.3% of pure-noise features
    get a nonzero relevance at alpha 0.05 with 4 classes. A plug-in estimate on the
    256 x classes table instead gives every noise feature about 255 (classes - 1) / (2 n) nats.
    """
    n, m = bins.shape
    classes = int(y.max()) + 1
    thresholds = np.array(
        [np.inf] + [_split_threshold(alpha, 2 * seen - 1) for seen in range(2, classes + 1)]
    )
    out = np.zeros(m)
    for chunk in _feature_chunks(m, (n + 1) * classes):
        codes = np.ascontiguousarray(bins[:, chunk].T)
        out[chunk] = _relevance_chunk(codes, y, classes, thresholds)
    return out


def _relevance_chunk(codes: np.ndarray, y: np.ndarray, classes: int, thresholds: np.ndarray):
    """adaptive_relevance for a few features; codes (f, n). Cells are x-order ranges [a, b)."""
    f, n = codes.shape
    order = np.argsort(codes, axis=1, kind="stable")
    sorted_codes = np.take_along_axis(codes, order, axis=1).astype(np.int64)
    cum = _cumulative_counts(codes)
    class_cum = np.zeros((f, n + 1, classes), dtype=np.int32)
    np.cumsum(y[order][:, :, None] == np.arange(classes), axis=1, out=class_cum[:, 1:])
    class_total = np.bincount(y, minlength=classes)
    feat, a, b = np.arange(f), np.zeros(f, np.int64), np.full(f, n)
    info = np.zeros(f)
    while len(feat):
        count = b - a
        med = sorted_codes[feat, a + (count + 1) // 2 - 1]
        _, low = _median_cut(med, cum[feat, med] - a, cum[feat, med + 1] - a, count)
        s = a + low
        left = class_cum[feat, s] - class_cum[feat, a]
        right = class_cum[feat, b] - class_cum[feat, s]
        stat, dof = _chi2_2xk(left, right)
        cut = (low > 0) & (low < count) & (stat > thresholds[dof])
        both = (left + right)[~cut]
        with np.errstate(divide="ignore", invalid="ignore"):
            part = both / n * np.log(both * n / (count[~cut, None] * class_total))
        info += np.bincount(feat[~cut], weights=np.where(both > 0, part, 0).sum(1), minlength=f)
        feat = np.concatenate([feat[cut], feat[cut]])
        a, b = np.concatenate([a[cut], s[cut]]), np.concatenate([s[cut], b[cut]])
    return info


def _chi2_2xk(left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pearson chi-square of (2 x classes) tables, and the classes seen in each minus one."""
    total = left + right
    seen = total > 0
    share = left.sum(1, keepdims=True) / total.sum(1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        e_left, e_right = share * total, (1 - share) * total
        terms = (left - e_left) ** 2 / e_left + (right - e_right) ** 2 / e_right
    stat = np.where(seen & (e_left > 0) & (e_right > 0), terms, 0.0).sum(1)
    return stat, np.maximum(seen.sum(1) - 1, 0)


# --------------------------------------------------------------------------------------------
# The fscmrmr order


@dataclass(frozen=True)
class Ranking:
    """fscmrmr's outputs: `order` (feature indices, best first) and, per feature in input
    order, `scores` (MIQ when picked) and `redundancy` (W when picked)."""

    order: np.ndarray
    scores: np.ndarray
    redundancy: np.ndarray


def mrmr_rank(relevance: np.ndarray, mutual_information: MIFunction) -> Ranking:
    """Rank features by fscmrmr's algorithm (module docstring).

    `mutual_information(z, cand)` returns I(z; x) for the features `cand`; it is called once per
    pick, against the features still to rank, and the redundancy sums are kept incrementally.
    Scores: the first pick scores its relevance, a zero-redundancy pick scores MIQ = V / 0 =
    inf, a later pick its MIQ, a zero-relevance feature 0.
    """
    m = len(relevance)
    scores, redundancy = np.zeros(m), np.zeros(m)
    total = np.zeros(m)  # sum over the selected z of I(x; z)
    remaining = np.flatnonzero(relevance > 0)
    order: list[int] = []
    while remaining.size:
        pick, score, w = _next_pick(remaining, relevance, total, len(order))
        scores[pick], redundancy[pick] = score, w
        order.append(pick)
        remaining = remaining[remaining != pick]
        if remaining.size:
            total[remaining] += np.maximum(mutual_information(pick, remaining), 0.0)
    order.extend(np.flatnonzero(relevance <= 0).tolist())
    return Ranking(np.asarray(order, dtype=np.int64), scores, redundancy)


def _next_pick(
    remaining: np.ndarray, relevance: np.ndarray, total: np.ndarray, n_selected: int
) -> tuple[int, float, float]:
    """(feature, score, redundancy) of the next pick; ties go to the lowest index."""
    rel = relevance[remaining]
    if n_selected == 0:
        i = int(np.argmax(rel))
        return int(remaining[i]), float(rel[i]), 0.0
    w = total[remaining] / n_selected
    free = w <= ZERO_REDUNDANCY
    if free.any():
        i = int(np.argmax(np.where(free, rel, -np.inf)))
        return int(remaining[i]), math.inf, 0.0
    miq = rel / w
    i = int(np.argmax(miq))
    return int(remaining[i]), float(miq[i]), float(w[i])


# --------------------------------------------------------------------------------------------
# The scikit-learn selector


def _threads(n_jobs: int) -> int:
    """Threads for n_jobs: -1 means every core this process may run on."""
    if n_jobs != -1:
        return int(n_jobs)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


class MRMR(SelectorMixin, BaseEstimator):
    """Minimum-redundancy maximum-relevance selector, faithful to MATLAB's ``fscmrmr``.

    Parameters
    ----------
    n_features : int or None
        Keep the first `n_features` of ``ranking_``. Exclusive with `threshold`.
    threshold : float or None
        Keep the features whose score is above it (the paper: 0.25). With neither set, the
        features with a positive score (nonzero relevance) are kept.
    estimator : {"adaptive", "plugin"}
        Mutual information estimator: Darbellay-Vajda adaptive partitioning (fscmrmr's) or the
        plug-in estimate on the fixed grid (biased; for comparison only).
    n_bins : int
        Equiprobable bins per variable, at most 256 (fscmrmr: 256).
    alpha : float
        Significance level of the chi-square tests that decide whether a cell is cut.
    n_jobs : int
        Threads for the pairwise mutual information (adaptive estimator); -1, the default,
        uses every core this process may run on. The ranking and scores do not depend on it.
    engine : {"numba", "numpy"}
        Implementation of the adaptive pairwise mutual information: the compiled kernel (the
        default; compiled on first use, then cached on disk) or the vectorised numpy reference
        (several times slower). They cut the same cells; results agree up to rounding.

    Attributes
    ----------
    ranking_ : ndarray of int, feature indices in selection order (fscmrmr's ``idx``).
    scores_ : ndarray, per feature in input order: MIQ when picked, relevance for the first
        pick, inf for zero-redundancy picks, 0 for zero relevance. The first pick's score and
        the zeros are as in fscmrmr's ``scores``; MATLAB's other scores are on a smaller scale
        that is provably not the MIQ and that no definition tried reproduces (docs/mrmr.md,
        "Fidelity to MATLAB"), so a threshold tuned on MATLAB scores does not carry over.
    relevance_ : ndarray, I(x; y) per feature, nats.
    redundancy_ : ndarray, mean I(x; z) over the features selected before x, per feature.
    """

    def __init__(
        self,
        n_features: int | None = None,
        threshold: float | None = None,
        estimator: str = "adaptive",
        n_bins: int = MAX_BINS,
        alpha: float = 0.05,
        n_jobs: int = -1,
        engine: str = "numba",
    ) -> None:
        self.n_features = n_features
        self.threshold = threshold
        self.estimator = estimator
        self.n_bins = n_bins
        self.alpha = alpha
        self.n_jobs = n_jobs
        self.engine = engine

    def fit(self, X, y) -> MRMR:
        """Rank the features of X by fscmrmr's algorithm against the class labels y."""
        self._check_params()
        X, y = validate_data(self, X, y, ensure_min_samples=2)
        _, codes = np.unique(y, return_inverse=True)
        bins = equiprobable_bins(np.asarray(X), self.n_bins)
        if self.estimator == "adaptive":
            relevance = adaptive_relevance(bins, codes, self.alpha)
            mutual_information: MIFunction = AdaptiveMI(
                bins, self.alpha, _threads(self.n_jobs), self.engine
            )
        else:
            relevance = plugin_relevance(bins, codes)
            mutual_information = PluginMI(bins)
        ranking = mrmr_rank(relevance, mutual_information)
        self.relevance_ = relevance
        self.ranking_ = ranking.order
        self.scores_ = ranking.scores
        self.redundancy_ = ranking.redundancy
        return self

    def _check_params(self) -> None:
        if self.n_features is not None and self.threshold is not None:
            raise ValueError("set n_features or threshold, not both")
        if self.n_features is not None and (
            isinstance(self.n_features, bool)
            or not isinstance(self.n_features, int | np.integer)
            or self.n_features < 1
        ):
            raise ValueError(f"n_features must be a positive integer, got {self.n_features!r}")
        if self.estimator not in ESTIMATORS:
            raise ValueError(f"estimator must be one of {ESTIMATORS}, got {self.estimator!r}")
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {self.engine!r}")
        if not 2 <= self.n_bins <= MAX_BINS:
            raise ValueError(f"n_bins must be in [2, {MAX_BINS}], got {self.n_bins!r}")
        if isinstance(self.n_jobs, bool) or not isinstance(self.n_jobs, int | np.integer):
            raise ValueError(f"n_jobs must be an integer, got {self.n_jobs!r}")
        if self.n_jobs == 0 or self.n_jobs < -1:
            raise ValueError(f"n_jobs must be -1 or a positive integer, got {self.n_jobs!r}")
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha!r}")

    def _get_support_mask(self) -> np.ndarray:
        check_is_fitted(self, "scores_")
        if self.n_features is not None:
            mask = np.zeros(self.n_features_in_, dtype=bool)
            mask[self.ranking_[: self.n_features]] = True
            return mask
        return self.scores_ > (0.0 if self.threshold is None else self.threshold)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        return tags


def kept_columns(selector: SelectorMixin) -> np.ndarray:
    """The columns a fitted selector keeps; none at all is the user's threshold, said in one line.

    scikit-learn only warns on an empty selection and the scaler after it then fails deep inside.
    """
    columns = np.flatnonzero(selector.get_support())
    if not len(columns):
        threshold = getattr(selector, "threshold", None)
        raise BlastscanError(
            f"mRMR kept no feature at score threshold {threshold}; "
            "lower --threshold or pass --n-features"
        )
    return columns


# --------------------------------------------------------------------------------------------
# Figure 5


def plot_mrmr_scores(scores: np.ndarray, threshold: float, path: str | Path) -> Path:
    """The paper's Figure 5: scores sorted from best to worst, with the threshold line, as PNG.

    Infinite scores (zero-redundancy picks) are drawn as markers just above the finite ones.
    Uses the Agg canvas directly, so no global matplotlib backend is touched.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    values = np.sort(np.asarray(scores, dtype=np.float64))[::-1]
    finite = values[np.isfinite(values)]
    top = max(float(finite.max()) if finite.size else 0.0, threshold) * 1.1 or 1.0
    ranks = np.arange(1, len(values) + 1)
    fig = Figure(figsize=(7, 4), dpi=150)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(ranks[np.isfinite(values)], finite, color="tab:blue", lw=1.2, label="mRMR score")
    if (~np.isfinite(values)).any():
        ax.plot(
            ranks[~np.isfinite(values)],
            np.full(int((~np.isfinite(values)).sum()), top),
            "^",
            color="tab:green",
            ms=3,
            label="inf (zero redundancy)",
        )
    kept = int((values > threshold).sum())
    ax.axhline(threshold, color="tab:red", ls="--", lw=1, label=f"threshold {threshold:g}")
    ax.set(
        xlabel="feature rank",
        ylabel="score (MIQ)",
        xlim=(0, len(values) + 1),
        title=f"mRMR scores, sorted: {kept} of {len(values)} above the threshold",
    )
    ax.legend(loc="upper right")
    fig.tight_layout()
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format=figure_format(path)))
    return path


def figure_format(path: str | Path) -> str:
    """The image format a figure path's suffix names; checked before the work that draws it."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fmt = Path(path).suffix.lstrip(".").lower()
    supported = FigureCanvasAgg.get_supported_filetypes()
    if fmt not in supported:
        raise BlastscanError(
            f"{path}: --figure must end in one of .{', .'.join(sorted(supported))}"
        )
    return fmt
