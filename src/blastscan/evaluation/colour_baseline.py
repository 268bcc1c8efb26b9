"""What colour alone gives away: nearest neighbours on per-image colour statistics."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from blastscan.evaluation.stats import proportion

MAJORITY = "majority class of the training images"


def colour_statistics(images: np.ndarray) -> dict[str, np.ndarray]:
    """Per-image colour numbers that carry no cell shape, by name.

    The whole image's mean and s.d. of RGB; and the mean RGB of its lighter half of pixels
    (plasma, background and red cells around the white cell the class is about), which is
    stain and light, not the cell.
    """
    pixels = np.asarray(images, dtype=np.float32).reshape(len(images), -1, 3)
    luminance = pixels @ np.array([0.299, 0.587, 0.114], np.float32)
    lighter = luminance >= np.median(luminance, axis=1, keepdims=True)
    background = (pixels * lighter[..., None]).sum(1) / lighter.sum(1)[:, None]
    return {
        "whole image: mean and s.d. of RGB": np.hstack([pixels.mean(1), pixels.std(1)]),
        "lighter half of the pixels: mean RGB": background,
    }


def colour_baseline(
    images: np.ndarray, labels: np.ndarray, train: np.ndarray, test: np.ndarray
) -> dict[str, Any]:
    """Accuracy of 5 nearest neighbours on `colour_statistics` alone, fitted on `train`.

    High accuracy means the classes were stained or lit differently: a model may score well
    on this dataset partly from stain and light, which another laboratory's smears do not share.
    """
    labels, train, test = np.asarray(labels), np.asarray(train), np.asarray(test)
    majority = np.bincount(labels[train]).argmax()
    baselines = {MAJORITY: {"n_statistics": 0, "accuracy": _right(labels[test] == majority)}}
    for name, X in colour_statistics(images).items():
        model = make_pipeline(StandardScaler(), KNeighborsClassifier(5))
        model.fit(X[train], labels[train])
        right = model.predict(X[test]) == labels[test]
        baselines[name] = {"n_statistics": X.shape[1], "accuracy": _right(right)}
    return {
        "classifier": "5 nearest neighbours on standardised statistics",
        "n_train": len(train),
        "n_test": len(test),
        "baselines": baselines,
    }


def _right(correct: np.ndarray) -> dict[str, float | int]:
    return proportion(int(np.sum(correct)), len(correct))
