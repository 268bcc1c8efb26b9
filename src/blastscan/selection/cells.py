"""Cells of Darbellay-Vajda partitions: their bin ranges, median cuts, 2x2 tests and shares.

The numpy engine of `adaptive_mi` keeps the open cells of many partitions as flat arrays
(`_Cells`) and their samples as (cell id, z bin, x bin) arrays; this module holds the steps
every level applies to them: cut each cell at its medians, count its four quadrants, test
them, and add a final cell's share of the mutual information.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import chi2

from blastscan.selection.binning import MAX_BINS, _median_cut


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
