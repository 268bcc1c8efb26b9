"""Kernel naive Bayes: fitcnb('DistributionNames', 'kernel') with a normal kernel."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_is_fitted, check_X_y


class KernelNB(ClassifierMixin, BaseEstimator):
    """Naive Bayes with one Gaussian kernel density per class and feature.

    The bandwidth follows MATLAB ksdensity's normal-reference rule, robust to outliers:
    h = sigma * (4 / (3 n)) ** (1/5) with sigma = MAD / 0.6745. Densities are evaluated
    exactly, in chunks of test rows, with log-sum-exp so that far-away points do not underflow.
    """

    def __init__(self, max_chunk_elements: int = 4_000_000) -> None:
        self.max_chunk_elements = max_chunk_elements

    def fit(self, X: Any, y: Any) -> KernelNB:
        X, y = check_X_y(X, y, dtype=np.float64)
        check_classification_targets(y)
        self.classes_, y_idx = np.unique(y, return_inverse=True)
        self.n_features_in_ = X.shape[1]
        self.class_log_prior_ = np.log(np.bincount(y_idx) / len(y_idx))
        self.samples_ = [X[y_idx == c] for c in range(len(self.classes_))]
        self.bandwidths_ = [normal_reference_bandwidth(s) for s in self.samples_]
        return self

    def _joint_log_likelihood(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "samples_")
        X = check_array(X, dtype=np.float64)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, expected {self.n_features_in_}")
        out = np.empty((X.shape[0], len(self.classes_)))
        for c, (S, h) in enumerate(zip(self.samples_, self.bandwidths_, strict=True)):
            out[:, c] = self.class_log_prior_[c] + _kde_log_density(
                X, S, h, self.max_chunk_elements
            )
        return out

    def predict_log_proba(self, X: Any) -> np.ndarray:
        jll = self._joint_log_likelihood(X)
        return jll - _logsumexp(jll, axis=1)[:, None]

    def predict_proba(self, X: Any) -> np.ndarray:
        return np.exp(self.predict_log_proba(X))

    def predict(self, X: Any) -> np.ndarray:
        jll = self._joint_log_likelihood(
            X
        )  # first, so that an unfitted model raises NotFittedError
        return self.classes_[np.argmax(jll, axis=1)]


def normal_reference_bandwidth(S: np.ndarray) -> np.ndarray:
    """Per-feature kernel width as ksdensity picks it (falls back to the range, then to 1)."""
    n = S.shape[0]
    sigma = np.median(np.abs(S - np.median(S, axis=0)), axis=0) / 0.6745
    sigma = np.where(sigma > 0, sigma, S.max(axis=0) - S.min(axis=0))
    h = sigma * (4.0 / (3.0 * n)) ** 0.2
    return np.where(h > 0, h, 1.0)


def _kde_log_density(X: np.ndarray, S: np.ndarray, h: np.ndarray, max_elements: int) -> np.ndarray:
    """Sum over features of log KDE(x_j), KDE built on the rows of S with widths h."""
    n_s, p = S.shape
    chunk = max(1, max_elements // (n_s * p))
    const = np.log(n_s * h * math.sqrt(2 * math.pi)).sum()
    out = np.empty(X.shape[0])
    for start in range(0, X.shape[0], chunk):
        z2 = ((X[start : start + chunk, None, :] - S[None, :, :]) / h) ** 2  # (m, n_s, p)
        m = z2.min(axis=1, keepdims=True)
        log_k = -0.5 * m[:, 0, :] + np.log(np.exp(-0.5 * (z2 - m)).sum(axis=1))  # (m, p)
        out[start : start + chunk] = log_k.sum(axis=1) - const
    return out


def _logsumexp(a: np.ndarray, axis: int) -> np.ndarray:
    m = a.max(axis=axis, keepdims=True)
    return (m + np.log(np.exp(a - m).sum(axis=axis, keepdims=True))).squeeze(axis)
