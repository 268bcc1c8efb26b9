"""Slow, literal references for the mRMR tests (one pair, one cell at a time, in plain Python)
and the data they are run on."""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import chi2

ALPHA = 0.05

# --------------------------------------------------------------------------------------------
# Reference: one pair, one cell at a time, in plain Python


def ref_cut(values: list[int]) -> tuple[int, int]:
    """Median cut of a cell: (last value of the lower part, its size), nearer to even halves."""
    c = len(values)
    med = sorted(values)[(c + 1) // 2 - 1]
    upto = sum(v <= med for v in values)
    below = sum(v < med for v in values)
    if below > 0 and (upto == c or abs(2 * below - c) < abs(2 * upto - c)):
        return med - 1, below
    return med, upto


def pearson(observed: list[list[int]]) -> float:
    """Pearson chi-square of a contingency table, over its nonzero-expected cells."""
    total = sum(map(sum, observed))
    rows = [sum(r) for r in observed]
    cols = [sum(c) for c in zip(*observed, strict=True)]
    stat = 0.0
    for i, r in enumerate(observed):
        for j, o in enumerate(r):
            e = rows[i] * cols[j] / total
            if e > 0:
                stat += (o - e) ** 2 / e
    return stat


def ref_dv(z: list[int], x: list[int], alpha: float = ALPHA) -> float:
    """Darbellay-Vajda I(z; x): recursive 2x2 cuts at the cell's marginal medians."""
    n, limit = len(z), chi2.ppf(1 - alpha, 3)

    def info(points, z0, z1, x0, x1):
        c = len(points)
        if c == 0:
            return 0.0
        zc, zl = ref_cut([p[0] for p in points])
        xc, xl = ref_cut([p[1] for p in points])
        if 0 < zl < c and 0 < xl < c:
            quads = [
                [p for p in points if (p[0] > zc) == zh and (p[1] > xc) == xh]
                for zh in (False, True)
                for xh in (False, True)
            ]
            table = [[len(quads[0]), len(quads[1])], [len(quads[2]), len(quads[3])]]
            if pearson(table) > limit:
                ranges = [
                    (z0, zc, x0, xc),
                    (z0, zc, xc + 1, x1),
                    (zc + 1, z1, x0, xc),
                    (zc + 1, z1, xc + 1, x1),
                ]
                return sum(info(q, *r) for q, r in zip(quads, ranges, strict=True))
        nz = sum(z0 <= v <= z1 for v in z)
        nx = sum(x0 <= v <= x1 for v in x)
        return c / n * math.log(c * n / (nz * nx))

    return info(list(zip(z, x, strict=True)), 0, 255, 0, 255)


def ref_relevance(x: list[int], y: list[int], alpha: float = ALPHA) -> float:
    """I(x; y): x intervals cut at their median while the class mix differs (chi-square with
    2 x classes - 1 degrees of freedom, Darbellay-Vajda's sub-cells minus one)."""
    n, classes = len(x), sorted(set(y))
    n_y = {c: y.count(c) for c in classes}

    def info(members):
        c = len(members)
        cut, low = ref_cut([x[i] for i in members])
        if 0 < low < c:
            left = [i for i in members if x[i] <= cut]
            right = [i for i in members if x[i] > cut]
            table = [[sum(y[i] == k for i in part) for k in classes] for part in (left, right)]
            seen = sum(a + b > 0 for a, b in zip(*table, strict=True))
            if seen > 1 and pearson(table) > chi2.ppf(1 - alpha, 2 * seen - 1):
                return info(left) + info(right)
        out = 0.0
        for k in classes:
            nk = sum(y[i] == k for i in members)
            if nk:
                out += nk / n * math.log(nk * n / (c * n_y[k]))
        return out

    return info(list(range(n)))


# --------------------------------------------------------------------------------------------
# Data


def mixed_data(seed: int, n: int = 240, m: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Correlated features with ties, a 3-valued one, a constant one, a class signal and one
    feature informative but only weakly dependent on the others."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    f = rng.normal(size=(n, 2)) + y[:, None] * 1.2
    X = f @ rng.normal(size=(2, m)) + rng.normal(size=(n, m)) * rng.uniform(0.2, 2, m)
    X[:, 1] = rng.integers(0, 3, n)
    X[:, 2] = np.maximum(X[:, 2], 0.3)
    X[:, 3] = 1.0
    X[:, 4] = np.round(X[:, 4], 1)
    X[:, 5] = (y == 0) + rng.normal(size=n) * 0.5
    return X, y


def correlated_data(seed: int, n: int = 800, m: int = 120) -> tuple[np.ndarray, np.ndarray]:
    """Noisy copies of one class-dependent factor (deep partitions), with a 3-class y."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    factor = rng.normal(size=(n, 1)) + y[:, None]
    return factor + rng.uniform(0.05, 1.0, m) * rng.normal(size=(n, m)), y
