"""Two trained networks, image by image, on the same held-out test images.

Whether one run is better than another (a relit network against a plain one, a new recipe
against the old) is a paired question: both are scored on the same images. `compare_runs`
predicts the shared test images with both networks, clean and under any perturbations of
`blastscan.robustness.corruptions`, and reports for every condition the two accuracies and
McNemar's exact test (`evaluation.mcnemar`) on the images exactly one of them gets right.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from blastscan.errors import BlastscanError
from blastscan.evaluation import mcnemar
from blastscan.outputs import atomic_write_json, atomic_write_text, check_output_dir
from blastscan.robustness.battery_eval import evaluate_battery, model_scorer
from blastscan.robustness.battery_report import subsample
from blastscan.robustness.evaluate import evaluate_robustness, strength_label
from blastscan.robustness.runs import held_out_images

log = logging.getLogger("blastscan.compare")  # the name `blastscan compare` logs under


def _shared_test_images(run_a: Path, meta_a: dict, run_b: Path, meta_b: dict, data_dir, cache_dir):
    """Each run's held-out images at its own input size; refuse runs that held out different ones."""
    images_a, labels, paths_a = held_out_images(run_a, data_dir, meta_a, cache_dir)
    images_b, _, paths_b = held_out_images(run_b, data_dir, meta_b, cache_dir)
    if list(paths_a) != list(paths_b):
        raise BlastscanError(
            f"{run_a} and {run_b} held out different test images; compare runs trained with "
            "the same --seed on the same data"
        )
    return images_a, images_b, labels


def _conditions(result: dict):
    """(name, strength, predictions) of the clean point and every perturbed one (or, for a
    battery result, every kind and severity)."""
    yield "clean", "", result["clean"]["predictions"]
    for name, block in result.get("kinds", {}).items():
        for cell in block["cells"]:
            yield name, f"severity {cell['severity']}", cell["predictions"]
    for name, block in result.get("perturbations", {}).items():
        for point in block["points"]:
            yield name, strength_label(name, point["strength"]), point["predictions"]


def compare_runs(
    run_a: str | Path,
    run_b: str | Path,
    data_dir: str | Path,
    out_dir: str | Path,
    perturbations: Mapping[str, Sequence[float]] | None = None,
    cache_dir: Path | None = None,
    batch_size: int = 64,
    device: str | None = None,
    battery: Sequence[str] | None = None,
    seed: int = 0,
    n_images: int | None = None,
) -> dict:
    """Paired accuracies of two runs' final networks on their shared held-out test images.

    `perturbations` (as in `robustness.evaluate_robustness`; default: none) adds a comparison
    under each shift; `battery` (kinds of `robustness.battery.BATTERY`) compares every kind x
    severity of the shift battery instead, under corruption `seed`, on a seeded subsample of
    `n_images` if given (both networks see the same corrupted images). Writes `compare.json`
    and `compare.md` under `out_dir` atomically.
    """
    from blastscan.runtime.device import pick_device
    from blastscan.runtime.distributed import configure_threads
    from blastscan.training import load_trained_model

    configure_threads()
    run_a, run_b = Path(run_a), Path(run_b)
    if run_a.resolve() == run_b.resolve():
        raise BlastscanError(f"{run_a}: A and B are the same run; compare two different runs")
    check_output_dir(Path(out_dir))
    torch_device = pick_device(device)
    model_a, meta_a = load_trained_model(run_a)
    model_b, meta_b = load_trained_model(run_b)
    if list(meta_a["classes"]) != list(meta_b["classes"]):
        raise BlastscanError(f"{run_a} and {run_b} were trained on different classes")
    images_a, images_b, labels = _shared_test_images(
        run_a, meta_a, run_b, meta_b, data_dir, cache_dir
    )
    grid = dict(perturbations or {})
    keep = subsample(len(labels), n_images, seed)
    labels = np.asarray(labels)[keep]
    pairs = ((model_a, images_a[keep]), (model_b, images_b[keep]))
    if battery:
        scored = [
            evaluate_battery(model_scorer(m, batch_size, torch_device), x, labels, battery, seed,
                             keep_predictions=True)
            for m, x in pairs
        ]  # fmt: skip
    else:
        scored = [
            evaluate_robustness(m, x, labels, grid, batch_size, torch_device, keep_predictions=True)
            for m, x in pairs
        ]
    rows = []
    for (name, strength, pred_a), (_, _, pred_b) in zip(
        _conditions(scored[0]), _conditions(scored[1]), strict=True
    ):
        test = mcnemar(np.asarray(pred_a) == labels, np.asarray(pred_b) == labels)
        rows.append({"condition": name, "strength": strength, **test})
        log.info(
            "%s: A %.2f%%, B %.2f%%, McNemar p = %.3g",
            f"{name} {strength}".strip(), 100 * test["accuracy_a"]["value"],
            100 * test["accuracy_b"]["value"], test["p_value"],
        )  # fmt: skip
    result = {
        "a": str(run_a),
        "b": str(run_b),
        "data": str(data_dir),
        "n": int(len(labels)),
        "battery_seed": int(seed) if battery else None,
        "test": "McNemar exact (two-sided binomial on the images exactly one network gets right)",
        "rows": rows,
    }
    out_dir = Path(out_dir)
    atomic_write_json(out_dir / "compare.json", result)
    atomic_write_text(out_dir / "compare.md", compare_table_markdown(result))
    return result


def compare_table_markdown(result: dict) -> str:
    """One row per condition: both accuracies, the paired difference and McNemar's p."""
    lines = [
        f"A = {result['a']}, B = {result['b']}; {result['n']} shared held-out test images.",
        "",
        "| condition | A | B | B - A | only A right | only B right | McNemar p |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in result["rows"]:
        label = f"{row['condition']} {row['strength']}".strip()
        lines.append(
            f"| {label} | {100 * row['accuracy_a']['value']:.2f}% | "
            f"{100 * row['accuracy_b']['value']:.2f}% | {100 * row['difference']:+.2f} pp | "
            f"{row['a_only']} | {row['b_only']} | {row['p_value']:.3g} |"
        )
    lines += [
        "",
        "A p-value above 0.05 says these test images cannot tell the two apart, not that they "
        "are equal.",
    ]
    return "\n".join(lines) + "\n"
