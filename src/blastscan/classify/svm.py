"""MATLAB's multiclass SVM: fitcecoc(templateSVM(...), 'Coding', 'onevsone').

One-vs-one binary SVMs on MATLAB's kernels (precomputed here and handed to libsvm), each with
its own standardisation and kernel scale, Platt scaling for probabilities and pairwise coupling
into class probabilities.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.svm import SVC
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_is_fitted, check_X_y


def auto_kernel_scale(
    X: np.ndarray, y_pm: np.ndarray, rng: np.random.Generator, n_sample: int = 100
) -> float:
    """MATLAB's KernelScale='auto' for one binary SVM, as we read its documented heuristic.

    Sample up to `n_sample` points of each class, take for every sampled positive the distance
    to its nearest sampled negative (ignoring zero distances), use the median, and correct it
    for subsampling by (fraction_pos * fraction_neg) ** (1 / (2 P)). The subsampling makes the
    value random, as in MATLAB; `rng` makes it reproducible here.
    """
    neg, pos = np.flatnonzero(y_pm < 0), np.flatnonzero(y_pm > 0)
    if len(neg) == 0 or len(pos) == 0:
        return 1.0
    neg_s = rng.choice(neg, size=min(n_sample, len(neg)), replace=False)
    pos_s = rng.choice(pos, size=min(n_sample, len(pos)), replace=False)
    d = _euclidean(X[neg_s], X[pos_s])
    d[d == 0] = np.inf
    scale = float(np.median(d.min(axis=0)))
    if not math.isfinite(scale):
        return 1.0
    fraction = (len(neg_s) / len(neg)) * (len(pos_s) / len(pos))
    return scale * fraction ** (1.0 / (2 * X.shape[1]))


def _euclidean(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.maximum(sq, 0.0))


def fixed_kernel_scale(kernel_scale: float, scale_by_sqrt_p: bool, n_predictors: int) -> float:
    """Classification Learner's Gaussian presets: scale = factor * sqrt(P), P = predictors."""
    return kernel_scale * math.sqrt(n_predictors) if scale_by_sqrt_p else float(kernel_scale)


def kernel_matrix(
    A: np.ndarray, B: np.ndarray, kernel: str, scale: float, order: int = 3
) -> np.ndarray:
    """MATLAB's kernels on predictors divided by the kernel scale s (gamma = 1 / s**2).

    linear x'z/s^2, polynomial (1 + x'z/s^2)^q, Gaussian exp(-|x - z|^2 / s^2). Computed with
    one matrix product, which is several times faster than libsvm's row-by-row kernels on
    1000-D features.
    """
    gram = (A @ B.T) / scale**2
    if kernel == "linear":
        return gram
    if kernel == "polynomial":
        return (1.0 + gram) ** order
    sq_a = (A * A).sum(axis=1)[:, None] / scale**2
    sq_b = (B * B).sum(axis=1)[None, :] / scale**2
    return np.exp(-np.maximum(sq_a + sq_b - 2.0 * gram, 0.0))


@dataclass
class _BinaryLearner:
    """One class-pair SVM: its standardisation, kernel scale, support vectors and dual weights."""

    mean: np.ndarray
    std: np.ndarray
    kernel_scale: float
    support_vectors: np.ndarray  # standardised, as the SVM saw them
    dual_coef: np.ndarray  # alpha_i * y_i, with +1 = the pair's first class
    intercept: float
    platt: LogisticRegression | None = None  # maps the SVM score to P(first class of the pair)

    @property
    def gamma(self) -> float:
        """The libsvm gamma this kernel scale amounts to."""
        return 1.0 / self.kernel_scale**2

    def transform(self, X: np.ndarray) -> np.ndarray:
        return (X - self.mean) / self.std

    def score(self, X: np.ndarray, kernel: str, order: int) -> np.ndarray:
        K = kernel_matrix(self.transform(X), self.support_vectors, kernel, self.kernel_scale, order)
        return K @ self.dual_coef + self.intercept

    def proba_first(self, X: np.ndarray, kernel: str, order: int) -> np.ndarray:
        return self.platt.predict_proba(self.score(X, kernel, order)[:, None])[:, 1]


def fit_platt(svc: Any, K: np.ndarray, y_pm: np.ndarray, seed: int | None) -> LogisticRegression:
    """Platt scaling on 5-fold out-of-fold SVM scores (K: precomputed kernel), as libsvm -b 1.

    Done here because sklearn 1.9 deprecates SVC(probability=True).
    """
    cv = StratifiedKFold(
        n_splits=min(5, int(np.bincount(y_pm > 0).min())), shuffle=True, random_state=seed
    )
    scores = cross_val_predict(clone(svc), K, y_pm, cv=cv, method="decision_function")
    return LogisticRegression(C=1e6).fit(scores[:, None], y_pm > 0)


class MatlabSVC(ClassifierMixin, BaseEstimator):
    """Multiclass SVM the way MATLAB's fitcecoc builds it: one-vs-one binary SVMs.

    Each class pair gets its own SVC (`decision_function_shape='ovo'`) with its own
    standardisation (templateSVM 'Standardize', true acts on the pair's rows) and, for
    KernelScale 'auto', its own kernel scale. MATLAB divides the predictors by the kernel scale
    s before applying the kernel, i.e. gamma = 1 / s**2 in libsvm terms (see kernel_matrix;
    the kernel is precomputed and handed to libsvm, which is the same model, faster).
    Prediction uses MATLAB's default ECOC decoding: loss-weighted with the hinge binary loss.
    """

    def __init__(
        self,
        kernel: str = "gaussian",
        polynomial_order: int = 3,
        kernel_scale: float | str = "auto",
        scale_by_sqrt_p: bool = False,
        box_constraint: float = 1.0,
        standardize: bool = True,
        probability: bool = False,
        random_state: int | None = 0,
        cache_size: float = 200.0,
    ) -> None:
        self.kernel = kernel
        self.polynomial_order = polynomial_order
        self.kernel_scale = kernel_scale
        self.scale_by_sqrt_p = scale_by_sqrt_p
        self.box_constraint = box_constraint
        self.standardize = standardize
        self.probability = probability
        self.random_state = random_state
        self.cache_size = cache_size

    def fit(self, X: Any, y: Any) -> MatlabSVC:
        X, y = check_X_y(X, y, dtype=np.float64)
        check_classification_targets(y)
        if self.kernel not in ("linear", "polynomial", "gaussian"):
            raise ValueError(f"kernel must be linear, polynomial or gaussian, not {self.kernel!r}")
        self.classes_, y_idx = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError("MatlabSVC needs at least two classes")
        self.n_features_in_ = X.shape[1]
        rng = np.random.default_rng(self.random_state)
        self.pairs_ = list(combinations(range(len(self.classes_)), 2))
        self.learners_ = [self._fit_pair(X, y_idx, i, j, rng) for i, j in self.pairs_]
        return self

    def _fit_pair(
        self, X: np.ndarray, y_idx: np.ndarray, i: int, j: int, rng: np.random.Generator
    ) -> _BinaryLearner:
        """Class i is MATLAB's +1 and class j its -1 in the one-vs-one coding matrix."""
        rows = (y_idx == i) | (y_idx == j)
        X_pair, y_pm = X[rows], np.where(y_idx[rows] == i, 1, -1)
        mean, std = _moments(X_pair) if self.standardize else (0.0, 1.0)
        Z = (X_pair - mean) / std
        if self.kernel_scale == "auto":
            scale = auto_kernel_scale(Z, y_pm, rng)
        else:
            scale = fixed_kernel_scale(float(self.kernel_scale), self.scale_by_sqrt_p, Z.shape[1])
        K = kernel_matrix(Z, Z, self.kernel, scale, self.polynomial_order)
        svc = self._make_svc()
        platt = fit_platt(svc, K, y_pm, self.random_state) if self.probability else None
        svc.fit(K, y_pm)
        support = svc.support_
        return _BinaryLearner(
            np.asarray(mean), np.asarray(std), scale, Z[support].copy(),
            svc.dual_coef_[0].copy(), float(svc.intercept_[0]), platt,
        )  # fmt: skip

    def _make_svc(self) -> Any:
        """libsvm on a precomputed MATLAB kernel; binary, so 'ovo' shape changes nothing."""
        return SVC(
            kernel="precomputed",
            C=self.box_constraint,
            decision_function_shape="ovo",
            random_state=self.random_state,
            cache_size=self.cache_size,
        )

    @property
    def kernel_scales_(self) -> list[float]:
        """The kernel scale each class-pair learner used (MATLAB: Mdl.BinaryLearners{l}...)."""
        check_is_fitted(self, "learners_")
        return [learner.kernel_scale for learner in self.learners_]

    def decision_function(self, X: Any) -> np.ndarray:
        """Binary scores, one column per class pair; positive means the pair's first class."""
        X = self._check(X)
        args = (self.kernel, self.polynomial_order)
        return np.column_stack([learner.score(X, *args) for learner in self.learners_])

    def _losses(self, X: Any) -> np.ndarray:
        """Loss-weighted hinge decoding: mean of max(0, 1 - m*s)/2 over a class's learners."""
        scores = self.decision_function(X)
        losses = np.zeros((scores.shape[0], len(self.classes_)))
        for col, (i, j) in enumerate(self.pairs_):
            losses[:, i] += np.maximum(0.0, 1.0 - scores[:, col]) / 2
            losses[:, j] += np.maximum(0.0, 1.0 + scores[:, col]) / 2
        return losses / (len(self.classes_) - 1)

    def predict(self, X: Any) -> np.ndarray:
        losses = self._losses(X)  # first, so that an unfitted model raises NotFittedError
        return self.classes_[np.argmin(losses, axis=1)]

    def _has_probability(self) -> bool:
        if not self.probability:
            raise AttributeError("predict_proba needs MatlabSVC(probability=True)")
        return True

    @available_if(_has_probability)
    def predict_proba(self, X: Any) -> np.ndarray:
        """Platt-scaled pair probabilities coupled into class probabilities (Wu, Lin, Weng 2004).

        Only there with probability=True (as sklearn's SVC), so hasattr() tells whether it is.
        """
        X = self._check(X)
        r = np.zeros((X.shape[0], len(self.classes_), len(self.classes_)))
        for learner, (i, j) in zip(self.learners_, self.pairs_, strict=True):
            p_i = learner.proba_first(X, self.kernel, self.polynomial_order)
            r[:, i, j], r[:, j, i] = p_i, 1.0 - p_i
        return couple_pairwise(r)

    def _check(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "learners_")
        X = check_array(X, dtype=np.float64)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, expected {self.n_features_in_}")
        return X


def _moments(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean, std = X.mean(axis=0), X.std(axis=0)
    return mean, np.where(std > 0, std, 1.0)


def couple_pairwise(r: np.ndarray) -> np.ndarray:
    """Class probabilities from pairwise ones r[n, i, j] = P(i | i or j) (WLW 2004, method 2).

    Solves min p'Qp subject to sum(p) = 1 through its KKT system, which stays non-singular for
    two classes too; this is what libsvm does, vectorised over samples.
    """
    n, k, _ = r.shape
    r = np.clip(r, 1e-7, 1 - 1e-7)
    off = ~np.eye(k, dtype=bool)
    q = np.where(off, -r.transpose(0, 2, 1) * r, 0.0)
    diag = np.where(off, r.transpose(0, 2, 1) ** 2, 0.0).sum(axis=2)
    q[:, np.arange(k), np.arange(k)] = diag
    kkt = np.zeros((n, k + 1, k + 1))
    kkt[:, :k, :k] = q
    kkt[:, :k, k] = kkt[:, k, :k] = 1.0
    rhs = np.zeros((n, k + 1, 1))
    rhs[:, k] = 1.0
    p = np.clip(np.linalg.solve(kkt, rhs)[:, :k, 0], 0.0, None)
    return p / p.sum(axis=1, keepdims=True)
