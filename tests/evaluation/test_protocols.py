"""Protocols: what each one fitted on which images, recorded alongside its numbers."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.datasets import make_classification

from blastscan.evaluation.protocols import holdout_protocol, paper_protocol, strict_protocol

NAMES = ["A", "B", "C"]


@pytest.fixture(scope="module")
def data():
    X, y = make_classification(120, 8, n_informative=4, n_classes=3, class_sep=2.0, random_state=0)
    return X, y


def test_paper_protocol_records_its_leakage(data):
    X, y = data
    protocol, selector = paper_protocol(X, y, NAMES, presets=["Fine KNN"], n_features=3, n_splits=3)
    json.dumps(protocol, allow_nan=False)
    assert protocol["leakage"] == {
        "cnn_train_images_in_test_folds": True,
        "selection_fitted_on_all_data": True,
    }
    assert protocol["selection"]["n_features"] == 3
    assert protocol["classical"]["selection"]["n_selected"] == 3
    assert "cnn" not in protocol


def test_holdout_and_strict_protocols_score_only_held_out_images(data):
    X, y = data
    train, test = np.arange(0, 120, 3), np.setdiff1d(np.arange(120), np.arange(0, 120, 3))
    kwargs = {"presets": ["Fine KNN"], "n_features": 3, "n_jobs": 1}
    holdout = holdout_protocol(X, y, train, test, NAMES, cnn={"accuracy": 1.0}, **kwargs)
    assert holdout["leakage"]["selection_fitted_on_all_data"] is False
    assert holdout["classical"]["n_samples"] == len(test)
    assert holdout["cnn"] == {"accuracy": 1.0}
    splits = [(train, test), (test, train)]
    strict = strict_protocol([X, X], y, splits, NAMES, **kwargs)
    assert strict["classical"]["cv"]["n_splits"] == 2
    assert strict["classical"]["selection"]["n_selected_per_fold"] == [3, 3]
    json.dumps(strict, allow_nan=False)
