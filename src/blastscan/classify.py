"""MATLAB Classification Learner presets as scikit-learn pipelines.

The paper trained its classifiers in MATLAB's Classification Learner, so each preset here mirrors
the options that app's generated code passes (see docs/classifiers.md for the mapping and the
sources). Every preset becomes `Pipeline([select?, StandardScaler, classifier])`: MATLAB
standardises by default, and doing it inside the pipeline means cross-validation fits the scaler
(and any selector) on the training folds only.
"""

from __future__ import annotations

import importlib
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier as _SklearnKNN
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.utils.validation import check_array, check_is_fitted, check_X_y

from blastscan.errors import BlastscanError

# --------------------------------------------------------------------------------------------
# Optional acceleration: scikit-learn-intelex (the `fast` extra), only when asked for.


def _accelerated_class(module: str, name: str, fallback: type) -> type:
    """sklearnex's drop-in class when BLASTSCAN_SKLEARNEX=1 and it loads; the sklearn one else.

    Opt-in, because measured here it does not pay and it breaks bundles: Fine KNN's 10-fold CV
    took 0.9-0.8x the time of plain scikit-learn (same accuracy), and skops aborts the whole
    process ("no pybind11-registered base types") when a bundle saves an sklearnex KNN.
    See docs/benchmarks.md, "Classical stage".
    """
    if os.environ.get("BLASTSCAN_SKLEARNEX") != "1":
        return fallback
    try:
        return getattr(importlib.import_module(f"sklearnex.{module}"), name)
    except Exception:  # not installed, or an install that fails to load: stay on sklearn
        return fallback


# SVMs run libsvm on kernels computed here with BLAS, which sklearnex cannot take over (its
# SVC on the same precomputed kernel fitted 2x slower); KNN can, when asked for.
KNeighborsClassifier: type = _accelerated_class("neighbors", "KNeighborsClassifier", _SklearnKNN)


def backend() -> str:
    """Which implementation runs KNN, for the report's reproducibility notes."""
    return "scikit-learn" if KNeighborsClassifier is _SklearnKNN else "scikit-learn-intelex (KNN)"


# --------------------------------------------------------------------------------------------
# SVM: fitcecoc(templateSVM(...), 'Coding', 'onevsone')


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
        return self.classes_[np.argmin(self._losses(X), axis=1)]

    def predict_proba(self, X: Any) -> np.ndarray:
        """Platt-scaled pair probabilities coupled into class probabilities (Wu, Lin, Weng 2004)."""
        if not self.probability:
            raise AttributeError("predict_proba needs MatlabSVC(probability=True)")
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


# --------------------------------------------------------------------------------------------
# Kernel naive Bayes: fitcnb('DistributionNames', 'kernel') with a normal kernel.


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
        self.classes_, y_idx = np.unique(y, return_inverse=True)
        self.n_features_in_ = X.shape[1]
        self.class_log_prior_ = np.log(np.bincount(y_idx) / len(y_idx))
        self.samples_ = [X[y_idx == c] for c in range(len(self.classes_))]
        self.bandwidths_ = [normal_reference_bandwidth(s) for s in self.samples_]
        return self

    def _joint_log_likelihood(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "samples_")
        X = check_array(X, dtype=np.float64)
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
        return self.classes_[np.argmax(self._joint_log_likelihood(X), axis=1)]


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


# --------------------------------------------------------------------------------------------
# Presets


def squared_inverse(distances: np.ndarray) -> np.ndarray:
    """MATLAB's 'squaredinverse' distance weight (Weighted KNN); a module function so it pickles."""
    return 1.0 / np.maximum(distances, 1e-12) ** 2


@dataclass(frozen=True)
class Preset:
    """A Classification Learner preset: its family (the paper's row) and how to build it."""

    name: str
    family: str
    matlab: str
    build: Callable[[int, bool], BaseEstimator]

    def __call__(self, seed: int = 0, probability: bool = False) -> BaseEstimator:
        return self.build(seed, probability)


def _svm(kernel: str, order: int = 3, scale: float | str = "auto", by_sqrt_p: bool = False):
    def build(seed: int, probability: bool) -> BaseEstimator:
        return MatlabSVC(kernel, order, scale, by_sqrt_p, 1.0, True, probability, seed)

    return build


class Float32MLPClassifier(MLPClassifier):
    """MLPClassifier fed float32 features, fitted with one BLAS thread: same solver, faster.

    L-BFGS over the 100k weights of the Wide Neural Network spends its time in small BLAS calls,
    where waking and syncing BLAS threads costs more than the work (one fold in the main
    process: 19 s with every core, 4.4 s with one thread), and float32 input roughly halves
    the rest (2.2 s; scipy hands float64 weights back, so those stay float64). Cross-validation
    already runs one fold per core with one BLAS thread each. Accuracy is unchanged within
    noise (docs/benchmarks.md, "Classical stage").
    """

    def fit(self, X: Any, y: Any) -> Float32MLPClassifier:
        with _one_blas_thread():
            return super().fit(_float32(X), y)

    def predict(self, X: Any) -> np.ndarray:
        with _one_blas_thread():
            return super().predict(_float32(X))

    def predict_proba(self, X: Any) -> np.ndarray:
        with _one_blas_thread():
            return super().predict_proba(_float32(X))


def _float32(X: Any) -> np.ndarray:
    return np.asarray(X, dtype=np.float32)


def _one_blas_thread():
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def _ann(layers: tuple[int, ...]):
    def build(seed: int, probability: bool) -> BaseEstimator:
        return Float32MLPClassifier(
            hidden_layer_sizes=layers,
            activation="relu",
            solver="lbfgs",
            alpha=0.0,  # MATLAB Lambda 0
            max_iter=1000,  # IterationLimit 1000
            tol=1e-6,  # GradientTolerance 1e-6
            random_state=seed,
        )

    return build


def _knn(k: int, metric: str = "euclidean", p: int = 2, weights: Any = "uniform"):
    def build(seed: int, probability: bool) -> BaseEstimator:
        return KNeighborsClassifier(
            n_neighbors=k, metric=metric, p=p, weights=weights, algorithm="brute"
        )

    return build


def _nb(kind: str):
    def build(seed: int, probability: bool) -> BaseEstimator:
        return GaussianNB() if kind == "gaussian" else KernelNB()

    return build


_SVM_OPTS = "fitcecoc onevsone, templateSVM BoxConstraint 1, Standardize true"
_ANN_OPTS = "fitcnet Activations relu, Lambda 0, IterationLimit 1000, Standardize true"
_KNN_OPTS = "fitcknn Standardize true, DistanceWeight equal"

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset("Linear SVM", "SVM", f"linear, KernelScale auto; {_SVM_OPTS}", _svm("linear")),
        Preset(
            "Quadratic SVM",
            "SVM",
            f"polynomial 2, KernelScale auto; {_SVM_OPTS}",
            _svm("polynomial", 2),
        ),
        Preset(
            "Cubic SVM",
            "SVM",
            f"polynomial 3, KernelScale auto; {_SVM_OPTS}",
            _svm("polynomial", 3),
        ),
        Preset(
            "Fine Gaussian SVM",
            "SVM",
            f"gaussian, KernelScale sqrt(P)/4; {_SVM_OPTS}",
            _svm("gaussian", scale=0.25, by_sqrt_p=True),
        ),
        Preset(
            "Medium Gaussian SVM",
            "SVM",
            f"gaussian, KernelScale sqrt(P); {_SVM_OPTS}",
            _svm("gaussian", scale=1.0, by_sqrt_p=True),
        ),
        Preset(
            "Coarse Gaussian SVM",
            "SVM",
            f"gaussian, KernelScale 4*sqrt(P); {_SVM_OPTS}",
            _svm("gaussian", scale=4.0, by_sqrt_p=True),
        ),
        Preset("Narrow Neural Network", "ANN", f"LayerSizes 10; {_ANN_OPTS}", _ann((10,))),
        Preset("Medium Neural Network", "ANN", f"LayerSizes 25; {_ANN_OPTS}", _ann((25,))),
        Preset("Wide Neural Network", "ANN", f"LayerSizes 100; {_ANN_OPTS}", _ann((100,))),
        Preset(
            "Bilayered Neural Network", "ANN", f"LayerSizes [10 10]; {_ANN_OPTS}", _ann((10, 10))
        ),
        Preset(
            "Trilayered Neural Network",
            "ANN",
            f"LayerSizes [10 10 10]; {_ANN_OPTS}",
            _ann((10, 10, 10)),
        ),
        Preset("Fine KNN", "KNN", f"NumNeighbors 1, euclidean; {_KNN_OPTS}", _knn(1)),
        Preset("Medium KNN", "KNN", f"NumNeighbors 10, euclidean; {_KNN_OPTS}", _knn(10)),
        Preset("Coarse KNN", "KNN", f"NumNeighbors 100, euclidean; {_KNN_OPTS}", _knn(100)),
        Preset("Cosine KNN", "KNN", f"NumNeighbors 10, cosine; {_KNN_OPTS}", _knn(10, "cosine")),
        Preset(
            "Cubic KNN",
            "KNN",
            f"NumNeighbors 10, minkowski 3; {_KNN_OPTS}",
            _knn(10, "minkowski", 3),
        ),
        Preset(
            "Weighted KNN",
            "KNN",
            "NumNeighbors 10, euclidean, DistanceWeight squaredinverse, Standardize true",
            _knn(10, weights=squared_inverse),
        ),
        Preset(
            "Gaussian Naive Bayes",
            "Naive Bayes",
            "fitcnb DistributionNames normal",
            _nb("gaussian"),
        ),
        Preset(
            "Kernel Naive Bayes",
            "Naive Bayes",
            "fitcnb DistributionNames kernel, Kernel normal, Support unbounded",
            _nb("kernel"),
        ),
    ]
}

# Which preset stands for each row of the paper's Table 2; docs/classifiers.md says why.
PAPER_ROWS: dict[str, str] = {
    "SVM": "Cubic SVM",
    "ANN": "Wide Neural Network",
    "KNN": "Fine KNN",
    "Naive Bayes": "Gaussian Naive Bayes",
}


def get_preset(name: str) -> Preset:
    """The preset called `name` (case-insensitive), or a BlastscanError listing valid names."""
    for key, preset in PRESETS.items():
        if key.lower() == name.strip().lower():
            return preset
    raise BlastscanError(f"unknown classifier preset {name!r}; choose one of: {', '.join(PRESETS)}")


def make_classifier(
    name: str, selector: Any = None, probability: bool = False, seed: int = 0
) -> Pipeline:
    """[selector] -> StandardScaler -> preset, so every fitted step sees training rows only."""
    preset = get_preset(name)
    steps: list[tuple[str, Any]] = []
    if selector is not None:
        steps.append(("select", selector))
    steps += [("scale", StandardScaler()), ("clf", preset(seed=seed, probability=probability))]
    return Pipeline(steps)
