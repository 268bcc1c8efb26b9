"""Which images a run trains, validates and tests on (duplicate groups never straddle parts)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from blastscan import data as D
from blastscan.errors import BlastscanError
from blastscan.training.config import TrainConfig


@dataclass
class Split:
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def make_split(dataset: D.Dataset, config: TrainConfig, groups: np.ndarray) -> Split:
    """70/30 train/test split (or one outer fold), then a validation slice of the training part.

    Duplicate groups (exact and near, `data.find_duplicate_groups`) never straddle any of the
    three parts.
    """
    labels = dataset.labels
    if config.outer_folds:
        train, test = outer_fold_split(
            labels, groups, config.outer_folds, config.outer_fold, config.seed
        )
    else:
        train, test = D.stratified_group_split(labels, groups, config.test_size, config.seed)
    val = np.array([], dtype=np.int64)
    if config.val_fraction > 0:
        fit_part, val_part = D.stratified_group_split(
            labels[train], groups[train], config.val_fraction, config.seed + 1
        )
        train, val = train[fit_part], train[val_part]
    return Split(np.sort(train), np.sort(val), np.sort(test))


def outer_fold_split(
    labels, groups, n_folds: int, fold: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Train/test indices of one fold of a stratified group K-fold (the strict protocol's folds)."""
    from sklearn.model_selection import StratifiedGroupKFold

    if not 0 <= fold < n_folds:
        raise BlastscanError(f"outer fold {fold} is out of range for {n_folds} folds")
    largest = int(np.unique(labels, return_counts=True)[1].max(initial=0))
    n_groups = len(np.unique(groups))
    if n_folds < 2 or n_folds > min(largest, n_groups):
        raise BlastscanError(
            f"{n_folds} outer folds do not fit {n_groups} duplicate groups, largest class "
            f"{largest} images; use 2 to {max(2, min(largest, n_groups))} folds"
        )
    cv = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    train, test = list(cv.split(np.zeros(len(labels)), labels, groups))[fold]
    return train, test


def limit_per_class(dataset: D.Dataset, max_per_class: int | None, seed: int) -> D.Dataset:
    if not max_per_class:
        return dataset
    rng = np.random.default_rng(seed)
    keep = []
    for cls in range(len(dataset.classes)):
        idx = np.flatnonzero(dataset.labels == cls)
        keep.extend(rng.permutation(idx)[:max_per_class].tolist())
    return dataset.subset(sorted(keep))
