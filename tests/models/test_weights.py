"""Weight files: darknet's .weights format, safetensors, pretrained paths."""

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

DARKNET19_WEIGHT_BYTES = 83_427_104  # floats after the header in the original darknet19.weights


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
