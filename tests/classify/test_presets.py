"""Presets: they build and fit, carry MATLAB's options, and keep fitting inside the pipeline."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from sklearn.feature_selection import SelectKBest, f_classif
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from blastscan.classify import (
    PAPER_ROWS,
    PRESETS,
    Float32MLPClassifier,
    kernel_matrix,
    make_classifier,
)
from blastscan.errors import BlastscanError


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


@pytest.mark.parametrize(
    ("name", "probability"),
    [("Cubic SVM", True), ("Kernel Naive Bayes", False), ("Weighted KNN", False)],
)
def test_bundled_classifiers_keep_their_public_type_names(name, probability, data):
    """skops names a type by its module: blastscan.classify.X, whichever file defines X."""
    import skops.io as sio

    from blastscan.bundle import TRUSTED_TYPES

    X, y = data
    model = make_classifier(name, probability=probability, seed=0).fit(X, y)
    blob = sio.dumps(model)
    untrusted = set(sio.get_untrusted_types(data=blob))
    assert untrusted and untrusted <= set(TRUSTED_TYPES)
    assert all(t.startswith("blastscan.classify.") and t.count(".") == 2 for t in untrusted)
    loaded = sio.loads(blob, trusted=TRUSTED_TYPES)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
