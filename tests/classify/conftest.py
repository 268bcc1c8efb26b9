"""The four-class problem the classifier tests share."""

import pytest
from sklearn.datasets import make_classification


@pytest.fixture(scope="module")
def data():
    X, y = make_classification(240, 12, n_informative=6, n_classes=4, class_sep=2.0, random_state=0)
    return X, y
