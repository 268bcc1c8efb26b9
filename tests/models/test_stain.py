"""Parameter-free first layers: stain, white-point, dark-point and value-chroma normalisation."""

import pytest
import torch

from blastscan.data import rotate_hue
from blastscan.data.degrade import scale_saturation
from blastscan.errors import BlastscanError
from blastscan.models import darknet19
from blastscan.models.input_norm import input_norm_name
from blastscan.models.stain import (
    normalize_dark_point,
    normalize_value_chroma,
    normalize_white_point,
)


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


def test_value_chroma_is_blind_to_hue_lamp_and_contrast_but_not_to_the_cell():
    x = _smear_like()
    x[:, 2] *= 0.9  # some chroma everywhere, as in a stained smear
    reference = normalize_value_chroma(x)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    for degrees in (30.0, -50.0):
        torch.testing.assert_close(normalize_value_chroma(rotate_hue(x, degrees)), reference)
    # up to the 1e-3 added to each s.d. (which keeps a flat image finite)
    for shifted in (x * 0.7, (x - mean) * 0.6 + mean):  # a dimmer lamp, flatter contrast
        torch.testing.assert_close(normalize_value_chroma(shifted), reference, atol=0.05, rtol=0)
    # saturation scales the chroma channel exactly, which the standardisation divides out
    faded = normalize_value_chroma(scale_saturation(x, torch.full((2,), 0.5)))
    torch.testing.assert_close(faded[:, 2], reference[:, 2], atol=0.05, rtol=0)
    # a per-channel stain change, which is no hue turn, does reach the network
    assert (
        normalize_value_chroma(x * torch.tensor([1.0, 0.6, 1.0]).view(1, 3, 1, 1)) - reference
    ).abs().max() > 0.1
    # the blob (the "cell") stays visible: the darkest channel differs inside and out
    assert reference[:, 1].std() > 0.5


def test_value_chroma_network_gives_the_same_answer_under_a_hue_turn():
    torch.manual_seed(0)
    model = darknet19(4, input_norm="value-chroma").eval()
    x = _smear_like()
    with torch.no_grad():
        torch.testing.assert_close(model(rotate_hue(x, 40.0)), model(x), atol=1e-3, rtol=1e-3)
    assert set(model.state_dict()) == set(darknet19(4).state_dict())
