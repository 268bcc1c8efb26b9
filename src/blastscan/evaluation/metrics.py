"""Accuracy and per-class metrics with Wilson intervals, and the confusion-matrix figure.

Everything returned is plain JSON-able data (schema: docs/reference/metrics.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from blastscan.evaluation.stats import proportion
from blastscan.outputs import atomic_write


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
