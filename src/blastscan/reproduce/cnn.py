"""The CNN stage of `blastscan reproduce`: train (or reuse) a CNN, and line its run up with a
features file (its split, its own held-out result, the image set it was trained on)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from blastscan.errors import BlastscanError
from blastscan.evaluation import classification_metrics
from blastscan.training import TrainConfig, train


def train_cnn(
    data_dir, run_dir: Path, config: TrainConfig, cache_dir: Path | None, show_progress: bool
) -> None:
    """Train (or resume) one CNN into `run_dir`. No bundle here: reproduce writes one complete
    bundle (OOD detector and the paper's SVM head) for the whole run, `OUT/bundle`."""
    train(
        data_dir,
        run_dir,
        config,
        resume=(run_dir / "checkpoints" / "last.safetensors").exists(),
        cache_dir=cache_dir,
        show_progress=show_progress,
    )


def run_split_indices(paths: np.ndarray, run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """Sorted train (incl. validation) and test indices of a CNN run's split in a features file.

    Matched by class folder and file name (`data.image_index`), like `data.run_split`, so
    features extracted from a moved copy of the dataset still line up.
    """
    from blastscan.data import image_index

    split = json.loads((run_dir / "split.json").read_text())
    position, key = image_index(paths.tolist())

    def indices(wanted: list[str]) -> np.ndarray:
        missing = [p for p in wanted if key(p) not in position]
        if missing:
            raise BlastscanError(
                f"{missing[0]}: in the CNN's split but not in the features file; "
                "extract features from the same dataset the CNN was trained on"
            )
        return np.sort(np.array([position[key(p)] for p in wanted], dtype=np.int64))

    return indices(split["train"] + split.get("val", [])), indices(split["test"])


def cnn_summary(cnn_dir: Path, features: dict) -> tuple[dict, np.ndarray, np.ndarray]:
    """The CNN's own held-out result, and its train/test indices into the features file."""
    train_idx, test_idx = run_split_indices(features["paths"], cnn_dir)
    y, names = features["y"], list(features["display_names"])
    pred = features["logits"][test_idx].argmax(1)
    block = {
        "split": "70/30 (duplicate- and near-duplicate-aware)",
        "train_fraction": 0.7,
        "n_train": int(len(train_idx)),
        "n_test": int(len(test_idx)),
        "seed": json.loads((cnn_dir / "split.json").read_text()).get("seed", 0),
        "test_metrics": classification_metrics(y[test_idx], pred, names),
    }
    return block, train_idx, test_idx


def cnn_variant(cnn_dir: Path) -> str:
    """The image set (Original or Segmented) a training run was trained on, from its config."""
    try:
        return json.loads((cnn_dir / "config.json").read_text()).get("variant", "Original")
    except (OSError, ValueError):
        return "Original"


def cnn_timings(cnn_dir: Path) -> dict:
    """The CNN's training seconds from its metrics.json; nothing when it has none."""
    try:
        m = json.loads((cnn_dir / "metrics.json").read_text())
        return {"train_cnn": m["train_seconds"]}
    except (OSError, ValueError, KeyError):
        return {}


def check_subset(features: dict, cnn_dir: Path, variant: str = "Original") -> None:
    """Features must carry paths/logits, come from the asked-for image set, and match a run."""
    from blastscan.data import KAGGLE_VARIANTS

    if "paths" not in features or "logits" not in features:
        raise BlastscanError("features file lacks paths/logits; re-run blastscan extract")
    sets = {Path(p).parent.parent.name for p in features["paths"].tolist()}
    other = (sets & set(KAGGLE_VARIANTS)) - {variant}
    if other:
        raise BlastscanError(
            f"features file holds {sorted(other)[0]} images but --variant is {variant}; "
            "extract features of the same image set"
        )
    if not (cnn_dir / "split.json").exists():
        raise BlastscanError(
            f"{cnn_dir}: no split.json; pass the CNN's training run directory with --cnn"
        )
