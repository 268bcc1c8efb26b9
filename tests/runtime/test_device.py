"""Picking the device: refused in one line when it cannot be used."""

import re

import pytest
import torch

from blastscan.errors import BlastscanError
from blastscan.runtime.device import pick_device


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
