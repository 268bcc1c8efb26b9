"""Robustness and the colour swap of a training run, on its held-out test images.

`run_robustness` scores a run's CNN (or an already loaded bundle of it) and writes
robustness.json, robustness.md and figures/robustness.png; `run_colour_swap` is the colour swap
alone. This layer never imports `blastscan.bundle`: a bundle comes in loaded, duck-typed
(`.classes`, `.image_size`, `.model`, `.resolve_head`, `.predict`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from blastscan.errors import BlastscanError
from blastscan.evaluation import proportion
from blastscan.outputs import atomic_write_json, atomic_write_text, check_output_dir
from blastscan.robustness.colour_swap import (
    COLOURS_FROM,
    class_colours,
    colour_swap_markdown,
    evaluate_colour_swap,
)
from blastscan.robustness.corruptions import DEFAULT_GRID
from blastscan.robustness.evaluate import as_predictor, bundle_predictor, evaluate_robustness
from blastscan.robustness.tables import plot_robustness, robustness_table_markdown

log = logging.getLogger("blastscan.robustness")


def held_out_images(run_dir: Path, data_dir: str | Path, meta: dict, cache_dir: Path | None = None):
    """The run's held-out test images (uint8, at the model's size), labels and paths."""
    from blastscan import data as D

    dataset, indices = D.run_split(run_dir, data_dir, meta)
    return split_images(run_dir, dataset, indices, "test", meta, cache_dir)


def split_images(run_dir: Path, dataset, indices: dict, part: str, meta: dict, cache_dir=None):
    """One part ("train", "test") of a run's split: uint8 images at the model's size, labels
    and paths; a one-line error when split.json lists none."""
    from blastscan import data as D

    if not len(indices[part]):
        raise BlastscanError(f"{run_dir}: its split.json lists no {part} images")
    subset = dataset.subset(indices[part].tolist())
    images = D.load_images(subset, meta["image_size"], cache_dir)
    return images, subset.labels, subset.paths


def run_robustness(
    run_dir: str | Path,
    data_dir: str | Path,
    out_dir: str | Path,
    cache_dir: Path | None = None,
    perturbations: Mapping[str, Sequence[float]] = DEFAULT_GRID,
    batch_size: int = 64,
    device: str | None = None,
    which: str = "final",
    bundle: Any = None,
    head: str = "auto",
    colour_swap: bool = True,
) -> dict:
    """Robustness of a training run's model on its held-out test images.

    With `bundle` (a loaded bundle made from this run by `blastscan bundle`, e.g.
    `blastscan.bundle.load_bundle(path)`), the bundle's decision is scored instead of the CNN's
    softmax: by default its features + classifier head. With
    `colour_swap`, the test images are also scored in each class's colour, the mean of the
    run's training images of that class (`evaluate_colour_swap`). Writes `robustness.json`
    (the result plus provenance), `robustness.md` (the tables) and `figures/robustness.png`
    under `out_dir`, each atomically; returns the result.
    """
    from blastscan import data as D
    from blastscan.runtime.device import pick_device
    from blastscan.runtime.distributed import configure_threads
    from blastscan.training import load_trained_model

    configure_threads()
    check_output_dir(Path(out_dir))
    run_dir = Path(run_dir)
    model, meta = load_trained_model(run_dir, which)
    torch_device = pick_device(device)
    dataset, indices = D.run_split(run_dir, data_dir, meta)
    images, labels, _ = split_images(run_dir, dataset, indices, "test", meta, cache_dir)
    scored, what = _scored_model(model, bundle, head, batch_size, meta, run_dir)
    # before the long part, so that a run without training images fails at once
    colours = training_colours(run_dir, dataset, indices, meta, cache_dir) if colour_swap else None
    log.info("robustness of %s: %d test images at %d px", what, len(images), meta["image_size"])
    result = evaluate_robustness(
        scored, images, labels, perturbations, batch_size, torch_device,
        on_step=lambda n, s, pt: log.info(
            "%s: %.1f%%", n if s is None else f"{n} {s:g}", 100 * pt["accuracy"]["value"]
        ),
    )  # fmt: skip
    if colours is not None:
        log.info("colour swap: each test image in each of %d classes' colours", len(colours))
        swap = evaluate_colour_swap(scored, images, labels, colours, batch_size, torch_device)
        result["colour_swap"] = swap = {"colours": COLOURS_FROM, **swap}
        for key in ("other_colour", "follows_the_colour"):
            result["summary"][f"colour_swap_{key}"] = swap[key]["value"]
    result = {
        "run": str(run_dir),
        "scored": what,
        "checkpoint": which
        if which != "final" or (run_dir / "checkpoints" / "final.safetensors").is_file()
        else "last (the run has no final checkpoint yet)",
        "epochs_trained": meta["epoch"] + 1 if isinstance(meta.get("epoch"), int) else None,
        "data": str(data_dir),
        "image_size": meta["image_size"],
        "classes": meta.get("display_names", meta["classes"]),
        "device": str(torch_device),
        "split": "the run's held-out test images (split.json 'test')",
        **result,
    }
    out_dir = Path(out_dir)
    atomic_write_json(out_dir / "robustness.json", result)
    table = robustness_table_markdown(result)
    if "colour_swap" in result:
        table += "\n## Each test image in each class's colour\n\n" + colour_swap_markdown(
            result["colour_swap"], result["classes"]
        )
    atomic_write_text(out_dir / "robustness.md", table)
    plot_robustness(result, out_dir / "figures" / "robustness.png")
    return result


def training_colours(run_dir: Path, dataset, indices: dict, meta: dict, cache_dir=None):
    """`class_colours` of a run's training images: the colours the colour swap gives."""
    images, labels, _ = split_images(run_dir, dataset, indices, "train", meta, cache_dir)
    return class_colours(images, np.asarray(labels), len(meta["classes"]))


def run_colour_swap(
    run_dir: str | Path,
    data_dir: str | Path,
    cache_dir: Path | None = None,
    batch_size: int = 64,
    device: str | None = None,
) -> dict:
    """The colour swap alone for a run's final CNN on its held-out test images (what
    `blastscan reproduce` reports): {"n", "clean": proportion, "colours", "matrix",
    "own_colour", "other_colour", "follows_the_colour"}."""
    from blastscan import data as D
    from blastscan.runtime.device import pick_device
    from blastscan.training import load_trained_model

    run_dir = Path(run_dir)
    model, meta = load_trained_model(run_dir)
    torch_device = pick_device(device)
    dataset, indices = D.run_split(run_dir, data_dir, meta)
    images, labels, _ = split_images(run_dir, dataset, indices, "test", meta, cache_dir)
    predictor = as_predictor(model, batch_size, torch_device)
    labels = np.asarray(labels)
    clean = proportion(int(np.sum(predictor(images)[0] == labels)), len(labels))
    colours = training_colours(run_dir, dataset, indices, meta, cache_dir)
    swap = evaluate_colour_swap(predictor, images, labels, colours, batch_size, torch_device)
    return {"n": len(labels), "clean": clean, "colours": COLOURS_FROM, **swap}


def _where(bundle: Any) -> Any:
    """How messages name a loaded bundle: its folder where it says, else "the bundle"."""
    return getattr(bundle, "root", None) or getattr(bundle, "path", None) or "the bundle"


def _scored_model(model, bundle: Any, head: str, batch_size: int, meta: dict, run_dir: Path):
    """The run's CNN, or a loaded bundle's decision after checking it is this run's model."""
    if bundle is None:
        return model, "the CNN's softmax head"
    where = _where(bundle)
    if bundle.classes != list(meta["classes"]) or bundle.image_size != meta["image_size"]:
        raise BlastscanError(
            f"{where}: its classes or input size differ from {run_dir}'s; "
            "bundle this run (blastscan bundle RUN --data DIR --classifier ...)"
        )
    bundled = bundle.model.state_dict()
    for name, tensor in model.state_dict().items():
        if not torch.equal(tensor, bundled[name].to(tensor.device)):
            raise BlastscanError(
                f"{where}: its CNN weights are not {run_dir}'s; bundle this run "
                "(blastscan bundle RUN --data DIR --classifier ...)"
            )
    chosen = bundle.resolve_head(head)
    return bundle_predictor(bundle, head, batch_size), f"bundle {where}, head {chosen}"
