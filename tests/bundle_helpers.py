"""A tiny bundle for the tests of the product layer (bundle, predict, explain, serve, cli).

`tiny_model` is a randomly initialised DarkNet-19 at 32 px with batch-norm statistics from
synthetic smears; `tiny_bundle` writes it, with an OOD detector and an mRMR + Fine KNN head,
once per folder.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import torch

from blastscan.bundle import write_bundle
from blastscan.bundle.ood import fit_ood
from blastscan.classify import make_classifier
from blastscan.data.synthetic import synthetic_smears
from blastscan.models import darknet19
from blastscan.runtime.infer import infer
from blastscan.selection import MRMR
from blastscan.training import recompute_bn_statistics

SIZE = 32
CLASSES = ["Benign", "Early", "Pre", "Pro"]
DISPLAY = ["Benign", "Early Pre-B", "Pre-B", "Pro-B"]
_BUILT: dict[tuple, Path] = {}


@functools.lru_cache(maxsize=4)
def tiny_model(size: int = SIZE, seed: int = 0, classes: int = 4) -> torch.nn.Module:
    """Random DarkNet-19 whose batch-norm statistics come from smear-like images, so its
    activations have the scale a trained network's have. Cached: callers must not train it."""
    torch.manual_seed(seed)
    model = darknet19(classes)
    recompute_bn_statistics(model, synthetic_smears(24, size, seed), 24, torch.device("cpu"))
    return model.eval()


def tiny_meta(size: int = SIZE) -> dict:
    return {
        "classes": CLASSES,
        "display_names": DISPLAY,
        "image_size": size,
        "config": {"recipe": "fast", "epochs": 1, "image_size": size, "seed": 0},
        "history": [{"epoch": 1, "train_accuracy": 0.25, "val_accuracy": 0.25}],
    }


@functools.lru_cache(maxsize=4)
def tiny_parts(size: int = SIZE, classical: bool = True):
    """Model, OOD detector and (optionally) a fitted mRMR + Fine KNN pipeline (cached)."""
    model = tiny_model(size)
    images = synthetic_smears(64, size, seed=1)
    features = infer(model, images, 32).features
    labels = np.arange(len(images)) % 4
    ood = fit_ood(
        features[:44],
        labels[:44],
        features[44:],
        images=images[:44],
        calibration_images=images[44:],
    )
    pipeline = None
    if classical:
        pipeline = make_classifier("Fine KNN", selector=MRMR(n_features=12), probability=True)
        pipeline.fit(features, labels)
    return model, ood, pipeline, features


def tiny_bundle(root: Path, classical: bool = True, size: int = SIZE) -> Path:
    """A bundle built once per test run and folder (callers copy it before changing it)."""
    key = (str(root), classical, size)
    if key not in _BUILT or not _BUILT[key].is_dir():
        model, ood, pipeline, _ = tiny_parts(size, classical)
        _BUILT[key] = write_bundle(
            root / f"tiny-{size}-{'classical' if classical else 'cnn'}",
            model,
            tiny_meta(size),
            classical=pipeline,
            ood=ood,
            metrics={"accuracy": 0.25, "n_test": 8, "split": "synthetic"},
            card_facts={"data": "synthetic smear-like images (tests only)"},
        )
    return _BUILT[key]


@pytest.fixture(scope="module", autouse=True)
def single_thread():
    """One BLAS and one torch thread: the test machine's 2 cores are shared with a training
    run, and oversubscribed thread pools spin (10-20x slower); results are the same."""
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(before)


class Stranger:
    """A type no bundle may load: not in the allow-list."""

    classes_ = np.array([0, 1, 2, 3])

    def predict(self, X):
        return np.zeros(len(X), dtype=int)
