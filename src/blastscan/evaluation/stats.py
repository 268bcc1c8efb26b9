"""Confidence intervals and paired tests: Wilson intervals, exact McNemar, the bootstrap.

Everything returned is plain JSON-able data (floats, ints, dicts), as metrics.json stores it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.stats import binomtest, norm

from blastscan.errors import BlastscanError


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion k/n: stays inside [0, 1] and behaves near 100%.

    That matters here: the paper's accuracies are 99.6-99.94%, where the normal approximation
    gives intervals past 100%. n = 0 gives (0, 1), i.e. no information.
    """
    if n <= 0:
        return 0.0, 1.0
    if not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    z = float(norm.ppf(0.5 + confidence / 2))
    p, z2 = k / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def proportion(k: int, n: int, confidence: float = 0.95) -> dict[str, float | int]:
    """A proportion as metrics.json stores it: value, Wilson bounds, and the counts behind it.

    n = 0 (e.g. precision of a class never predicted) gives value 0 and bounds (0, 1), keeping
    the JSON free of NaN; n tells the reader there was nothing to count.
    """
    low, high = wilson_interval(k, n, confidence)
    value = k / n if n else 0.0
    return {"value": value, "low": low, "high": high, "k": int(k), "n": int(n)}


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> dict[str, Any]:
    """Exact McNemar test of two classifiers scored on the same images.

    Why paired: two accuracies on one test set are not independent samples, so comparing their
    Wilson intervals overstates the doubt. Only the images exactly one classifier gets right
    say which is better; under "equally good" each of those is a coin flip, so the exact
    two-sided p-value is a binomial test of `a_only` in `a_only + b_only` at 1/2 (scipy's
    binomtest). A large p-value says the test set cannot tell them apart, not that they are
    equal.
    """
    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape or a.ndim != 1:
        raise BlastscanError(f"paired results differ in shape: {a.shape} vs {b.shape}")
    a_only, b_only = int(np.sum(a & ~b)), int(np.sum(b & ~a))
    discordant = a_only + b_only
    p_value = binomtest(a_only, discordant, 0.5).pvalue if discordant else 1.0
    n = len(a)
    return {
        "n": n,
        "accuracy_a": proportion(int(a.sum()), n),
        "accuracy_b": proportion(int(b.sum()), n),
        "difference": (int(b.sum()) - int(a.sum())) / n if n else 0.0,
        "a_only": a_only,
        "b_only": b_only,
        "both_wrong": int(np.sum(~a & ~b)),
        "p_value": float(p_value),
    }


def bootstrap_interval(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    metric: Callable[[np.ndarray, np.ndarray], float] | None = None,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap over samples, for metrics without a closed-form interval (e.g. F1).

    With `metric=None` it bootstraps accuracy, vectorised.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(y_true), size=(n_boot, len(y_true)))
    if metric is None:
        stats = (y_true == y_pred)[idx].mean(axis=1)
    else:
        stats = np.array([metric(y_true[i], y_pred[i]) for i in idx])
    alpha = (1 - confidence) / 2
    low, high = np.quantile(stats, [alpha, 1 - alpha])
    return float(low), float(high)
