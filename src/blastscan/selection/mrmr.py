"""The fscmrmr order and the scikit-learn selector `MRMR` built on it.

fscmrmr (MATLAB documentation, "Algorithms") ranks features by a forward scheme on the mutual
information quotient MIQ(x) = V(x) / W(x), with relevance V(x) = I(x; y) and redundancy W(x) the
mean of I(x; z) over the features z already selected:

1. the most relevant feature first;
2. then, while any remain, the features with nonzero relevance and zero redundancy, most
   relevant first;
3. then repeatedly the feature with the largest MIQ;
4. the features with zero relevance last (MATLAB: "in random order"; here in input order, so a
   fit is reproducible).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.feature_selection import SelectorMixin
from sklearn.utils.validation import check_is_fitted

from blastscan.errors import BlastscanError
from blastscan.selection.adaptive_mi import ENGINES, AdaptiveMI, adaptive_relevance
from blastscan.selection.binning import MAX_BINS, equiprobable_bins
from blastscan.selection.plugin_mi import PluginMI, plugin_relevance

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data
except ImportError:  # pragma: no cover - older scikit-learn

    def validate_data(estimator, X, y, **kwargs):
        return estimator._validate_data(X, y, **kwargs)


ESTIMATORS = ("adaptive", "plugin")
# Redundancy sums at or below this are "zero": an adaptive MI is exactly 0 when the partition
# stops at the root and otherwise clearly positive, so only rounding lives below it.
ZERO_REDUNDANCY = 1e-12

MIFunction = Callable[[int, np.ndarray], np.ndarray]


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
        that is provably not the MIQ and that no definition tried reproduces (docs/reference/selection.md,
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
