"""Smear-like synthetic images, for tests, demos and the ONNX check when no real image is at hand."""

# MOVE: this module goes to blastscan.data.synthetic (the integrator moves it there).

from __future__ import annotations

import numpy as np


def synthetic_smears(n: int, size: int = 64, seed: int = 0) -> np.ndarray:
    """Smear-like (N, size, size, 3) uint8 images: pale pink plasma, red cells, purple nuclei.

    For tests, demos and the ONNX check when no real image is at hand; nothing clinical.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    out = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        image = np.empty((size, size, 3), np.float32)
        image[:] = rng.normal([232, 205, 212], 6)
        for _ in range(rng.integers(4, 9)):  # red cells: pale discs
            _disc(
                image,
                xx,
                yy,
                rng.uniform(0, size, 2),
                rng.uniform(0.08, 0.14) * size,
                rng.normal([215, 160, 170], 8),
            )
        for _ in range(rng.integers(1, 3)):  # white cells: a dark purple nucleus
            _disc(
                image,
                xx,
                yy,
                rng.uniform(0.2, 0.8, 2) * size,
                rng.uniform(0.12, 0.22) * size,
                rng.normal([120, 70, 150], 10),
            )
        image += rng.normal(0, 4, image.shape)
        out[i] = np.clip(image, 0, 255).astype(np.uint8)
    return out


def _disc(image: np.ndarray, xx: np.ndarray, yy: np.ndarray, centre, radius: float, colour) -> None:
    inside = (xx - centre[0]) ** 2 + (yy - centre[1]) ** 2 < radius**2
    image[inside] = colour
