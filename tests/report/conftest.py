"""A metrics.json of two protocols (paper, strict), figures for it, and the report written."""

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.feature_selection import SelectKBest, f_classif

from blastscan.evaluation import (
    classification_metrics,
    evaluate_feature_sets,
    plot_confusion_matrix,
)
from blastscan.report import write_report

NAMES = ["Benign", "Early Pre-B", "Pre-B", "Pro-B"]
PRESETS = ["Cubic SVM", "Fine KNN", "Gaussian Naive Bayes"]


@pytest.fixture(scope="module")
def metrics():
    X, y = make_classification(160, 8, n_informative=5, n_classes=4, class_sep=2.0, random_state=0)
    paper = evaluate_feature_sets(
        X, y, NAMES, PRESETS, selected_columns=[0, 1, 2, 3, 4], n_splits=4, n_jobs=1
    )
    strict = evaluate_feature_sets(
        X,
        y,
        NAMES,
        PRESETS,
        selector_factory=lambda: SelectKBest(f_classif, k=5),
        n_splits=4,
        n_jobs=1,
    )
    rng = np.random.default_rng(0)
    y_test = rng.integers(0, 4, 50)
    cnn = {
        "train_fraction": 0.7,
        "n_train": 110,
        "n_test": 50,
        "test_metrics": classification_metrics(y_test, y_test, NAMES),
    }
    return {
        "schema_version": 1,
        "created": "2024-01-01T00:00:00Z",
        "blastscan_version": "0.1.0",
        "dataset": {
            "name": "ALL (synthetic test)",
            "n_images": 160,
            "class_names": NAMES,
            "class_counts": dict.fromkeys(NAMES, 40),
        },
        "timings": {"train_cnn": 3725.0, "extract": 41.2},
        "protocols": {
            "paper": {
                "title": "Paper protocol",
                "leakage": {
                    "cnn_train_images_in_test_folds": True,
                    "selection_fitted_on_all_data": True,
                },
                "cnn": cnn,
                "selection": {"method": "mRMR", "threshold": 0.25},
                "classical": paper,
                "timings": {"select": 2.5},
            },
            "strict": {
                "title": "Leakage-free protocol",
                "leakage": {
                    "cnn_train_images_in_test_folds": False,
                    "selection_fitted_on_all_data": False,
                },
                "classical": strict,
            },
        },
    }


@pytest.fixture(scope="module")
def figures(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("figs")
    out = {}
    for key in ("training_accuracy", "training_loss", "mrmr_scores", "paper:confusion:all"):
        path = tmp_path / "figs" / f"{key.replace(':', '_')}.png"
        plot_confusion_matrix([[1, 0], [0, 1]], ["a", "b"], path, key)
        out[key] = path
    return out


@pytest.fixture(scope="module")
def written(tmp_path_factory, metrics, figures):
    run_dir = tmp_path_factory.mktemp("run")
    md, html = write_report(run_dir, metrics, figures)
    return run_dir, md, html, md.read_text(), html.read_text()
