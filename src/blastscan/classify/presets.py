"""Classification Learner presets: which classifier each preset name builds, with what options.

Also the optional scikit-learn-intelex KNN (the `fast` extra, only when asked for) and the
float32 MLP the neural-network presets use.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier as _SklearnKNN
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from blastscan.classify.naive_bayes import KernelNB
from blastscan.classify.svm import MatlabSVC
from blastscan.errors import BlastscanError

# --------------------------------------------------------------------------------------------
# Optional acceleration: scikit-learn-intelex (the `fast` extra), only when asked for.


def _accelerated_class(module: str, name: str, fallback: type) -> type:
    """sklearnex's drop-in class when BLASTSCAN_SKLEARNEX=1 and it loads; the sklearn one else.

    Opt-in, because measured here it does not pay and it breaks bundles: Fine KNN's 10-fold CV
    took 0.9-0.8x the time of plain scikit-learn (same accuracy), and skops aborts the whole
    process ("no pybind11-registered base types") when a bundle saves an sklearnex KNN.
    See docs/reference/benchmarks.md, "Classical stage".
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
    noise (docs/reference/benchmarks.md, "Classical stage").
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

# Which preset stands for each row of the paper's Table 2; docs/reference/classifiers.md says why.
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
