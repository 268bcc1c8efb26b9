"""What `blastscan reproduce` runs: the protocols, classifiers, selection and CNN recipe."""

from __future__ import annotations

from dataclasses import dataclass, field

from blastscan.evaluation.protocols import PAPER_THRESHOLD
from blastscan.training import TrainConfig, recipe_config

PROTOCOLS = ("paper", "holdout", "strict", "group")


@dataclass
class ReproduceOptions:
    protocols: tuple[str, ...] = ("paper", "holdout")
    presets: list[str] | None = None  # default: the paper's four rows
    threshold: float = PAPER_THRESHOLD
    n_features: int | None = None  # keep the top N instead (the paper kept 521)
    n_splits: int = 10
    strict_folds: int = 5
    group_block_size: int = 37  # 3,256 images / 89 patients
    seed: int = 0
    quick: bool = False
    train_config: TrainConfig = field(default_factory=TrainConfig)


def quick_options(**overrides) -> ReproduceOptions:
    """The same chain, small: a few epochs at 64 px on 60 images per class, 5 folds."""
    config = recipe_config(
        "fast", epochs=4, image_size=64, batch_size=32, max_per_class=60, val_fraction=0.0
    )
    return ReproduceOptions(
        n_splits=5, strict_folds=3, quick=True, train_config=config, **overrides
    )
