"""`blastscan train`: fine-tune DarkNet-19 into a run directory, then write its CNN-only bundle."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from blastscan.cli.common import (
    DEFAULT_CLASSIFIER,
    CacheOpt,
    DataOpt,
    PrecisionOpt,
    chosen_precision,
    friendly_errors,
)
from blastscan.errors import BlastscanError


@friendly_errors
def train(
    data: DataOpt,
    out: Annotated[Path, typer.Option("--out", help="Run directory to create (or resume).")],
    recipe: Annotated[
        str,
        typer.Option(
            help="'paper': Table 1 of the paper, to reproduce it. 'fast': one-cycle at 128 px, "
            "the most accurate on images from this dataset's own camera (99.4-99.6%) in the "
            "CPU budget, but it reads the stain colour and the lamp (shift battery mean 78%). "
            "'gated': fast with a colour gate (--input-norm colour-gated): colour is read only "
            "for images that look like the training lab's, the cells' darkness, chroma and shape "
            "for all; half the images trained as they are, half under lamp, hue, stain, "
            "saturation, optics, camera and slide shifts. The pick for another lab's slides: "
            "battery mean 96.6-97.6% (fast 73-78%), hue +-30 degrees >= 97.5%, clean "
            "98.4-99.2% (fast 99.0-99.6%), 1.2x fast's time. 'shift': fast blind to hue and lamp "
            "(value-chroma) under the same shifts, 20 epochs: battery mean 97.8%, clean "
            "97.85-98.77%, 1.27x fast's time. 'robust': fast under every lamp for 160 epochs "
            "(holds brightness x0.7-x1.3; about 9x fast's time). See docs/robustness.md."
        ),
    ] = "paper",
    epochs: Annotated[
        int | None,
        typer.Option(
            help="Epochs.",
            show_default="30 (paper), 17 (fast, gated), 20 (shift), 160 (robust)",
            min=1,
        ),
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
        str | None,
        typer.Option(
            help="First layer: none; stain (standardise each image's colour); "
            "whitepoint (red and green against the image's darkest 5%; whitepoint:Q another "
            "share): blind to brightness, clipping included; darkpoint (every channel against "
            "its darkest 5%, nothing flattened: blind to darkening); value-chroma (each "
            "pixel's max, min and chroma: blind to hue); colour-gated (value-chroma, plus the "
            "colour where the image looks like the training lab's; a batch-norm per kind). "
            "See docs/robustness.md.",
            show_default="the recipe's (none; value-chroma for shift, colour-gated for gated)",
        ),
    ] = None,
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
    precision: PrecisionOpt = "auto",
    cache_dir: CacheOpt = None,
    bundle_classifier: Annotated[
        str,
        typer.Option(
            help="The bundle's deciding head, fitted with mRMR on the run's training images "
            "('none': the CNN softmax decides). The bundle always gets the OOD detector.",
        ),
    ] = DEFAULT_CLASSIFIER,
    cnn_only_bundle: Annotated[
        bool,
        typer.Option(
            "--cnn-only-bundle",
            help="Write RUN/bundle without OOD detector or classical head (it cannot flag "
            "images unlike the training smears; predict and serve warn about it).",
        ),
    ] = False,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue an interrupted run from its last checkpoint.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Fine-tune DarkNet-19 and write a run directory (config, history, figures, checkpoints, metrics)."""
    from blastscan.classify import get_preset
    from blastscan.runtime.distributed import is_main_process
    from blastscan.training import recipe_config
    from blastscan.training import train as run_training

    if bundle_classifier.lower() != "none":
        get_preset(bundle_classifier)  # a wrong name fails now, not after the training
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
        precision=precision,
    )
    result = run_training(
        data, out, config, resume=resume, cache_dir=cache_dir, show_progress=not quiet
    )
    if is_main_process():  # under torchrun rank 0 alone writes it
        classifier = None if bundle_classifier.lower() == "none" else bundle_classifier
        with chosen_precision(precision, device, quiet=True):  # train already said which
            write_train_bundle(
                result.run_dir, data, classifier, cnn_only_bundle, cache_dir, not quiet
            )
    m = result.test_metrics
    if not m:  # a torchrun worker other than rank 0: rank 0 reports
        return
    typer.echo(
        f"test accuracy {m['accuracy']:.4f} on {m['n_test']} held-out images; "
        f"{result.seconds / 60:.1f} min; run directory {result.run_dir}"
    )


def write_train_bundle(
    run_dir: Path,
    data: Path,
    classifier: str | None,
    cnn_only: bool,
    cache_dir: Path | None,
    show_progress: bool,
) -> Path:
    """RUN/bundle, complete by default: the OOD detector and the deciding head fitted on the
    run's own training images (what `blastscan bundle RUN --data DATA` makes)."""
    from blastscan.bundle import bundle_from_run
    from blastscan.bundle.build import write_cnn_bundle

    if cnn_only:
        return write_cnn_bundle(run_dir)
    scanner = logging.getLogger("blastscan.data")
    level = scanner.level
    scanner.setLevel(logging.ERROR)  # its rescan would report the skipped files a second time

    def bundle(head: str | None) -> Path:
        return bundle_from_run(
            run_dir,
            run_dir / "bundle",
            data,
            classifier=head,
            overwrite=True,
            show_progress=show_progress,
            cache_dir=cache_dir,
        )

    try:
        return bundle(classifier)
    except BlastscanError as exc:
        if classifier is None or "kept no feature" not in str(exc):
            raise
        # Too few training images for mRMR to keep a feature: still a bundle that can flag.
        typer.echo(f"warning: no {classifier} head ({exc}); the CNN softmax decides", err=True)
        return bundle(None)
    finally:
        scanner.setLevel(level)
