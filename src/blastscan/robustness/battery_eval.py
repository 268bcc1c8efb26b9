"""Scoring a model or a bundle on the shift battery: accuracy and OOD flags per kind x severity.

The summary holds the two numbers the corruption-benchmark literature reports: the mean
accuracy over the battery and its worst cell, and, given a reference result (e.g. today's
fast recipe), the mean corruption error mCE and the relative mCE of Hendrycks & Dietterich
(2019): per kind, the errors summed over severities divided by the reference's (relative:
minus each model's clean error first), averaged over kinds; below 1 is better than the
reference.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from blastscan.errors import BlastscanError
from blastscan.evaluation import proportion
from blastscan.robustness.battery import BATTERY, SEVERITIES, corrupt, kind
from blastscan.robustness.corruptions import _check_batch
from blastscan.robustness.evaluate import as_predictor

# images -> (predicted class indices, OOD flags or None when the scorer has no detector)
Scorer = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]]


def model_scorer(model: torch.nn.Module, batch_size: int = 64, device=None) -> Scorer:
    """A DarkNet-19's softmax head: no OOD detector."""
    predictor = as_predictor(model, batch_size, device)
    return lambda images: (predictor(images)[0], None)


def bundle_scorer(bundle, head: str = "auto", batch_size: int = 64) -> Scorer:
    """What `blastscan predict` decides with a loaded bundle, and its OOD flags."""

    def score(images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        prediction = bundle.predict(images, batch_size=batch_size, head=head)
        flags = prediction.ood_flag
        return prediction.predicted, None if flags is None else np.asarray(flags, dtype=bool)

    return score


def _corrupt_parallel(images, name, severity, seed, pool, piece: int = 32) -> np.ndarray:
    """`corrupt` over slices of `piece` images on a thread pool, equal to one call."""
    starts = list(range(0, len(images), piece))
    parts = pool.map(
        lambda i: corrupt(images[i : i + piece], name, severity, seed, first=i), starts
    )
    return np.concatenate(list(parts))


def _cell(pred: np.ndarray, flags: np.ndarray | None, labels: np.ndarray, keep: bool) -> dict:
    cell = {"accuracy": proportion(int(np.sum(pred == labels)), len(labels))}
    cell["ood"] = None if flags is None else proportion(int(flags.sum()), len(labels))
    if keep:
        cell["predictions"] = [int(p) for p in pred]
    return cell


def evaluate_battery(
    scorer: Scorer,
    images: np.ndarray,
    labels: np.ndarray,
    kinds: Sequence[str] | None = None,
    seed: int = 0,
    on_step: Callable[[str, int, dict], None] | None = None,
    keep_predictions: bool = False,
) -> dict:
    """Accuracy (95% Wilson interval) and the share flagged OOD, clean and for every kind and
    severity of the battery (`kinds`: a subset of BATTERY, default all), under `seed`.

    Returns plain JSON values: {"n", "seed", "clean": cell, "kinds": {name: {"models", "unit",
    "strengths", "cells": [cell per severity]}}, "summary"}; a cell is {"severity",
    "strength", "accuracy": proportion, "ood": proportion or None}, plus "predictions" (one
    class index per image) with `keep_predictions`, for paired comparisons.
    """
    images = _check_batch(images)
    labels = np.asarray(labels, dtype=np.int64)
    if len(images) == 0 or len(images) != len(labels):
        raise BlastscanError(f"the battery needs images with one label each: {len(images)} "
                             f"images, {len(labels)} labels")  # fmt: skip
    names = list(kinds) if kinds else list(BATTERY)
    for name in names:
        kind(name)  # a wrong name fails before the long part
    result: dict = {
        "n": int(len(labels)),
        "seed": int(seed),
        "clean": _cell(*scorer(images), labels, keep_predictions),
    }
    if on_step:
        on_step("clean", 0, result["clean"])
    result["kinds"] = {}
    with ThreadPoolExecutor(max(1, min(8, os.cpu_count() or 1))) as pool:
        for name in names:
            k = BATTERY[name]
            cells = []
            for severity in SEVERITIES:
                shifted = _corrupt_parallel(images, name, severity, seed, pool)
                cell = {"severity": severity, "strength": k.strengths[severity - 1]}
                cell.update(_cell(*scorer(shifted), labels, keep_predictions))
                cells.append(cell)
                if on_step:
                    on_step(name, severity, cell)
            result["kinds"][name] = {"models": k.models, "unit": k.unit,
                                     "strengths": list(k.strengths), "cells": cells}  # fmt: skip
    result["summary"] = battery_summary(result)
    return result


def _accuracies(result: dict) -> dict[str, list[float]]:
    return {n: [c["accuracy"]["value"] for c in b["cells"]] for n, b in result["kinds"].items()}


def battery_summary(result: dict, reference: dict | None = None, up_to: int = 3) -> dict:
    """Clean accuracy, the battery mean, the worst cell (overall and up to severity `up_to`),
    each kind's mean, and mCE / relative mCE against `reference` (a battery result) if given."""
    acc = _accuracies(result)
    cells = [(n, s, a) for n, row in acc.items() for s, a in zip(SEVERITIES, row, strict=True)]
    out: dict = {"clean_accuracy": result["clean"]["accuracy"]["value"]}
    if not cells:
        return out
    out["battery_mean"] = float(np.mean([a for *_, a in cells]))
    for key, pool in (
        ("worst", cells),
        (f"worst_up_to_{up_to}", [c for c in cells if c[1] <= up_to]),
    ):
        n, s, a = min(pool, key=lambda c: c[2])
        out[key] = {"kind": n, "severity": s, "accuracy": a}
    out["kind_mean"] = {n: float(np.mean(row)) for n, row in acc.items()}
    if reference is not None:
        out.update(corruption_errors(result, reference))
    return out


def corruption_errors(result: dict, reference: dict) -> dict:
    """mCE and relative mCE against `reference` over the kinds both results hold."""
    acc, ref = _accuracies(result), _accuracies(reference)
    shared = [n for n in acc if n in ref]
    if not shared:
        raise BlastscanError("the reference battery shares no corruption kind with this one")
    clean = 1 - result["clean"]["accuracy"]["value"]
    ref_clean = 1 - reference["clean"]["accuracy"]["value"]
    ce, rel = {}, {}
    for n in shared:
        err, ref_err = 1 - np.array(acc[n]), 1 - np.array(ref[n])
        ce[n] = _ratio(err.sum(), ref_err.sum())
        rel[n] = _ratio((err - clean).sum(), (ref_err - ref_clean).sum())
    return {
        "mce": _mean(ce.values()),
        "relative_mce": _mean(rel.values()),
        "ce": ce,
        "relative_ce": rel,
        "reference_clean_accuracy": reference["clean"]["accuracy"]["value"],
    }


def _ratio(a: float, b: float) -> float | None:
    """a / b, None where the reference made no error to compare with."""
    return float(a / b) if b > 0 else None


def _mean(values) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None
