"""Compiled Darbellay-Vajda partition of one feature against many (numba).

The same estimator as the numpy path of `blastscan.selection.AdaptiveMI`, cell for cell: the
same median cuts (`_median_cut`'s tie rule), the same chi-square statistic and threshold, the
same rule that children of a cut cell with at most `threshold` samples are final, and the same
cell information. Only the order in which cells are visited (depth first here, level by level
there) and so the order of the final sum differ, which changes the result by rounding only.

Each pair is partitioned on its own, with an explicit stack. A cell's samples are a contiguous
segment of a per-thread buffer holding each sample's two bins as one uint16 (z bin << 8 | x bin).
The root's samples are laid out in the pick's sort order, and every cut partitions a segment
stably, so each cell's segment stays sorted by z bin: its z median is a binary search, its x
median a histogram pass. Pairs that do not cut their root (independent ones) only cost an AND +
popcount of two bit-packed "below the median" rows. Candidates run in a `prange` (threads), one
pair at a time per thread, so the result does not depend on the number of threads.
"""

from __future__ import annotations

import math

import numba
import numpy as np

_STACK = 1024  # a cut splits both bin ranges, so depth <= 256 and open cells <= 3 * 256 + 4
_CHUNK = 4  # candidates handed to a thread at a time (pairs differ much in cost)
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
    """selection._median_cut for one cell: (last bin of the lower part, its size)."""
    if below > 0 and (upto == count or abs(2 * below - count) < abs(2 * upto - count)):
        return med - 1, below
    return med, upto


@numba.njit(cache=True, inline="always")
def _chi2_2x2(t0, t1, t2, t3):
    """selection._chi2_2x2 for one table, the same operations in the same order."""
    a, b, c, d = float(t0), float(t1), float(t2), float(t3)
    margins = (a + b) * (c + d) * (a + c) * (b + d)
    if margins > 0:
        return (a + b + c + d) * (a * d - b * c) ** 2 / margins
    return 0.0


@numba.njit(cache=True, inline="always")
def _cell_information(count, nz, nx, n):
    """selection._cell_information for one cell."""
    c = float(count)
    return c / n * math.log(c * n / (float(nz) * nx))


@numba.njit(cache=True)
def _pair(z, x, codes, order, sorted_codes, cum, cut, low, low_words, threshold, buf, tmp, hist):
    """I(z; x) of one pair; buf, tmp (n uint16), hist (256 int64) are scratch."""
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

    # Root quadrants, each a segment in z order: q = 2 * (z above cut) + (x above cut)
    oz, sz, xc = order[z], sorted_codes[z], codes[x]
    ub = np.uint16(xcut)
    p0, p1 = np.int64(0), ll
    for i in range(zlow):
        v = (np.uint16(sz[i]) << np.uint16(8)) | np.uint16(xc[oz[i]])
        hi = (v & np.uint16(255)) > ub
        buf[p1 if hi else p0] = v
        p0 += 1 - hi
        p1 += hi
    p2, p3 = zlow, zlow + xlow - ll
    for i in range(zlow, n):
        v = (np.uint16(sz[i]) << np.uint16(8)) | np.uint16(xc[oz[i]])
        hi = (v & np.uint16(255)) > ub
        buf[p3 if hi else p2] = v
        p2 += 1 - hi
        p3 += hi

    stack = np.empty((_STACK, 6), dtype=np.int64)  # segment start, count, z0, z1, x0, x1
    top = 0
    starts = (0, ll, zlow, zlow + xlow - ll, n)
    for q in range(4):
        zr0, zr1 = (0, zcut) if q < 2 else (zcut + 1, 255)
        xr0, xr1 = (0, xcut) if q % 2 == 0 else (xcut + 1, 255)
        if starts[q + 1] > starts[q]:  # the quadrants are tested whatever their size
            stack[top, 0] = starts[q]
            stack[top, 1] = starts[q + 1] - starts[q]
            stack[top, 2] = zr0
            stack[top, 3] = zr1
            stack[top, 4] = xr0
            stack[top, 5] = xr1
            top += 1

    cz, cx = cum[z], cum[x]
    info = 0.0
    while top > 0:
        top -= 1
        s, count = stack[top, 0], stack[top, 1]
        z0, z1, x0, x1 = stack[top, 2], stack[top, 3], stack[top, 4], stack[top, 5]
        half = (count + 1) // 2
        # z median: the segment is sorted by z bin (the high byte)
        med = np.int64(buf[s + half - 1] >> np.uint16(8))
        below = _lower_bound(buf, s, s + count, med << 8) - s
        upto = _lower_bound(buf, s, s + count, (med + 1) << 8) - s
        zc, zl = _median_cut(med, below, upto, count)
        # x median: histogram of the segment's x bins
        for b in range(x0, x1 + 1):
            hist[b] = 0
        for i in range(s, s + count):
            hist[buf[i] & np.uint16(255)] += 1
        acc, b = 0, x0
        while acc + hist[b] < half:
            acc += hist[b]
            b += 1
        xcc, xl = _median_cut(b, acc, acc + hist[b], count)
        split = False
        xb = np.uint16(xcc)
        t0 = t1 = t2 = t3 = np.int64(0)
        if 0 < zl < count and 0 < xl < count:
            t0 = np.int64(0)
            for i in range(s, s + zl):
                t0 += (buf[i] & np.uint16(255)) <= xb
            t0 = np.int64(t0)
            t1, t2 = zl - t0, xl - t0
            t3 = count - zl - xl + t0
            split = _chi2_2x2(t0, t1, t2, t3) > threshold
        if not split:
            info += _cell_information(count, cz[z1 + 1] - cz[z0], cx[x1 + 1] - cx[x0], n)
            continue
        sizes = (t0, t1, t2, t3)
        any_open = False
        for q in range(4):
            c = sizes[q]
            zr0, zr1 = (z0, zc) if q < 2 else (zc + 1, z1)
            xr0, xr1 = (x0, xcc) if q % 2 == 0 else (xcc + 1, x1)
            if c > threshold:
                any_open = True
            elif c > 0:  # too small to pass the test: final
                info += _cell_information(c, cz[zr1 + 1] - cz[zr0], cx[xr1 + 1] - cx[xr0], n)
        if not any_open:
            continue
        _partition(buf, tmp, s, s + zl, xb)
        _partition(buf, tmp, s + zl, s + count, xb)
        first = s
        for q in range(4):
            c = sizes[q]
            if c > threshold:
                stack[top, 0] = first
                stack[top, 1] = c
                stack[top, 2] = z0 if q < 2 else zc + 1
                stack[top, 3] = zc if q < 2 else z1
                stack[top, 4] = x0 if q % 2 == 0 else xcc + 1
                stack[top, 5] = xcc if q % 2 == 0 else x1
                top += 1
            first += c
    return info


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


@numba.njit(cache=True, inline="always")
def _partition(buf, tmp, lo, hi, xb):
    """Stable partition of buf[lo:hi] into x bin <= xb, then the rest (order kept)."""
    w, t = lo, 0
    for i in range(lo, hi):
        v = buf[i]
        hi_x = (v & np.uint16(255)) > xb
        buf[w] = v
        tmp[t] = v
        w += 1 - hi_x
        t += hi_x
    for j in range(t):
        buf[w + j] = tmp[j]


@numba.njit(cache=True, parallel=True)
def dv_information(
    z, cand, codes, order, sorted_codes, cum, cut, low, low_words, threshold, n_threads
):
    """I(z; x) in nats for every x in `cand` (see the module docstring for the arguments'
    meaning: AdaptiveMI's tables; low_words are the "bin <= root cut" rows as uint64)."""
    k, n = len(cand), codes.shape[1]
    out = np.zeros(k)
    bufs = np.empty((n_threads, n), dtype=np.uint16)
    tmps = np.empty((n_threads, n), dtype=np.uint16)
    hists = np.zeros((n_threads, 256), dtype=np.int64)
    for i in numba.prange(k):
        t = numba.get_thread_id()
        out[i] = _pair(
            z, cand[i], codes, order, sorted_codes, cum, cut, low, low_words, threshold,
            bufs[t], tmps[t], hists[t],
        )  # fmt: skip
    return out


def root_words(codes: np.ndarray, cut: np.ndarray) -> np.ndarray:
    """Rows "bin <= root cut" of codes (m, n), bit-packed into uint64 words (zero padded)."""
    packed = np.packbits(codes <= cut[:, None], axis=1)
    pad = (-packed.shape[1]) % 8
    return np.ascontiguousarray(np.pad(packed, ((0, 0), (0, pad)))).view(np.uint64)


def information(z: int, cand: np.ndarray, tables: tuple, threshold: float, n_threads: int):
    """dv_information in at most `n_threads` threads (capped at numba's pool size).

    `tables`: (codes, order, sorted_codes, cum, cut, low, low_words). Candidates are handed to
    the threads a few at a time, as pairs differ much in cost. The thread count is restored
    afterwards (numba keeps it per calling thread)."""
    threads = max(1, min(int(n_threads), numba.config.NUMBA_NUM_THREADS))
    previous = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        with numba.parallel_chunksize(_CHUNK):
            return dv_information(
                np.int64(z), np.asarray(cand, dtype=np.int64), *tables, float(threshold), threads
            )
    finally:
        numba.set_num_threads(previous)
