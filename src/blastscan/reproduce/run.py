"""`blastscan reproduce`: the paper's whole method, end to end, into one run directory.

train (or reuse) the CNN -> extract the 1000 deep features of every image -> mRMR ->
classifiers under each protocol -> metrics.json, report.md, report.html.
Every stage leaves its outputs in the run directory, so an interrupted run resumes at the
first stage whose output is missing.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from blastscan import __version__
from blastscan.errors import BlastscanError
from blastscan.evaluation.protocols import holdout_protocol, paper_protocol
from blastscan.features import extract, load_features
from blastscan.outputs import atomic_write_json
from blastscan.reproduce.cnn import (
    check_subset,
    cnn_summary,
    cnn_timings,
    cnn_variant,
    train_cnn,
)
from blastscan.reproduce.extras import (
    add_coverage,
    calibration_block,
    colour_baseline_block,
    group_protocol,
)
from blastscan.reproduce.options import PROTOCOLS, ReproduceOptions
from blastscan.reproduce.strict import run_strict
from blastscan.selection import plot_mrmr_scores

log = logging.getLogger("blastscan.reproduce")


def _stage(timings: dict, name: str):
    """A block that logs the stage's start and records its seconds in `timings[name]`."""

    class _Timer:
        def __enter__(self):
            self.t = time.perf_counter()
            log.info("stage %s ...", name)

        def __exit__(self, *exc):
            timings[name] = time.perf_counter() - self.t

    return _Timer()


def reproduce(
    data_dir: str | Path,
    out: str | Path,
    options: ReproduceOptions,
    cnn_dir: Path | None = None,
    features_path: Path | None = None,
    cache_dir: Path | None = None,
    show_progress: bool = True,
    strict_dir: Path | None = None,
) -> Path:
    """Run the whole method; returns the run directory holding report.md/html and metrics.json."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    bad = set(options.protocols) - set(PROTOCOLS)
    if bad:
        raise BlastscanError(f"unknown protocol(s) {sorted(bad)}; choose from {PROTOCOLS}")
    atomic_write_json(
        out / "reproduce.json",
        {
            "options": {**options.__dict__, "train_config": options.train_config.__dict__},
            "data": str(data_dir),
        },
    )

    cnn_dir = Path(cnn_dir) if cnn_dir else out / "cnn"
    if not (cnn_dir / "metrics.json").exists():
        with _stage(timings, "train_cnn"):
            train_cnn(data_dir, cnn_dir, options.train_config, cache_dir, show_progress)
    features_path = Path(features_path) if features_path else out / "features.npz"
    if not features_path.exists():
        with _stage(timings, "extract"):
            extract(
                cnn_dir,
                data_dir,
                features_path,
                variant=options.train_config.variant,
                cache_dir=cache_dir,
                show_progress=show_progress,
                max_per_class=options.train_config.max_per_class,
                seed=options.train_config.seed,
            )
    features = load_features(features_path)
    variant = options.train_config.variant
    check_subset(features, cnn_dir, variant)
    cnn, train_idx, test_idx = cnn_summary(cnn_dir, features)
    trained_on = cnn_variant(cnn_dir)
    cnn.update(trained_on=trained_on, evaluated_on=variant)
    X, y, names = features["X"].astype(np.float64), features["y"], list(features["display_names"])
    rows = np.sort(np.concatenate([train_idx, test_idx]))  # the images the CNN's run used
    common = dict(
        presets=options.presets,
        threshold=options.threshold,
        n_features=options.n_features,
        seed=options.seed,
    )
    protocols: dict[str, dict] = {}
    figures: dict[str, Path] = {}

    if "paper" in options.protocols:
        with _stage(timings, "paper_protocol"):
            protocols["paper"], selector = paper_protocol(
                X[rows], y[rows], names, cnn, n_splits=options.n_splits, **common
            )
        figures["paper:mrmr_scores"] = plot_mrmr_scores(
            selector.scores_, options.threshold, out / "figures" / "mrmr_scores.png"
        )
        figures["mrmr_scores"] = figures["paper:mrmr_scores"]
    if "group" in options.protocols:
        with _stage(timings, "group_protocol"):
            protocols["group"] = group_protocol(
                X[rows], y[rows], features["paths"][rows], names, cnn, options, common
            )
    if "holdout" in options.protocols:
        with _stage(timings, "holdout_protocol"):
            protocols["holdout"] = holdout_protocol(X, y, train_idx, test_idx, names, cnn, **common)
        with _stage(timings, "calibration"):
            protocols["holdout"]["calibration"] = calibration_block(
                features, train_idx, test_idx, out, options.seed
            )
        figures["holdout:reliability"] = out / protocols["holdout"]["calibration"]["figure"]
    if "strict" in options.protocols:
        with _stage(timings, "strict_protocol"):
            protocols["strict"] = run_strict(
                data_dir, out, options, strict_dir, cache_dir, show_progress, names
            )

    for key, name in (("training_accuracy", "accuracy.png"), ("training_loss", "loss.png")):
        if (cnn_dir / "figures" / name).exists():
            figures[key] = cnn_dir / "figures" / name
    metrics = {
        "schema_version": 1,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "blastscan_version": __version__,
        "quick": options.quick,
        "dataset": dataset_block(features, rows, names, variant),
        "cnn_run": str(cnn_dir),
        "cnn_variant": trained_on,
        "timings": {},  # filled in before writing, once every stage has run
        "protocols": protocols,
    }
    with _stage(timings, "colour_baseline"):
        metrics["colour_baseline"] = colour_baseline_block(
            data_dir, variant, features, train_idx, test_idx, cache_dir
        )
    if trained_on == variant:  # the CNN on its own test images, each in every class's colour
        from blastscan.robustness import run_colour_swap

        with _stage(timings, "colour_swap"):
            metrics["colour_swap"] = run_colour_swap(
                cnn_dir, data_dir, cache_dir, device=options.train_config.device
            )
    if variant == "Segmented":
        with _stage(timings, "coverage"):
            add_coverage(metrics, data_dir, features, rows, test_idx)
    protocols.get("holdout", {}).get("calibration", {}).pop("predictions", None)  # per image
    metrics["timings"] = {**cnn_timings(cnn_dir), **timings}  # with the stages just above
    atomic_write_json(out / "metrics.json", metrics)
    from blastscan.report import write_report

    write_report(out, metrics, figures)
    if trained_on != variant:
        log.info("CNN trained on %s, features of %s: no bundle written", trained_on, variant)
    else:
        write_run_bundle(cnn_dir, out / "bundle", data_dir, options, show_progress, cache_dir)
    return out


def write_run_bundle(
    cnn_dir: Path,
    out: Path,
    data_dir,
    options: ReproduceOptions,
    show_progress: bool,
    cache_dir: Path | None = None,
) -> None:
    """The trained CNN, its OOD detector and the paper's SVM row on mRMR features, as a bundle."""
    from blastscan.bundle import bundle_from_run
    from blastscan.classify import PAPER_ROWS

    if not any((cnn_dir / "checkpoints" / f"{w}.safetensors").exists() for w in ("final", "last")):
        log.warning("no CNN weights in %s (features were reused); no bundle written", cnn_dir)
        return
    bundle_from_run(
        cnn_dir,
        out,
        data_dir,
        classifier=PAPER_ROWS["SVM"],
        n_features=options.n_features,
        max_per_class=options.train_config.max_per_class or 200,
        overwrite=True,
        show_progress=show_progress,
        cache_dir=cache_dir,
    )


def dataset_block(features: dict, rows: np.ndarray, names: list[str], variant: str) -> dict:
    """metrics.json's dataset: the image set and the images per class the CNN's run used."""
    y = features["y"][rows]
    return {
        "name": "ALL (Aria et al., Taleqani Hospital)",
        "variant": variant,
        "n_images": int(len(rows)),
        "class_names": names,
        "class_counts": {n: int((y == i).sum()) for i, n in enumerate(names)},
    }
