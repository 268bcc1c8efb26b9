import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from blastscan.cli import app

runner = CliRunner()
COMMANDS = ["train", "extract", "select", "evaluate", "reproduce"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str):
    result = runner.invoke(app, [command, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "--help" in result.output


def test_train_help_lists_defaults():
    out = runner.invoke(app, ["train", "--help"], terminal_width=250, env={"COLUMNS": "250"}).output
    for option, default in [
        ("--epochs", "30"),
        ("--batch-size", "128"),
        ("--lr", "0.01"),
        ("--image-size", "224"),
        ("--seed", "0"),
        ("--pretrained", ""),
        ("--resume", ""),
    ]:
        assert option in out
        assert default in out


def test_bad_data_folder_is_one_line_and_exit_2(tmp_path: Path):
    result = runner.invoke(
        app, ["train", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "r")]
    )
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "no such folder" in result.output


def test_corrupt_features_file_is_a_clear_error(tmp_path: Path):
    bad = tmp_path / "f.npz"
    bad.write_bytes(b"garbage")
    result = runner.invoke(app, ["select", str(bad), "--out", str(tmp_path / "s.json")])
    assert result.exit_code == 2 and "not a readable features file" in result.output


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
