"""The shift battery: corruption kinds a microscopist recognises, each at 5 severities.

`BATTERY` names each kind, what it models and its 5 strengths (mild -> severe), in the spirit
of ImageNet-C (Hendrycks & Dietterich 2019) but for blood smears: lamp, stain, optics, camera
and slide. `corrupt(images, kind, severity, seed)` is deterministic: image i of a batch draws
from `default_rng([seed, kind, first + i])`, the same draws at every severity, so a stronger
severity moves the same image further. Scoring lives in `battery_eval`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from blastscan.errors import BlastscanError
from blastscan.robustness import corruptions as C
from blastscan.robustness import shifts as S

SEVERITIES = (1, 2, 3, 4, 5)
# one uint8 (H, W, 3) image, a strength and the image's generator -> the corrupted image
Corruption = Callable[[np.ndarray, float, np.random.Generator], np.ndarray]


def _batchwise(fn: Callable[[np.ndarray, float], np.ndarray]) -> Corruption:
    """A deterministic batch corruption of `corruptions` as a per-image one (`corrupt` calls
    `batch` on the whole batch instead: it needs no draws)."""

    def per_image(image: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
        return fn(image[None], s)[0]

    per_image.batch = fn  # type: ignore[attr-defined]
    return per_image


@dataclass(frozen=True)
class Kind:
    """One corruption kind: what it models, its 5 strengths and the unit they are in."""

    name: str
    models: str
    strengths: tuple[float, float, float, float, float]
    unit: str
    apply: Corruption


BATTERY: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind("brightness-up", "a brighter lamp or longer exposure (clipped highlights)",
             (1.1, 1.2, 1.3, 1.4, 1.5), "x intensity", _batchwise(C.brightness)),
        Kind("brightness-down", "a dimmer lamp, a darker condenser setting",
             (0.9, 0.8, 0.7, 0.6, 0.5), "x intensity", _batchwise(C.brightness)),
        Kind("contrast-up", "a harder camera curve or condenser closed down",
             (1.15, 1.3, 1.45, 1.6, 1.8), "x deviation from mean", _batchwise(C.contrast)),
        Kind("contrast-down", "a flat camera curve, stray light, a dirty objective",
             (0.85, 0.7, 0.6, 0.5, 0.4), "x deviation from mean", _batchwise(C.contrast)),
        Kind("saturation", "a faded or under-stained slide, a washed-out camera",
             (0.85, 0.7, 0.55, 0.4, 0.25), "x chroma", S.saturation),
        Kind("hue-plus", "another white balance or stain batch, hue turned one way",
             (10.0, 20.0, 30.0, 40.0, 50.0), "degrees", _batchwise(C.hue)),
        Kind("hue-minus", "the same, turned the other way",
             (-10.0, -20.0, -30.0, -40.0, -50.0), "degrees", _batchwise(C.hue)),
        Kind("stain-matrix", "another stain batch or staining time: stain amounts jittered "
             "in optical-density space (Ruifrok-Johnston deconvolution)",
             (0.1, 0.2, 0.3, 0.4, 0.5), "relative stain change", S.stain_matrix),
        Kind("defocus", "the smear out of focus (disk point-spread function)",
             (1.0, 1.5, 2.0, 2.5, 3.0), "disk radius (px)", S.defocus),
        Kind("motion-blur", "the stage or camera moving during the exposure",
             (3.0, 5.0, 7.0, 9.0, 12.0), "line length (px)", S.motion_blur),
        Kind("pixelate", "a coarser sensor or a down-sized export",
             (0.8, 0.65, 0.5, 0.4, 0.3), "x resolution", S.pixelate),
        Kind("jpeg", "another JPEG pipeline", (80.0, 60.0, 40.0, 25.0, 10.0), "quality",
             S.jpeg_quality),
        Kind("sensor-noise", "shot and read noise of a camera at higher gain",
             (0.02, 0.04, 0.06, 0.09, 0.12), "s.d. at white", S.sensor_noise),
        Kind("precipitate", "stain deposits: dark violet specks on the slide",
             (5.0, 10.0, 20.0, 35.0, 50.0), "specks per 128^2 px", S.precipitate),
        Kind("air-bubbles", "air under the cover slip: bright discs with dark rims",
             (1.0, 2.0, 3.0, 4.0, 5.0), "bubbles", S.air_bubbles),
    )
}  # fmt: skip
KIND_INDEX = {name: i for i, name in enumerate(BATTERY)}


def kind(name: str) -> Kind:
    """The kind called `name`; a one-line error naming the choices otherwise."""
    if name not in BATTERY:
        raise BlastscanError(f"unknown corruption kind {name!r}; choose one of {list(BATTERY)}")
    return BATTERY[name]


def corrupt(
    images: np.ndarray, name: str, severity: int, seed: int = 0, first: int = 0
) -> np.ndarray:
    """`images` (N, H, W, 3) uint8 under kind `name` at `severity` (1-5). `first` is the index
    of images[0] in the whole set, so corrupting in chunks gives what one call would."""
    images = C._check_batch(images)
    k = kind(name)
    if severity not in SEVERITIES:
        raise BlastscanError(f"severity must be one of {SEVERITIES}, got {severity}")
    strength = k.strengths[severity - 1]
    if hasattr(k.apply, "batch"):  # deterministic: no per-image draws
        return k.apply.batch(images, strength)
    out = np.empty_like(images)
    for i, image in enumerate(images):
        rng = np.random.default_rng([seed, KIND_INDEX[name], first + i])
        out[i] = k.apply(image, strength, rng)
    return out
