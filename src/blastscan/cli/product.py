"""The product's commands: `blastscan bundle`, `predict`, `explain`, `export` and `serve`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from blastscan.cli.common import (
    DEFAULT_CLASSIFIER,
    CacheOpt,
    PrecisionOpt,
    chosen_precision,
    friendly_errors,
    none_readable,
)
from blastscan.errors import BlastscanError


@friendly_errors
def bundle_cmd(
    run: Annotated[Path, typer.Argument(help="Training run directory.")],
    out: Annotated[Path, typer.Option("--out", help="Bundle folder to create.")],
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="The run's dataset: fits the OOD detector and --classifier on its training images "
            "(needed unless --cnn-only).",
        ),
    ] = None,
    classifier: Annotated[
        str,
        typer.Option(help="The deciding features+classifier head ('none': the CNN softmax)."),
    ] = DEFAULT_CLASSIFIER,
    cnn_only: Annotated[
        bool,
        typer.Option(
            "--cnn-only",
            help="No OOD detector and no classical head: a bundle that cannot flag images unlike "
            "the training smears (predict and serve warn about it).",
        ),
    ] = False,
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
    int8: Annotated[
        bool,
        typer.Option(
            "--int8",
            help="Also add model.int8.onnx (ONNX Runtime static int8, calibrated on the run's "
            "training images) for predict/serve --engine onnx-int8; needs --data.",
        ),
    ] = False,
    precision: PrecisionOpt = "auto",
    cache_dir: CacheOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Package a trained run as a model bundle (weights, bundle.json, model card, OOD, classifier)."""
    from blastscan.bundle import bundle_from_run

    if data is None and not cnn_only:
        raise BlastscanError(
            f"{run}: pass --data (the run's dataset) to fit the OOD detector and the deciding "
            "head, or --cnn-only for a bundle that cannot flag unfamiliar images"
        )
    if int8 and data is None:
        raise BlastscanError(
            f"{run}: --int8 is calibrated on the run's training images; pass --data"
        )
    chosen = None if cnn_only or classifier.lower() == "none" else classifier
    with chosen_precision(precision, None, quiet):
        path = bundle_from_run(
            run,
            out,
            None if cnn_only else data,
            which=checkpoint,
            classifier=chosen,
            n_features=n_features,
            max_per_class=max_per_class or None,
            quantile=quantile,
            overwrite=overwrite,
            show_progress=not quiet,
            cache_dir=cache_dir,
            int8=int8,
        )
    typer.echo(f"bundle written to {path}")


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
        str,
        typer.Option(
            help="torch, onnx (after blastscan export --onnx) or onnx-int8 (after blastscan "
            "bundle --int8; fast where the CPU has VNNI or AMX)."
        ),
    ] = "torch",
    head: Annotated[
        str, typer.Option(help="auto (classifier if bundled, else CNN), cnn or classical.")
    ] = "auto",
    batch_size: Annotated[int, typer.Option(help="Images per forward pass.", min=1)] = 32,
    precision: PrecisionOpt = "auto",
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar or table.")] = False,
) -> None:
    """Classify smear images with a bundle; unreadable files are listed, not fatal."""
    from rich.console import Console

    from blastscan.bundle import load_bundle
    from blastscan.outputs import check_output_file
    from blastscan.predict import csv_text, predict_sharded, results_table, write_results
    from blastscan.progress import progress_bar
    from blastscan.runtime.distributed import is_main_process

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
    if loaded.ood is None and is_main_process():
        typer.echo(
            f"warning: {bundle} has no OOD detector: images unlike the training smears still get "
            "a class (ood column: unchecked); rebuild it with blastscan bundle RUN --out DIR "
            "--data DATA",
            err=True,
        )
    with (
        chosen_precision(precision, None, quiet or not is_main_process()),
        progress_bar(not quiet and is_main_process()) as bar,
    ):
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
        raise BlastscanError(none_readable(run.unreadable))
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
        raise BlastscanError(none_readable(missing + problems))
    for item in done:
        shown = "" if item.explained_class == item.predicted else f", map of {item.explained_class}"
        typer.echo(
            f"{item.path}: {item.predicted} ({item.probability:.1%}{shown}) -> {item.figure}"
        )


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
    from blastscan.bundle.export import export_onnx

    if not onnx:
        raise BlastscanError("choose a format: --onnx")
    report = export_onnx(bundle, images)
    typer.echo(
        f"{report.path} ({report.exporter}); max abs error vs PyTorch on {report.image_source}: "
        f"features {report.max_abs_error_features:.2e}, logits {report.max_abs_error_logits:.2e}, "
        f"probabilities {report.max_abs_error_probabilities:.2e}"
    )


@friendly_errors
def serve(
    bundle: Annotated[Path, typer.Argument(help="Model bundle folder.")],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    max_concurrent: Annotated[int, typer.Option(help="Model calls at once.", min=1)] = 1,
    engine: Annotated[
        str, typer.Option(help="torch, onnx (after export --onnx) or onnx-int8 (bundle --int8).")
    ] = "torch",
    precision: PrecisionOpt = "auto",
) -> None:
    """Web page and JSON API (POST /api/predict, GET /health, /docs) over a bundle."""
    from blastscan.serve import serve as run_server

    with chosen_precision(precision, None):
        run_server(bundle, host, port, max_concurrent, engine)
