"""Scoring under the shifts: accuracy per strength, the summary, and the table and figure."""

import json

import numpy as np
import pytest
import torch

from blastscan.errors import BlastscanError
from blastscan.robustness import evaluate as E
from blastscan.robustness import tables


class MeanModel(torch.nn.Module):
    """Class 1 if an image's mean is above 0.5, else class 0: brightness-sensitive on purpose."""

    num_classes = 2

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(20.0))

    def features(self, x):
        return x.mean(dim=(1, 2, 3))[:, None]

    def head(self, f):
        return torch.cat([-(f - 0.5), f - 0.5], dim=1) * self.scale


def _two_level_images():
    images = np.concatenate(
        [np.full((4, 8, 8, 3), 100, np.uint8), np.full((4, 8, 8, 3), 160, np.uint8)]
    )
    return images, np.array([0] * 4 + [1] * 4)


def test_evaluate_robustness_counts_right(tmp_path):
    images, labels = _two_level_images()
    grid = {"brightness": (0.7, 1.4), "blur": (1.0,)}
    result = E.evaluate_robustness(MeanModel(), images, labels, grid, batch_size=3, chunk=5)
    json.dumps(result)
    assert result["n"] == 8 and result["clean"]["accuracy"]["value"] == 1.0
    bright = {
        pt["strength"]: pt["accuracy"] for pt in result["perturbations"]["brightness"]["points"]
    }
    assert bright[0.7]["value"] == 0.5 and bright[1.4]["value"] == 0.5  # one class flips each way
    assert bright[0.7]["low"] < 0.5 < bright[0.7]["high"] and bright[0.7]["n"] == 8
    assert result["perturbations"]["blur"]["points"][0]["accuracy"]["value"] == 1.0
    assert result["summary"]["brightness_0.7_1.3_worst"] == {"strength": 0.7, "accuracy": 0.5}
    table = tables.robustness_table_markdown(result)
    assert "| brightness | x0.7 | 50.0% |" in table and "-50.0 pp" in table
    assert table.count("\n") == 2 + 1 + 3
    path = tables.plot_robustness(result, tmp_path / "figures" / "robustness.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(BlastscanError, match="unknown"):
        E.evaluate_robustness(MeanModel(), images, labels, {"fog": (1,)})
    with pytest.raises(BlastscanError):
        E.evaluate_robustness(MeanModel(), images, labels[:3])
