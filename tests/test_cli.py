import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from blastscan.cli import app

runner = CliRunner()
COMMANDS = ["train", "extract", "select", "evaluate", "reproduce", "robustness"]


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


def test_train_grows_the_images_with_start_image_size(image_folder: Path, tmp_path: Path):
    run = tmp_path / "run"
    args = ["train", "--data", str(image_folder), "--out", str(run), "--epochs", "2",
            "--batch-size", "8", "--image-size", "64", "--start-image-size", "32", "--quiet",
            "--cache-dir", str(tmp_path / "cache")]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    history = json.loads((run / "history.json").read_text())
    assert [h["image_size"] for h in history] == [32, 64]
    assert json.loads((run / "config.json").read_text())["start_image_size"] == 32


# ---------------------------------------------------------------- predict's output


@pytest.fixture(scope="module")
def sixty_smears(tmp_path_factory):
    """A bundle and a folder of 60 images: more rows than the table shows beside --out."""
    from PIL import Image
    from test_bundle import tiny_bundle

    from blastscan.data.synthetic import synthetic_smears

    root = tmp_path_factory.mktemp("sixty")
    folder = root / "smears"
    folder.mkdir()
    for i, smear in enumerate(synthetic_smears(60, 48, seed=5)):
        Image.fromarray(smear).save(folder / f"s{i:02d}.png")
    return tiny_bundle(root, classical=False), folder


def test_predict_without_out_shows_every_row(sixty_smears):
    bundle, folder = sixty_smears
    result = runner.invoke(app, ["predict", str(bundle), str(folder)], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "s59.png" in result.output and "more (see --out)" not in result.output
    assert "no OOD check" not in " ".join(result.output.split())  # tiny_bundle has a detector


def test_predict_says_when_a_bundle_has_no_ood_check(sixty_smears, tmp_path):
    from test_bundle import tiny_meta, tiny_parts

    from blastscan.bundle import write_bundle

    _, folder = sixty_smears
    model, _, _, _ = tiny_parts()
    bundle = write_bundle(tmp_path / "no-ood", model, tiny_meta(), ood=None)
    result = runner.invoke(
        app, ["predict", str(bundle), str(folder / "s00.png")], terminal_width=200
    )
    assert result.exit_code == 0, result.output
    assert "no OOD check in this bundle" in " ".join(result.output.split())  # caption may wrap


def test_predict_to_stdout_writes_only_csv_there(sixty_smears):
    import csv
    import io

    bundle, folder = sixty_smears
    result = CliRunner().invoke(app, ["predict", str(bundle), str(folder), "--out", "-"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 60 and rows[0]["path"].endswith("s00.png")
    assert "60 predicted" in result.stderr


def test_predict_quiet_without_out_is_refused_before_any_work(sixty_smears, tmp_path):
    bundle, folder = sixty_smears
    result = runner.invoke(app, ["predict", str(tmp_path / "absent"), str(folder), "--quiet"])
    assert result.exit_code == 2
    assert "--quiet without --out would show no prediction" in result.output


def test_train_robust_recipe_records_every_lamp(image_folder: Path, tmp_path: Path):
    args = ["train", "--data", str(image_folder), "--out", str(tmp_path / "run"), "--quiet"]
    args += ["--recipe", "robust", "--epochs", "1", "--image-size", "32", "--batch-size", "8"]
    result = runner.invoke(app, args + ["--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (config["recipe"], config["brighten"], config["darken"]) == ("robust", 0.45, 0.45)
    assert (config["epochs"], config["image_size"]) == (1, 32)
