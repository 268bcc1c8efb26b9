"""--precision and --engine onnx-int8 on the commands: the choice said and recorded, bad input
refused in one line, and an int8 bundle predicting and serving."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from blastscan.cli import app
from blastscan.runtime.precision import host_capability

runner = CliRunner()


@pytest.fixture(scope="module")
def smears(tmp_path_factory):
    """A tiny bundle, a copy of it with model.int8.onnx, and a folder of 6 smears."""
    from bundle_helpers import SIZE, tiny_bundle
    from PIL import Image

    from blastscan.bundle.export import add_int8_onnx
    from blastscan.data.synthetic import synthetic_smears

    root = tmp_path_factory.mktemp("precision")
    folder = root / "smears"
    folder.mkdir()
    for i, smear in enumerate(synthetic_smears(6, SIZE, seed=11)):
        Image.fromarray(smear).save(folder / f"s{i}.png")
    plain = tiny_bundle(root, classical=False)
    int8 = shutil.copytree(plain, root / "int8")
    add_int8_onnx(int8, synthetic_smears(16, SIZE, seed=12), "synthetic smears (tests only)")
    return plain, Path(int8), folder


@pytest.mark.parametrize("command", ["extract", "predict", "robustness", "bundle", "serve"])
def test_precision_is_on_the_commands(command):
    out = runner.invoke(app, [command, "--help"], terminal_width=200, env={"COLUMNS": "200"})
    assert "--precision" in out.output and "AVX512-BF16" in " ".join(out.output.split())


def test_train_has_precision_too():
    out = runner.invoke(app, ["train", "--help"], terminal_width=200, env={"COLUMNS": "200"})
    assert "--precision" in out.output


def test_an_unknown_precision_is_one_line_and_exit_2(smears):
    plain, _, folder = smears
    result = runner.invoke(app, ["predict", str(plain), str(folder), "--precision", "fp16"])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "error: --precision fp16: choose one of auto, fp32, bf16"
    ]


def test_predict_says_the_precision_and_why(smears):
    plain, _, folder = smears
    result = runner.invoke(app, ["predict", str(plain), str(folder), "--out", "-"])
    assert result.exit_code == 0, result.output
    expected = "bf16" if host_capability().bf16_native else "fp32"
    assert f"precision {expected} (auto: the CPU has" in result.stderr
    forced = runner.invoke(app, ["predict", str(plain), str(folder), "--out", "-",
                                 "--precision", "bf16"])  # fmt: skip
    assert forced.exit_code == 0 and "precision bf16 (asked for" in forced.stderr
    assert len(forced.stdout.strip().splitlines()) == 7  # header and 6 rows


def test_onnx_int8_without_the_int8_graph_names_the_fix(smears):
    plain, _, folder = smears
    result = runner.invoke(app, ["predict", str(plain), str(folder), "--engine", "onnx-int8"])
    assert result.exit_code == 2
    assert "has no model.int8.onnx; rebuild it with blastscan bundle" in result.stderr


def test_an_int8_bundle_records_its_calibration_and_predicts(smears, tmp_path):
    _, int8, folder = smears
    manifest = json.loads((int8 / "bundle.json").read_text())
    assert "model.int8.onnx" in manifest["files"]
    assert manifest["onnx_int8"]["calibration"]["images"] == 16
    assert "QDQ" in manifest["onnx_int8"]["quantization"]
    out = tmp_path / "int8.json"
    result = runner.invoke(app, ["predict", str(int8), str(folder), "--engine", "onnx-int8",
                                 "--out", str(out), "--quiet"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert len(json.loads(out.read_text())["predictions"]) == 6


def test_serve_refuses_a_missing_engine_at_start_and_reports_its_precision(smears):
    from fastapi.testclient import TestClient

    from blastscan.errors import BlastscanError
    from blastscan.serve import create_app

    plain, int8, _ = smears
    with pytest.raises(BlastscanError, match="model.int8.onnx"):
        create_app(plain, engine="onnx-int8")
    health = TestClient(create_app(int8, engine="onnx-int8")).get("/health").json()
    assert health["engine"] == "onnx-int8" and health["precision"] == "int8"
    assert TestClient(create_app(plain)).get("/health").json()["precision"] in ("fp32", "bf16")


def test_extract_int8_needs_a_run_directory(tmp_path, image_folder):
    import torch
    from bundle_helpers import tiny_meta, tiny_model

    from blastscan.training import save_checkpoint

    ckpt = tmp_path / "final.safetensors"
    model = tiny_model()
    save_checkpoint(ckpt, model, torch.optim.SGD(model.parameters(), lr=0.1),
                    {**tiny_meta(), "epoch": 0})  # fmt: skip
    result = runner.invoke(app, ["extract", "--model", str(ckpt), "--data", str(image_folder),
                                 "--out", str(tmp_path / "f.npz"), "--engine", "onnx-int8",
                                 "--quiet"])  # fmt: skip
    assert result.exit_code == 2
    assert "calibrates on the run's training images" in result.stderr


def test_train_refuses_a_wrong_precision_before_making_the_run(tmp_path, image_folder):
    run = tmp_path / "run"
    result = runner.invoke(app, ["train", "--data", str(image_folder), "--out", str(run),
                                 "--precision", "half", "--quiet"])  # fmt: skip
    assert result.exit_code == 2 and "--precision half: choose one of" in result.stderr
    assert not run.exists()
