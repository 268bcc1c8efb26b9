"""The ONNX exporters and engine: the fast exporter first, dynamo as the fallback, and parity
with eager PyTorch."""

from __future__ import annotations

import warnings

import pytest
from bundle_helpers import SIZE, single_thread, tiny_model  # noqa: F401

from blastscan.data.synthetic import synthetic_smears
from blastscan.runtime import onnx as O


def test_legacy_exporter_goes_first():
    _, exporter = O.onnx_bytes(tiny_model(), SIZE)
    assert "legacy" in exporter


@pytest.mark.slow
def test_dynamo_exporter_is_the_fallback(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("the legacy exporter cannot export this")

    monkeypatch.setattr(O, "_export_legacy", broken)
    model = tiny_model()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data, exporter = O.onnx_bytes(model, SIZE)
    assert "dynamo" in exporter and any("dynamo exporter" in str(w.message) for w in caught)
    errors = O.onnx_parity(model, O.OnnxEngine(data), synthetic_smears(3, SIZE, seed=2))
    assert max(errors.values()) < 1e-4


@pytest.mark.parametrize("input_norm", ["whitepoint", "darkpoint:0.1", "value-chroma"])
def test_per_image_norm_layers_export_to_onnx(input_norm):
    """Their per-image dark level is a TopK, value-chroma's channels a max and a min over the
    colour axis: ONNX must compute them as PyTorch does."""
    import torch

    from blastscan.models import darknet19

    torch.manual_seed(0)
    model = darknet19(4, input_norm=input_norm).eval()
    data, _ = O.onnx_bytes(model, SIZE)
    errors = O.onnx_parity(model, O.OnnxEngine(data), synthetic_smears(3, SIZE, seed=5))
    assert max(errors.values()) < 1e-4


def test_colour_gated_network_exports_to_onnx_gate_included():
    """The gate's statistics and distances become graph nodes: the ONNX graph must pass and
    shut the colour planes for the same images as PyTorch."""
    import numpy as np
    import torch

    from blastscan.data import rotate_hue, to_float_tensor
    from blastscan.models import darknet19
    from blastscan.models.input_norm import fit_input_norm

    torch.manual_seed(0)
    model = darknet19(4, input_norm="colour-gated").eval()
    lab = synthetic_smears(48, SIZE, seed=3)
    fit_input_norm(model, to_float_tensor(lab), np.arange(48) % 4)
    turned = (rotate_hue(to_float_tensor(lab[:3]), 60.0) * 255).round().byte()
    images = np.concatenate([lab[:3], turned.permute(0, 2, 3, 1).numpy()])
    passed = model.input_norm.colour_passed(to_float_tensor(images))
    assert passed[:3].all() and not passed[3:].any()
    data, _ = O.onnx_bytes(model, SIZE)
    errors = O.onnx_parity(model, O.OnnxEngine(data), images)
    assert max(errors.values()) < 1e-4
