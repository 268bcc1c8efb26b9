"""Evaluation protocols: what was fitted on which images, from the paper's to leakage-free.

- paper:   CNN trained on 70%, features of *all* images, mRMR on all features, 10-fold CV of
           the classifiers over all images (as published; test folds hold CNN training images).
- holdout: one fixed 70/30 split; CNN, mRMR and classifier fitted on the 70% only, scored once
           on the 30%.
- strict:  K outer folds; for each, a CNN trained on that fold's training images only, features
           of the held-out images from that CNN, mRMR and classifier fitted inside the fold.
- group:   like the paper's classical stage but with folds that keep groups (blocks of
           consecutive file numbers, a patient proxy) together.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from joblib import Parallel, delayed

from blastscan.classify import PAPER_ROWS, backend, get_preset, make_classifier
from blastscan.evaluation.cross_validation import best_result, evaluate_feature_sets
from blastscan.evaluation.metrics import classification_metrics
from blastscan.selection import MRMR, kept_columns

PAPER_THRESHOLD = 0.25
Split = tuple[np.ndarray, np.ndarray]


def paper_protocol(
    X: np.ndarray,
    y: np.ndarray,
    class_names: Sequence[str],
    cnn: dict | None = None,
    presets: Sequence[str] | None = None,
    threshold: float = PAPER_THRESHOLD,
    n_features: int | None = None,
    n_splits: int = 10,
    seed: int = 0,
    groups: np.ndarray | None = None,
    title: str | None = None,
) -> tuple[dict[str, Any], MRMR]:
    """As published: mRMR fitted on every image, then k-fold CV of each classifier."""
    t0 = time.perf_counter()
    selector = _selector(threshold, n_features).fit(X, y)
    select_seconds = time.perf_counter() - t0
    columns = kept_columns(selector)
    classical = evaluate_feature_sets(
        X,
        y,
        class_names,
        presets,
        selected_columns=columns,
        n_splits=n_splits,
        seed=seed,
        groups=groups,
    )
    protocol = {
        "title": title or "Paper protocol (as published)",
        "leakage": {"cnn_train_images_in_test_folds": True, "selection_fitted_on_all_data": True},
        "selection": {
            "method": "mRMR (fscmrmr, adaptive MI)",
            "threshold": None if n_features else threshold,
            "n_features": n_features,
        },
        "classical": classical,
        "timings": {"select": select_seconds, "classify": classical["seconds"]},
    }
    if cnn:
        protocol["cnn"] = cnn
    return protocol, selector


def _selector(threshold: float, n_features: int | None) -> MRMR:
    """mRMR keeping the top `n_features` when given, else the features scoring above `threshold`."""
    return MRMR(n_features=n_features) if n_features else MRMR(threshold=threshold)


def _fit_predict(name: str, X: np.ndarray, y: np.ndarray, train, test, columns, seed: int):
    start = time.perf_counter()
    Xtr, Xte = X[train], X[test]
    if columns is not None:
        Xtr, Xte = Xtr[:, columns], Xte[:, columns]
    model = make_classifier(name, seed=seed).fit(Xtr, y[train])
    return model.predict(Xte), time.perf_counter() - start


def _select_columns(
    X: np.ndarray, y: np.ndarray, train: np.ndarray, threshold: float, n_features: int | None
) -> np.ndarray:
    return kept_columns(_selector(threshold, n_features).fit(X[train], y[train]))


def evaluate_on_splits(
    features_per_fold: Sequence[np.ndarray],
    y: np.ndarray,
    splits: Sequence[Split],
    class_names: Sequence[str],
    presets: Sequence[str] | None = None,
    threshold: float = PAPER_THRESHOLD,
    n_features: int | None = None,
    seed: int = 0,
    n_jobs: int = -1,
    method: str = "",
) -> dict[str, Any]:
    """Each fold k: mRMR and classifiers fitted on features_per_fold[k][train_k], scored on test_k.

    Predictions of all folds are pooled into one set of metrics, in the same shape as
    `evaluate_feature_sets` returns, so the report shows every protocol alike.
    """
    start = time.perf_counter()
    names = [get_preset(p).name for p in (presets or PAPER_ROWS.values())]
    columns = Parallel(n_jobs=n_jobs)(
        delayed(_select_columns)(X, y, train, threshold, n_features)
        for X, (train, _) in zip(features_per_fold, splits, strict=True)
    )
    select_seconds = time.perf_counter() - start
    jobs = [(name, s, k) for name in names for s in ("all", "selected") for k in range(len(splits))]
    outputs = Parallel(n_jobs=n_jobs)(
        delayed(_fit_predict)(
            name, features_per_fold[k], y, *splits[k], columns[k] if s == "selected" else None, seed
        )
        for name, s, k in jobs
    )
    results: dict[str, Any] = {}
    for (name, s, k), (pred, seconds) in zip(jobs, outputs, strict=True):
        entry = results.setdefault(name, {"family": get_preset(name).family, "feature_sets": {}})
        fs = entry["feature_sets"].setdefault(
            s, {"_pred": np.full(len(y), -1), "fold_accuracy": [], "fold_seconds": []}
        )
        test = splits[k][1]
        fs["_pred"][test] = pred
        fs["fold_accuracy"].append(float(np.mean(pred == y[test])))
        fs["fold_seconds"].append(seconds)
    tested = np.unique(np.concatenate([test for _, test in splits]))
    for entry in results.values():
        for s, fs in entry["feature_sets"].items():
            pred = fs.pop("_pred")
            fs["metrics"] = classification_metrics(y[tested], pred[tested], class_names)
            fs["seconds"] = float(sum(fs["fold_seconds"]))
            fs["n_features"] = (
                [len(c) for c in columns] if s == "selected" else int(features_per_fold[0].shape[1])
            )
            fs["warnings"] = []
    return {
        "n_samples": int(len(tested)),
        "n_features": int(features_per_fold[0].shape[1]),
        "class_names": list(class_names),
        "cv": {
            "method": method or f"{len(splits)} fixed split(s)",
            "n_splits": len(splits),
            "seed": seed,
            "grouped": True,
        },
        "backend": backend(),
        "selection": {
            "mode": "in_fold",
            "fitted_on_all_data": False,
            "selector": repr(_selector(threshold, n_features)),
            "n_selected_per_fold": [len(c) for c in columns],
            "seconds": select_seconds,
        },
        "presets": results,
        "paper_rows": {row: p for row, p in PAPER_ROWS.items() if p in results},
        "best": best_result(results),
        "seconds": time.perf_counter() - start,
    }


def _leakage_free(
    title: str, description: str, where: str, classical: dict, cnn: dict | None, kwargs: dict
) -> dict:
    """A protocol block in which no test image reached any fitted step."""
    n_features = kwargs.get("n_features")
    protocol = {
        "title": title,
        "description": description,
        "leakage": {"cnn_train_images_in_test_folds": False, "selection_fitted_on_all_data": False},
        "selection": {
            "method": f"mRMR (fscmrmr, adaptive MI), fitted {where}",
            "threshold": None if n_features else kwargs.get("threshold", PAPER_THRESHOLD),
            "n_features": n_features,
        },
        "classical": classical,
        "timings": {"classify": classical["seconds"]},
    }
    if cnn:
        protocol["cnn"] = cnn
    return protocol


def holdout_protocol(
    X: np.ndarray,
    y: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    class_names: Sequence[str],
    cnn: dict | None = None,
    **kwargs,
) -> dict[str, Any]:
    """Everything fitted on the CNN's own 70%, reported once on its 30%."""
    classical = evaluate_on_splits(
        [X], y, [(train, test)], class_names, method="fixed 70/30 split", **kwargs
    )
    return _leakage_free(
        "Holdout protocol (leakage-free, one 70/30 split)",
        "The CNN, mRMR and the classifiers were fitted on the same 70% of the images; every "
        "number is measured once on the other 30%, which nothing was fitted on.",
        "on the 70%",
        classical,
        cnn,
        kwargs,
    )


def strict_protocol(
    fold_features: Sequence[np.ndarray],
    y: np.ndarray,
    splits: Sequence[Split],
    class_names: Sequence[str],
    cnn: dict | None = None,
    note: str = "",
    **kwargs,
) -> dict[str, Any]:
    """K outer folds, each with its own CNN: no test image reaches any fitted step."""
    method = f"{len(splits)} outer folds, one CNN each"
    classical = evaluate_on_splits(fold_features, y, splits, class_names, method=method, **kwargs)
    return _leakage_free(
        f"Strict protocol ({len(splits)} outer folds, a CNN per fold)",
        "For each outer fold a DarkNet-19 was trained only on that fold's training images; the "
        "held-out images' features came from that CNN, and mRMR and the classifiers were fitted "
        "inside the fold. Duplicate and near-duplicate images stay in one fold. " + note,
        "inside each fold",
        classical,
        cnn,
        kwargs,
    )
