"""`blastscan` command line: each command is a thin shell over the library API."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from blastscan.errors import BlastscanError

app = typer.Typer(
    help="Detect acute lymphoblastic leukemia and its B-cell subtypes in blood smear images.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
F = TypeVar("F", bound=Callable)


@app.callback()
def _group() -> None:
    """Detect acute lymphoblastic leukemia and its B-cell subtypes in blood smear images."""


def friendly_errors(func: F) -> F:
    """Turn a user-fixable problem into one line on stderr and exit code 2, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except BlastscanError as exc:
            typer.secho(f"error: {exc}", fg="red", err=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            typer.secho("interrupted; completed files are kept, rerun with --resume", err=True)
            raise typer.Exit(130) from None
        except MemoryError:
            typer.secho("error: out of memory; use a smaller --batch-size", fg="red", err=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


DataOpt = Annotated[Path, typer.Option("--data", help="Dataset folder (Kaggle layout or one folder per class).")]


# ---------------------------------------------------------------- train


@app.command()
@friendly_errors
def train(
    data: DataOpt,
    out: Annotated[Path, typer.Option("--out", help="Run directory to create (or resume).")],
    recipe: Annotated[str, typer.Option(help="'paper' (Table 1 of the paper) or 'fast' (one-cycle, progressive resizing).")] = "paper",
    epochs: Annotated[int | None, typer.Option(help="Epochs.", show_default="30 (paper), 14 (fast)")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Mini-batch size.", show_default="128 (paper), 64 (fast)")] = None,
    lr: Annotated[float | None, typer.Option(help="Initial (paper) or peak (fast) learning rate.", show_default="0.01 (paper), 0.05 (fast)")] = None,
    image_size: Annotated[int | None, typer.Option(help="Input size in px; 256 is what MATLAB's darknet19 takes.", show_default="224 (paper), 128 (fast)")] = None,
    color_jitter: Annotated[float | None, typer.Option(help="Brightness/contrast/stain jitter strength (0 = off).", show_default="0")] = None,
    pretrained: Annotated[Path | None, typer.Option(help="Darknet .weights or .safetensors to start from; default: from scratch.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for split, shuffling and augmentation.")] = 0,
    variant: Annotated[str, typer.Option(help="Original or Segmented, in the Kaggle layout.")] = "Original",
    val_fraction: Annotated[float, typer.Option(help="Part of the 70% held out to pick the 'best' checkpoint.")] = 0.1,
    outer_folds: Annotated[int, typer.Option(help="If > 0, hold out one fold of a stratified group K-fold instead of 30%.")] = 0,
    outer_fold: Annotated[int, typer.Option(help="Which outer fold to hold out (0-based).")] = 0,
    max_per_class: Annotated[int | None, typer.Option(help="Use at most this many images per class (quick runs).")] = None,
    compile: Annotated[bool, typer.Option("--compile/--no-compile", help="torch.compile the model.")] = False,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:1 ...", show_default="cuda if present, else cpu")] = None,
    cache_dir: Annotated[Path | None, typer.Option(help="Where decoded images are cached.", show_default="$BLASTSCAN_CACHE or ~/.cache/blastscan")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run from its last checkpoint.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Fine-tune DarkNet-19 and write a run directory (config, history, figures, checkpoints, metrics)."""
    from blastscan.training import recipe_config
    from blastscan.training import train as run_training

    config = recipe_config(
        recipe, epochs=epochs, batch_size=batch_size, lr=lr, image_size=image_size,
        color_jitter=color_jitter, pretrained=str(pretrained) if pretrained else None, seed=seed,
        variant=variant, val_fraction=val_fraction, max_per_class=max_per_class, compile=compile,
        device=device, outer_folds=outer_folds, outer_fold=outer_fold,
    )  # fmt: skip
    result = run_training(data, out, config, resume=resume, cache_dir=cache_dir, show_progress=not quiet)
    m = result.test_metrics
    typer.echo(
        f"test accuracy {m['accuracy']:.4f} on {m['n_test']} held-out images; "
        f"{result.seconds / 60:.1f} min; run directory {result.run_dir}"
    )


# ---------------------------------------------------------------- extract


@app.command()
@friendly_errors
def extract(
    model: Annotated[Path, typer.Option("--model", help="Training run directory (or a checkpoint).")],
    data: DataOpt,
    out: Annotated[Path, typer.Option("--out", help="Features file to write (.npz).")],
    batch_size: Annotated[int, typer.Option(help="Images per forward pass.")] = 64,
    variant: Annotated[str, typer.Option(help="Original or Segmented, in the Kaggle layout.")] = "Original",
    device: Annotated[str | None, typer.Option(help="cpu, cuda ...", show_default="cuda if present, else cpu")] = None,
    cache_dir: Annotated[Path | None, typer.Option(help="Where decoded images are cached.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Write the 1000 deep features (pooled conv19) of every image, with labels, paths and sha256."""
    from blastscan.features import extract as run_extract

    path = run_extract(model, data, out, batch_size, variant, cache_dir, device, not quiet)
    typer.echo(f"features written to {path}")


# ---------------------------------------------------------------- reproduce


@app.command()
@friendly_errors
def reproduce(
    data: DataOpt,
    out: Annotated[Path, typer.Option("--out", help="Run directory for everything (resumable).")],
    quick: Annotated[bool, typer.Option("--quick", help="The same chain, small: a few minutes on a CPU.")] = False,
    protocol: Annotated[list[str], typer.Option(help="paper, holdout, strict; repeat for several.")] = ["paper", "holdout"],  # noqa: B006
    recipe: Annotated[str, typer.Option(help="CNN training recipe: paper or fast.")] = "paper",
    epochs: Annotated[int | None, typer.Option(help="Override the recipe's epochs.")] = None,
    image_size: Annotated[int | None, typer.Option(help="Override the recipe's input size.")] = None,
    presets: Annotated[list[str] | None, typer.Option("--preset", help="Classifier preset(s); default: the paper's SVM/ANN/KNN/Naive Bayes rows.")] = None,
    threshold: Annotated[float, typer.Option(help="Keep features with mRMR score above this.")] = 0.25,
    folds: Annotated[int, typer.Option(help="Cross-validation folds of the paper protocol.")] = 10,
    strict_folds: Annotated[int, typer.Option(help="Outer folds (one CNN each) of the strict protocol.")] = 5,
    cnn: Annotated[Path | None, typer.Option(help="Reuse this training run instead of training a CNN.")] = None,
    features: Annotated[Path | None, typer.Option(help="Reuse this features file instead of extracting.")] = None,
    strict_dir: Annotated[Path | None, typer.Option(help="Reuse fold{k}/ runs and fold{k}.npz features from here.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for splits and training.")] = 0,
    cache_dir: Annotated[Path | None, typer.Option(help="Where decoded images are cached.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bars.")] = False,
) -> None:
    """Run the paper's whole method (train, extract, select, classify, report) into one run directory."""
    import logging
    from dataclasses import replace

    from blastscan.reproduce import ReproduceOptions, quick_options
    from blastscan.reproduce import reproduce as run
    from blastscan.training import recipe_config

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    kwargs = dict(protocols=tuple(protocol), presets=presets or None, threshold=threshold, seed=seed)
    if quick:
        options = quick_options(**kwargs)
    else:
        config = recipe_config(recipe, epochs=epochs, image_size=image_size, seed=seed)
        options = ReproduceOptions(n_splits=folds, strict_folds=strict_folds, train_config=config, **kwargs)
    if quick and (epochs or image_size):
        options.train_config = replace(options.train_config, epochs=epochs or options.train_config.epochs,
                                       image_size=image_size or options.train_config.image_size)  # fmt: skip
    run_dir = run(data, out, options, cnn_dir=cnn, features_path=features, cache_dir=cache_dir,
                  show_progress=not quiet, strict_dir=strict_dir)  # fmt: skip
    typer.echo(f"report: {run_dir / 'report.html'}  metrics: {run_dir / 'metrics.json'}")


def main() -> None:  # pragma: no cover - console entry point
    app(prog_name="blastscan")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
