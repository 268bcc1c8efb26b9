"""Grad-CAM heat maps: where in a smear the CNN found the evidence for a class.

Selvaraju et al. 2017 on `feature_map`, the last 3x3 convolution block (conv18, stride 32).
For DarkNet-19, whose head is linear after a global average pool, Grad-CAM equals the class
activation map of Zhou et al. 2016. The heat map explains the CNN: when the features+classifier
head decides, it shows where the CNN sees evidence for the class that head chose.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from blastscan.data import to_float_tensor
from blastscan.errors import BlastscanError
from blastscan.outputs import atomic_write, atomic_write_json, check_output_dir

if TYPE_CHECKING:
    from blastscan.bundle import Bundle

DISPLAY_MAX = 512  # longest side of the figures, in px


@dataclass
class CamResult:
    """Heat maps in [0, 1] at the input size, with the class each one explains."""

    heatmaps: np.ndarray  # (N, H, W) float32
    targets: np.ndarray  # (N,) class index explained
    probabilities: np.ndarray  # (N, K) CNN softmax
    grid: tuple[int, int] = (0, 0)  # feature-map cells (input size / 32): the map's resolution


def grad_cam(
    model: torch.nn.Module, images: np.ndarray, targets: Sequence[int] | None = None
) -> CamResult:
    """Grad-CAM of (N, H, W, 3) uint8 images for `targets` (default: the CNN's argmax class).

    Channel weights are the spatially averaged gradients of the class logit with respect to
    `feature_map`; the map is ReLU(sum_k w_k A_k), upsampled bilinearly to the input size and
    scaled to [0, 1] per image. The gradient is taken with `torch.autograd.grad` from the
    feature map alone: no hooks and no `.grad` on the shared model, so the web server's
    threads may explain and predict at once. Eval mode keeps batch-norm per-image, so a batch
    gives the same maps as one image at a time.
    """
    device = next(model.parameters()).device
    was_training = model.training
    if was_training:  # a model being served is always in eval mode already
        model.eval()
    try:
        x = to_float_tensor(images, device)
        with torch.inference_mode(False), torch.no_grad():
            activation = model.feature_map(x)
        with torch.inference_mode(False), torch.enable_grad():
            activation = activation.detach().requires_grad_(True)
            logits = model.head(model.features_from_map(activation)).float()
            chosen = (
                logits.argmax(1)
                if targets is None
                else torch.as_tensor(list(targets), device=device)
            )
            (gradient,) = torch.autograd.grad(logits.gather(1, chosen[:, None]).sum(), activation)
    finally:
        model.train(was_training)
    cams = _combine(activation.detach(), gradient, x.shape[-2:])
    probs = torch.softmax(logits.detach(), 1).cpu().numpy()
    return CamResult(cams, chosen.cpu().numpy(), probs, tuple(activation.shape[-2:]))


def _combine(activation: torch.Tensor, gradient: torch.Tensor, size) -> np.ndarray:
    weights = gradient.float().mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * activation.float()).sum(1, keepdim=True))
    cam = F.interpolate(cam, size=tuple(size), mode="bilinear", align_corners=False)[:, 0]
    peak = cam.flatten(1).max(1).values.clamp_min(1e-12)[:, None, None]
    return (cam / peak).cpu().numpy().astype(np.float32)


# ---------------------------------------------------------------- pictures


def colorize(heatmap: np.ndarray) -> np.ndarray:
    """(H, W) in [0, 1] -> (H, W, 3) uint8 with the perceptually ordered 'inferno' colour map."""
    from matplotlib import colormaps

    return (colormaps["inferno"](np.clip(heatmap, 0, 1))[..., :3] * 255).astype(np.uint8)


def display_image(image: Image.Image, max_side: int = DISPLAY_MAX) -> Image.Image:
    """The original image, shrunk so the longer side is at most `max_side` (never enlarged)."""
    scale = min(1.0, max_side / max(image.size))
    if scale < 1.0:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        return image.resize(size, Image.Resampling.BILINEAR)
    return image


def overlay(image: Image.Image, heatmap: np.ndarray, alpha: float = 0.45) -> Image.Image:
    """Heat map stretched over the whole image (the model saw it squeezed to a square) and blended.

    Weak evidence fades out: the blend weight grows with the heat, so the cells stay visible.
    """
    heat = Image.fromarray((np.clip(heatmap, 0, 1) * 255).astype(np.uint8)).resize(
        image.size, Image.Resampling.BILINEAR
    )
    h = np.asarray(heat, dtype=np.float32)[..., None] / 255.0
    colour = colorize(h[..., 0]).astype(np.float32)
    base = np.asarray(image.convert("RGB"), dtype=np.float32)
    weight = alpha * (0.3 + 0.7 * h)
    return Image.fromarray(np.clip(base * (1 - weight) + colour * weight, 0, 255).astype(np.uint8))


def side_by_side(
    image: Image.Image, heatmap: np.ndarray, title: str, grid: tuple[int, int] = (0, 0)
) -> Image.Image:
    """Figure: original | heat map | overlay, with the class and probability as title.

    The heat panel names the feature-map grid: a 1x1 map (inputs under 64 px) cannot localise.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    heat = np.asarray(
        Image.fromarray((heatmap * 255).astype(np.uint8)).resize(
            image.size, Image.Resampling.BILINEAR
        )
    )
    fig, axes = plt.subplots(1, 3, figsize=(10.5, 3.9), dpi=100)
    panels = [
        (image, "original", None),
        (heat, f"Grad-CAM (conv18, {grid[0]}x{grid[1]} cells)", "inferno"),
        (overlay(image, heatmap), "overlay", None),
    ]
    for ax, (picture, name, cmap) in zip(axes, panels, strict=True):
        ax.imshow(picture, cmap=cmap, vmin=0 if cmap else None, vmax=255 if cmap else None)
        ax.set_title(name, fontsize=10)
        ax.axis("off")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.canvas.draw()
    rendered = Image.fromarray(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy())
    plt.close(fig)
    return rendered


def png_bytes(image: Image.Image) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def save_png(path: Path, image: Image.Image) -> None:
    atomic_write(path, lambda tmp: tmp.write_bytes(png_bytes(image)))


# ---------------------------------------------------------------- command


@dataclass
class Explanation:
    """What `explain_files` wrote for one image."""

    path: str
    predicted: str
    probability: float
    head: str
    explained_class: str
    overlay: str
    figure: str


def _unique_stem(path: Path, used: set[str]) -> str:
    stem, i = path.stem, 1
    while stem in used:
        i += 1
        stem = f"{path.stem}-{i}"
    used.add(stem)
    return stem


def explain_files(
    bundle: Bundle | str | Path,
    paths: Sequence[str | Path],
    out_dir: str | Path,
    target: str | None = None,
) -> tuple[list[Explanation], list[tuple[str, str]]]:
    """Write `<stem>_overlay.png` and `<stem>_gradcam.png` (original | heat | overlay) per image.

    The class explained is the bundle's decision (or `target`, a class or display name).
    Unreadable files are returned with the reason, not raised. Also writes explanations.json,
    unless no image was readable: then nothing is written, not even `out_dir`.
    """
    from blastscan.bundle import as_bundle
    from blastscan.data import open_rgb

    out = check_output_dir(Path(out_dir))
    bundle = as_bundle(bundle)
    target_index = bundle.class_index(target) if target else None
    done, problems, used = [], [], set()
    for raw in paths:
        path = Path(raw)
        try:
            image = open_rgb(path)
        except BlastscanError as exc:
            problems.append((str(path), str(exc).split(": ", 1)[-1]))
            continue
        done.append(_explain_one(bundle, path, image, out, _unique_stem(path, used), target_index))
    if not done:
        return done, problems
    atomic_write_json(
        out / "explanations.json",
        {
            "bundle": str(bundle.path),
            "method": "Grad-CAM on feature_map (conv18)",
            "images": [e.__dict__ for e in done],
            "unreadable": [{"path": p, "reason": r} for p, r in problems],
        },
    )
    return done, problems


def _explain_one(
    bundle: Bundle, path: Path, image: Image.Image, out: Path, stem: str, target: int | None
) -> Explanation:
    array = bundle.prepare(image)[None]
    prediction = bundle.predict(array)
    decided = int(prediction.predicted[0])
    explained = decided if target is None else target
    result = grad_cam(bundle.model, array, [explained])
    cam = result.heatmaps[0]
    shown = display_image(image)
    name = bundle.display_names[decided]
    probability = float(prediction.probabilities[0, decided])
    title = f"{path.name}: {name} ({probability:.1%}, {prediction.head} head)"
    if explained != decided:
        title += f"; explaining {bundle.display_names[explained]}"
    overlay_path, figure_path = out / f"{stem}_overlay.png", out / f"{stem}_gradcam.png"
    save_png(overlay_path, overlay(shown, cam))
    save_png(figure_path, side_by_side(shown, cam, title, result.grid))
    return Explanation(
        str(path),
        name,
        probability,
        prediction.head,
        bundle.display_names[explained],
        str(overlay_path),
        str(figure_path),
    )


def explain_to_json(explanations: list[Explanation]) -> str:
    return json.dumps([e.__dict__ for e in explanations], indent=1)
