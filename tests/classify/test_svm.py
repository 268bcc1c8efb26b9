"""MatlabSVC: MATLAB's kernels and kernel scales, libsvm's one-vs-one machines, Platt and coupling."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.svm import SVC
from sklearn.utils.estimator_checks import parametrize_with_checks

from blastscan.classify import (
    MatlabSVC,
    auto_kernel_scale,
    couple_pairwise,
    kernel_matrix,
    make_classifier,
)


def test_auto_kernel_scale_is_median_nearest_opposite_distance():
    # 1-D, fewer than 100 per class, so no subsampling: positives at 10, 13, 20; negatives at 0, 1.
    X = np.array([[0.0], [1.0], [10.0], [13.0], [20.0]])
    y = np.array([-1, -1, 1, 1, 1])
    scale = auto_kernel_scale(X, y, np.random.default_rng(0))
    assert scale == pytest.approx(12.0)  # nearest negatives: 9, 12, 19 -> median 12


def test_auto_kernel_scale_is_reproducible_with_a_seed(data):
    X, y = data
    y_pm = np.where(y == 0, 1, -1)
    big = np.repeat(X, 3, axis=0) + np.random.default_rng(0).normal(0, 0.01, (3 * len(X), 12))
    y_big = np.repeat(y_pm, 3)
    a = auto_kernel_scale(big, y_big, np.random.default_rng(5))
    b = auto_kernel_scale(big, y_big, np.random.default_rng(5))
    assert a == b and a > 0


def test_one_vs_one_matches_libsvm_multiclass_when_scale_is_fixed(data):
    """Our per-pair learners are libsvm's own one-vs-one machines when nothing differs per pair."""
    X, y = data
    ours = MatlabSVC(kernel="gaussian", kernel_scale=3.0, standardize=False).fit(X, y)
    ref = SVC(kernel="rbf", gamma=1 / 9, C=1.0, decision_function_shape="ovo").fit(X, y)
    ours_scores, ref_scores = ours.decision_function(X), ref.decision_function(X)
    np.testing.assert_allclose(ours_scores, ref_scores, atol=5e-3)  # solver tolerance is 1e-3
    # Decoding differs (MATLAB loss-weighted hinge vs libsvm votes) but rarely disagrees.
    assert np.mean(ours.predict(X) == ref.predict(X)) > 0.95


def test_svm_probabilities_are_distributions(data):
    X, y = data
    model = make_classifier("Medium Gaussian SVM", probability=True).fit(X[:180], y[:180])
    p = model.predict_proba(X[180:])
    assert p.shape == (60, 4)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    assert np.mean(p.argmax(axis=1) == model.predict(X[180:])) > 0.8


def test_gaussian_kernel_matches_sklearn_rbf():
    from sklearn.metrics.pairwise import rbf_kernel

    a, b = np.random.default_rng(1).normal(size=(2, 5, 7))
    np.testing.assert_allclose(kernel_matrix(a, b, "gaussian", 2.0), rbf_kernel(a, b, gamma=0.25))


def test_svm_without_probability_refuses_predict_proba(data):
    X, y = data
    with pytest.raises(AttributeError):
        MatlabSVC().fit(X, y).predict_proba(X)


def test_pairwise_coupling_recovers_consistent_probabilities():
    p = np.array([0.5, 0.3, 0.2])
    r = p[:, None] / (p[:, None] + p[None, :])
    np.fill_diagonal(r, 0)
    np.testing.assert_allclose(couple_pairwise(r[None]), p[None], atol=1e-6)
    two = np.array([[[0, 0.7], [0.3, 0]]])
    np.testing.assert_allclose(couple_pairwise(two), [[0.7, 0.3]], atol=1e-6)


# MatlabSVC follows MATLAB's fitcecoc where scikit-learn's conventions differ; these checks
# test those conventions, not the estimator's correctness.
_DECISION = (
    "decision_function has one column per class pair, positive for the pair's first class "
    "(MATLAB's one-vs-one coding), also with two classes; sklearn expects (n,) and classes_[1]"
)
_SVC_EXPECTED_FAILURES = {
    "check_classifiers_classes": _DECISION,
    "check_classifiers_train": _DECISION,
    "check_n_features_in_after_fitting": (
        "predict rejects a wrong feature count with its own message "
        "('X has 3 features, expected 4'), not sklearn's wording"
    ),
    "check_fit2d_1sample": "one sample is one class: the error says 'needs at least two classes'",
}


def _svc_expected_failures(estimator: MatlabSVC) -> dict[str, str]:
    failures = dict(_SVC_EXPECTED_FAILURES)
    if estimator.probability:
        failures["check_decision_proba_consistency"] = (
            "positive scores mean the first class, so they rank opposite to predict_proba[:, 1]"
        )
    return failures


@parametrize_with_checks(
    [
        MatlabSVC(),
        MatlabSVC(probability=True),
        MatlabSVC(kernel="polynomial", kernel_scale=2.0, scale_by_sqrt_p=True),
    ],
    expected_failed_checks=_svc_expected_failures,
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
