from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from blastscan.errors import BlastscanError
from blastscan.models import (
    darknet19,
    load_darknet_weights,
    load_safetensors_weights,
    save_darknet_weights,
)
from blastscan.models.stain import input_norm_name, normalize_dark_point, normalize_white_point

DARKNET19_WEIGHT_BYTES = 83_427_104  # floats after the header in the original darknet19.weights


def count(model: nn.Module, kind: type) -> int:
    return sum(isinstance(m, kind) for m in model.modules())


def test_architecture_matches_darknet19_cfg():
    model = darknet19(num_classes=1000)
    assert count(model, nn.Conv2d) == 19
    assert count(model, nn.MaxPool2d) == 5
    assert count(model, nn.BatchNorm2d) == 18
    assert count(model, nn.LeakyReLU) == 18
    assert all(m.negative_slope == 0.1 for m in model.modules() if isinstance(m, nn.LeakyReLU))
    assert sum(p.numel() for p in model.parameters()) == 20_842_376
    assert model.conv19.bias is not None and model.conv19.out_channels == 1000


def test_output_shapes_and_features():
    model = darknet19(num_classes=4).eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert model(x).shape == (2, 4)
        assert model.features(x).shape == (2, 1000)
        assert model.feature_map(x).shape == (2, 1024, 2, 2)
        torch.testing.assert_close(model.head(model.features(x)), model(x))


def test_darknet_weights_have_the_original_files_size(tmp_path: Path):
    path = tmp_path / "d.weights"
    save_darknet_weights(darknet19(1000), path)
    assert path.stat().st_size == 20 + DARKNET19_WEIGHT_BYTES


def test_darknet_weights_round_trip(tmp_path: Path):
    torch.manual_seed(0)
    source = darknet19(4)
    for m in source.modules():  # make every tensor distinctive, running stats included
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2)
            m.bias.data.normal_()
    path = tmp_path / "model.weights"
    save_darknet_weights(source, path, header=(0, 2, 5, 12345))
    target = darknet19(4)
    header = load_darknet_weights(target, path)
    assert header == (0, 2, 5, 12345)
    own, theirs = source.state_dict(), target.state_dict()
    for key in own:
        if not key.startswith("head.") and "num_batches" not in key:
            torch.testing.assert_close(own[key], theirs[key], msg=key)


def test_old_header_with_int32_seen(tmp_path: Path):
    path = tmp_path / "old.weights"
    save_darknet_weights(darknet19(4), path, header=(0, 1, 0, 7))
    assert path.stat().st_size == 16 + DARKNET19_WEIGHT_BYTES
    assert load_darknet_weights(darknet19(4), path)[3] == 7


@pytest.mark.parametrize("delta", [-4, 4, -1000])
def test_wrong_size_is_a_clear_error(tmp_path: Path, delta: int):
    path = tmp_path / "bad.weights"
    save_darknet_weights(darknet19(4), path)
    data = path.read_bytes()
    path.write_bytes(data[:delta] if delta < 0 else data + b"\0" * delta)
    with pytest.raises(BlastscanError, match="83,427,104"):
        load_darknet_weights(darknet19(4), path)


def test_safetensors_checkpoint_loads_backbone_and_skips_other_head(tmp_path: Path):
    from safetensors.torch import save_file

    source = darknet19(10)
    path = tmp_path / "m.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    target = darknet19(4)
    load_safetensors_weights(target, path)
    np.testing.assert_array_equal(target.conv19.weight.detach(), source.conv19.weight.detach())


def test_pretrained_path_dispatch(tmp_path: Path):
    path = tmp_path / "m.weights"
    save_darknet_weights(darknet19(4), path)
    assert isinstance(darknet19(4, pretrained=str(path)), nn.Module)
    with pytest.raises(BlastscanError, match="no such weights file"):
        darknet19(4, pretrained=str(tmp_path / "missing.weights"))


def test_stain_norm_layer_makes_the_network_blind_to_affine_colour_shifts():
    torch.manual_seed(0)
    model = darknet19(4, input_norm="stain").eval()
    x = torch.rand(2, 3, 64, 64) * 0.5 + 0.2
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x * 1.3 + 0.05), atol=2e-3, rtol=2e-3)
        assert not torch.allclose(darknet19(4).eval()(x), darknet19(4).eval()(x * 1.3 + 0.05))
    assert set(model.state_dict()) == set(darknet19(4).state_dict())


def _smear_like(n: int = 2, size: int = 64) -> torch.Tensor:
    """Bright background with a darker blob, as uint8 levels in [0, 1] (what a camera saves)."""
    gen = torch.Generator().manual_seed(0)
    x = 0.75 + 0.2 * torch.rand(n, 3, size, size, generator=gen)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    blob = ((yy - size / 2) ** 2 + (xx - size / 3) ** 2) < (size / 5) ** 2
    x[:, :2, blob] *= 0.5
    return (x * 255).round() / 255


def _brighten(x: torch.Tensor, s: float) -> torch.Tensor:
    return (x * s * 255).round().clamp(0, 255) / 255


def test_whitepoint_input_is_unchanged_by_clipped_brightness_changes():
    x = _smear_like()
    reference = normalize_white_point(x)
    for s in (0.6, 0.7, 0.8, 1.2, 1.3):
        # equal up to the camera's rounding to 8 bits
        torch.testing.assert_close(
            normalize_white_point(_brighten(x, s)), reference, atol=0.02, rtol=0
        )
    # and it is not blind: a darker blob gives a different input
    y = x.clone()
    y[:, :2] *= torch.linspace(0.6, 1.0, x.shape[-1])
    assert (normalize_white_point(y) - reference).abs().max() > 0.1


def test_whitepoint_network_gives_the_same_answer_under_brightening():
    torch.manual_seed(0)
    model = darknet19(4, input_norm="whitepoint").eval()
    x = _smear_like()
    with torch.no_grad():
        torch.testing.assert_close(model(_brighten(x, 1.3)), model(x), atol=0.05, rtol=0.05)
    assert set(model.state_dict()) == set(darknet19(4).state_dict())


def test_darkpoint_divides_out_darkening_and_keeps_the_background():
    x = _smear_like()
    reference = normalize_dark_point(x)
    for s in (0.6, 0.7, 0.8, 0.9):
        torch.testing.assert_close(
            normalize_dark_point(_brighten(x, s)), reference, atol=0.03, rtol=0
        )
    # unlike whitepoint, levels above the dark quantile are not flattened: the background's
    # noise and blue survive
    background = reference[:, :, :8, :8]
    assert background[:, 2].std() > 0.01 and background[:, :2].std() > 0.01
    assert normalize_white_point(x)[:, :, :8, :8].abs().max() == 0
    # brightening clips: the same as clipping the darkpoint input at 1 / (s q)
    brighter = normalize_dark_point(_brighten(x, 1.3))
    assert (brighter - reference).abs().max() > 0.05


def test_input_norm_names_and_old_configs():
    assert input_norm_name({"stain_norm": True}) == "stain"
    assert input_norm_name({}) == "none"
    assert input_norm_name({"input_norm": "whitepoint", "stain_norm": False}) == "whitepoint"
    with pytest.raises(BlastscanError, match="unknown input normalisation"):
        darknet19(4, input_norm="sepia")
    assert darknet19(4, input_norm="whitepoint:0.1").input_norm.quantile == 0.1
    assert darknet19(4, input_norm="darkpoint:0.1").input_norm.quantile == 0.1
    with pytest.raises(BlastscanError, match="quantile must be in"):
        darknet19(4, input_norm="whitepoint:2")
    with pytest.raises(BlastscanError, match="unknown input normalisation"):
        darknet19(4, input_norm="stain:0.1")
