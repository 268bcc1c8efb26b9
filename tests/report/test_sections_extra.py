"""Beyond the paper: calibration, segmented coverage, what colour gives away, the colour swap."""

import numpy as np

from blastscan.report import write_report

NAMES = ["Benign", "Early Pre-B", "Pre-B", "Pro-B"]


def test_calibration_and_segmented_coverage_sections(tmp_path):
    """A Segmented run with a CNN trained on Original: warning, reliability figure, coverage."""
    from blastscan.data import coverage_summary
    from blastscan.evaluation.calibration import holdout_calibration

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
