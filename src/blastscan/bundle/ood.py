"""Out-of-distribution detection: how far an image lies from the smears the model was fitted on.

A model trained on one laboratory's smears answers with confidence on anything, a photo of a
cat included; so every prediction carries the Mahalanobis distance of its deep features to
the training features, and a flag when that distance is beyond what held-out smears reach.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from blastscan.errors import BlastscanError


@dataclass
class Mahalanobis:
    """Distance to the nearest of C means under one shrunk (Ledoit-Wolf) covariance."""

    means: np.ndarray  # (C, D)
    precision: np.ndarray  # (D, D), inverse of the shrunk covariance
    threshold: float = 0.0
    shrinkage: float = 0.0

    def distances(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        best = np.full(len(X), np.inf)
        for mean in self.means:
            d = X - mean
            best = np.minimum(best, np.einsum("nd,nd->n", d @ self.precision, d))
        return np.sqrt(np.maximum(best, 0.0))

    @classmethod
    def fit(cls, X: np.ndarray, y: np.ndarray) -> Mahalanobis:
        from sklearn.covariance import LedoitWolf

        X = np.asarray(X, dtype=np.float64)
        classes = np.unique(y)
        means = np.stack([X[y == c].mean(axis=0) for c in classes])
        lw = LedoitWolf(assume_centered=True).fit(X - means[np.searchsorted(classes, y)])
        return cls(means, lw.precision_, 0.0, float(lw.shrinkage_))


def _edge_and_laplacian(channels: np.ndarray, eps: float = 1e-3) -> tuple[np.ndarray, ...]:
    """Log mean |gradient| and log mean |Laplacian| of (N, H, W) planes: structure and noise."""
    edges = np.abs(np.diff(channels, axis=1)).mean(axis=(1, 2)) + np.abs(
        np.diff(channels, axis=2)
    ).mean(axis=(1, 2))
    lap = np.abs(
        4 * channels[:, 1:-1, 1:-1]
        - channels[:, :-2, 1:-1]
        - channels[:, 2:, 1:-1]
        - channels[:, 1:-1, :-2]
        - channels[:, 1:-1, 2:]
    ).mean(axis=(1, 2))
    return np.log(edges + eps), np.log(lap + eps)


def image_statistics(images: np.ndarray, log_saturation: bool = True) -> np.ndarray:
    """Nine colour and texture statistics per (N, H, W, 3) uint8 image, at the model's input size.

    Mean RGB, log std RGB, log edge energy, log Laplacian energy (noise), log mean saturation:
    what tells a stained smear from a flat colour, a ramp or noise whatever the network
    learned. Saturation on a log scale, like the other scale-like numbers: a grayscale copy of
    a smear (saturation 0) then lies 29-39 away where the threshold is about 5; on the linear
    scale of bundles made before (`log_saturation=False`) 64% passed
    (benchmarks/experiments/ood_grayscale.py).
    """
    x = np.asarray(images, dtype=np.float32) / 255.0
    log_edges, log_lap = _edge_and_laplacian(x.mean(axis=3))
    peak, low = x.max(axis=3), x.min(axis=3)
    saturation = ((peak - low) / np.maximum(peak, 1e-3)).mean(axis=(1, 2))
    eps = 1e-3
    return np.column_stack(
        [
            x.mean(axis=(1, 2)),
            np.log(x.std(axis=(1, 2)) + eps),
            log_edges,
            log_lap,
            np.log(saturation + eps) if log_saturation else saturation,
        ]
    ).astype(np.float64)


def value_chroma_statistics(images: np.ndarray, chunk: int = 256) -> np.ndarray:
    """Nine statistics of what a value-chroma network sees, per (N, H, W, 3) uint8 image.

    For each of its three standardised input channels (value, darkest channel, chroma:
    `normalize_value_chroma`): log edge energy, log Laplacian energy (noise) and skewness.
    Why not `image_statistics`: mean colour and saturation change under a hue turn, a lamp or
    a faded stain, which such a network cannot see, so the pixel check would call a shift it is
    built to ignore out of distribution. These are unchanged by any hue turn, lamp or contrast
    change that does not clip; a grayscale image (chroma 0 everywhere), a flat colour, a ramp
    or noise still lie far from smears.
    """
    import torch

    from blastscan.models.stain import normalize_value_chroma

    rows = []
    for start in range(0, len(images), chunk):
        batch = torch.from_numpy(np.asarray(images[start : start + chunk], dtype=np.float32))
        seen = normalize_value_chroma(batch.permute(0, 3, 1, 2) / 255.0).numpy()
        planes = seen.reshape(-1, *seen.shape[2:])  # (N*3, H, W), z-scored: mean 0, s.d. 1
        edges, lap = _edge_and_laplacian(planes)
        skew = (planes**3).mean(axis=(1, 2))
        rows.append(np.column_stack([edges, lap, skew]).reshape(len(seen), 9))
    return np.concatenate(rows).astype(np.float64) if rows else np.zeros((0, 9))


def pixel_statistics_for(images: np.ndarray, version: int) -> np.ndarray:
    """The statistics a detector of `version` was fitted on (see `OODDetector`)."""
    if version >= 3:
        return value_chroma_statistics(images)
    return image_statistics(images, log_saturation=version >= 2)


def describe_pixel_statistics(version: int) -> str:
    """The nine statistics of `version` in words, for bundle.json and the model card."""
    if version >= 3:
        return (
            "edge, noise and skew statistics of the value-chroma input (blind to hue and lamp, "
            "as the network is)"
        )
    return "colour/texture statistics"


def pixel_statistics_version(input_norm: str) -> int:
    """Which pixel statistics suit a network with this first layer: 3 where it reads hue and
    lamp shifts without colour (value-chroma, and colour-gated, whose gate shuts on them), else
    2 (colour and texture)."""
    return 3 if input_norm in ("value-chroma", "colour-gated") else 2


@dataclass
class OODDetector:
    """Out-of-distribution flag from two Mahalanobis distances, each with its own threshold.

    `deep`: the 1000 deep features, class-conditional means with a tied covariance (Lee et al.
    2018). `pixels`: nine pixel statistics, one Gaussian; it catches inputs a network
    maps near the smears (a flat colour, a ramp) because it never learned what they are. Each
    threshold is the 1 - (1 - quantile) / 2 quantile of held-out in-distribution distances, so
    the two together flag about 1 - quantile of in-distribution images.
    """

    deep: Mahalanobis
    pixels: Mahalanobis | None
    quantile: float
    n_fit: int
    n_calibration: int
    # Which statistics the pixel Gaussian was fitted on: 3 = `value_chroma_statistics`, 2 =
    # `image_statistics` with log saturation; bundles that do not say are 1 (linear
    # saturation) and keep being scored as they were fitted.
    pixel_statistics: int = 2

    def _image_statistics(self, images: np.ndarray) -> np.ndarray:
        return pixel_statistics_for(images, self.pixel_statistics)

    @property
    def threshold(self) -> float:
        return self.deep.threshold

    def distances(self, features: np.ndarray) -> np.ndarray:
        return self.deep.distances(features)

    def score(
        self, features: np.ndarray, images: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """(deep distance, pixel-statistics distance or None, flag) per image."""
        deep = self.deep.distances(features)
        flag = deep > self.deep.threshold
        pixel = None
        if self.pixels is not None and images is not None:
            pixel = self.pixels.distances(self._image_statistics(images))
            flag |= pixel > self.pixels.threshold
        return deep, pixel, flag

    def to_arrays(self) -> dict[str, np.ndarray]:
        arrays = {
            "means": self.deep.means.astype(np.float32),
            "precision": self.deep.precision.astype(np.float32),
        }
        if self.pixels is not None:
            arrays |= {"pixel_means": self.pixels.means, "pixel_precision": self.pixels.precision}
        return arrays

    def summary(self) -> dict[str, Any]:
        info = {
            "method": "Mahalanobis distance to the nearest class mean of the deep features (tied "
            f"Ledoit-Wolf covariance), and of 9 {describe_pixel_statistics(self.pixel_statistics)}"
            " (one Gaussian)",
            "threshold": self.deep.threshold,
            "shrinkage": self.deep.shrinkage,
            "quantile": self.quantile,
            "n_fit": self.n_fit,
            "n_calibration": self.n_calibration,
            "classes": len(self.deep.means),
        }
        if self.pixels is not None:
            info |= {
                "pixel_threshold": self.pixels.threshold,
                "pixel_shrinkage": self.pixels.shrinkage,
                "pixel_statistics": self.pixel_statistics,
            }
        return info

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], info: dict[str, Any]) -> OODDetector:
        deep = Mahalanobis(
            arrays["means"].astype(np.float64),
            arrays["precision"].astype(np.float64),
            _number(info["threshold"]),
            float(info["shrinkage"]),
        )
        pixels = None
        if "pixel_means" in arrays:
            pixels = Mahalanobis(
                arrays["pixel_means"].astype(np.float64),
                arrays["pixel_precision"].astype(np.float64),
                _number(info["pixel_threshold"]),
                float(info["pixel_shrinkage"]),
            )
        return cls(
            deep,
            pixels,
            float(info["quantile"]),
            int(info["n_fit"]),
            int(info["n_calibration"]),
            int(info.get("pixel_statistics", 1)),
        )


def _number(value: Any) -> float:
    """A float from bundle.json, where a non-finite one was written as null (NaN: never flags)."""
    return math.nan if value is None else float(value)


def fit_ood(
    features: np.ndarray,
    labels: np.ndarray | None = None,
    calibration: np.ndarray | None = None,
    quantile: float = 0.99,
    images: np.ndarray | None = None,
    calibration_images: np.ndarray | None = None,
    seed: int = 0,
    pixel_statistics: int = 2,
) -> OODDetector:
    """Fit on training images' features (and pixels); set thresholds on held-out ones.

    Without `calibration` features, a random fifth of the training rows is held out for the
    thresholds (distances of the rows a covariance was fitted on are optimistically small).
    The pixel-statistics part (of version `pixel_statistics`, see `OODDetector`) is fitted
    only when `images` are given.
    """
    X = np.asarray(features, dtype=np.float64)
    y = np.zeros(len(X), dtype=np.int64) if labels is None else np.asarray(labels)
    P = None if images is None else pixel_statistics_for(images, pixel_statistics)
    P_cal = (
        None
        if calibration_images is None
        else pixel_statistics_for(calibration_images, pixel_statistics)
    )
    if calibration is None:
        order = np.random.default_rng(seed).permutation(len(X))
        held, kept = order[: max(1, len(X) // 5)], order[max(1, len(X) // 5) :]
        calibration, X, y = X[held], X[kept], y[kept]
        if P is not None:
            P_cal, P = P[held], P[kept]
    if len(X) < 2 or len(calibration) < 1:
        raise BlastscanError("OOD calibration needs at least 2 training and 1 held-out image")
    each = 1 - (1 - quantile) / 2 if P is not None and P_cal is not None else quantile
    deep = Mahalanobis.fit(X, y)
    deep.threshold = float(np.quantile(deep.distances(calibration), each))
    pixels = None
    if P is not None and P_cal is not None:
        pixels = Mahalanobis.fit(P, np.zeros(len(P), dtype=np.int64))
        pixels.threshold = float(np.quantile(pixels.distances(P_cal), each))
    return OODDetector(deep, pixels, quantile, len(X), len(calibration), pixel_statistics)
