"""`blastscan train`: its options, its errors, the run directory and the CNN-only bundle."""

import json
from pathlib import Path
from types import SimpleNamespace

from typer.testing import CliRunner

from blastscan.cli import app

runner = CliRunner()


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


def test_train_robust_recipe_records_every_lamp(image_folder: Path, tmp_path: Path):
    args = ["train", "--data", str(image_folder), "--out", str(tmp_path / "run"), "--quiet"]
    args += ["--recipe", "robust", "--epochs", "1", "--image-size", "32", "--batch-size", "8"]
    result = runner.invoke(app, args + ["--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (config["recipe"], config["brighten"], config["darken"]) == ("robust", 0.45, 0.45)
    assert (config["epochs"], config["image_size"]) == (1, 32)


def test_train_writes_the_bundle_on_rank_0_alone(monkeypatch, tmp_path: Path):
    import blastscan.training as training
    from blastscan.cli import training as command

    calls = []
    monkeypatch.setattr(
        command, "write_train_bundle", lambda run_dir, *a, **k: calls.append(run_dir)
    )
    metrics = {"accuracy": 1.0, "n_test": 3}

    def fake_train(data, out, config, **_):
        return SimpleNamespace(run_dir=Path(out), test_metrics=metrics, seconds=6.0)

    monkeypatch.setattr(training, "train", fake_train)
    args = ["train", "--data", str(tmp_path), "--out", str(tmp_path / "run"), "--quiet"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert calls == [tmp_path / "run"] and "test accuracy 1.0000 on 3" in result.output
    metrics.clear()  # what another torchrun rank gets back
    monkeypatch.setenv("RANK", "1")
    result = runner.invoke(app, args)
    assert result.exit_code == 0 and result.output == "" and calls == [tmp_path / "run"]
