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
    battery: Annotated[
        bool,
        typer.Option(
            "--battery",
            help="Run the shift battery instead: 15 kinds (lamp, stain, optics, camera, slide) "
            "x 5 severities, with OOD flags per severity under --bundle (docs/robustness.md).",
        ),
    ] = False,
    kind: Annotated[
        list[str] | None,
        typer.Option(help="With --battery: only these kinds (repeatable).", show_default="all"),
    ] = None,
    images: Annotated[
        int | None,
        typer.Option(
            help="With --battery: a seeded subsample of this many test images.",
            min=1,
            show_default="all held-out test images",
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option(help="With --battery: seed of the corruptions and the subsample.")
    ] = 0,
    reference: Annotated[
        Path | None,
        typer.Option(help="With --battery: a reference model's battery.json, for mCE."),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 64,
    device: Annotated[str | None, typer.Option(help="cpu, cuda ...")] = None,
    precision: PrecisionOpt = "auto",
    quiet: Annotated[bool, typer.Option("--quiet", help="No line per condition.")] = False,
) -> None:
    """Accuracy (95% intervals) under brightness, contrast, hue, stain, blur and JPEG shifts,
    and in each class's colour; or, with --battery, the shift battery."""
    from blastscan.bundle import load_bundle
    from blastscan.robustness import DEFAULT_GRID, run_robustness

    if battery:
        return _battery(run, data, out, bundle, head, kind, images, seed, reference,
                        batch_size, device, quiet)  # fmt: skip
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


def _battery(run, data, out, bundle, head, kinds, n_images, seed, reference, batch_size,
             device, quiet) -> None:  # fmt: skip
    """`robustness --battery`: run it and print the summary numbers."""
    from blastscan.bundle import load_bundle
    from blastscan.robustness import run_battery

    loaded = load_bundle(bundle) if bundle is not None else None
    with log_on_stderr("blastscan.robustness", logging.WARNING if quiet else logging.INFO):
        result = run_battery(
            run, data, out, bundle=loaded, head=head, kinds=kinds, seed=seed,
            n_images=n_images, reference=reference, batch_size=batch_size, device=device,
        )  # fmt: skip
    s = result["summary"]
    line = (f"{result['scored']}: clean {s['clean_accuracy']:.1%}; battery mean "
            f"{s['battery_mean']:.1%}; worst {s['worst']['accuracy']:.1%} "
            f"({s['worst']['kind']} severity {s['worst']['severity']})")  # fmt: skip
    if s.get("mce") is not None:
        line += f"; mCE {s['mce']:.3f}"
        if s.get("relative_mce") is not None:
            line += f", relative mCE {s['relative_mce']:.3f}"
    typer.echo(line)
    typer.echo(f"-> {Path(out) / 'battery.md'}")


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
    battery: Annotated[
        bool,
        typer.Option("--battery", help="Compare on every kind x severity of the shift battery."),
    ] = False,
    kind: Annotated[
        list[str] | None,
        typer.Option(help="With --battery: only these kinds (repeatable).", show_default="all"),
    ] = None,
    images: Annotated[
        int | None,
        typer.Option(
            help="A seeded subsample of this many shared test images.", min=1, show_default="all"
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the battery and the subsample.")] = 0,
    batch_size: Annotated[int, typer.Option(min=1)] = 64,
    device: Annotated[str | None, typer.Option(help="cpu, cuda ...")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No line per condition.")] = False,
) -> None:
    """Two runs image by image on their shared test images: accuracies and McNemar's exact test."""
    from blastscan.robustness import BATTERY
    from blastscan.robustness.paired import compare_runs

    grid = perturbation_grid(perturbation or [])
    kinds = (kind or list(BATTERY)) if battery else None
    with log_on_stderr("blastscan.compare", logging.WARNING if quiet else logging.INFO):
        result = compare_runs(
            run_a, run_b, data, out, perturbations=grid, batch_size=batch_size, device=device,
            battery=kinds, seed=seed, n_images=images,
        )  # fmt: skip
    clean = result["rows"][0]
    typer.echo(
        f"clean: A {clean['accuracy_a']['value']:.2%}, B {clean['accuracy_b']['value']:.2%} "
        f"(only A right {clean['a_only']}, only B right {clean['b_only']}, "
        f"McNemar p = {clean['p_value']:.3g})"
    )
    typer.echo(f"-> {Path(out) / 'compare.md'}")
