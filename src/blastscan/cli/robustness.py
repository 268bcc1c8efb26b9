"""`blastscan robustness` and `compare`: accuracy under shifted light and colour, run against run."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from blastscan.cli.common import PrecisionOpt, chosen_precision, friendly_errors, log_on_stderr
from blastscan.errors import BlastscanError


def perturbation_grid(names: list[str]) -> dict[str, tuple[float, ...]]:
    """The named perturbations at their default strengths; a one-line error for a wrong name."""
    from blastscan.robustness import DEFAULT_GRID

    unknown = sorted(set(names) - set(DEFAULT_GRID))
    if unknown:
        raise BlastscanError(
            f"unknown perturbation(s) {unknown}; choose from {sorted(DEFAULT_GRID)}"
        )
    return {k: v for k, v in DEFAULT_GRID.items() if k in names}


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
    precision: PrecisionOpt = "auto",
    quiet: Annotated[bool, typer.Option("--quiet", help="No line per condition.")] = False,
) -> None:
    """Accuracy (95% intervals) under brightness, contrast, hue, stain, blur and JPEG shifts,
    and in each class's colour."""
    from blastscan.bundle import load_bundle
    from blastscan.robustness import DEFAULT_GRID, run_robustness

    grid = perturbation_grid(perturbation or list(DEFAULT_GRID))
    loaded = load_bundle(bundle) if bundle is not None else None  # robustness takes it loaded
    with (
        chosen_precision(precision, device, quiet),
        log_on_stderr("blastscan.robustness", logging.WARNING if quiet else logging.INFO),
    ):
        result = run_robustness(
            run, data, out, perturbations=grid, batch_size=batch_size, device=device,
            bundle=loaded, head=head, colour_swap=colour_swap,
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
    from blastscan.robustness.paired import compare_runs

    grid = perturbation_grid(perturbation or [])
    with log_on_stderr("blastscan.compare", logging.WARNING if quiet else logging.INFO):
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
