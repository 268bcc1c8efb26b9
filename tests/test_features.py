import re
from pathlib import Path

import numpy as np
import pytest
import torch

from blastscan.errors import BlastscanError
from blastscan.features import extract, load_features, pick_device
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
        )
        outs[engine] = load_features(path)
    np.testing.assert_allclose(outs["onnx"]["X"], outs["torch"]["X"], atol=1e-4)
    np.testing.assert_allclose(outs["onnx"]["logits"], outs["torch"]["logits"], atol=1e-4)
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


@pytest.mark.parametrize(
    ("requested", "fragment"),
    [
        ("bogus", "--device bogus: not a device torch knows"),
        ("meta", "--device meta: blastscan runs on cpu, cuda or mps"),
        ("cuda:99", "--device cuda:99"),
    ],
)
def test_pick_device_refuses_a_device_it_cannot_use_in_one_line(requested, fragment):
    with pytest.raises(BlastscanError, match=re.escape(fragment)) as info:
        pick_device(requested)
    assert "\n" not in str(info.value) and "--device out" in str(info.value)


def test_pick_device_refuses_cuda_without_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    for requested in ("cuda", "cuda:0"):
        with pytest.raises(BlastscanError, match="this PyTorch has no CUDA"):
            pick_device(requested)
    assert pick_device(None) == torch.device("cpu")


def test_pick_device_keeps_valid_devices(monkeypatch):
    assert pick_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert pick_device("cuda") == torch.device("cuda")
    assert pick_device("cuda:1") == torch.device("cuda", 1)
    assert pick_device(None) == torch.device("cuda")


def test_a_file_that_is_not_an_npz_gets_no_unsafe_advice(tmp_path):
    from PIL import Image

    path = tmp_path / "smear.jpg"
    Image.new("RGB", (8, 8), "pink").save(path)
    with pytest.raises(BlastscanError) as caught:
        load_features(path)
    message = str(caught.value)
    assert "not an .npz file" in message and "pickle" not in message
