"""Darbellay-Vajda adaptive-partition mutual information, numpy engine and entry point.

`AdaptiveMI` estimates I(z; x) of one binned feature against many (redundancy); with engine
"numba" it hands the pairs to the compiled kernel (`adaptive_mi_kernel`), with "numpy" it runs
the vectorised reference: the root cells by popcounts here, the four root quadrants densely in
`adaptive_mi_level2`, deeper levels on flat per-sample arrays in `AdaptiveMI.refine`.
`adaptive_relevance` is the same scheme against the class labels (relevance).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import partial

import numpy as np

from blastscan.selection.adaptive_mi_level2 import _Level2
from blastscan.selection.binning import (
    _cumulative_counts,
    _feature_chunks,
    _median_cut,
    _root_cuts,
)
from blastscan.selection.bit_rows import _popcount
from blastscan.selection.cells import (
    _as_bins,
    _cell_cuts,
    _cell_information,
    _Cells,
    _chi2_2x2,
    _children,
    _keep_samples,
    _quadrant_table,
    _quadrants,
    _split_threshold,
)

ENGINES = ("numba", "numpy")  # the adaptive pairwise MI: compiled kernel, numpy reference
_MIN_THREAD_CHUNK = 32  # fewer candidates per thread than this are not worth a thread


class AdaptiveMI:
    """I(z; x) of one binned feature z against many, by Darbellay-Vajda adaptive partitioning.

    Each pair's rank plane is cut recursively into 2x2 cells at the marginal medians of the
    cell's own samples; a cell is cut only if a chi-square test (3 degrees of freedom,
    significance `alpha`) says its four sub-cell counts are not uniform. The estimate is the
    sum over the final cells of p log(p / (p_z p_x)), with p_z, p_x the cell's marginal
    probabilities. Independent features usually stop at the root and give exactly 0.

    `engine` "numba" runs the compiled kernel of `adaptive_mi_kernel` (compiled on first use
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
            from blastscan.selection import adaptive_mi_kernel

            self._kernel = adaptive_mi_kernel.information
            self._tables = (
                self.codes,
                self.order.astype(np.int64, copy=False),
                self.sorted_codes,
                self.cum,
                self.cut.astype(np.int64, copy=False),
                self.low.astype(np.int64, copy=False),
                adaptive_mi_kernel.root_words(self.codes, self.cut),
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
