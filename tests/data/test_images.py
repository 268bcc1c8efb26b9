"""Decoding and tensors."""

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from blastscan import data as D


def test_open_rgb_converts_odd_modes(tmp_path: Path):
    Image.new("LA", (5, 4), (100, 0)).save(tmp_path / "gray_alpha.png")
    Image.new("CMYK", (5, 4), (0, 0, 0, 0)).save(tmp_path / "cmyk.jpg")
    Image.fromarray(np.full((4, 5), 40000, dtype=np.uint16)).save(tmp_path / "deep.png")
    for name in ("gray_alpha.png", "cmyk.jpg", "deep.png"):
        image = D.open_rgb(tmp_path / name)
        assert image.mode == "RGB" and image.size == (5, 4)
    assert np.asarray(D.open_rgb(tmp_path / "gray_alpha.png")).min() == 255  # transparent on white


def test_to_float_tensor_is_nchw_channels_last_in_unit_range():
    batch = np.random.default_rng(0).integers(0, 256, (2, 5, 4, 3), dtype=np.uint8)
    x = D.to_float_tensor(batch)
    assert x.shape == (2, 3, 5, 4) and x.dtype == torch.float32
    assert x.is_contiguous(memory_format=torch.channels_last)
    np.testing.assert_allclose(x.permute(0, 2, 3, 1).numpy(), batch / 255.0, rtol=1e-6)


def test_batches_for_cuda_go_through_pinned_memory_without_blocking(monkeypatch):
    """No GPU here: record what the copy does instead of doing it."""
    calls = []
    real_to = torch.Tensor.to

    def pin(self):
        calls.append("pin")
        return self

    def to(self, device, *args, **kwargs):
        if torch.device(device).type == "cuda":
            calls.append(("to", torch.device(device).type, kwargs.get("non_blocking")))
            return self
        return real_to(self, device, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "pin_memory", pin)
    monkeypatch.setattr(torch.Tensor, "to", to)
    D.to_float_tensor(np.zeros((1, 2, 2, 3), np.uint8), "cuda")
    assert calls == ["pin", ("to", "cuda", True)]
    calls.clear()
    D.to_float_tensor(np.zeros((1, 2, 2, 3), np.uint8), "cpu")
    assert calls == []  # nothing to pin for the CPU
