"""KernelNB: exact kernel densities and ksdensity's normal-reference bandwidth."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from blastscan.classify import (
    KernelNB,
    normal_reference_bandwidth,
)


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


@parametrize_with_checks(
    [KernelNB(), KernelNB(max_chunk_elements=10)],
    expected_failed_checks=lambda _: {
        "check_n_features_in_after_fitting": (
            "predict rejects a wrong feature count with its own message "
            "('X has 3 features, expected 4'), not sklearn's wording"
        )
    },
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
