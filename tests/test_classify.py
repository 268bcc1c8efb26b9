"""Presets: they build and fit, carry MATLAB's options, and keep fitting inside the pipeline."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.feature_selection import SelectKBest, f_classif
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from blastscan.classify import (
    PAPER_ROWS,
    PRESETS,
    Float32MLPClassifier,
    KernelNB,
    MatlabSVC,
    auto_kernel_scale,
    couple_pairwise,
    kernel_matrix,
    make_classifier,
    normal_reference_bandwidth,
)
from blastscan.errors import BlastscanError


@pytest.fixture(scope="module")
def data():
    X, y = make_classification(240, 12, n_informative=6, n_classes=4, class_sep=2.0, random_state=0)
    return X, y


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_builds_and_fits(name, data):
    X, y = data
    model = make_classifier(name, seed=1)
    assert isinstance(model, Pipeline)
    assert [n for n, _ in model.steps] == ["scale", "clf"]
    assert isinstance(model.named_steps["scale"], StandardScaler)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # small-data convergence chatter
        model.fit(X, y)
    # Training accuracy: Fine Gaussian SVM overfits 12-D data (as in MATLAB), so held-out
    # accuracy would test the data, not the build.
    accuracy = np.mean(model.predict(X) == y)
    assert accuracy > 0.5, f"{name}: {accuracy}"


def test_unknown_preset_lists_valid_names():
    with pytest.raises(BlastscanError) as err:
        make_classifier("Gigantic SVM")
    assert "Cubic SVM" in str(err.value) and "Fine KNN" in str(err.value)


def test_preset_lookup_ignores_case():
    assert make_classifier("cubic svm").named_steps["clf"].polynomial_order == 3


def test_selector_goes_before_the_scaler():
    model = make_classifier("Fine KNN", selector=SelectKBest(f_classif, k=3))
    assert [n for n, _ in model.steps] == ["select", "scale", "clf"]


def test_paper_rows_name_presets_of_the_right_family():
    assert list(PAPER_ROWS) == ["SVM", "ANN", "KNN", "Naive Bayes"]
    for family, preset in PAPER_ROWS.items():
        assert PRESETS[preset].family == family


@pytest.mark.parametrize(
    ("name", "factor"),
    [("Fine Gaussian SVM", 0.25), ("Medium Gaussian SVM", 1.0), ("Coarse Gaussian SVM", 4.0)],
)
def test_gaussian_kernel_scale_is_factor_times_sqrt_p(name, factor, data):
    X, y = data
    clf = make_classifier(name).fit(X, y).named_steps["clf"]
    scale = factor * math.sqrt(X.shape[1])
    assert clf.kernel_scales_ == pytest.approx([scale] * 6)  # 4 classes -> 6 pair learners
    assert (clf.kernel, clf.box_constraint) == ("gaussian", 1.0)
    for learner in clf.learners_:
        assert learner.gamma == pytest.approx(1 / scale**2)


def test_sqrt_p_counts_the_predictors_left_after_selection(data):
    X, y = data
    model = make_classifier("Medium Gaussian SVM", selector=SelectKBest(f_classif, k=4))
    clf = model.fit(X, y).named_steps["clf"]
    assert clf.kernel_scales_[0] == pytest.approx(2.0)  # sqrt(4)


@pytest.mark.parametrize(
    ("name", "degree", "coef0"),
    [("Linear SVM", 1, 0.0), ("Quadratic SVM", 2, 1.0), ("Cubic SVM", 3, 1.0)],
)
def test_polynomial_presets_use_matlab_kernel_with_auto_scale(name, degree, coef0, data):
    X, y = data
    clf = make_classifier(name).fit(X, y).named_steps["clf"]
    assert clf.kernel_scale == "auto"
    assert len(set(clf.kernel_scales_)) == 6  # each pair learner finds its own scale
    a, b = np.random.default_rng(0).normal(size=(2, 3, X.shape[1]))
    for s in clf.kernel_scales_[:2]:
        expected = (coef0 + a @ b.T / s**2) ** degree
        np.testing.assert_allclose(kernel_matrix(a, b, clf.kernel, s, degree), expected)


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


def test_kernel_nb_matches_a_direct_density_sum():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0, 1, (30, 3)), rng.normal(2, 1, (20, 3))])
    y = np.array([0] * 30 + [1] * 20)
    nb = KernelNB(max_chunk_elements=50).fit(X, y)  # tiny chunks exercise the chunking
    x = rng.normal(1, 1, (7, 3))
    expected = np.empty((7, 2))
    for c in (0, 1):
        S, h = X[y == c], normal_reference_bandwidth(X[y == c])
        dens = np.exp(-0.5 * ((x[:, None, :] - S[None]) / h) ** 2) / (h * np.sqrt(2 * np.pi))
        expected[:, c] = np.log(np.mean(dens, axis=1)).sum(axis=1) + np.log(len(S) / len(y))
    expected -= np.log(np.exp(expected).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(nb.predict_log_proba(x), expected, rtol=1e-8)


def test_normal_reference_bandwidth_uses_mad():
    S = np.array([[1.0], [2.0], [3.0], [4.0], [100.0]])  # outlier barely moves the MAD
    mad = 1.0
    expected = mad / 0.6745 * (4 / (3 * 5)) ** 0.2
    assert normal_reference_bandwidth(S)[0] == pytest.approx(expected)


def test_neural_network_presets_fit_in_float32_like_the_float64_mlp(data):
    from sklearn.neural_network import MLPClassifier

    X, y = data
    fast = make_classifier("Wide Neural Network", seed=0)
    assert isinstance(fast[-1], Float32MLPClassifier)
    reference = make_classifier("Wide Neural Network", seed=0)
    reference.steps[-1] = ("clf", MLPClassifier(**fast[-1].get_params()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fast.fit(X[:180], y[:180])
        reference.fit(X[:180], y[:180])
    # same architecture, seed and solver: the held-out predictions agree but for a few rows
    agree = np.mean(fast.predict(X[180:]) == reference.predict(X[180:]))
    assert agree >= 0.9
    np.testing.assert_allclose(fast.predict_proba(X[180:]).sum(axis=1), 1.0, atol=1e-5)


def test_float32_mlp_is_on_the_bundle_allow_list(data):
    import skops.io as sio

    from blastscan.bundle import TRUSTED_TYPES

    X, y = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = make_classifier("Narrow Neural Network", seed=0).fit(X, y)
    blob = sio.dumps(model)
    assert set(sio.get_untrusted_types(data=blob)) <= set(TRUSTED_TYPES)
    loaded = sio.loads(blob, trusted=TRUSTED_TYPES)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
