"""Fine-tuning DarkNet-19 with the paper's recipe (or a faster one), resumable.

One room per step of a run: `config` (what is asked), `splits` (which images), `epoch` (one
pass), `loop` (`train`: the whole run and its directory), `batchnorm` (the final population
statistics), `checkpoints`, `history`, `evaluate` (test metrics) and `distill` (a teacher).
"""

from blastscan.training.batchnorm import recompute_bn_statistics
from blastscan.training.checkpoints import (
    CHECKPOINT_FORMAT,
    RESTART,
    checkpoint_path,
    load_checkpoint,
    load_trained_model,
    save_checkpoint,
)
from blastscan.training.config import (
    AUGMENTED_BN_STATISTICS,
    CLASS_SORTED_BN_STATISTICS,
    RECIPES,
    RELIGHTING,
    SHUFFLED_BN_STATISTICS,
    TrainConfig,
    image_size_at,
    learning_rate,
    recipe_config,
)
from blastscan.training.distill import DISTILL_TEMPERATURE, distillation_loss, load_teacher
from blastscan.training.epoch import augmentation, train_one_epoch
from blastscan.training.evaluate import evaluate_logits, final_test_metrics
from blastscan.training.history import history_floats, plot_training_curves, write_history
from blastscan.training.loop import TrainResult, train
from blastscan.training.rundir import git_commit, prepare_run_dir
from blastscan.training.splits import Split, limit_per_class, make_split, outer_fold_split

__all__ = [
    "AUGMENTED_BN_STATISTICS",
    "CHECKPOINT_FORMAT",
    "CLASS_SORTED_BN_STATISTICS",
    "DISTILL_TEMPERATURE",
    "RECIPES",
    "RELIGHTING",
    "RESTART",
    "SHUFFLED_BN_STATISTICS",
    "Split",
    "TrainConfig",
    "TrainResult",
    "augmentation",
    "checkpoint_path",
    "distillation_loss",
    "evaluate_logits",
    "final_test_metrics",
    "git_commit",
    "history_floats",
    "image_size_at",
    "learning_rate",
    "limit_per_class",
    "load_checkpoint",
    "load_teacher",
    "load_trained_model",
    "make_split",
    "outer_fold_split",
    "plot_training_curves",
    "prepare_run_dir",
    "recipe_config",
    "recompute_bn_statistics",
    "save_checkpoint",
    "train",
    "train_one_epoch",
    "write_history",
]
