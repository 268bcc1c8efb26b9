"""Scoring a model under the shifts: predictors, accuracy and ECE per strength, the summary."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from blastscan.errors import BlastscanError
from blastscan.evaluation import proportion
from blastscan.robustness.corruptions import (
    DEFAULT_GRID,
    PERTURBATIONS,
    _check_batch,
    _perturb_parallel,
)

# images (N, H, W, 3) uint8 -> (predicted class indices, class probabilities)
Predictor = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def model_predictor(model: torch.nn.Module, batch_size: int = 64, device=None) -> Predictor:
    """The CNN's own softmax head."""
    from blastscan.runtime.infer import infer

    def predict(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = infer(model, images, batch_size=batch_size, device=device)
        return out.logits.argmax(1), out.probabilities

    return predict


def as_predictor(model: torch.nn.Module | Predictor, batch_size: int, device=None) -> Predictor:
    """A DarkNet-19's softmax head on `device` (default: where its weights are), or `model`
    itself when it is already a predictor."""
    if not isinstance(model, torch.nn.Module):
        return model
    device = torch.device(device) if device is not None else next(model.parameters()).device
    return model_predictor(model.to(device), batch_size, device)


def bundle_predictor(bundle, head: str = "auto", batch_size: int = 64) -> Predictor:
    """A bundle's decision (by default its deep features + classifier head, the paper's
    pipeline): what a user of `blastscan predict` gets under the shift."""

    def predict(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        prediction = bundle.predict(images, batch_size=batch_size, head=head)
        return prediction.probabilities.argmax(1), prediction.probabilities

    return predict


def _point(strength, pred, proba, labels, keep_predictions: bool = False) -> dict:
    from blastscan.evaluation.calibration import expected_calibration_error

    k = int(np.sum(pred == labels))
    point = {"strength": float(strength), "accuracy": proportion(k, len(labels))}
    point["ece"] = expected_calibration_error(proba, labels) if len(labels) else 0.0
    if keep_predictions:
        point["predictions"] = [int(p) for p in pred]
    return point


def evaluate_robustness(
    model: torch.nn.Module | Predictor,
    images: np.ndarray,
    labels: np.ndarray,
    perturbations: Mapping[str, Sequence[float]] = DEFAULT_GRID,
    batch_size: int = 64,
    device: torch.device | str | None = None,
    chunk: int = 512,
    on_step: Callable[[str, float, dict], None] | None = None,
    keep_predictions: bool = False,
) -> dict:
    """Accuracy (95% Wilson interval) and top-label ECE, clean and under each perturbation.

    `model` is a DarkNet-19 (its softmax head is scored) or any `Predictor` (e.g.
    `bundle_predictor`). `images` is (N, H, W, 3) uint8 at the model's input size, `labels`
    (N,) class indices;
    `perturbations` maps a name from PERTURBATIONS to the strengths to try. Images are
    perturbed `chunk` at a time, so memory stays bounded for any N. Returns plain JSON values:
    {"n", "clean": point, "perturbations": {name: {"label", "identity", "points": [point...]}}}
    where a point is {"strength", "accuracy": proportion, "ece"}, plus "predictions" (one class
    index per image, in `images` order) with `keep_predictions`, for paired comparisons.
    """
    images = _check_batch(images)
    labels = np.asarray(labels, dtype=np.int64)
    if len(images) != len(labels):
        raise BlastscanError(f"{len(images)} images for {len(labels)} labels")
    if len(images) == 0:
        raise BlastscanError("no images to evaluate robustness on")
    unknown = sorted(set(perturbations) - set(PERTURBATIONS))
    if unknown:
        raise BlastscanError(
            f"unknown perturbation(s) {unknown}; choose from {sorted(PERTURBATIONS)}"
        )
    predictor = as_predictor(model, batch_size, device)

    workers = max(1, min(8, os.cpu_count() or 1))
    pool = ThreadPoolExecutor(workers) if workers > 1 else None

    def run(name: str | None, strength: float | None) -> dict:
        preds, probas = [], []
        for start in range(0, len(images), chunk):
            part = images[start : start + chunk]
            if name is not None:
                part = _perturb_parallel(part, name, strength, pool)
            p, q = predictor(part)
            preds.append(p)
            probas.append(q)
        point = _point(
            strength if strength is not None else float("nan"),
            np.concatenate(preds),
            np.concatenate(probas),
            labels,
            keep_predictions,
        )
        if on_step:
            on_step(name or "clean", strength, point)
        return point

    try:
        clean = run(None, None)
        clean.pop("strength")
        result: dict = {"n": int(len(labels)), "clean": clean, "perturbations": {}}
        for name, strengths in perturbations.items():
            p = PERTURBATIONS[name]
            points = [run(name, float(s)) for s in strengths]
            result["perturbations"][name] = {
                "label": p.label,
                "identity": p.identity,
                "points": points,
            }
    finally:
        if pool is not None:
            pool.shutdown()
    result["summary"] = summarize(result)
    return result


def summarize(result: dict, low: float = 0.7, high: float = 1.3) -> dict:
    """The issue's yardstick: worst accuracy over brightness in [low, high], and the clean one."""
    clean = result["clean"]["accuracy"]["value"]
    out = {"clean_accuracy": clean}
    b = result["perturbations"].get("brightness")
    if b:
        inside = [pt for pt in b["points"] if low - 1e-9 <= pt["strength"] <= high + 1e-9]
        if inside:
            worst = min(inside, key=lambda pt: pt["accuracy"]["value"])
            out[f"brightness_{low}_{high}_worst"] = {
                "strength": worst["strength"], "accuracy": worst["accuracy"]["value"],
            }  # fmt: skip
    worst_all = [
        (name, pt["strength"], pt["accuracy"]["value"])
        for name, block in result["perturbations"].items()
        for pt in block["points"]
    ]
    if worst_all:
        name, s, acc = min(worst_all, key=lambda t: t[2])
        out["worst"] = {"perturbation": name, "strength": s, "accuracy": acc}
    return out


def strength_label(name: str, s: float) -> str:
    """How tables name a strength: x0.7 (factors), +15 deg, sigma 2, q10."""
    if name in ("brightness", "contrast", "stain"):
        return f"x{s:g}"
    if name == "hue":
        return f"{s:+g} deg"
    if name == "blur":
        return f"sigma {s:g}"
    if name == "jpeg":
        return f"q{s:g}"
    return f"{s:g}"
