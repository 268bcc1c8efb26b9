"""Cross-validation without leakage, and Tables 2/3: every preset on all and selected features.

Every fitted step (scaler, selector, classifier) sees only its fold's training rows; folds run
in parallel processes. Everything returned by `evaluate_feature_sets` is plain JSON-able data,
so the caller can write it straight into metrics.json (schema: docs/reference/metrics.md).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from blastscan.classify import PAPER_ROWS, backend, get_preset, make_classifier
from blastscan.errors import BlastscanError
from blastscan.evaluation.metrics import classification_metrics
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
