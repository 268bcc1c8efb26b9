"""`blastscan` command line: each command is a thin shell over the library API."""

from __future__ import annotations

import contextlib
import functools
import logging
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
            with _skipped_files_on_stderr():
                return func(*args, **kwargs)
        except BlastscanError as exc:
            typer.secho(f"error: {exc}", fg="red", err=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            hint = "rerun with --resume" if func.__name__ == "train" else "rerun the command"
            typer.secho(f"interrupted; completed files are kept, {hint}", err=True)
            raise typer.Exit(130) from None
        except MemoryError:
            typer.secho("error: out of memory; use a smaller --batch-size", fg="red", err=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


@contextlib.contextmanager
def _log_on_stderr(name: str, level: int, prefix: str = ""):
    """Logger `name`'s records from `level` up as lines on stderr while the block runs."""
    logger = logging.getLogger(name)
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter(prefix + "%(message)s"))
    logger.addHandler(handler)
    old_level = logger.level
    if logger.getEffectiveLevel() > level:
        logger.setLevel(level)
    propagate, logger.propagate = logger.propagate, False  # once, even under a root handler
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        logger.propagate = propagate


def _skipped_files_on_stderr():
    """The files a dataset scan skipped (unreadable images), one 'warning: ...' line each."""
    return _log_on_stderr("blastscan.data", logging.WARNING, "warning: ")


DataOpt = Annotated[
    Path, typer.Option("--data", help="Dataset folder (Kaggle layout or one folder per class).")
]
CacheOpt = Annotated[
    Path | None,
    typer.Option(
        help="Where decoded images are cached.",
        show_default="$BLASTSCAN_CACHE or ~/.cache/blastscan",
    ),
]


# ---------------------------------------------------------------- train


@app.command()
@friendly_errors
def train(
    data: DataOpt,
    out: Annotated[Path, typer.Option("--out", help="Run directory to create (or resume).")],
    recipe: Annotated[
        str,
        typer.Option(
            help="'paper' (Table 1 of the paper), 'fast' (one-cycle, 128 px) or 'robust' "
            "(fast under every lamp for 160 epochs: holds brightness x0.7-x1.3)."
        ),
    ] = "paper",
    epochs: Annotated[
        int | None,
        typer.Option(help="Epochs.", show_default="30 (paper), 17 (fast), 160 (robust)", min=1),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(help="Mini-batch size.", show_default="128 (paper), 64 (fast)", min=2),
    ] = None,
    lr: Annotated[
        float | None,
        typer.Option(
            help="Initial (paper) or peak (fast) learning rate.",
            show_default="0.01 (paper), 0.05 (fast)",
        ),
    ] = None,
    image_size: Annotated[
        int | None,
        typer.Option(
            help="Input size in px; 256 is what MATLAB's darknet19 takes.",
            show_default="224 (paper), 128 (fast)",
            min=32,
        ),
    ] = None,
    start_image_size: Annotated[
        int | None,
        typer.Option(
            help="Progressive resizing: start at this size and grow in steps of 32 px to "
            "--image-size by two thirds of the epochs (cheaper early epochs).",
            show_default="off",
            min=32,
        ),
    ] = None,
    color_jitter: Annotated[
        float | None,
        typer.Option(help="Brightness/contrast/stain jitter strength (0 = off).", show_default="0"),
    ] = None,
    brighten: Annotated[
        float | None,
        typer.Option(
            help="Show half the images brightened by up to 1 + this, clipped (0 = off); "
            "pairs with --input-norm darkpoint.",
            show_default="0",
            min=0.0,
        ),
    ] = None,
    darken: Annotated[
        float | None,
        typer.Option(
            help="Show the other half darkened by down to 1 - this (0 = off); with --brighten, "
            "a plain network learns to ignore the lamp.",
            show_default="0",
            min=0.0,
            max=0.95,
        ),
    ] = None,
    hue: Annotated[
        float | None,
        typer.Option(
            help="Rotate each image's hue by up to +-this many degrees (0 = off): another "
            "stain batch or white balance.",
            show_default="0",
            min=0.0,
            max=180.0,
        ),
    ] = None,
    recolour: Annotated[
        float | None,
        typer.Option(
            help="Give this share of the images the colour (channel means and s.d.s) of a "
            "random image of their batch (0 = off): stain and light stop telling the class.",
            show_default="0",
            min=0.0,
            max=1.0,
        ),
    ] = None,
    input_norm: Annotated[
        str,
        typer.Option(
            help="Parameter-free first layer: none; stain (standardise each image's colour); "
            "whitepoint (red and green against the image's darkest 5%; whitepoint:Q another "
            "share): blind to brightness, clipping included; darkpoint (every channel against "
            "its darkest 5%, nothing flattened: blind to darkening). See docs/robustness.md.",
        ),
    ] = "none",
    stain_norm: Annotated[
        bool,
        typer.Option("--stain-norm/--no-stain-norm", help="Same as --input-norm stain."),
    ] = False,
    pretrained: Annotated[
        Path | None,
        typer.Option(help="Darknet .weights or .safetensors to start from; default: from scratch."),
    ] = None,
    teacher: Annotated[
        Path | None,
        typer.Option(
            help="A trained run of the same --seed and data: the network also learns to give "
            "on each relit image the teacher's answer on the un-relit one (distillation; "
            "measured: it did not keep a relit fine-tune's clean accuracy, docs/results.md).",
            show_default="none",
        ),
    ] = None,
    teacher_weight: Annotated[
        float,
        typer.Option(help="Share of the distillation term in the loss.", min=0.0, max=1.0),
    ] = 0.5,
    seed: Annotated[int, typer.Option(help="Seed for split, shuffling and augmentation.")] = 0,
    variant: Annotated[
        str, typer.Option(help="Original or Segmented, in the Kaggle layout.")
    ] = "Original",
    val_fraction: Annotated[
        float,
        typer.Option(
            help="Part of the 70% held out to pick the 'best' checkpoint.", min=0.0, max=0.5
        ),
    ] = 0.1,
    outer_folds: Annotated[
        int,
        typer.Option(help="If > 0, hold out one fold of a stratified group K-fold instead of 30%."),
    ] = 0,
    outer_fold: Annotated[int, typer.Option(help="Which outer fold to hold out (0-based).")] = 0,
    max_per_class: Annotated[
        int | None,
        typer.Option(help="Use at most this many images per class (quick runs).", min=1),
    ] = None,
    compile: Annotated[
        bool, typer.Option("--compile/--no-compile", help="torch.compile the model.")
    ] = False,
    device: Annotated[
        str | None,
        typer.Option(help="cpu, cuda, cuda:1 ...", show_default="cuda if present, else cpu"),
    ] = None,
    cache_dir: CacheOpt = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue an interrupted run from its last checkpoint.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Fine-tune DarkNet-19 and write a run directory (config, history, figures, checkpoints, metrics)."""
    from blastscan.training import recipe_config
    from blastscan.training import train as run_training

    config = recipe_config(
        recipe,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        image_size=image_size,
        start_image_size=start_image_size,
        color_jitter=color_jitter,
        brighten=brighten,
        darken=darken,
        hue=hue,
        recolour=recolour,
        input_norm="stain" if stain_norm else input_norm,
        pretrained=str(pretrained) if pretrained else None,
        teacher=str(teacher) if teacher else None,
        teacher_weight=teacher_weight,
        seed=seed,
        variant=variant,
        val_fraction=val_fraction,
        max_per_class=max_per_class,
        compile=compile,
        device=device,
        outer_folds=outer_folds,
        outer_fold=outer_fold,
    )
    result = run_training(
        data, out, config, resume=resume, cache_dir=cache_dir, show_progress=not quiet
    )
    m = result.test_metrics
    if not m:  # a torchrun worker other than rank 0: rank 0 reports
        return
    typer.echo(
        f"test accuracy {m['accuracy']:.4f} on {m['n_test']} held-out images; "
        f"{result.seconds / 60:.1f} min; run directory {result.run_dir}"
    )


# ---------------------------------------------------------------- extract


@app.command()
@friendly_errors
def extract(
    model: Annotated[
        Path, typer.Option("--model", help="Training run directory (or a checkpoint).")
    ],
    data: DataOpt,
    out: Annotated[Path, typer.Option("--out", help="Features file to write (.npz).")],
    batch_size: Annotated[int, typer.Option(help="Images per forward pass.", min=1)] = 64,
    variant: Annotated[
        str, typer.Option(help="Original or Segmented, in the Kaggle layout.")
    ] = "Original",
    device: Annotated[
        str | None, typer.Option(help="cpu, cuda ...", show_default="cuda if present, else cpu")
    ] = None,
    cache_dir: CacheOpt = None,
    engine: Annotated[
        str, typer.Option(help="auto (onnxruntime on CPU, torch on GPU), torch or onnx.")
    ] = "auto",
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Write the 1000 deep features (pooled conv19) of every image, with labels, paths and sha256."""
    from blastscan.distributed import is_main_process
    from blastscan.features import extract as run_extract

    path = run_extract(
        model, data, out, batch_size, variant, cache_dir, device, not quiet, engine=engine
    )
    if is_main_process():  # under torchrun rank 0 alone wrote the file
        typer.echo(f"features written to {path}")


# ---------------------------------------------------------------- select / evaluate

FeaturesArg = Annotated[Path, typer.Argument(help="Features file written by 'blastscan extract'.")]


@app.command()
@friendly_errors
def select(
    features: FeaturesArg,
    out: Annotated[
        Path, typer.Option("--out", help="JSON file for ranking, scores and the kept features.")
    ],
    threshold: Annotated[
        float | None, typer.Option(help="Keep features scoring above this (paper: 0.25).")
    ] = 0.25,
    n_features: Annotated[
        int | None, typer.Option(help="Keep the top N instead of a threshold.", min=1)
    ] = None,
    estimator: Annotated[
        str, typer.Option(help="Mutual information estimator: adaptive (fscmrmr's) or plugin.")
    ] = "adaptive",
    figure: Annotated[
        Path | None, typer.Option(help="Also draw the sorted scores (paper's Figure 5) here.")
    ] = None,
) -> None:
    """Rank deep features with mRMR (MATLAB fscmrmr's algorithm) and keep the best."""
    import time

    from blastscan.features import load_features
    from blastscan.io import atomic_write_json, check_output_file
    from blastscan.selection import ESTIMATORS, MRMR, figure_format, plot_mrmr_scores

    check_output_file(out, (".json",))
    if figure:
        figure_format(figure)
    if estimator not in ESTIMATORS:
        raise BlastscanError(
            f"unknown --estimator {estimator!r}; choose one of {', '.join(ESTIMATORS)}"
        )
    data = load_features(features)
    start = time.perf_counter()
    selector = MRMR(
        threshold=None if n_features else threshold, n_features=n_features, estimator=estimator
    )
    selector.fit(data["X"].astype("float64"), data["y"])
    kept = selector.get_support(indices=True)
    scores = [s if s == s and abs(s) != float("inf") else str(s) for s in selector.scores_.tolist()]
    atomic_write_json(
        out,
        {
            "features": str(features),
            "estimator": estimator,
            "threshold": threshold,
            "n_features": n_features,
            "selected": kept.tolist(),
            "ranking": selector.ranking_.tolist(),
            "scores": scores,
            "seconds": time.perf_counter() - start,
        },
    )
    if figure:
        plot_mrmr_scores(selector.scores_, threshold or 0.0, figure)
    typer.echo(f"kept {len(kept)} of {data['X'].shape[1]} features; written to {out}")


@app.command()
@friendly_errors
def evaluate(
    features: FeaturesArg,
    out: Annotated[Path, typer.Option("--out", help="Directory for metrics.json and the report.")],
    protocol: Annotated[
        str,
        typer.Option(
            help="paper: mRMR on all data before CV (as published); in-fold: mRMR inside each fold."
        ),
    ] = "paper",
    presets: Annotated[
        list[str] | None,
        typer.Option("--preset", help="Classifier preset(s); 'all' for every preset."),
    ] = None,
    threshold: Annotated[float, typer.Option(help="mRMR score threshold.")] = 0.25,
    folds: Annotated[int, typer.Option(help="Cross-validation folds.", min=2)] = 10,
    seed: Annotated[int, typer.Option(help="Seed of the fold assignment.")] = 0,
) -> None:
    """Cross-validate the classical classifiers on a features file, all vs mRMR-selected features."""
    import time

    import numpy as np

    from blastscan.classify import PRESETS
    from blastscan.evaluation import evaluate_feature_sets
    from blastscan.features import load_features
    from blastscan.io import atomic_write_json, check_output_dir
    from blastscan.protocols import paper_protocol
    from blastscan.report import write_report
    from blastscan.selection import MRMR

    check_output_dir(out)
    data = load_features(features)
    X, y = data["X"].astype(np.float64), data["y"]
    largest = int(np.bincount(y).max())
    if folds > largest:
        raise BlastscanError(
            f"{features}: --folds {folds} is more than the {largest} images of the "
            f"largest class; use --folds {largest} or fewer"
        )
    names = (
        list(data["display_names"]) if "display_names" in data else [str(c) for c in np.unique(y)]
    )
    chosen = list(PRESETS) if presets and "all" in presets else presets
    if protocol == "paper":
        block, _ = paper_protocol(
            X, y, names, presets=chosen, threshold=threshold, n_splits=folds, seed=seed
        )
    elif protocol == "in-fold":
        classical = evaluate_feature_sets(
            X,
            y,
            names,
            chosen,
            selector_factory=lambda: MRMR(threshold=threshold),
            n_splits=folds,
            seed=seed,
        )
        block = {
            "title": "Features file, mRMR inside each fold",
            "classical": classical,
            "leakage": {
                "cnn_train_images_in_test_folds": True,
                "selection_fitted_on_all_data": False,
            },
            "selection": {"method": "mRMR", "threshold": threshold},
        }
    else:
        raise BlastscanError(f"unknown protocol {protocol!r}; use paper or in-fold")
    metrics = {
        "schema_version": 1,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "dataset": {"name": str(features), "n_images": int(len(y)), "class_names": names},
        "protocols": {protocol: block},
    }
    atomic_write_json(Path(out) / "metrics.json", metrics)
    write_report(Path(out), metrics, {})
    for name, entry in block["classical"]["presets"].items():
        accuracies = "  ".join(
            f"{k} {v['metrics']['accuracy']['value']:.2%}" for k, v in entry["feature_sets"].items()
        )
        typer.echo(f"{name:32s} {accuracies}")
    typer.echo(f"report: {Path(out) / 'report.md'}")


# ---------------------------------------------------------------- reproduce


@app.command()
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


# ---------------------------------------------------------------- bundle, predict, explain, export, serve


@app.command("bundle")
@friendly_errors
def bundle_cmd(
    run: Annotated[Path, typer.Argument(help="Training run directory.")],
    out: Annotated[Path, typer.Option("--out", help="Bundle folder to create.")],
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="The run's dataset: fits the OOD detector (and --classifier) on its training images.",
        ),
    ] = None,
    classifier: Annotated[
        str | None,
        typer.Option(help="Add a features+classifier head, e.g. 'Cubic SVM' (needs --data)."),
    ] = None,
    n_features: Annotated[
        int | None,
        typer.Option(
            help="mRMR features kept for the classifier.", show_default="score > 0.25", min=1
        ),
    ] = None,
    checkpoint: Annotated[str, typer.Option(help="final, last or best.")] = "final",
    max_per_class: Annotated[
        int,
        typer.Option(
            help="Training images per class used for OOD and classifier fitting (0 = all).",
            min=0,
        ),
    ] = 200,
    quantile: Annotated[
        float,
        typer.Option(
            help="OOD thresholds: about 1 - this of held-out training-set images get flagged.",
            min=0.5,
            max=1.0,
        ),
    ] = 0.99,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing bundle.")
    ] = False,
    cache_dir: CacheOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Package a trained run as a model bundle (weights, bundle.json, model card, OOD, classifier)."""
    from blastscan.bundle import bundle_from_run

    path = bundle_from_run(
        run,
        out,
        data,
        which=checkpoint,
        classifier=classifier,
        n_features=n_features,
        max_per_class=max_per_class or None,
        quantile=quantile,
        overwrite=overwrite,
        show_progress=not quiet,
        cache_dir=cache_dir,
    )
    typer.echo(f"bundle written to {path}")


@app.command()
@friendly_errors
def predict(
    bundle: Annotated[Path, typer.Argument(help="Model bundle folder.")],
    images: Annotated[
        list[Path], typer.Argument(help="Image files and/or folders (searched recursively).")
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Write results to FILE.csv or FILE.json; '-' writes CSV to stdout."
        ),
    ] = None,
    engine: Annotated[
        str, typer.Option(help="torch or onnx (after blastscan export --onnx).")
    ] = "torch",
    head: Annotated[
        str, typer.Option(help="auto (classifier if bundled, else CNN), cnn or classical.")
    ] = "auto",
    batch_size: Annotated[int, typer.Option(help="Images per forward pass.", min=1)] = 32,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar or table.")] = False,
) -> None:
    """Classify smear images with a bundle; unreadable files are listed, not fatal."""
    from rich.console import Console

    from blastscan.bundle import load_bundle
    from blastscan.distributed import is_main_process
    from blastscan.io import check_output_file
    from blastscan.predict import csv_text, predict_sharded, results_table, write_results
    from blastscan.progress import progress_bar

    to_stdout = out == Path("-")
    if quiet and out is None:
        raise BlastscanError(
            "--quiet without --out would show no prediction; pass --out FILE.csv, "
            "FILE.json or - (CSV on stdout)"
        )
    if out and not to_stdout:
        check_output_file(out, (".csv", ".json"))
    loaded = load_bundle(bundle)
    loaded.resolve_head(head)  # a head the bundle lacks fails here, not after the first batch
    with progress_bar(not quiet and is_main_process()) as bar:
        task = bar.add_task("predict", total=None)
        run = predict_sharded(
            loaded,
            images,
            batch_size,
            engine,
            head,
            on_progress=lambda n: bar.advance(task, n),
            on_total=lambda n: bar.update(task, total=n),
        )
    if run is None:  # another torchrun rank: rank 0 writes the merged results
        return
    if not quiet and not to_stdout:  # without --out the table is the only record: every row
        Console().print(results_table(run, limit=len(run.rows) if out is None else 50))
    if not run.rows:  # before writing: a results file without a result would read as success
        raise BlastscanError(_none_readable(run.unreadable))
    if to_stdout:
        sys.stdout.write(csv_text(run))
    elif out:
        write_results(out, run, loaded)
    rate = len(run.rows) / run.seconds if run.seconds else 0.0
    typer.echo(
        f"{len(run.rows)} predicted, {len(run.unreadable)} unreadable, {rate:.1f} images/s"
        + (f"; results in {out}" if out and not to_stdout else ""),
        err=to_stdout,
    )


def _none_readable(unreadable: list[tuple[str, str]]) -> str:
    """The error when every input failed: the first file and why, and how many more."""
    if not unreadable:
        return "no readable image among the inputs"
    path, reason = unreadable[0]
    more = f" (and {len(unreadable) - 1} more unreadable)" if len(unreadable) > 1 else ""
    return f"no readable image among the inputs: {path}: {reason}{more}"


@app.command()
@friendly_errors
def explain(
    bundle: Annotated[Path, typer.Argument(help="Model bundle folder.")],
    images: Annotated[list[Path], typer.Argument(help="Image files and/or folders.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the PNG overlays and figures.")],
    target: Annotated[
        str | None, typer.Option(help="Class to explain (default: the predicted one).")
    ] = None,
) -> None:
    """Grad-CAM heat maps: an overlay and an original | heat map | overlay figure per image."""
    from blastscan.explain import explain_files
    from blastscan.predict import collect_images

    files, missing = collect_images(images)
    done, problems = explain_files(bundle, files, out, target)
    for path, reason in missing + problems:
        typer.secho(f"skipped {path}: {reason}", fg="yellow", err=True)
    if not done:
        raise BlastscanError(_none_readable(missing + problems))
    for item in done:
        shown = "" if item.explained_class == item.predicted else f", map of {item.explained_class}"
        typer.echo(
            f"{item.path}: {item.predicted} ({item.probability:.1%}{shown}) -> {item.figure}"
        )


@app.command()
@friendly_errors
def export(
    bundle: Annotated[Path, typer.Argument(help="Model bundle folder.")],
    onnx: Annotated[
        bool, typer.Option("--onnx", help="Export the CNN (features, logits) to model.onnx.")
    ] = False,
    images: Annotated[
        list[Path] | None,
        typer.Option(
            "--image",
            help="Images to check the export on (repeatable).",
            show_default="synthetic smear-like images",
        ),
    ] = None,
) -> None:
    """Export the bundle's CNN to ONNX, checked against PyTorch, and record it in bundle.json."""
    from blastscan.export import export_onnx

    if not onnx:
        raise BlastscanError("choose a format: --onnx")
    report = export_onnx(bundle, images)
    typer.echo(
        f"{report.path} ({report.exporter}); max abs error vs PyTorch on {report.image_source}: "
        f"features {report.max_abs_error_features:.2e}, logits {report.max_abs_error_logits:.2e}, "
        f"probabilities {report.max_abs_error_probabilities:.2e}"
    )


@app.command()
@friendly_errors
def serve(
    bundle: Annotated[Path, typer.Argument(help="Model bundle folder.")],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    max_concurrent: Annotated[int, typer.Option(help="Model calls at once.", min=1)] = 1,
) -> None:
    """Web page and JSON API (POST /api/predict, GET /health, /docs) over a bundle."""
    from blastscan.serve import serve as run_server

    run_server(bundle, host, port, max_concurrent)


def _perturbation_grid(names: list[str]) -> dict[str, tuple[float, ...]]:
    """The named perturbations at their default strengths; a one-line error for a wrong name."""
    from blastscan.robustness import DEFAULT_GRID

    unknown = sorted(set(names) - set(DEFAULT_GRID))
    if unknown:
        raise BlastscanError(
            f"unknown perturbation(s) {unknown}; choose from {sorted(DEFAULT_GRID)}"
        )
    return {k: v for k, v in DEFAULT_GRID.items() if k in names}


@app.command()
@friendly_errors
def robustness(
    run: Annotated[Path, typer.Argument(help="Training run directory (its held-out test images).")],
    data: Annotated[Path, typer.Option(help="Dataset folder the run was trained on.")],
    out: Annotated[Path, typer.Option(help="Where robustness.json/.md and the figure go.")],
    perturbation: Annotated[
        list[str] | None,
        typer.Option(
            help="Only these perturbations (repeatable): brightness, contrast, hue, stain, "
            "blur, jpeg.",
            show_default="all, each at its default strengths",
        ),
    ] = None,
    bundle: Annotated[
        Path | None,
        typer.Option(help="Score this bundle of the run (its features+classifier head)."),
    ] = None,
    head: Annotated[str, typer.Option(help="With --bundle: auto, cnn or classical.")] = "auto",
    colour_swap: Annotated[
        bool,
        typer.Option(
            help="Also score every test image in each other class's colour (the mean of the "
            "run's training images of that class): does the model read stain and light?"
        ),
    ] = True,
    batch_size: Annotated[int, typer.Option(min=1)] = 64,
    device: Annotated[str | None, typer.Option(help="cpu, cuda ...")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No line per condition.")] = False,
) -> None:
    """Accuracy (95% intervals) under brightness, contrast, hue, stain, blur and JPEG shifts,
    and in each class's colour."""
    from blastscan.robustness import DEFAULT_GRID, run_robustness

    grid = _perturbation_grid(perturbation or list(DEFAULT_GRID))
    with _log_on_stderr("blastscan.robustness", logging.WARNING if quiet else logging.INFO):
        result = run_robustness(
            run, data, out, perturbations=grid, batch_size=batch_size, device=device,
            bundle=bundle, head=head, colour_swap=colour_swap,
        )  # fmt: skip
    summary = result["summary"]
    line = f"{result['scored']}: clean {summary['clean_accuracy']:.1%}"
    if bright := summary.get("brightness_0.7_1.3_worst"):
        line += f"; brightness x0.7-x1.3 worst {bright['accuracy']:.1%} (x{bright['strength']:g})"
    if worst := summary.get("worst"):
        line += f"; worst {worst['accuracy']:.1%} ({worst['perturbation']} {worst['strength']:g})"
    if "colour_swap_other_colour" in summary:
        line += (
            f"; in another class's colour {summary['colour_swap_other_colour']:.1%} "
            f"(follows it {summary['colour_swap_follows_the_colour']:.1%})"
        )
    typer.echo(line)
    typer.echo(f"-> {Path(out) / 'robustness.md'}")


@app.command()
@friendly_errors
def compare(
    run_a: Annotated[Path, typer.Argument(help="First training run (A).")],
    run_b: Annotated[Path, typer.Argument(help="Second run (B), same seed and data as A.")],
    data: Annotated[Path, typer.Option(help="Dataset folder both runs were trained on.")],
    out: Annotated[Path, typer.Option(help="Where compare.json/.md go.")],
    perturbation: Annotated[
        list[str] | None,
        typer.Option(
            help="Also compare under these perturbations (repeatable), at their default "
            "strengths: brightness, contrast, hue, stain, blur, jpeg.",
            show_default="clean images only",
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 64,
    device: Annotated[str | None, typer.Option(help="cpu, cuda ...")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No line per condition.")] = False,
) -> None:
    """Two runs image by image on their shared test images: accuracies and McNemar's exact test."""
    from blastscan.compare import compare_runs

    grid = _perturbation_grid(perturbation or [])
    with _log_on_stderr("blastscan.compare", logging.WARNING if quiet else logging.INFO):
        result = compare_runs(
            run_a, run_b, data, out, perturbations=grid, batch_size=batch_size, device=device
        )
    clean = result["rows"][0]
    typer.echo(
        f"clean: A {clean['accuracy_a']['value']:.2%}, B {clean['accuracy_b']['value']:.2%} "
        f"(only A right {clean['a_only']}, only B right {clean['b_only']}, "
        f"McNemar p = {clean['p_value']:.3g})"
    )
    typer.echo(f"-> {Path(out) / 'compare.md'}")


def main() -> None:  # pragma: no cover - console entry point
    app(prog_name="blastscan")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
