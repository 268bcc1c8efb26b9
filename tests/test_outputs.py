import json
import math
from pathlib import Path

import numpy as np
import pytest

from blastscan.outputs import atomic_write_json, to_json


def _strict(text: str):
    """json.loads that fails on NaN/Infinity, as JavaScript's JSON.parse does."""

    def refuse(name: str):
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def test_non_finite_floats_are_written_as_null_everywhere(tmp_path: Path):
    history = [
        {"epoch": 1, "val_loss": math.nan, "train_loss": np.float32(0.5)},
        {"epoch": 2, "val_loss": np.float64("nan"), "val_accuracy": np.float32("inf")},
    ]
    obj = {
        "history": history,
        "nested": {"low": -math.inf, "tuple": (1.5, math.inf), "array": np.array([1.0, np.nan])},
        "n": np.int64(3),
        "flag": np.bool_(True),
        "path": tmp_path,
    }
    atomic_write_json(tmp_path / "h.json", obj)
    back = _strict((tmp_path / "h.json").read_text())
    assert back["history"] == [
        {"epoch": 1, "val_loss": None, "train_loss": 0.5},
        {"epoch": 2, "val_loss": None, "val_accuracy": None},
    ]
    assert back["nested"] == {"low": None, "tuple": [1.5, None], "array": [1.0, None]}
    assert back["n"] == 3 and back["flag"] is True and back["path"] == str(tmp_path)


def test_to_json_still_refuses_what_is_not_json():
    with pytest.raises(TypeError, match="not JSON serialisable"):
        to_json({"x": object()})
