"""Plug-in mutual information on the fixed grid of bins (kept to measure its bias).

At a few thousand samples the plug-in estimate on the 256 x 256 grid makes two independent
features look about 3 nats redundant (docs/reference/selection.md), so it is only the "plugin" estimator of
`MRMR`, for comparison with the adaptive one.
"""

from __future__ import annotations

import math

import numpy as np

from blastscan.selection.binning import MAX_BINS, _cumulative_counts, _feature_chunks


def _plugin_information(joint: np.ndarray, n: int) -> np.ndarray:
    """I of each (a x b) count table in `joint` (shape (m, a, b)) from its empirical frequencies.

    Clipped at 0: it is a Kullback-Leibler divergence, and a table without dependence (a
    constant feature) otherwise sums to -2e-16 by rounding."""
    p = joint / n
    pa = p.sum(2, keepdims=True)
    pb = p.sum(1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p / (pa * pb)), 0.0)
    return np.maximum(terms.sum((1, 2)), 0.0)


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
