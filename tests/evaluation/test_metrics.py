"""Metrics on known confusion matrices, JSON-safe edge cases, and the confusion-matrix figure."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import precision_recall_fscore_support

from blastscan.evaluation import (
    classification_metrics,
    plot_confusion_matrix,
    wilson_interval,
)


def _labels_from(cm):
    y_true, y_pred = [], []
    for (i, j), count in np.ndenumerate(np.asarray(cm)):
        y_true += [i] * count
        y_pred += [j] * count
    return np.array(y_true), np.array(y_pred)


def test_metrics_on_a_known_confusion_matrix():
    cm = [[5, 1, 0], [2, 3, 0], [0, 0, 4]]
    y_true, y_pred = _labels_from(cm)
    m = classification_metrics(y_true, y_pred, ["x", "y", "z"])
    assert m["confusion_matrix"] == cm
    assert m["n"] == 15
    assert m["accuracy"]["value"] == pytest.approx(12 / 15)
    assert (m["accuracy"]["k"], m["accuracy"]["n"]) == (12, 15)
    x = m["per_class"]["x"]
    assert x["precision"]["value"] == pytest.approx(5 / 7)
    assert x["recall"]["value"] == pytest.approx(5 / 6)
    assert x["f1"] == pytest.approx(2 * (5 / 7) * (5 / 6) / (5 / 7 + 5 / 6))
    assert x["accuracy"]["value"] == pytest.approx((5 + 7) / 15)  # TP + TN (3 + 4) over N
    assert x["support"] == 6
    assert m["per_class"]["z"]["precision"]["value"] == 1.0
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred)
    for i, name in enumerate("xyz"):
        assert m["per_class"][name]["precision"]["value"] == pytest.approx(p[i])
        assert m["per_class"][name]["recall"]["value"] == pytest.approx(r[i])
        assert m["per_class"][name]["f1"] == pytest.approx(f[i])
    assert m["macro"]["f1"] == pytest.approx(np.mean(f))
    lo, hi = wilson_interval(5, 6)
    assert (x["recall"]["low"], x["recall"]["high"]) == pytest.approx((lo, hi))


def test_metrics_of_a_never_predicted_class_are_json_safe():
    m = classification_metrics(np.array([0, 1, 1]), np.array([0, 0, 0]), ["a", "b"])
    assert m["per_class"]["b"]["precision"] == {
        "value": 0.0,
        "low": 0.0,
        "high": 1.0,
        "k": 0,
        "n": 0,
    }
    json.dumps(m, allow_nan=False)


def test_plot_confusion_matrix_writes_png(tmp_path):
    path = plot_confusion_matrix([[5, 1], [0, 7]], ["a", "b"], tmp_path / "f" / "cm.png", "t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in path.parent.iterdir()] == ["cm.png"]  # no temporary left behind
