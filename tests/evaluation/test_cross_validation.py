"""Cross-validation without leakage, and the Table 2/3 evaluation of every preset."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.datasets import make_classification
from sklearn.feature_selection import SelectKBest, f_classif

from blastscan.classify import make_classifier
from blastscan.errors import BlastscanError
from blastscan.evaluation import (
    cross_validate,
    evaluate_feature_sets,
    fit_fold_selectors,
    make_splitter,
)

NAMES = ["A", "B", "C", "D"]


@pytest.fixture(scope="module")
def data():
    X, y = make_classification(200, 10, n_informative=5, n_classes=4, class_sep=2.0, random_state=0)
    return X, y


def test_cross_validate_predicts_every_sample_once(data):
    X, y = data
    cv = cross_validate(make_classifier("Fine KNN"), X, y, n_splits=5, n_jobs=2)
    assert cv.y_pred.shape == y.shape
    folds = cv.folds
    assert len(folds) == 5
    assert sorted(np.concatenate(folds).tolist()) == list(range(len(y)))
    assert cv.accuracy == pytest.approx(np.mean(cv.y_pred == y))
    assert len(cv.fold_accuracy) == 5 and cv.seconds > 0
    for idx in folds:  # stratified: each fold holds every class in proportion
        assert np.bincount(y[idx], minlength=4).min() >= 9


def test_cross_validate_is_reproducible(data):
    X, y = data
    a = cross_validate(make_classifier("Cubic SVM"), X, y, n_splits=4, seed=3, n_jobs=1)
    b = cross_validate(make_classifier("Cubic SVM"), X, y, n_splits=4, seed=3, n_jobs=1)
    np.testing.assert_array_equal(a.y_pred, b.y_pred)
    np.testing.assert_array_equal(a.fold, b.fold)


def test_cross_validate_keeps_groups_in_one_fold(data):
    X, y = data
    groups = np.arange(len(y)) // 4
    cv = cross_validate(make_classifier("Fine KNN"), X, y, n_splits=5, groups=groups, n_jobs=1)
    for g in np.unique(groups):
        assert len(np.unique(cv.fold[groups == g])) == 1


def test_cross_validate_returns_aligned_probabilities(data):
    X, y = data
    cv = cross_validate(
        make_classifier("Gaussian Naive Bayes"), X, y, n_splits=5, n_jobs=1, return_proba=True
    )
    assert cv.proba.shape == (len(y), 4)
    np.testing.assert_allclose(cv.proba.sum(axis=1), 1.0)
    assert np.mean(cv.proba.argmax(axis=1) == cv.y_pred) > 0.95


class RowRecorder(TransformerMixin, BaseEstimator):
    """Passes X through; remembers the row ids (column 0) it was fitted on."""

    def fit(self, X, y=None):
        self.fitted_ids_ = X[:, 0].astype(int).copy()
        return self

    def transform(self, X):
        return X

    def get_support(self):
        return np.ones(self.n_features_in_, dtype=bool)


def _fold_facts(pipeline):
    return {
        "ids": pipeline.named_steps["select"].fitted_ids_,
        "scaler_mean": pipeline.named_steps["scale"].mean_,
    }


def test_no_test_row_reaches_any_fitted_step(data):
    X, y = data
    X = np.column_stack([np.arange(len(y)), X])  # column 0 = row id
    pipeline = make_classifier("Medium KNN", selector=RowRecorder())
    cv = cross_validate(pipeline, X, y, n_splits=5, n_jobs=1, inspect=_fold_facts)
    for test_idx, facts in zip(cv.folds, cv.fold_info, strict=True):
        fitted = set(facts["ids"].tolist())
        assert fitted.isdisjoint(test_idx.tolist())
        assert fitted == set(range(len(y))) - set(test_idx.tolist())
        # and the scaler was fitted on exactly those rows, not on all data
        np.testing.assert_allclose(facts["scaler_mean"], X[sorted(fitted)].mean(axis=0))
        assert not np.allclose(facts["scaler_mean"][1:], X[:, 1:].mean(axis=0))


class SeenRowsSelector(TransformerMixin, BaseEstimator):
    """On one-hot rows, keeps exactly the columns of the rows it was fitted on."""

    def fit(self, X, y=None):
        self.support_ = np.asarray(X).any(axis=0)
        return self

    def transform(self, X):
        return X[:, self.support_]

    def get_support(self):
        return self.support_


def test_per_fold_selection_sees_only_training_rows():
    y = np.repeat(np.arange(4), 10)
    X = np.eye(len(y))  # row i is the only row with a nonzero in column i
    splits = list(make_splitter(5, 0, grouped=False).split(X, y))
    columns, _ = fit_fold_selectors(SeenRowsSelector, X, y, splits, n_jobs=1)
    for (train, test), kept in zip(splits, columns, strict=True):
        assert set(kept.tolist()) == set(train.tolist())
        assert set(kept.tolist()).isdisjoint(test.tolist())


def test_cross_validate_rejects_mismatched_lengths(data):
    X, y = data
    with pytest.raises(BlastscanError):
        cross_validate(make_classifier("Fine KNN"), X, y[:-1])


def test_evaluate_feature_sets_paper_protocol_records_leaky_selection(data):
    X, y = data
    columns = [0, 2, 4, 6]
    res = evaluate_feature_sets(
        X,
        y,
        NAMES,
        presets=["Fine KNN", "Gaussian Naive Bayes"],
        selected_columns=columns,
        n_splits=5,
        n_jobs=1,
    )
    json.dumps(res, allow_nan=False)
    assert res["selection"]["mode"] == "precomputed"
    assert res["selection"]["fitted_on_all_data"] is True
    assert res["selection"]["n_selected"] == 4
    entry = res["presets"]["Fine KNN"]
    assert entry["family"] == "KNN"
    assert set(entry["feature_sets"]) == {"all", "selected"}
    assert entry["feature_sets"]["selected"]["n_features"] == 4
    assert entry["feature_sets"]["all"]["n_features"] == 10
    assert len(entry["feature_sets"]["all"]["fold_accuracy"]) == 5
    assert res["paper_rows"] == {"KNN": "Fine KNN", "Naive Bayes": "Gaussian Naive Bayes"}
    assert res["best"]["preset"] in res["presets"]
    assert res["cv"] == {"method": "StratifiedKFold", "n_splits": 5, "seed": 0, "grouped": False}


def test_evaluate_feature_sets_in_fold_selection(data):
    X, y = data
    res = evaluate_feature_sets(
        X,
        y,
        NAMES,
        presets=["Fine KNN"],
        selector_factory=lambda: SelectKBest(f_classif, k=3),
        n_splits=4,
        n_jobs=1,
    )
    assert res["selection"]["mode"] == "in_fold"
    assert res["selection"]["fitted_on_all_data"] is False
    assert res["selection"]["n_selected_per_fold"] == [3, 3, 3, 3]
    json.dumps(res, allow_nan=False)


def test_evaluate_feature_sets_refuses_both_selection_modes(data):
    X, y = data
    with pytest.raises(BlastscanError):
        evaluate_feature_sets(
            X,
            y,
            NAMES,
            ["Fine KNN"],
            selector_factory=lambda: SelectKBest(k=2),
            selected_columns=[0, 1],
        )
