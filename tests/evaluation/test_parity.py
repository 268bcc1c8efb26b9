"""Parity of a faster number format with fp32: agreement, McNemar, feature deviation."""

from __future__ import annotations

import numpy as np
import pytest

from blastscan.errors import BlastscanError
from blastscan.evaluation.parity import decision_parity, feature_deviation


def test_identical_decisions_pass():
    labels = np.arange(1000) % 4
    result = decision_parity(labels, labels.copy(), labels)
    assert result["agreement"] == 1.0 and result["mcnemar_p"] == 1.0 and result["passes"]


def test_ten_lost_images_of_a_thousand_fail_both_targets():
    labels = np.arange(1000) % 4
    other = labels.copy()
    other[:10] = (other[:10] + 1) % 4
    result = decision_parity(labels, other, labels)
    assert result["agreement"] == pytest.approx(0.99) and result["disagreements"] == 10
    assert result["reference_only_right"] == 10 and result["only_right"] == 0
    assert result["mcnemar_p"] == pytest.approx(2 * 0.5**10)
    assert not result["passes"]


def test_disagreements_on_wrong_images_change_no_accuracy():
    labels = np.zeros(400, int)
    reference = labels.copy()
    reference[:4] = 1  # wrong
    other = reference.copy()
    other[:2] = 2  # still wrong, differently
    result = decision_parity(reference, other, labels)
    assert result["agreement"] == pytest.approx(0.995) and result["mcnemar_p"] == 1.0
    assert result["passes"]


def test_feature_deviation():
    a = np.array([[1.0, -2.0], [3.0, 0.0]])
    b = a + np.array([[0.5, 0.0], [0.0, -0.1]])
    d = feature_deviation(a, b)
    assert d["max_abs"] == pytest.approx(0.5) and d["mean_abs"] == pytest.approx(0.15)
    assert d["mean_abs_relative"] == pytest.approx(0.15 / 1.5)
    with pytest.raises(BlastscanError, match="shape"):
        feature_deviation(a, b[:1])
