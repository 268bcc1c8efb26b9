"""Cross-validation without leakage, metrics on known matrices, intervals with known values."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import binomtest
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.datasets import make_classification
from sklearn.feature_selection import SelectKBest, f_classif
from sklearn.metrics import precision_recall_fscore_support

from blastscan.classify import make_classifier
from blastscan.errors import BlastscanError
from blastscan.evaluation import (
    bootstrap_interval,
    classification_metrics,
    cross_validate,
    evaluate_feature_sets,
    fit_fold_selectors,
    make_splitter,
    plot_confusion_matrix,
    wilson_interval,
)

NAMES = ["A", "B", "C", "D"]


@pytest.fixture(scope="module")
def data():
    X, y = make_classification(200, 10, n_informative=5, n_classes=4, class_sep=2.0, random_state=0)
    return X, y


# -- intervals ---------------------------------------------------------------------------------


def test_wilson_known_value():
    # Textbook Wilson score interval; scipy agrees. (0.7233, 0.8720) sometimes quoted for this
    # case is not the Wilson interval.
    low, high = wilson_interval(81, 100)
    assert (low, high) == pytest.approx((0.72221, 0.87485), abs=1e-5)
    ref = binomtest(81, 100).proportion_ci(confidence_level=0.95, method="wilson")
    assert (low, high) == pytest.approx((ref.low, ref.high), abs=1e-12)


def test_wilson_edges_stay_in_unit_interval():
    assert wilson_interval(0, 50)[0] == 0.0
    low, high = wilson_interval(3254, 3256)
    assert high <= 1.0 and low < 3254 / 3256 < high
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(5, 4)


def test_wilson_narrows_with_confidence():
    assert wilson_interval(40, 50, 0.9)[0] > wilson_interval(40, 50, 0.99)[0]


def test_bootstrap_interval_brackets_accuracy_and_is_reproducible():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    pred = np.where(rng.random(300) < 0.8, y, (y + 1) % 3)
    low, high = bootstrap_interval(y, pred, n_boot=500)
    assert low < np.mean(y == pred) < high
    assert (low, high) == bootstrap_interval(y, pred, n_boot=500)
    f1 = bootstrap_interval(y, pred, lambda a, b: float(np.mean(a == b)), n_boot=100)
    assert f1[0] < f1[1]


# -- metrics -------------------------------------------------------------------------------------


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


# -- cross-validation --------------------------------------------------------------------------


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


# -- Table 2 -------------------------------------------------------------------------------------


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


def test_plot_confusion_matrix_writes_png(tmp_path):
    path = plot_confusion_matrix([[5, 1], [0, 7]], ["a", "b"], tmp_path / "f" / "cm.png", "t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in path.parent.iterdir()] == ["cm.png"]  # no temporary left behind


# ------------------------------------------------------------------ colour alone


def _tinted_smears(n: int, tints: np.ndarray, seed: int = 0) -> np.ndarray:
    """Light backgrounds of the given RGB tints, each with a dark disc at a random place."""
    rng = np.random.default_rng(seed)
    images = np.empty((n, 24, 24, 3), np.float32)
    yy, xx = np.mgrid[:24, :24]
    for i in range(n):
        images[i] = tints[i] + rng.normal(0, 3, (24, 24, 3))
        cy, cx = rng.integers(6, 18, 2)
        images[i][(yy - cy) ** 2 + (xx - cx) ** 2 < 16] = (70, 30, 110)
    return np.clip(images, 0, 255).astype(np.uint8)


def test_colour_baseline_reads_a_class_tint_and_nothing_else():
    from blastscan.evaluation import MAJORITY, colour_baseline

    labels = np.repeat([0, 1, 2], 40)
    train, test = np.arange(0, 120, 2), np.arange(1, 120, 2)
    background = "lighter half of the pixels: mean RGB"
    class_tints = np.array([(230, 200, 210), (215, 205, 220), (225, 215, 200)])[labels]
    tinted = colour_baseline(_tinted_smears(120, class_tints), labels, train, test)
    assert tinted["baselines"][background]["accuracy"]["value"] == 1.0
    assert tinted["baselines"][MAJORITY]["accuracy"]["value"] == pytest.approx(1 / 3)
    rng = np.random.default_rng(1)
    random_tints = np.array([(230, 200, 210), (215, 205, 220), (225, 215, 200)])[
        rng.integers(0, 3, 120)
    ]
    untinted = colour_baseline(_tinted_smears(120, random_tints), labels, train, test)
    for result in untinted["baselines"].values():
        assert result["accuracy"]["high"] > 1 / 3 > result["accuracy"]["value"] - 0.2
        assert result["accuracy"]["n"] == 60
