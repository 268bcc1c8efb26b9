"""Cross-validation, metrics with confidence intervals, and confusion-matrix figures.

Everything returned is plain JSON-able data (floats, ints, lists, dicts), so the caller can
write it straight into metrics.json (schema: docs/metrics.md).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from joblib import Parallel, delayed
from scipy.stats import binomtest, norm
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from blastscan.classify import PAPER_ROWS, backend, get_preset, make_classifier
from blastscan.errors import BlastscanError
from blastscan.io import atomic_write
from blastscan.selection import kept_columns

# --------------------------------------------------------------------------------------------
# Cross-validation


@dataclass
class CVResult:
    """Out-of-fold predictions of one pipeline, with what is needed to audit them."""

    y_true: np.ndarray  # (N,) the labels cross-validated
    y_pred: np.ndarray  # (N,) prediction for each sample, made by the fold that held it out
    fold: np.ndarray  # (N,) index of the fold whose test set held each sample
    fold_accuracy: np.ndarray  # (n_splits,)
    fold_seconds: np.ndarray  # (n_splits,) fit + predict time of each fold, in its worker
    seconds: float  # wall time of the whole cross-validation
    proba: np.ndarray | None = None  # (N, n_classes) out-of-fold probabilities, if asked for
    fold_info: list[Any] = field(default_factory=list)  # what `inspect` returned per fold
    warnings: list[str] = field(default_factory=list)  # distinct warnings raised in the folds

    @property
    def accuracy(self) -> float:
        """Pooled out-of-fold accuracy (what MATLAB's kfoldLoss reports as 1 - loss)."""
        return float(np.mean(self.y_pred == self.y_true))

    @property
    def folds(self) -> list[np.ndarray]:
        """Test indices of each fold."""
        return [np.flatnonzero(self.fold == k) for k in range(len(self.fold_accuracy))]


def make_splitter(n_splits: int, seed: int, grouped: bool) -> Any:
    """Stratified folds; grouped ones keep every group (e.g. patient) inside one fold."""
    if grouped:
        return StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)


def cross_validate(
    pipeline: Any,
    X: np.ndarray,
    y: np.ndarray,
    n_splits: int = 10,
    seed: int = 0,
    groups: np.ndarray | None = None,
    n_jobs: int = -1,
    return_proba: bool = False,
    inspect: Callable[[Any], Any] | None = None,
) -> CVResult:
    """k-fold CV with a fresh clone of `pipeline` per fold, folds run in parallel processes.

    Every fitted step (scaler, selector, classifier) sees only its fold's training rows.
    `inspect(fitted_pipeline)` may return small per-fold facts, e.g. how many features a
    selector kept.
    """
    X, y = np.asarray(X), np.asarray(y)
    if len(X) != len(y):
        raise BlastscanError(f"X has {len(X)} rows but y has {len(y)} labels; they must match")
    splits = list(make_splitter(n_splits, seed, groups is not None).split(X, y, groups))
    return _cross_validate_splits(pipeline, X, y, splits, n_jobs, return_proba, inspect)


def _cross_validate_splits(
    pipeline: Any,
    X: np.ndarray,
    y: np.ndarray,
    splits: list[tuple[np.ndarray, np.ndarray]],
    n_jobs: int,
    return_proba: bool = False,
    inspect: Callable[[Any], Any] | None = None,
    fold_columns: list[np.ndarray] | None = None,
) -> CVResult:
    """Run given splits in parallel; `fold_columns[k]` restricts fold k to those features."""
    classes = np.unique(y)
    columns = fold_columns or [None] * len(splits)
    start = time.perf_counter()
    outputs = Parallel(n_jobs=n_jobs)(
        delayed(_run_fold)(pipeline, X, y, train, test, cols, classes, return_proba, inspect)
        for (train, test), cols in zip(splits, columns, strict=True)
    )
    seconds = time.perf_counter() - start
    return _collect(outputs, splits, y, classes, seconds, return_proba)


def _run_fold(
    pipeline: Any,
    X: np.ndarray,
    y: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    columns: np.ndarray | None,
    classes: np.ndarray,
    return_proba: bool,
    inspect: Callable[[Any], Any] | None,
) -> dict[str, Any]:
    """Fit on the training rows, predict the test rows; runs in a worker process."""
    start = time.perf_counter()
    model = clone(pipeline)
    X_train, X_test = X[train], X[test]
    if columns is not None:
        X_train, X_test = X_train[:, columns], X_test[:, columns]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(X_train, y[train])
        pred = model.predict(X_test)
        proba = _aligned_proba(model, X_test, classes) if return_proba else None
    return {
        "pred": pred,
        "proba": proba,
        "seconds": time.perf_counter() - start,
        "info": inspect(model) if inspect is not None else None,
        "warnings": sorted({f"{w.category.__name__}: {w.message}" for w in caught}),
    }


def _aligned_proba(model: Any, X: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """predict_proba with one column per class of the whole data set, even if a fold lacks one."""
    p = model.predict_proba(X)
    out = np.zeros((len(X), len(classes)))
    out[:, np.searchsorted(classes, model.classes_)] = p
    return out


def _collect(
    outputs: list[dict[str, Any]],
    splits: list[tuple[np.ndarray, np.ndarray]],
    y: np.ndarray,
    classes: np.ndarray,
    seconds: float,
    return_proba: bool,
) -> CVResult:
    y_pred = np.empty_like(y)
    fold = np.empty(len(y), dtype=np.int64)
    proba = np.zeros((len(y), len(classes))) if return_proba else None
    fold_acc, messages = [], set()
    for k, ((_, test), out) in enumerate(zip(splits, outputs, strict=True)):
        y_pred[test], fold[test] = out["pred"], k
        fold_acc.append(float(np.mean(out["pred"] == y[test])))
        if proba is not None:
            proba[test] = out["proba"]
        messages.update(out["warnings"])
    return CVResult(
        y_true=y,
        y_pred=y_pred,
        fold=fold,
        fold_accuracy=np.array(fold_acc),
        fold_seconds=np.array([o["seconds"] for o in outputs]),
        seconds=seconds,
        proba=proba,
        fold_info=[o["info"] for o in outputs],
        warnings=sorted(messages),
    )


# --------------------------------------------------------------------------------------------
# Confidence intervals


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


# --------------------------------------------------------------------------------------------
# Metrics


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Rows are true classes, columns predicted ones; labels are 0..n_classes-1."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return cm


def classification_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str], confidence: float = 0.95
) -> dict[str, Any]:
    """Accuracy and per-class precision/recall/F1/accuracy, with Wilson intervals.

    Labels are indices into `class_names`. Per-class accuracy is one-vs-rest,
    (TP + TN) / N, which is what per-class "accuracy" tables such as the paper's Table 3
    usually report.
    """
    return metrics_from_confusion(
        confusion_matrix(y_true, y_pred, len(class_names)), class_names, confidence
    )


def metrics_from_confusion(
    cm: np.ndarray, class_names: Sequence[str], confidence: float = 0.95
) -> dict[str, Any]:
    """The metrics of `classification_metrics`, from a confusion matrix."""
    cm = np.asarray(cm, dtype=np.int64)
    n = int(cm.sum())
    tp, support, predicted = np.diag(cm), cm.sum(axis=1), cm.sum(axis=0)
    per_class = {}
    for i, name in enumerate(class_names):
        prec = proportion(int(tp[i]), int(predicted[i]), confidence)
        rec = proportion(int(tp[i]), int(support[i]), confidence)
        p, r = prec["value"], rec["value"]
        tn = n - support[i] - predicted[i] + tp[i]
        per_class[name] = {
            "precision": prec,
            "recall": rec,
            "f1": 2 * p * r / (p + r) if p + r > 0 else 0.0,
            "accuracy": proportion(int(tp[i] + tn), n, confidence),
            "support": int(support[i]),
        }
    return {
        "n": n,
        "class_names": list(class_names),
        "accuracy": proportion(int(tp.sum()), n, confidence),
        "per_class": per_class,
        "macro": _macro(per_class),
        "confusion_matrix": cm.tolist(),
        "confidence": confidence,
    }


def _macro(per_class: dict[str, dict[str, Any]]) -> dict[str, float]:
    rows = per_class.values()
    return {
        "precision": float(np.mean([r["precision"]["value"] for r in rows])),
        "recall": float(np.mean([r["recall"]["value"] for r in rows])),
        "f1": float(np.mean([r["f1"] for r in rows])),
        "accuracy": float(np.mean([r["accuracy"]["value"] for r in rows])),
    }


# --------------------------------------------------------------------------------------------
# Figures


def plot_confusion_matrix(
    cm: Any, class_names: Sequence[str], path: Path, title: str = "Confusion matrix"
) -> Path:
    """A MATLAB-style confusion chart (counts, coloured by row share) as a PNG, written atomically.

    Uses the Agg canvas directly, so it works headless and leaves pyplot's state alone.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cm = np.asarray(cm)
    share = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    size = 1.1 * len(class_names) + 2.2
    fig = Figure(figsize=(size, size * 0.85), dpi=130)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for (i, j), count in np.ndenumerate(cm):
        colour = "white" if share[i, j] > 0.5 else "black"
        ax.text(j, i, f"{count}", ha="center", va="center", color=colour, fontsize=10)
    ticks = np.arange(len(class_names))
    ax.set_xticks(ticks, labels=list(class_names), rotation=30, ha="right")
    ax.set_yticks(ticks, labels=list(class_names))
    ax.set(xlabel="Predicted class", ylabel="True class", title=title)
    fig.tight_layout()
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    return path


# --------------------------------------------------------------------------------------------
# What colour alone gives away

MAJORITY = "majority class of the training images"


def colour_statistics(images: np.ndarray) -> dict[str, np.ndarray]:
    """Per-image colour numbers that carry no cell shape, by name.

    The whole image's mean and s.d. of RGB; and the mean RGB of its lighter half of pixels
    (plasma, background and red cells around the white cell the class is about), which is
    stain and light, not the cell.
    """
    pixels = np.asarray(images, dtype=np.float32).reshape(len(images), -1, 3)
    luminance = pixels @ np.array([0.299, 0.587, 0.114], np.float32)
    lighter = luminance >= np.median(luminance, axis=1, keepdims=True)
    background = (pixels * lighter[..., None]).sum(1) / lighter.sum(1)[:, None]
    return {
        "whole image: mean and s.d. of RGB": np.hstack([pixels.mean(1), pixels.std(1)]),
        "lighter half of the pixels: mean RGB": background,
    }


def colour_baseline(
    images: np.ndarray, labels: np.ndarray, train: np.ndarray, test: np.ndarray
) -> dict[str, Any]:
    """Accuracy of 5 nearest neighbours on `colour_statistics` alone, fitted on `train`.

    High accuracy means the classes were stained or lit differently: a model may score well
    on this dataset partly from stain and light, which another laboratory's smears do not share.
    """
    labels, train, test = np.asarray(labels), np.asarray(train), np.asarray(test)
    majority = np.bincount(labels[train]).argmax()
    baselines = {MAJORITY: {"n_statistics": 0, "accuracy": _right(labels[test] == majority)}}
    for name, X in colour_statistics(images).items():
        model = make_pipeline(StandardScaler(), KNeighborsClassifier(5))
        model.fit(X[train], labels[train])
        right = model.predict(X[test]) == labels[test]
        baselines[name] = {"n_statistics": X.shape[1], "accuracy": _right(right)}
    return {
        "classifier": "5 nearest neighbours on standardised statistics",
        "n_train": len(train),
        "n_test": len(test),
        "baselines": baselines,
    }


def _right(correct: np.ndarray) -> dict[str, float | int]:
    return proportion(int(np.sum(correct)), len(correct))


# --------------------------------------------------------------------------------------------
# Table 2/3: every preset on all features and on the selected ones


def evaluate_feature_sets(
    X: np.ndarray,
    y: np.ndarray,
    class_names: Sequence[str],
    presets: Sequence[str] | None = None,
    selector_factory: Callable[[], Any] | None = None,
    n_splits: int = 10,
    seed: int = 0,
    selected_columns: Sequence[int] | None = None,
    groups: np.ndarray | None = None,
    n_jobs: int = -1,
) -> dict[str, Any]:
    """Cross-validate each preset on all features and on a selected subset (Tables 2 and 3).

    The subset comes either from `selected_columns`, chosen beforehand on all the data (the
    paper's protocol: the selection has seen every test fold's labels), or from
    `selector_factory()`, a fresh selector fitted inside each training fold (leakage-free).
    The mode is recorded under "selection". With neither, only all features are evaluated.
    """
    if selector_factory is not None and selected_columns is not None:
        raise BlastscanError(
            "pass either selected_columns (selection fitted before CV, the paper's protocol) "
            "or selector_factory (selection inside each fold), not both"
        )
    X, y = np.asarray(X), np.asarray(y)
    names = [get_preset(p).name for p in (presets or PAPER_ROWS.values())]
    start = time.perf_counter()
    splits = list(make_splitter(n_splits, seed, groups is not None).split(X, y, groups))
    selection = _selection_record(selector_factory, selected_columns)
    feature_sets: dict[str, tuple[np.ndarray, list[np.ndarray] | None]] = {"all": (X, None)}
    if selected_columns is not None:
        feature_sets["selected"] = (X[:, np.asarray(selected_columns, dtype=np.int64)], None)
    elif selector_factory is not None:
        fold_columns, seconds = fit_fold_selectors(selector_factory, X, y, splits, n_jobs)
        feature_sets["selected"] = (X, fold_columns)
        selection["n_selected_per_fold"] = [len(c) for c in fold_columns]
        selection["seconds"] = seconds
    results: dict[str, Any] = {}
    for name in names:
        results[name] = {"family": get_preset(name).family, "feature_sets": {}}
        for set_name, (X_set, fold_columns) in feature_sets.items():
            results[name]["feature_sets"][set_name] = _evaluate_one(
                name, X_set, y, class_names, splits, fold_columns, seed, n_jobs
            )
    return {
        "n_samples": int(len(y)),
        "n_features": int(X.shape[1]),
        "class_names": list(class_names),
        "cv": {
            "method": type(make_splitter(n_splits, seed, groups is not None)).__name__,
            "n_splits": n_splits,
            "seed": seed,
            "grouped": groups is not None,
        },
        "backend": backend(),
        "selection": selection,
        "presets": results,
        "paper_rows": {row: p for row, p in PAPER_ROWS.items() if p in results},
        "best": best_result(results),
        "seconds": time.perf_counter() - start,
    }


def fit_fold_selectors(
    selector_factory: Callable[[], Any],
    X: np.ndarray,
    y: np.ndarray,
    splits: list[tuple[np.ndarray, np.ndarray]],
    n_jobs: int = -1,
) -> tuple[list[np.ndarray], float]:
    """Fit a fresh selector on each fold's training rows only; return the kept columns per fold.

    Fitted once per fold and shared by every preset, since selection (mRMR) can cost more than
    the classifiers; still leakage-free, as no fold's selector sees its test rows.
    """
    start = time.perf_counter()
    columns = Parallel(n_jobs=n_jobs)(
        delayed(_fit_selector)(selector_factory(), X[train], y[train]) for train, _ in splits
    )
    return columns, time.perf_counter() - start


def _fit_selector(selector: Any, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    return kept_columns(selector.fit(X, y))


def _selection_record(
    selector_factory: Callable[[], Any] | None, columns: Sequence[int] | None
) -> dict[str, Any]:
    if columns is not None:
        return {
            "mode": "precomputed",
            "fitted_on_all_data": True,
            "n_selected": len(columns),
            "columns": [int(c) for c in columns],
        }
    if selector_factory is not None:
        return {
            "mode": "in_fold",
            "fitted_on_all_data": False,
            "selector": repr(selector_factory()),
        }
    return {"mode": "none", "fitted_on_all_data": False}


def _evaluate_one(
    name: str,
    X: np.ndarray,
    y: np.ndarray,
    class_names: Sequence[str],
    splits: list[tuple[np.ndarray, np.ndarray]],
    fold_columns: list[np.ndarray] | None,
    seed: int,
    n_jobs: int,
) -> dict[str, Any]:
    pipeline = make_classifier(name, seed=seed)
    cv = _cross_validate_splits(pipeline, X, y, splits, n_jobs, fold_columns=fold_columns)
    n_features = [len(c) for c in fold_columns] if fold_columns else int(X.shape[1])
    return {
        "metrics": classification_metrics(y, cv.y_pred, class_names),
        "fold_accuracy": cv.fold_accuracy.tolist(),
        "seconds": cv.seconds,
        "fold_seconds": cv.fold_seconds.tolist(),
        "n_features": n_features,
        "warnings": cv.warnings,
    }


def best_result(results: dict[str, Any]) -> dict[str, Any] | None:
    """The (preset, feature set) with the highest pooled CV accuracy; ties keep the first."""
    best = None
    for name, entry in results.items():
        for set_name, r in entry["feature_sets"].items():
            acc = r["metrics"]["accuracy"]["value"]
            if best is None or acc > best["accuracy"]:
                best = {"preset": name, "feature_set": set_name, "accuracy": acc}
    return best
