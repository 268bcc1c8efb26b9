"""Extracting features (torch and ONNX engines) and reading features files."""

from pathlib import Path

import numpy as np
import pytest

from blastscan.errors import BlastscanError
from blastscan.features import extract, load_features
from blastscan.training import TrainConfig, train


def test_onnx_and_torch_engines_give_the_same_features(image_folder: Path, tmp_path: Path):
    config = TrainConfig(epochs=1, batch_size=8, image_size=32, val_fraction=0.0, test_size=0.25)
    train(image_folder, tmp_path / "run", config, cache_dir=tmp_path / "c", show_progress=False)
    outs = {}
    for engine in ("torch", "onnx"):
        path = tmp_path / f"{engine}.npz"
        extract(
            tmp_path / "run",
            image_folder,
            path,
            cache_dir=tmp_path / "c",
            show_progress=False,
            engine=engine,
            precision="fp32",  # the engines' parity; auto is bf16 where the CPU has it
        )
        outs[engine] = load_features(path)
    # float32 engines agree to a small share of the values' scale (features reach about 5)
    np.testing.assert_allclose(outs["onnx"]["X"], outs["torch"]["X"], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(
        outs["onnx"]["logits"], outs["torch"]["logits"], rtol=1e-4, atol=1e-4
    )
    assert outs["onnx"]["paths"].tolist() == outs["torch"]["paths"].tolist()
    assert outs["torch"]["X"].shape == (24, 1000)
    with pytest.raises(BlastscanError, match="unknown engine"):
        extract(
            tmp_path / "run",
            image_folder,
            tmp_path / "x.npz",
            cache_dir=tmp_path / "c",
            show_progress=False,
            engine="tpu",
        )


def test_a_file_that_is_not_an_npz_gets_no_unsafe_advice(tmp_path):
    from PIL import Image

    path = tmp_path / "smear.jpg"
    Image.new("RGB", (8, 8), "pink").save(path)
    with pytest.raises(BlastscanError) as caught:
        load_features(path)
    message = str(caught.value)
    assert "not an .npz file" in message and "pickle" not in message
