"""The DarkNet-19 architecture: layers, parameters, outputs, fitting a few images."""

import torch
import torch.nn.functional as F
from torch import nn

from blastscan.models import darknet19


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


def test_tiny_overfit():
    """The network can fit a handful of images: gradients, BN and the head are wired right."""
    torch.manual_seed(0)
    model = darknet19(4)
    x, y = torch.rand(8, 3, 32, 32), torch.arange(8) % 4
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    for _ in range(40):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05
    assert (model(x).argmax(1) == y).all()
