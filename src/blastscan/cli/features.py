"""`blastscan extract`, `select` and `evaluate`: deep features, mRMR and the classical classifiers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from blastscan.cli.common import CacheOpt, DataOpt, PrecisionOpt, friendly_errors
from blastscan.errors import BlastscanError

FeaturesArg = Annotated[Path, typer.Argument(help="Features file written by 'blastscan extract'.")]


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
        str,
        typer.Option(
            help="auto (onnxruntime on CPU, torch on GPU or in bf16), torch, onnx or onnx-int8 "
            "(static int8 calibrated on the run's training images; fast with VNNI or AMX)."
        ),
    ] = "auto",
    precision: PrecisionOpt = "auto",
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Write the 1000 deep features (pooled conv19) of every image, with labels, paths and sha256."""
    import numpy as np

    from blastscan.features import extract as run_extract
    from blastscan.runtime.distributed import is_main_process

    path = run_extract(
        model, data, out, batch_size, variant, cache_dir, device, not quiet, engine=engine,
        precision=precision,
    )  # fmt: skip
    if is_main_process():  # under torchrun rank 0 alone wrote the file
        with np.load(path) as f:
            how = f"{f['engine']}, precision {f['precision']} ({f['precision_reason']})"
        typer.echo(f"features written to {path} ({how})")


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
    scoring: Annotated[
        str,
        typer.Option(help="Score definition: mid-bound (default), mid or rank-scaled."),
    ] = "mid-bound",
    figure: Annotated[
        Path | None, typer.Option(help="Also draw the sorted scores (paper's Figure 5) here.")
    ] = None,
) -> None:
    """Rank deep features with mRMR (MATLAB fscmrmr's algorithm) and keep the best."""
    import time

    from blastscan.features import load_features
    from blastscan.outputs import atomic_write_json, check_output_file
    from blastscan.selection import ESTIMATORS, MRMR, SCORINGS, figure_format, plot_mrmr_scores

    check_output_file(out, (".json",))
    if figure:
        figure_format(figure)
    if estimator not in ESTIMATORS:
        raise BlastscanError(
            f"unknown --estimator {estimator!r}; choose one of {', '.join(ESTIMATORS)}"
        )
    if scoring not in SCORINGS:
        raise BlastscanError(f"unknown --scoring {scoring!r}; choose one of {', '.join(SCORINGS)}")
    data = load_features(features)
    start = time.perf_counter()
    selector = MRMR(
        threshold=None if n_features else threshold,
        n_features=n_features,
        estimator=estimator,
        scoring=scoring,
    )
    selector.fit(data["X"].astype("float64"), data["y"])
    kept = selector.get_support(indices=True)
    atomic_write_json(
        out,
        {
            "features": str(features),
            "estimator": estimator,
            "scoring": scoring,
            "threshold": threshold,
            "n_features": n_features,
            "selected": kept.tolist(),
            "ranking": selector.ranking_.tolist(),
            "scores": selector.scores_.tolist(),
            "seconds": time.perf_counter() - start,
        },
    )
    if figure:
        plot_mrmr_scores(selector.scores_, threshold or 0.0, figure)
    typer.echo(f"kept {len(kept)} of {data['X'].shape[1]} features; written to {out}")


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
    from blastscan.evaluation.protocols import paper_protocol
    from blastscan.features import load_features
    from blastscan.outputs import atomic_write_json, check_output_dir
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
