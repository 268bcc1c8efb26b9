"""The training history: JSON with NaN, checkpoints, plots."""

import json
from pathlib import Path

import numpy as np
import torch

from blastscan import training as T
from blastscan.models import darknet19


def test_a_history_with_nan_round_trips_through_json_and_plots(tmp_path: Path):
    history = [
        {"epoch": 1, "train_loss": 1.0, "train_accuracy": 0.5, "val_loss": np.nan,
         "val_accuracy": np.nan, "seconds": 1.0},
    ]  # fmt: skip
    T.write_history(tmp_path, history)
    text = (tmp_path / "history.json").read_text()
    assert "NaN" not in text and json.loads(text)[0]["val_loss"] is None
    model = darknet19(2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    path = tmp_path / "last.safetensors"
    T.save_checkpoint(
        path, model, optimizer, {"classes": ["a", "b"], "epoch": 0, "history": history}
    )
    resumed = T.load_checkpoint(path, model)["history"]
    assert np.isnan(resumed[0]["val_loss"]) and resumed[0]["train_loss"] == 1.0
    figures = T.plot_training_curves(json.loads(text), tmp_path)
    assert figures["loss"].stat().st_size > 0
