"""The features+classifier head: a fitted pipeline's labels mapped to the bundle's classes."""

from __future__ import annotations

import numpy as np
from bundle_helpers import CLASSES

from blastscan.bundle.heads import ClassicalHead
from blastscan.classify import make_classifier


def test_classical_head_from_pipeline_maps_string_labels():
    X = np.random.default_rng(0).normal(size=(40, 6))
    y = np.array(["Pro", "Benign"] * 20)
    X[y == "Pro"] += 2
    head = ClassicalHead.from_pipeline(make_classifier("Gaussian Naive Bayes").fit(X, y), CLASSES)
    assert head.class_index.tolist() == [0, 3]  # classes_ sorted: Benign, Pro
    proba = head.predict_proba(X, 4)
    assert proba.shape == (40, 4) and np.allclose(proba[:, [1, 2]], 0)
