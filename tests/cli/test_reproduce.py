"""`blastscan reproduce --quick` on the real dataset, and the robustness of what it made."""

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from blastscan.cli import app

runner = CliRunner()


@pytest.mark.slow
def test_reproduce_quick_on_the_real_dataset(real_data: Path, tmp_path: Path):
    out = tmp_path / "run"
    result = runner.invoke(
        app,
        [
            "reproduce",
            "--data",
            str(real_data),
            "--out",
            str(out),
            "--quick",
            "--quiet",
            "--cache-dir",
            str(tmp_path / "cache"),
        ],
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["protocols"]) == {"paper", "holdout"}
    paper = metrics["protocols"]["paper"]["classical"]
    assert set(paper["presets"]) == {
        "Cubic SVM",
        "Wide Neural Network",
        "Fine KNN",
        "Gaussian Naive Bayes",
    }
    accuracy = paper["presets"]["Cubic SVM"]["feature_sets"]["all"]["metrics"]["accuracy"]["value"]
    assert accuracy > 0.4, "a trained CNN's features must beat chance (0.25) by far"
    report = (out / "report.md").read_text()
    assert "lets training images into the test folds" in report and "Table 2" in report
    assert "data:image/png;base64" in (out / "report.html").read_text()
    colour = metrics["colour_baseline"]
    assert colour["n_test"] == metrics["protocols"]["holdout"]["cnn"]["n_test"]
    background = colour["baselines"]["lighter half of the pixels: mean RGB"]["accuracy"]
    majority = colour["baselines"]["majority class of the training images"]["accuracy"]
    assert background["low"] > majority["high"], "this dataset's classes differ in stain/light"
    assert "What colour alone gives away" in report and "colour_baseline" in metrics["timings"]
    swap = metrics["colour_swap"]  # the CNN's own test images, each in every class's colour
    assert swap["n"] == colour["n_test"] and swap["other_colour"]["n"] == 3 * swap["n"]
    assert "Does the CNN follow the colour?" in report and "colour_swap" in metrics["timings"]

    # the product's decision (bundle: features + classifier) under brightness shifts
    shifted = runner.invoke(
        app,
        ["robustness", str(out / "cnn"), "--data", str(real_data), "--out", str(tmp_path / "rob"),
         "--perturbation", "brightness", "--bundle", str(out / "bundle")],
    )  # fmt: skip
    assert shifted.exit_code == 0, shifted.output
    saved = json.loads((tmp_path / "rob" / "robustness.json").read_text())
    assert "head features+classifier" in saved["scored"] and list(saved["perturbations"]) == [
        "brightness"
    ]
    assert "brightness x0.7-x1.3 worst" in shifted.output
    assert "brightness 0.7: " in shifted.stderr  # a line per condition while it runs
    assert "in another class's colour" in shifted.output
    assert len(saved["colour_swap"]["matrix"]) == 4
    _assert_calibration_reported(out, metrics)
    _assert_segmented_run_with_the_original_cnn(real_data, tmp_path, out / "cnn")


def _assert_calibration_reported(out: Path, metrics: dict) -> None:
    """The holdout protocol carries ECE/Brier of the CNN and SVM and the reliability diagram."""
    calibration = metrics["protocols"]["holdout"]["calibration"]
    assert set(calibration["models"]) == {"CNN (softmax)", "Cubic SVM (Platt)"}
    n_test = metrics["protocols"]["holdout"]["cnn"]["n_test"]
    for summary in calibration["models"].values():
        assert summary["n"] == n_test
        assert 0 <= summary["ece"] <= 1 and 0 <= summary["mce"] <= 1
        assert 0 <= summary["brier"] <= 2 and 0.25 <= summary["mean_confidence"] <= 1
    figure = out / calibration["figure"]
    assert figure.read_bytes()[:4] == b"\x89PNG"
    report = (out / "report.md").read_text()
    assert "Reliability diagram" in report and calibration["figure"] in report
    cnn_ece = calibration["models"]["CNN (softmax)"]["ece"]
    assert f"{cnn_ece:.4f}" in report
    assert "Reliability diagram" in (out / "report.html").read_text()


def _assert_segmented_run_with_the_original_cnn(real_data: Path, tmp_path: Path, cnn: Path) -> None:
    """--variant Segmented --cnn: Original-trained CNN, Segmented features, same split by name."""
    out = tmp_path / "segmented"
    result = runner.invoke(
        app,
        ["reproduce", "--data", str(real_data), "--out", str(out), "--quick", "--quiet",
         "--protocol", "holdout", "--variant", "Segmented", "--cnn", str(cnn),
         "--cache-dir", str(tmp_path / "cache")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dataset"]["variant"] == "Segmented" and metrics["cnn_variant"] == "Original"
    holdout = metrics["protocols"]["holdout"]
    assert holdout["cnn"]["evaluated_on"] == "Segmented"
    with np.load(out / "features.npz") as f:
        assert all("/Segmented/" in p for p in f["paths"].tolist())
    coverage = metrics["dataset"]["foreground"]["per_class"]
    assert coverage["Pro-B"]["nearly_empty"] > 0 and coverage["Early Pre-B"]["nearly_empty"] == 0
    assert holdout["nearly_empty"]["n_test"] == holdout["nearly_empty"]["by_class"]["Pro-B"]
    assert not (out / "bundle").exists(), "no bundle mixing Original weights and Segmented heads"
    report = (out / "report.md").read_text()
    assert "trained on Original images; every feature here comes from Segmented" in report
    assert "how much cell each image shows" in report
    assert "Segmented images have a black background" in report
    wrong = runner.invoke(
        app,
        ["reproduce", "--data", str(real_data), "--out", str(tmp_path / "w"), "--quick",
         "--quiet", "--protocol", "holdout", "--variant", "Segmented", "--cnn", str(cnn),
         "--features", str(tmp_path / "run" / "features.npz")],
    )  # fmt: skip
    assert wrong.exit_code == 2 and "holds Original images" in wrong.output


@pytest.mark.slow
def test_reproduce_quick_strict_protocol_trains_one_cnn_per_fold(real_data: Path, tmp_path: Path):
    out = tmp_path / "run"
    result = runner.invoke(
        app,
        ["reproduce", "--data", str(real_data), "--out", str(out), "--quick", "--quiet",
         "--protocol", "strict", "--cache-dir", str(tmp_path / "cache")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    strict = json.loads((out / "metrics.json").read_text())["protocols"]["strict"]
    assert strict["leakage"] == {
        "cnn_train_images_in_test_folds": False,
        "selection_fitted_on_all_data": False,
    }
    assert strict["cnn"]["n_test"] == 240  # every image held out exactly once over the 3 folds
    for k in range(3):
        fold = json.loads((out / "strict" / f"fold{k}" / "split.json").read_text())
        assert set(fold["test"]).isdisjoint(fold["train"] + fold["val"])
