"""The compiled numba kernel of `adaptive_mi`: Darbellay-Vajda partitions of one feature
against many, the "numba" engine of `AdaptiveMI`.

The same estimator as the numpy engine of `AdaptiveMI`, cell for cell: the same median cuts
(`binning._median_cut`'s tie rule), the same chi-square statistic and threshold, the
same rule that children of a cut cell with at most `threshold` samples are final, and the same
cell information. Only the order in which cells are visited (depth first here, level by level
there) and so the order of the final sum differ, which changes the result by rounding only.

Each pair is partitioned on its own, with an explicit stack. A cell's samples are a contiguous
segment of a per-thread buffer holding each sample's two bins as one uint16 (z bin << 8 | x bin).
The root's samples are laid out in the pick's sort order, and every cut partitions a segment
stably into the other of two buffers, so each cell's segment stays sorted by z bin: its z
median is a binary search, its x median and 2 x 2 counts one pass building x histograms of its
z-low and z-high parts. Pairs that do not cut their root (independent ones) only cost an AND +
popcount of two bit-packed "below the median" rows. Candidates are shared among threads (the
kernel releases the GIL), one pair at a time per thread, so the result does not depend on the
number of threads.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

_STACK = 1024  # a cut splits both bin ranges, so depth <= 256 and open cells <= 3 * 256 + 4
_MIN_PER_THREAD = 16  # fewer candidates per thread than this are not worth a thread
_M1 = np.uint64(0x5555555555555555)
_M2 = np.uint64(0x3333333333333333)
_M4 = np.uint64(0x0F0F0F0F0F0F0F0F)
_H01 = np.uint64(0x0101010101010101)


@numba.njit(cache=True, inline="always")
def _popcount(v):
    v = v - ((v >> np.uint64(1)) & _M1)
    v = (v & _M2) + ((v >> np.uint64(2)) & _M2)
    v = (v + (v >> np.uint64(4))) & _M4
    return (v * _H01) >> np.uint64(56)


@numba.njit(cache=True, inline="always")
def _median_cut(med, below, upto, count):
    """binning._median_cut for one cell: (last bin of the lower part, its size)."""
    if below > 0 and (upto == count or abs(2 * below - count) < abs(2 * upto - count)):
        return med - 1, below
    return med, upto


@numba.njit(cache=True, inline="always")
def _chi2_2x2(t0, t1, t2, t3):
    """cells._chi2_2x2 for one table, the same operations in the same order."""
    a, b, c, d = float(t0), float(t1), float(t2), float(t3)
    margins = (a + b) * (c + d) * (a + c) * (b + d)
    if margins > 0:
        return (a + b + c + d) * (a * d - b * c) ** 2 / margins
    return 0.0


@numba.njit(cache=True, inline="always")
def _cell_information(count, nz, nx, n):
    """cells._cell_information for one cell."""
    c = float(count)
    return c / n * math.log(c * n / (float(nz) * nx))


@numba.njit(cache=True, inline="always")
def _lower_bound(buf, lo, hi, key):
    """First position in [lo, hi) with buf >= key (buf nondecreasing in its high byte)."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if np.int64(buf[mid]) < key:
            lo = mid + 1
        else:
            hi = mid
    return lo


@numba.njit(cache=True)
def _pair(z, x, codes, order, sorted_codes, cum, cut, low, low_words, threshold, scratch):
    """I(z; x) of one pair; `scratch`: the buffers dv_information allocates once."""
    n = codes.shape[1]
    zcut, zlow, xcut, xlow = cut[z], low[z], cut[x], low[x]
    if not (0 < zlow < n and 0 < xlow < n):
        return 0.0
    ll = np.uint64(0)
    for w in range(low_words.shape[1]):
        ll += _popcount(low_words[z, w] & low_words[x, w])
    ll = np.int64(ll)
    if not _chi2_2x2(ll, zlow - ll, xlow - ll, n - zlow - xlow + ll) > threshold:
        return 0.0  # the root stays whole: I = 0 exactly

    bufs, hlo, hhi, stack = scratch
    # Root quadrants, each a segment of bufs[0] in z order: q = 2 * (z above cut) + (x above)
    oz, sz, xc, dst = order[z], sorted_codes[z], codes[x], bufs[0]
    xb = np.uint16(xcut)
    p0, p1 = np.int64(0), ll
    for i in range(zlow):
        v = (np.uint16(sz[i]) << np.uint16(8)) | np.uint16(xc[oz[i]])
        hi = (v & np.uint16(255)) > xb
        dst[p1 if hi else p0] = v
        p0 += 1 - hi
        p1 += hi
    p0, p1 = zlow, zlow + xlow - ll
    for i in range(zlow, n):
        v = (np.uint16(sz[i]) << np.uint16(8)) | np.uint16(xc[oz[i]])
        hi = (v & np.uint16(255)) > xb
        dst[p1 if hi else p0] = v
        p0 += 1 - hi
        p1 += hi

    top = 0
    top = _push_children(stack, top, 0, (ll, zlow - ll, xlow - ll, n - zlow - xlow + ll),
                         0, 255, 0, 255, zcut, xcut, 0.0, 0)  # fmt: skip
    cz, cx = cum[z], cum[x]
    info = 0.0
    while top > 0:
        top -= 1
        s, count, z0, z1, x0, x1, side = stack[top]
        src = bufs[side]
        half = (count + 1) // 2
        # z median: the segment is sorted by z bin (the high byte)
        med = np.int64(src[s + half - 1] >> np.uint16(8))
        below = _lower_bound(src, s, s + count, med << 8) - s
        upto = _lower_bound(src, s, s + count, (med + 1) << 8) - s
        zc, zl = _median_cut(med, below, upto, count)
        # x median and the 2x2 counts: x histograms of the z-low and z-high parts
        for b in range(x0, x1 + 1):
            hlo[b] = 0
            hhi[b] = 0
        for i in range(s, s + zl):
            hlo[src[i] & np.uint16(255)] += 1
        for i in range(s + zl, s + count):
            hhi[src[i] & np.uint16(255)] += 1
        acc, acc_lo, b = 0, 0, x0
        while acc + hlo[b] + hhi[b] < half:
            acc += hlo[b] + hhi[b]
            acc_lo += hlo[b]
            b += 1
        xcc, xl = _median_cut(b, acc, acc + hlo[b] + hhi[b], count)
        t0 = acc_lo if xcc < b else acc_lo + hlo[b]  # z low and x <= x cut
        sizes = (t0, zl - t0, xl - t0, count - zl - xl + t0)
        if not (
            0 < zl < count
            and 0 < xl < count
            and _chi2_2x2(sizes[0], sizes[1], sizes[2], sizes[3]) > threshold
        ):
            info += _cell_information(count, cz[z1 + 1] - cz[z0], cx[x1 + 1] - cx[x0], n)
            continue
        # final children (too small to pass the test) add their share now
        any_open = False
        for q in range(4):
            c = sizes[q]
            if c > threshold:
                any_open = True
            elif c > 0:
                zr0, zr1 = (z0, zc) if q < 2 else (zc + 1, z1)
                xr0, xr1 = (x0, xcc) if q % 2 == 0 else (xcc + 1, x1)
                info += _cell_information(c, cz[zr1 + 1] - cz[zr0], cx[xr1 + 1] - cx[xr0], n)
        if not any_open:
            continue
        # stable partition into the other buffer: each child a segment, still in z order
        dst, xb = bufs[1 - side], np.uint16(xcc)
        p0, p1 = s, s + sizes[0]
        for i in range(s, s + zl):
            v = src[i]
            hi = (v & np.uint16(255)) > xb
            dst[p1 if hi else p0] = v
            p0 += 1 - hi
            p1 += hi
        p0, p1 = s + zl, s + zl + sizes[2]
        for i in range(s + zl, s + count):
            v = src[i]
            hi = (v & np.uint16(255)) > xb
            dst[p1 if hi else p0] = v
            p0 += 1 - hi
            p1 += hi
        top = _push_children(stack, top, s, sizes, z0, z1, x0, x1, zc, xcc, threshold, 1 - side)
    return info


@numba.njit(cache=True, inline="always")
def _push_children(stack, top, s, sizes, z0, z1, x0, x1, zc, xc, threshold, side):
    """Push the children of a cut cell with more than `threshold` samples; returns the top."""
    first = s
    for q in range(4):
        c = sizes[q]
        if c > threshold:
            stack[top] = (
                first,
                c,
                z0 if q < 2 else zc + 1,
                zc if q < 2 else z1,
                x0 if q % 2 == 0 else xc + 1,
                xc if q % 2 == 0 else x1,
                side,
            )
            top += 1
        first += c
    return top


@numba.njit(cache=True, nogil=True)
def dv_information(z, cand, codes, order, sorted_codes, cum, cut, low, low_words, threshold):
    """I(z; x) in nats for every x in `cand`, one pair after another, without the GIL.

    The tables are AdaptiveMI's (codes, order, sorted_codes, cum, cut, low), and low_words
    its "bin <= root cut" rows packed into uint64 words (`root_words`)."""
    n = codes.shape[1]
    out = np.zeros(len(cand))
    scratch = (
        np.empty((2, n), dtype=np.uint16),  # cells' samples (z bin << 8 | x bin), ping-pong
        np.zeros(256, dtype=np.int64),  # x histogram of a cell's z-low part
        np.zeros(256, dtype=np.int64),  # and of its z-high part
        np.empty((_STACK, 7), dtype=np.int64),  # open cells: start, count, z0, z1, x0, x1, buffer
    )
    for i in range(len(cand)):
        out[i] = _pair(
            z, cand[i], codes, order, sorted_codes, cum, cut, low, low_words, threshold, scratch
        )
    return out


def root_words(codes: np.ndarray, cut: np.ndarray) -> np.ndarray:
    """Rows "bin <= root cut" of codes (m, n), bit-packed into uint64 words (zero padded)."""
    packed = np.packbits(codes <= cut[:, None], axis=1)
    pad = (-packed.shape[1]) % 8
    return np.ascontiguousarray(np.pad(packed, ((0, 0), (0, pad)))).view(np.uint64)


def information(z: int, cand: np.ndarray, tables: tuple, threshold: float, n_threads: int):
    """dv_information with the candidates shared among `n_threads` Python threads.

    `tables`: (codes, order, sorted_codes, cum, cut, low, low_words). The kernel releases the
    GIL, so the threads run in parallel; thread t takes every n_threads-th candidate from t,
    which spreads the expensive (strongly dependent) pairs evenly. Plain threads rather than
    numba's parallel layer: no OpenMP pool spinning between the ~1000 calls of a ranking, and
    the kernel stays cacheable and safe to call from several threads at once."""
    cand = np.asarray(cand, dtype=np.int64)
    threads = max(1, min(int(n_threads), len(cand) // _MIN_PER_THREAD))
    if threads == 1:
        return dv_information(np.int64(z), cand, *tables, float(threshold))
    out = np.empty(len(cand))

    def run(t: int) -> None:
        out[t::threads] = dv_information(np.int64(z), cand[t::threads], *tables, float(threshold))

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(run, range(threads)))
    return out
