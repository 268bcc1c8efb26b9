"""The report: both files written, every paper table present, HTML self-contained, leakage said."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.feature_selection import SelectKBest, f_classif

from blastscan.evaluation import (
    classification_metrics,
    evaluate_feature_sets,
    plot_confusion_matrix,
)
from blastscan.io import atomic_write_json
from blastscan.report import NA, write_report

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


def test_both_files_are_written_in_the_run_dir(written):
    run_dir, md, html, _, _ = written
    assert md == run_dir / "report.md" and html == run_dir / "report.html"
    assert not [p for p in run_dir.rglob("*.tmp")]


@pytest.mark.parametrize("which", [3, 4])
def test_every_paper_table_and_figure_is_present(written, which):
    text = written[which]
    for needle in (
        "Table 2",
        "Table 3",
        "Table 4",
        "Figure 3/4",
        "Figure 5",
        "Figure 6",
        "Tusar et al. 2022",
        "97.42%",
        "Basymeleh et al. 2022",
        "97.50%",
        "99.94%",
        "99.60%",
        "99.80%",
        "521 of 1000",
        NA,
        "Stage wall times",
        "Cubic SVM",
        "Pro-B",
    ):
        assert needle in text, needle


def test_accuracies_carry_confidence_intervals(written):
    md = written[3]
    assert re.search(r"\d+\.\d\d% \(\d+\.\d\d–\d+\.\d\d\)", md)


def test_paper_protocol_states_the_leakage_and_strict_does_not(written):
    md = written[3]
    paper_part = md.split("(`paper`)")[1].split("(`strict`)")[0]
    strict_part = md.split("(`strict`)")[1].split("## CNN")[0]
    assert "lets training images into the test folds" in paper_part
    assert "mRMR was fitted on all images" in paper_part
    assert "lets training images into the test folds" not in strict_part
    assert "No test image reached any fitted step" in strict_part


def test_html_is_self_contained(written):
    html = written[4]
    sources = re.findall(r'src="([^"]*)"', html)
    assert sources and all(s.startswith("data:image/") for s in sources)
    assert not re.search(r"<link|<script|href=\"http|url\(", html)
    assert html.count("<img") == len(sources)


def test_missing_confusion_matrices_are_drawn_from_metrics(written):
    run_dir = written[0]
    drawn = sorted(p.name for p in (run_dir / "figures").iterdir())
    # paper:all was passed in; the other three come from the confusion matrices in metrics
    assert drawn == ["confusion_paper_selected.png", "confusion_strict_all.png",
                     "confusion_strict_selected.png"]  # fmt: skip


def test_protocols_sit_side_by_side_in_table2(written):
    md = written[3]
    header = next(line for line in md.splitlines() if line.startswith("| Classifier"))
    for col in ("Paper: all", "Ours (paper): selected", "Ours (strict): all"):
        assert col in header


def test_in_fold_selection_reports_per_fold_counts(written):
    assert "5 of 8 per fold" in written[3]


def test_metrics_round_trip_through_json(tmp_path, metrics):
    atomic_write_json(tmp_path / "metrics.json", metrics)
    assert json.loads((tmp_path / "metrics.json").read_text()) == json.loads(json.dumps(metrics))


def test_report_survives_minimal_metrics(tmp_path):
    md, html = write_report(tmp_path, {"protocols": {}}, {})
    assert "Table 4" in md.read_text() and "Tusar" in html.read_text()


def test_calibration_and_segmented_coverage_sections(tmp_path):
    """A Segmented run with a CNN trained on Original: warning, reliability figure, coverage."""
    from blastscan.calibration import holdout_calibration
    from blastscan.data import coverage_summary

    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(4), 20)
    X, logits = rng.normal(size=(80, 5)) + y[:, None], np.eye(4)[y] * 3 + rng.normal(size=(80, 4))
    train, test = np.arange(0, 80, 2), np.arange(1, 80, 2)
    figure = tmp_path / "figures" / "reliability_holdout.png"
    calibration = holdout_calibration(X, y, logits, train, test, figure, "Linear SVM")
    fractions = np.where(y == 3, 0.001, 0.1)
    metrics = {
        "dataset": {
            "variant": "Segmented",
            "foreground": coverage_summary(fractions, y, NAMES),
        },
        "cnn_variant": "Original",
        "protocols": {"holdout": {"title": "Holdout", "calibration": calibration}},
    }
    md, html = write_report(tmp_path, metrics, {"holdout:reliability": figure})
    text = md.read_text()
    assert "trained on Original images; every feature here comes from Segmented" in text
    assert "Reliability diagram" in text and "figures/reliability_holdout.png" in text
    ece = calibration["models"]["CNN (softmax)"]["ece"]
    assert f"{ece:.4f}" in text and "Linear SVM (Platt)" in text
    assert "| Pro-B | 20 | 0.10% | 0.10% | 20 (100.0%) |" in text
    assert "Other figures" not in text  # the diagram is not listed twice
    assert html.read_text().count("<img") == 1


def test_colour_section_shows_each_baseline_beside_the_cnn(tmp_path):
    from blastscan.evaluation import proportion

    metrics = {
        "colour_baseline": {
            "classifier": "5 nearest neighbours on standardised statistics",
            "n_train": 70,
            "n_test": 30,
            "baselines": {
                "majority class of the training images": {
                    "n_statistics": 0,
                    "accuracy": proportion(9, 30),
                },
                "lighter half of the pixels: mean RGB": {
                    "n_statistics": 3,
                    "accuracy": proportion(27, 30),
                },
            },
        },
        "protocols": {
            "holdout": {
                "title": "Holdout",
                "cnn": {"test_metrics": {"accuracy": proportion(29, 30)}},
            }
        },
    }
    text = write_report(tmp_path, metrics, {})[0].read_text()
    assert "## What colour alone gives away" in text
    assert "| lighter half of the pixels: mean RGB | 3 | 90.00% (74.38–96.54) |" in text
    assert "| the CNN on every pixel, for comparison | - | 96.67%" in text
    assert "fitted on the CNN's 70 training images and scored on its 30 test images" in text
    assert "black background" not in text
    assert "Does the CNN follow the colour?" not in text  # no colour swap in the metrics
    metrics["dataset"] = {"variant": "Segmented"}
    text = write_report(tmp_path, metrics, {})[0].read_text()
    assert "Segmented images have a black background" in text


def test_colour_swap_table_shows_each_class_in_each_colour(tmp_path):
    from blastscan.evaluation import proportion

    names = ["Benign", "Early Pre-B", "Pre-B", "Pro-B"]
    matrix = [[proportion(10 if i == j else 2, 10) for j in range(4)] for i in range(4)]
    metrics = {
        "dataset": {"variant": "Original", "class_names": names},
        "colour_baseline": {
            "classifier": "5 nearest neighbours",
            "n_train": 70,
            "n_test": 40,
            "baselines": {"majority": {"n_statistics": 0, "accuracy": proportion(10, 40)}},
        },
        "colour_swap": {
            "n": 40,
            "clean": proportion(40, 40),
            "colours": "each class's mean colour",
            "matrix": matrix,
            "own_colour": proportion(40, 40),
            "other_colour": proportion(24, 120),
            "follows_the_colour": proportion(90, 120),
        },
        "protocols": {},
    }
    text = write_report(tmp_path, metrics, {})[0].read_text()
    assert "### Does the CNN follow the colour?" in text
    assert "| Images of | Benign | Early Pre-B | Pre-B | Pro-B |" in text
    assert "| Pre-B | 20.00% (5.67–50.98) | 20.00% (5.67–50.98) | 100.00%" in text
    assert "right 20.00% (13.82–28.04) of the time" in text and "colour's class 75.00%" in text
