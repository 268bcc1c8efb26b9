"""`blastscan reproduce`: the paper's whole method into one run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from blastscan.cli.common import CacheOpt, DataOpt, friendly_errors
from blastscan.errors import BlastscanError


@friendly_errors
def reproduce(
    data: DataOpt,
    out: Annotated[Path, typer.Option("--out", help="Run directory for everything (resumable).")],
    quick: Annotated[
        bool, typer.Option("--quick", help="The same chain, small: a few minutes on a CPU.")
    ] = False,
    protocol: Annotated[
        list[str], typer.Option(help="paper, holdout, strict, group; repeat for several.")
    ] = ["paper", "holdout"],  # noqa: B006
    recipe: Annotated[
        str, typer.Option(help="CNN training recipe: paper, fast or robust.")
    ] = "paper",
    epochs: Annotated[int | None, typer.Option(help="Override the recipe's epochs.")] = None,
    image_size: Annotated[
        int | None, typer.Option(help="Override the recipe's input size.")
    ] = None,
    presets: Annotated[
        list[str] | None,
        typer.Option(
            "--preset",
            help="Classifier preset(s); default: the paper's SVM/ANN/KNN/Naive Bayes rows.",
        ),
    ] = None,
    threshold: Annotated[
        float, typer.Option(help="Keep features with mRMR score above this.")
    ] = 0.25,
    n_features: Annotated[
        int | None,
        typer.Option(
            help="Keep the top N mRMR features instead of a threshold (paper: 521).", min=1
        ),
    ] = None,
    folds: Annotated[
        int, typer.Option(help="Cross-validation folds of the paper protocol.", min=2)
    ] = 10,
    strict_folds: Annotated[
        int, typer.Option(help="Outer folds (one CNN each) of the strict protocol.", min=2)
    ] = 5,
    cnn: Annotated[
        Path | None, typer.Option(help="Reuse this training run instead of training a CNN.")
    ] = None,
    features: Annotated[
        Path | None, typer.Option(help="Reuse this features file instead of extracting.")
    ] = None,
    strict_dir: Annotated[
        Path | None, typer.Option(help="Reuse fold{k}/ runs and fold{k}.npz features from here.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for splits and training.")] = 0,
    variant: Annotated[
        str,
        typer.Option(
            help="Image set in the Kaggle layout: Original or Segmented. With --cnn, features "
            "of this set come from that CNN, whatever set it was trained on."
        ),
    ] = "Original",
    cache_dir: CacheOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bars.")] = False,
) -> None:
    """Run the paper's whole method (train, extract, select, classify, report) into one run directory."""
    import logging
    from dataclasses import replace

    from blastscan.data import KAGGLE_VARIANTS
    from blastscan.reproduce import ReproduceOptions, quick_options
    from blastscan.reproduce import reproduce as run
    from blastscan.training import recipe_config

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    kwargs = dict(
        protocols=tuple(protocol),
        presets=presets or None,
        threshold=threshold,
        n_features=n_features,
        seed=seed,
    )
    if quick:
        options = quick_options(**kwargs)
    else:
        config = recipe_config(recipe, epochs=epochs, image_size=image_size, seed=seed)
        options = ReproduceOptions(
            n_splits=folds, strict_folds=strict_folds, train_config=config, **kwargs
        )
    if quick and (epochs or image_size):
        options.train_config = replace(
            options.train_config,
            epochs=epochs or options.train_config.epochs,
            image_size=image_size or options.train_config.image_size,
        )
    if variant not in KAGGLE_VARIANTS:
        raise BlastscanError(f"--variant {variant}: choose one of {', '.join(KAGGLE_VARIANTS)}")
    options.train_config = replace(options.train_config, variant=variant)
    run_dir = run(
        data,
        out,
        options,
        cnn_dir=cnn,
        features_path=features,
        cache_dir=cache_dir,
        show_progress=not quiet,
        strict_dir=strict_dir,
    )
    typer.echo(f"report: {run_dir / 'report.html'}  metrics: {run_dir / 'metrics.json'}")
