"""Evaluation: cross-validation, metrics with confidence intervals, and the evaluation protocols.

- `stats`: wilson_interval, proportion, mcnemar, bootstrap_interval.
- `metrics`: confusion matrices, per-class metrics, the confusion-matrix figure.
- `cross_validation`: leakage-free k-fold CV and the Table 2/3 evaluation of every preset.
- `colour_baseline`: what colour alone gives away.
- `protocols`: paper, holdout and strict protocols (import `blastscan.evaluation.protocols`).
- `calibration`: ECE and reliability diagrams (import `blastscan.evaluation.calibration`).

Everything returned is plain JSON-able data (floats, ints, lists, dicts), so the caller can
write it straight into metrics.json (schema: docs/reference/metrics.md).
"""

from __future__ import annotations

from blastscan.evaluation.colour_baseline import MAJORITY, colour_baseline, colour_statistics
from blastscan.evaluation.cross_validation import (
    CVResult,
    best_result,
    cross_validate,
    evaluate_feature_sets,
    fit_fold_selectors,
    make_splitter,
)
from blastscan.evaluation.metrics import (
    classification_metrics,
    confusion_matrix,
    metrics_from_confusion,
    plot_confusion_matrix,
)
from blastscan.evaluation.stats import bootstrap_interval, mcnemar, proportion, wilson_interval

__all__ = [
    "MAJORITY",
    "CVResult",
    "best_result",
    "bootstrap_interval",
    "classification_metrics",
    "colour_baseline",
    "colour_statistics",
    "confusion_matrix",
    "cross_validate",
    "evaluate_feature_sets",
    "fit_fold_selectors",
    "make_splitter",
    "mcnemar",
    "metrics_from_confusion",
    "plot_confusion_matrix",
    "proportion",
    "wilson_interval",
]
