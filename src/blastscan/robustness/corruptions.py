"""The image shifts: brightness, contrast, hue, stain, blur and JPEG on uint8 NHWC batches.

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
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from blastscan.data import rotate_hue
from blastscan.errors import BlastscanError


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


def _perturb_parallel(images, name, strength, pool, piece: int = 32) -> np.ndarray:
    """`perturb` over slices of `piece` images on a thread pool (numpy, scipy and Pillow release
    the GIL), in order; the result equals perturb(images, name, strength)."""
    if pool is None or len(images) <= piece:
        return perturb(images, name, strength)
    starts = range(0, len(images), piece)
    parts = pool.map(lambda i: perturb(images[i : i + piece], name, strength), starts)
    return np.concatenate(list(parts))
