"""ONNX export of a bundle: recorded and hashed in bundle.json, and the same answers as PyTorch."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from bundle_helpers import SIZE, tiny_bundle
from typer.testing import CliRunner

from blastscan.bundle import MANIFEST, ONNX, load_bundle
from blastscan.cli import app
from blastscan.data.synthetic import synthetic_smears
from blastscan.errors import BlastscanError


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A copy of the tiny bundle with model.onnx added by `blastscan export --onnx`."""
    target = tmp_path_factory.mktemp("export") / "bundle"
    shutil.copytree(tiny_bundle(tmp_path_factory.getbasetemp()), target)
    result = CliRunner().invoke(app, ["export", str(target), "--onnx"])
    assert result.exit_code == 0, result.output
    assert "max abs error vs PyTorch" in result.output
    return target


@pytest.mark.slow
def test_export_is_recorded_and_hashed(exported):
    manifest = json.loads((exported / MANIFEST).read_text())
    assert ONNX in manifest["files"]
    info = manifest["onnx"]
    assert info["outputs"]["features"] == ["batch", 1000] and info["outputs"]["logits"] == [
        "batch",
        4,
    ]
    assert info["inputs"]["input"] == ["batch", 3, SIZE, SIZE]
    assert info["check"]["max_abs_error"]["logits"] < 1e-4
    assert "dynamo" in info["exporter"] or "legacy" in info["exporter"]
    assert load_bundle(exported).onnx_bytes is not None


@pytest.mark.slow
def test_onnx_engine_matches_eager_pytorch(exported):
    bundle = load_bundle(exported)
    images = synthetic_smears(7, SIZE, seed=21)
    torch_run = bundle.predict(images, batch_size=4)
    for batch_size in (1, 3, 7):  # dynamic batch axis, including a ragged last batch
        onnx_run = bundle.predict(images, batch_size=batch_size, engine="onnx")
        np.testing.assert_allclose(
            onnx_run.cnn_probabilities, torch_run.cnn_probabilities, atol=1e-4
        )
        np.testing.assert_allclose(
            onnx_run.features,
            torch_run.features,
            atol=1e-4 * max(1.0, np.abs(torch_run.features).max()),
        )
        np.testing.assert_allclose(onnx_run.probabilities, torch_run.probabilities, atol=1e-4)
        assert onnx_run.predicted.tolist() == torch_run.predicted.tolist()


@pytest.mark.slow
def test_a_changed_onnx_file_is_refused(exported, tmp_path):
    target = tmp_path / "b"
    shutil.copytree(exported, target)
    data = bytearray((target / ONNX).read_bytes())
    data[-10] ^= 0xFF
    (target / ONNX).write_bytes(bytes(data))
    with pytest.raises(BlastscanError, match="sha256 does not match"):
        load_bundle(target)


def test_onnx_engine_needs_an_export(tmp_path_factory):
    bundle = load_bundle(tiny_bundle(tmp_path_factory.getbasetemp()))
    with pytest.raises(BlastscanError, match="blastscan export"):
        bundle.predict(synthetic_smears(1, SIZE), engine="onnx")


def test_export_needs_a_format(tmp_path_factory):
    result = CliRunner().invoke(app, ["export", str(tiny_bundle(tmp_path_factory.getbasetemp()))])
    assert result.exit_code == 2 and "--onnx" in result.output
