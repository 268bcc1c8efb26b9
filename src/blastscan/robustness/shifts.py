"""The battery's corruptions beyond `corruptions`: stain matrix, saturation, optics, camera, slide.

Each takes one uint8 RGB image (H, W, 3), a strength and a numpy Generator, and returns a new
uint8 image of the same shape: images a microscope and camera could have produced. Random
ones draw from the generator only, so a (seed, image) pair always gives the same corruption,
and the draws do not depend on the strength: a stronger severity moves the same specks,
bubbles, blur direction or stain direction further.
"""

from __future__ import annotations

import io

import numpy as np

from blastscan.data.degrade import HED_FROM_RGB, RGB_FROM_HED


def _as_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def stain_matrix(image: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Colour deconvolution with Ruifrok & Johnston's matrix, each stain's amount scaled by
    1 + strength * u and shifted by strength * v / 10 OD (u, v in [-1, -0.5] or [0.5, 1], one
    per stain and image), reconvolved: another stain batch, staining time or smear thickness."""
    direction = rng.uniform(0.5, 1.0, 6) * rng.choice([-1.0, 1.0], 6)
    od = -np.log(np.maximum(image.astype(np.float64), 1.0) / 255.0)
    c = od @ HED_FROM_RGB
    c = c * (1 + strength * direction[:3]) + strength * direction[3:] / 10
    return _as_uint8(255.0 * np.exp(-(c @ RGB_FROM_HED)))


def saturation(image: np.ndarray, factor: float, rng: np.random.Generator) -> np.ndarray:
    """Pull every pixel towards its own grey by 1 - factor: a faded or under-stained slide."""
    x = image.astype(np.float32)
    grey = x @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return _as_uint8(grey[..., None] + (x - grey[..., None]) * np.float32(factor))


def _filter(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    from scipy.ndimage import convolve

    kernel = (kernel / kernel.sum()).astype(np.float32)
    x = image.astype(np.float32)
    return _as_uint8(np.stack([convolve(x[..., c], kernel, mode="reflect") for c in range(3)], -1))


def disk_kernel(radius: float) -> np.ndarray:
    """An anti-aliased disk of `radius` px: the point-spread function of a defocused lens."""
    r = int(np.ceil(radius))
    fine = np.linspace(-r - 0.5, r + 0.5, 8 * (2 * r + 1) + 1)[:-1] + 1 / 16
    yy, xx = np.meshgrid(fine, fine, indexing="ij")
    inside = (xx**2 + yy**2 <= radius**2).astype(np.float64)
    return inside.reshape(2 * r + 1, 8, 2 * r + 1, 8).mean((1, 3))


def defocus(image: np.ndarray, radius: float, rng: np.random.Generator) -> np.ndarray:
    """Out of focus: convolution with a disk of `radius` px (not a Gaussian: a lens's blur
    circle has a hard edge)."""
    return _filter(image, disk_kernel(radius))


def motion_kernel(length: float, angle: float) -> np.ndarray:
    """A line of `length` px at `angle` radians, anti-aliased by supersampling its points."""
    r = int(np.ceil(length / 2))
    kernel = np.zeros((2 * r + 1, 2 * r + 1))
    for t in np.linspace(-length / 2, length / 2, int(8 * length) + 1):
        y, x = r + t * np.sin(angle), r + t * np.cos(angle)
        y0, x0 = int(np.floor(y)), int(np.floor(x))
        for dy, dx in ((0, 0), (0, 1), (1, 0), (1, 1)):
            w = (1 - abs(y - y0 - dy)) * (1 - abs(x - x0 - dx))
            if 0 <= y0 + dy <= 2 * r and 0 <= x0 + dx <= 2 * r and w > 0:
                kernel[y0 + dy, x0 + dx] += w
    return kernel


def motion_blur(image: np.ndarray, length: float, rng: np.random.Generator) -> np.ndarray:
    """The stage or camera moving during the exposure: a line blur of `length` px in a
    direction drawn per image."""
    return _filter(image, motion_kernel(length, rng.uniform(0, np.pi)))


def pixelate(image: np.ndarray, scale: float, rng: np.random.Generator) -> np.ndarray:
    """A coarser sensor or a down-sized export: box-downsample to `scale` of the size, then
    back up with nearest-neighbour (Pillow)."""
    from PIL import Image

    h, w = image.shape[:2]
    small = Image.fromarray(image).resize(
        (max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BOX
    )
    return np.asarray(small.resize((w, h), Image.Resampling.NEAREST))


def jpeg_quality(image: np.ndarray, quality: float, rng: np.random.Generator) -> np.ndarray:
    """Another JPEG pipeline: re-encoded at `quality` (Pillow, 4:2:0)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=int(round(quality)))
    buffer.seek(0)
    return np.asarray(Image.open(buffer).convert("RGB"))


def sensor_noise(image: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    """Shot plus read noise, as `data.degrade.sensor_noise`: s.d. `level` (of full scale) at
    white, variance level^2 (0.8 x + 0.2), x in [0, 1]: a dimmer lamp with more gain."""
    x = image.astype(np.float64) / 255.0
    noise = rng.standard_normal(image.shape)
    return _as_uint8(255.0 * (x + level * np.sqrt(0.8 * x + 0.2) * noise))


def _discs(shape: tuple[int, int], centres: np.ndarray) -> np.ndarray:
    """Distance of every pixel to each centre, (K, H, W)."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return np.hypot(yy[None] - centres[:, 0, None, None], xx[None] - centres[:, 1, None, None])


def precipitate(image: np.ndarray, count: float, rng: np.random.Generator) -> np.ndarray:
    """Stain deposits: `count` dark violet specks of radius 0.7-2 px per 128 x 128 px, at
    places drawn per image (the first of the same 200 places at every severity)."""
    h, w = image.shape[:2]
    n = int(np.ceil(count * h * w / 128**2))
    places = rng.uniform(0, 1, (200, 2)) * (h, w)
    radii = rng.uniform(0.7, 2.0, 200)
    cover = np.zeros((h, w), dtype=np.float32)
    for (y, x), r in zip(places[:n], radii[:n], strict=True):  # a 7 x 7 window per speck
        y0, x0 = max(0, int(y) - 3), max(0, int(x) - 3)
        yy, xx = np.mgrid[y0 : min(h, int(y) + 4), x0 : min(w, int(x) + 4)]
        disc = np.clip(r + 0.5 - np.hypot(yy - y, xx - x), 0, 1)
        cover[y0 : y0 + disc.shape[0], x0 : x0 + disc.shape[1]] = np.maximum(
            cover[y0 : y0 + disc.shape[0], x0 : x0 + disc.shape[1]], disc
        )
    speck = np.array([70.0, 30.0, 95.0], dtype=np.float32)
    alpha = 0.85 * cover[..., None]
    return _as_uint8(image.astype(np.float32) * (1 - alpha) + speck * alpha)


def air_bubbles(image: np.ndarray, count: float, rng: np.random.Generator) -> np.ndarray:
    """Air under the cover slip: `count` bubbles (radius 8-22% of the side), each a brighter,
    flatter disc inside a dark refracting rim, at places drawn per image."""
    h, w = image.shape[:2]
    n = int(round(count))
    places = rng.uniform(0, 1, (10, 2)) * (h, w)
    radii = rng.uniform(0.08, 0.22, 10) * min(h, w)
    out = image.astype(np.float32)
    for d, r in zip(_discs((h, w), places[:n]), radii[:n], strict=True):
        inside = np.clip(r - d, 0, 1)[..., None]
        rim = np.clip(1 - np.abs(d - r) / max(1.0, 0.08 * r), 0, 1)[..., None]
        out = out * (1 - inside) + (0.6 * out + 0.4 * 245.0) * inside
        out = out * (1 - 0.6 * rim)
    return _as_uint8(out)
