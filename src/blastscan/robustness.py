"""Robustness of a trained DarkNet-19 to the shifts another lab's microscope and stain bring.

Each perturbation is a deterministic function of one strength acting on a uint8 NHWC batch:

- brightness  x * s                                     (s = 1: unchanged; 0.6 .. 1.4)
- contrast    (x - mean) * s + mean, mean per image     (s = 1: unchanged; 0.6 .. 1.4)
- hue         rotate the HSV hue by s degrees           (s = 0: unchanged; -30 .. 30)
- stain       scale optical density OD = -ln(x / 255)   (s = 1: unchanged; darker > 1 > lighter)
              by s: x' = 255 (x / 255) ** s, i.e. more or less dye (Beer-Lambert)
- blur        Gaussian blur of standard deviation s px  (s = 0: unchanged; 0 .. 3)
- jpeg        re-encode as JPEG at quality s (Pillow, 4:2:0) (no re-encode: unchanged; 95 .. 10)

Results are clipped to [0, 255] and rounded, so they are images a camera could have produced
(brightness x1.4 saturates the already bright smear background; that is part of the shift).
`evaluate_robustness` reports the accuracy with a 95% Wilson interval for each perturbation and
strength next to the clean accuracy; `run_robustness` does it for a training run's held-out
test images. `evaluate_colour_swap` gives every test image each other class's colour (the
mean colour of that class's training images): a network that reads the cells keeps its
answer, one that reads stain and light moves to the colour's class. `normalize_stain` is the
per-image colour standardisation the lead can switch on in training and inference (see
docs/robustness.md).
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from blastscan.data import channel_statistics, rotate_hue, transfer_colour
from blastscan.errors import BlastscanError
from blastscan.evaluation import proportion
from blastscan.io import atomic_write, atomic_write_json, atomic_write_text, check_output_dir

log = logging.getLogger("blastscan.robustness")

# ------------------------------------------------------------------------------ perturbations


def _as_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _check_batch(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise BlastscanError(
            f"perturbations take (N, H, W, 3) uint8 images, got {images.dtype} {images.shape}"
        )
    return images


def brightness(images: np.ndarray, factor: float) -> np.ndarray:
    """Multiply every pixel by `factor` (exposure / lamp intensity), clipped to [0, 255]."""
    images = _check_batch(images)
    if factor == 1:
        return images.copy()
    return _as_uint8(images.astype(np.float32) * np.float32(factor))


def contrast(images: np.ndarray, factor: float) -> np.ndarray:
    """Scale deviations from each image's mean grey level by `factor` (as `data.augment` does)."""
    images = _check_batch(images)
    if factor == 1:
        return images.copy()
    x = images.astype(np.float32)
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    return _as_uint8((x - mean) * np.float32(factor) + mean)


def hue(images: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate the hue in HSV by `degrees` (a different stain batch or white balance); the
    same rotation as `blastscan train --hue` (`data.rotate_hue`)."""
    images = _check_batch(images)
    if degrees % 360 == 0:
        return images.copy()
    x = torch.from_numpy(images.astype(np.float32)).permute(0, 3, 1, 2)
    return _as_uint8(rotate_hue(x, degrees).permute(0, 2, 3, 1).numpy())


def stain(images: np.ndarray, factor: float) -> np.ndarray:
    """Scale the optical density of every channel by `factor`: more (>1) or less (<1) dye.

    Beer-Lambert: transmitted light I = I0 exp(-c eps d), so OD = -ln(I / I0) is proportional to
    the stain concentration c; scaling it by s gives I' = I0 (I / I0) ** s (I0 = 255, the blank
    background). Unlike brightness it leaves white background white and darkens/lightens the
    stained cells, keeping their hue roughly constant.
    """
    images = _check_batch(images)
    if factor == 1:
        return images.copy()
    x = np.maximum(images.astype(np.float32), 1.0) / 255.0
    return _as_uint8(255.0 * np.power(x, np.float32(factor)))


def blur(images: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of standard deviation `sigma` px in both axes (defocus), edges reflected."""
    from scipy.ndimage import gaussian_filter

    images = _check_batch(images)
    if sigma <= 0:
        return images.copy()
    return _as_uint8(
        gaussian_filter(images.astype(np.float32), sigma=(0, sigma, sigma, 0), mode="reflect")
    )


def jpeg(images: np.ndarray, quality: float) -> np.ndarray:
    """Re-encode each image as a JPEG at `quality` (Pillow, default 4:2:0 chroma subsampling)."""
    from PIL import Image

    images = _check_batch(images)
    q = int(round(quality))
    if not 1 <= q <= 100:
        raise BlastscanError(f"JPEG quality must be in 1..100, got {quality}")
    out = np.empty_like(images)
    for i, image in enumerate(images):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=q)
        buffer.seek(0)
        out[i] = np.asarray(Image.open(buffer).convert("RGB"))
    return out


@dataclass(frozen=True)
class Perturbation:
    """A named image shift: `apply(images, strength)` and the strength that leaves images alone."""

    name: str
    apply: Callable[[np.ndarray, float], np.ndarray]
    identity: float | None  # None: no strength is the identity (JPEG re-encoding always changes)
    label: str  # x-axis label for plots and tables

    def __call__(self, images: np.ndarray, strength: float) -> np.ndarray:
        return self.apply(images, strength)


PERTURBATIONS: dict[str, Perturbation] = {
    p.name: p
    for p in (
        Perturbation("brightness", brightness, 1.0, "brightness factor"),
        Perturbation("contrast", contrast, 1.0, "contrast factor"),
        Perturbation("hue", hue, 0.0, "hue rotation (degrees)"),
        Perturbation("stain", stain, 1.0, "optical-density factor"),
        Perturbation("blur", blur, 0.0, "Gaussian sigma (px)"),
        Perturbation("jpeg", jpeg, None, "JPEG quality"),
    )
}

DEFAULT_GRID: dict[str, tuple[float, ...]] = {
    "brightness": (0.6, 0.7, 0.8, 0.9, 1.1, 1.2, 1.3, 1.4),
    "contrast": (0.6, 0.8, 1.2, 1.4),
    "hue": (-30.0, -15.0, 15.0, 30.0),
    "stain": (0.7, 0.85, 1.2, 1.4),
    "blur": (1.0, 2.0, 3.0),
    "jpeg": (75.0, 50.0, 25.0, 10.0),
}


def perturb(images: np.ndarray, name: str, strength: float) -> np.ndarray:
    """Apply the perturbation called `name` at `strength` to a uint8 NHWC batch."""
    if name not in PERTURBATIONS:
        raise BlastscanError(
            f"unknown perturbation {name!r}; choose one of {sorted(PERTURBATIONS)}"
        )
    return PERTURBATIONS[name](images, strength)


# ------------------------------------------------------------------------ stain normalisation

from blastscan.models.stain import TARGET_MEAN, TARGET_STD, StainNorm, normalize_stain  # noqa: E402,F401

# ------------------------------------------------------------------------------- evaluation


def _perturb_parallel(images, name, strength, pool, piece: int = 32) -> np.ndarray:
    """`perturb` over slices of `piece` images on a thread pool (numpy, scipy and Pillow release
    the GIL), in order; the result equals perturb(images, name, strength)."""
    if pool is None or len(images) <= piece:
        return perturb(images, name, strength)
    starts = range(0, len(images), piece)
    parts = pool.map(lambda i: perturb(images[i : i + piece], name, strength), starts)
    return np.concatenate(list(parts))


# images (N, H, W, 3) uint8 -> (predicted class indices, class probabilities)
Predictor = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def model_predictor(model: torch.nn.Module, batch_size: int = 64, device=None) -> Predictor:
    """The CNN's own softmax head."""
    from blastscan.features import infer

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
    from blastscan.calibration import expected_calibration_error

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


def robustness_table_markdown(result: dict) -> str:
    """A Markdown table: one row per perturbation and strength, clean first."""
    clean = result["clean"]
    c = clean["accuracy"]["value"]
    rows = [
        "| perturbation | strength | accuracy | 95% CI | change vs clean | ECE |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
        f"| none (clean) | | {100 * c:.1f}% | {100 * clean['accuracy']['low']:.1f}–"
        f"{100 * clean['accuracy']['high']:.1f}% | | {clean['ece']:.3f} |",
    ]
    for name, block in result["perturbations"].items():
        for pt in block["points"]:
            a = pt["accuracy"]
            rows.append(
                f"| {name} | {strength_label(name, pt['strength'])} | {100 * a['value']:.1f}% | "
                f"{100 * a['low']:.1f}–{100 * a['high']:.1f}% | {100 * (a['value'] - c):+.1f} pp | "
                f"{pt['ece']:.3f} |"
            )
    return "\n".join(rows) + "\n"


def plot_robustness(result: dict, path: str | Path) -> Path:
    """Accuracy (with 95% intervals) against strength, one panel per perturbation, as a PNG.

    The clean accuracy is drawn at each perturbation's identity strength (and as a dashed line);
    the JPEG axis runs from high to low quality, so stronger shifts are to the right everywhere.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    blocks = result["perturbations"]
    if not blocks:
        raise BlastscanError("the result holds no perturbations to plot")
    cols = min(3, len(blocks))
    rows = -(-len(blocks) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.2 * rows), dpi=110, squeeze=False)
    clean = result["clean"]["accuracy"]
    for ax, (name, block) in zip(axes.flat, blocks.items(), strict=False):
        pts = [(pt["strength"], pt["accuracy"]) for pt in block["points"]]
        if block.get("identity") is not None:
            pts.append((block["identity"], clean))
        pts.sort(key=lambda t: t[0])
        x = np.array([s for s, _ in pts])
        v = np.array([a["value"] for _, a in pts])
        err = np.array(
            [[a["value"] - a["low"] for _, a in pts], [a["high"] - a["value"] for _, a in pts]]
        )
        ax.errorbar(x, v, yerr=err, marker="o", ms=4, capsize=3)
        ax.axhline(clean["value"], ls="--", color="grey", lw=1, label="clean")
        ax.set(title=name, xlabel=block.get("label", "strength"), ylabel="accuracy", ylim=(0, 1.02))
        if name == "jpeg":
            ax.invert_xaxis()
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(blocks) :]:
        ax.axis("off")
    axes.flat[0].legend(loc="lower left", fontsize=8)
    fig.suptitle(f"Accuracy under image shifts ({result['n']} held-out images, 95% Wilson CI)")
    fig.tight_layout()
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------ colour swap


def _nchw(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255


COLOURS_FROM = (
    "each class's mean over the run's training images of their channel means and s.d.s "
    "(Reinhard transfer in RGB)"
)


def class_colours(images: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Per class, the mean over its images of their channel means and s.d.s: (K, 2, 3) in
    [0, 1], [k, 0] the mean and [k, 1] the s.d. A class without images is an error."""
    labels = np.asarray(labels)
    missing = [k for k in range(n_classes) if not np.any(labels == k)]
    if missing:
        raise BlastscanError(f"no training images of class(es) {missing} to take a colour from")
    colours = np.empty((n_classes, 2, 3), np.float32)
    for k in range(n_classes):
        mean, std = channel_statistics(_nchw(images[labels == k]))
        colours[k] = (mean.mean(0).flatten().numpy(), std.mean(0).flatten().numpy())
    return colours


def recolour(images: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """uint8 NHWC images each given `colour` ((2, 3): channel means and s.d.s in [0, 1]) by
    `data.transfer_colour`, the transfer `train --recolour` uses, saved at 8 bits."""
    images = _check_batch(images)
    mean, std = (torch.as_tensor(c).view(1, 3, 1, 1) for c in colour)
    moved = transfer_colour(_nchw(images), mean, std)
    return _as_uint8(moved.permute(0, 2, 3, 1).numpy() * 255)


def evaluate_colour_swap(
    model: torch.nn.Module | Predictor,
    images: np.ndarray,
    labels: np.ndarray,
    colours: np.ndarray,
    batch_size: int = 64,
    device: torch.device | str | None = None,
    chunk: int = 512,
) -> dict:
    """Accuracy with every image in each class's colour (`class_colours`), and how often the
    answer becomes the colour's class.

    Returns {"matrix": [[accuracy of class i's images in class j's colour]], "own_colour",
    "other_colour", "follows_the_colour"}: proportions with 95% Wilson intervals, the last two
    over every (image, other class) pair. A network that ignores colour follows it no more
    often than its errors land on one class of three by chance.
    """
    images, labels = _check_batch(images), np.asarray(labels, dtype=np.int64)
    predictor = as_predictor(model, batch_size, device)
    n_classes = len(colours)
    right = np.zeros((n_classes, n_classes), np.int64)  # [true class, colour's class]
    follows = 0
    for k, colour in enumerate(colours):
        pred = np.concatenate(
            [
                predictor(recolour(images[i : i + chunk], colour))[0]
                for i in range(0, len(images), chunk)
            ]
        )
        right[:, k] = np.bincount(labels[pred == labels], minlength=n_classes)
        follows += int(np.sum((pred == k) & (labels != k)))
    counts = np.bincount(labels, minlength=n_classes)
    n_other = int(len(labels) * (n_classes - 1))
    log.info(
        "in another class's colour: %.4f right, %.4f follow the colour",
        (right.sum() - np.trace(right)) / n_other, follows / n_other,
    )  # fmt: skip
    return {
        "matrix": [
            [proportion(int(right[i, j]), int(counts[i])) for j in range(n_classes)]
            for i in range(n_classes)
        ],
        "own_colour": proportion(int(np.trace(right)), len(labels)),
        "other_colour": proportion(int(right.sum() - np.trace(right)), n_other),
        "follows_the_colour": proportion(follows, n_other),
    }


def colour_swap_markdown(swap: dict, classes: Sequence[str]) -> str:
    """The colour swap as a table: rows the images' class, columns the colour given them."""
    rows = [
        "| images of / in the colour of | " + " | ".join(classes) + " |",
        "| --- |" + " ---: |" * len(classes),
    ]
    for name, line in zip(classes, swap["matrix"], strict=True):
        rows.append(f"| {name} | " + " | ".join(f"{100 * a['value']:.1f}%" for a in line) + " |")
    own, other, follows = (swap[k] for k in ("own_colour", "other_colour", "follows_the_colour"))
    return (
        "\n".join(rows)
        + f"\n\nIn their own class's colour {100 * own['value']:.1f}% right; in another class's "
        f"{100 * other['value']:.1f}% ({100 * other['low']:.1f}–{100 * other['high']:.1f}%), "
        f"and {100 * follows['value']:.1f}% of the answers became the colour's class.\n"
    )


# ------------------------------------------------------------------------------ on a run


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
    bundle: str | Path | None = None,
    head: str = "auto",
    colour_swap: bool = True,
) -> dict:
    """Robustness of a training run's model on its held-out test images.

    With `bundle` (made from this run by `blastscan bundle`), the bundle's decision is scored
    instead of the CNN's softmax: by default its features + classifier head. With
    `colour_swap`, the test images are also scored in each class's colour, the mean of the
    run's training images of that class (`evaluate_colour_swap`). Writes `robustness.json`
    (the result plus provenance), `robustness.md` (the tables) and `figures/robustness.png`
    under `out_dir`, each atomically; returns the result.
    """
    from blastscan import data as D
    from blastscan.distributed import configure_threads
    from blastscan.features import pick_device
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
    from blastscan.features import pick_device
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


def _scored_model(model, bundle, head: str, batch_size: int, meta: dict, run_dir: Path):
    """The run's CNN, or a bundle's decision after checking it is this run's model."""
    if bundle is None:
        return model, "the CNN's softmax head"
    from blastscan.bundle import load_bundle

    loaded = load_bundle(bundle)
    if loaded.classes != list(meta["classes"]) or loaded.image_size != meta["image_size"]:
        raise BlastscanError(
            f"{bundle}: its classes or input size differ from {run_dir}'s; "
            "bundle this run (blastscan bundle RUN --data DIR --classifier ...)"
        )
    bundled = loaded.model.state_dict()
    for name, tensor in model.state_dict().items():
        if not torch.equal(tensor, bundled[name].to(tensor.device)):
            raise BlastscanError(
                f"{bundle}: its CNN weights are not {run_dir}'s; bundle this run "
                "(blastscan bundle RUN --data DIR --classifier ...)"
            )
    chosen = loaded.resolve_head(head)
    return bundle_predictor(loaded, head, batch_size), f"bundle {bundle}, head {chosen}"
