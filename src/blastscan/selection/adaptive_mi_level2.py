"""Second level of the numpy engine's Darbellay-Vajda partitions: the four root quadrants.

Dense byte and bit-count operations over a (candidates x samples) matrix: the quadrants'
medians, 2x2 counts and tests, then the samples of the third level's open cells, which
`AdaptiveMI.refine` takes on from there.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from blastscan.selection.binning import MAX_BINS, _median_cut
from blastscan.selection.bit_rows import _BitRows
from blastscan.selection.cells import (
    _as_bins,
    _Cells,
    _children,
    _keep_samples,
    _pick,
    _quadrant_table,
)


class _Level2:
    """Second level of many Darbellay-Vajda partitions at once: the four root quadrants.

    Every pair here cut its root, so each candidate's samples fall in four quadrants. Medians,
    counts and tests of the quadrants are computed on dense (candidates x samples) byte rows:
    in z order (the shared pick's order) for z medians and 2x2 counts, in each candidate's own
    x order for x medians. Quadrant q = 2 * (z high) + (x high).
    """

    def __init__(self, dv: Any, z: int, cand: np.ndarray, table: np.ndarray) -> None:
        # dv: the AdaptiveMI whose pairs these are (typed Any: adaptive_mi imports this module)
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
