"""The strict protocol of `blastscan reproduce`: one CNN per outer fold, nothing leaks."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from blastscan.evaluation import classification_metrics
from blastscan.evaluation.protocols import strict_protocol
from blastscan.features import extract, load_features
from blastscan.reproduce.cnn import run_split_indices, train_cnn
from blastscan.reproduce.options import ReproduceOptions


def run_strict(
    data_dir,
    out: Path,
    options: ReproduceOptions,
    strict_dir: Path | None,
    cache_dir: Path | None,
    show_progress: bool,
    names: list[str],
) -> dict:
    """Train one CNN per outer fold (or reuse `strict_dir/fold{k}`), then evaluate in-fold."""
    strict_dir = Path(strict_dir) if strict_dir else out / "strict"
    fold_features, fold_logits, splits = [], [], []
    for k in range(options.strict_folds):
        fold_dir = strict_dir / f"fold{k}"
        fold_file = strict_dir / f"fold{k}.npz"
        config = replace(options.train_config, outer_folds=options.strict_folds, outer_fold=k)
        if not (fold_dir / "metrics.json").exists():
            train_cnn(data_dir, fold_dir, config, cache_dir, show_progress)
        if not fold_file.exists():
            extract(
                fold_dir,
                data_dir,
                fold_file,
                variant=config.variant,
                cache_dir=cache_dir,
                show_progress=show_progress,
                max_per_class=config.max_per_class,
                seed=config.seed,
            )
        f = load_features(fold_file)
        fold_features.append(f["X"].astype(np.float64))
        splits.append(run_split_indices(f["paths"], fold_dir))
        fold_logits.append(f["logits"])
        y = f["y"]
    cnn_pred = np.concatenate(
        [z[t].argmax(1) for z, (_, t) in zip(fold_logits, splits, strict=True)]
    )
    cnn_true = np.concatenate([y[t] for _, t in splits])
    cnn = {
        "split": f"{len(splits)} outer folds (pooled)",
        "train_fraction": 1 - 1 / len(splits),
        "n_train": int(np.mean([len(tr) for tr, _ in splits])),
        "n_test": int(len(cnn_true)),
        "seed": options.seed,
        "test_metrics": classification_metrics(cnn_true, cnn_pred, names),
    }
    return strict_protocol(
        fold_features,
        y,
        splits,
        names,
        cnn,
        presets=options.presets,
        threshold=options.threshold,
        n_features=options.n_features,
        seed=options.seed,
    )
