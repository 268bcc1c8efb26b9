"""Decoding one image the way training saw it, and batches into tensors.

Every path into the model (scan, training, extract, predict, the web upload) decodes through
`open_rgb`, so a damaged or odd file is one BlastscanError naming it, never a crash.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from blastscan.errors import BlastscanError


def open_rgb(source: str | Path | bytes) -> Image.Image:
    """Open any common image as 8-bit RGB, upright (EXIF orientation applied).

    Alpha is composited on white, grayscale/CMYK/16-bit are converted, so every image reaches
    the model the way training saw it. Raises BlastscanError naming the file on failure, and
    only BlastscanError: decoders meet arbitrary bytes here, so anything they raise means the
    file is unreadable. Images over Pillow's MAX_IMAGE_PIXELS are refused before decoding.
    """
    import io

    name = "<upload>" if isinstance(source, bytes) else str(source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
        # The header is read, no pixel yet. Checked here too because the warning filter above
        # is process-wide state that concurrent scan_dataset threads race on.
        limit = Image.MAX_IMAGE_PIXELS
        if limit and image.width * image.height > limit:
            raise Image.DecompressionBombError(
                f"{image.width}x{image.height} = {image.width * image.height} pixels, "
                f"over the limit of {limit}"
            )
        image.load()
        image = ImageOps.exif_transpose(image)
        return _to_rgb8(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise BlastscanError(
            f"{name}: image too large to decode safely ({exc}); downscale it or crop the cells"
        ) from exc
    except UnidentifiedImageError as exc:
        reason = "unknown format or not an image"
        raise BlastscanError(f"{name}: not a readable image ({reason}); {_REEXPORT}") from exc
    except OSError as exc:
        if exc.errno is not None:  # the file system's complaint (missing, no access)
            fix = "check the path and its permissions"
            raise BlastscanError(f"{name}: cannot read the file ({exc.strerror}); {fix}") from exc
        raise BlastscanError(f"{name}: not a readable image ({exc}); {_REEXPORT}") from exc
    except Exception as exc:  # decoders raise TypeError, struct.error, ... on damaged bytes
        reason = str(exc) or type(exc).__name__
        raise BlastscanError(f"{name}: not a readable image ({reason}); {_REEXPORT}") from exc


_REEXPORT = "re-export it as JPEG/PNG"


def _to_rgb8(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit samples map to 8 bits as v * 255 / 65535, so a 16-bit export of an image reads
        # as its 8-bit export would (no per-image contrast stretch); wider ints scale by peak.
        array = np.asarray(image).astype(np.float64)
        peak = float(array.max(initial=0.0))
        scale = 255.0 / 65535.0 if peak <= 65535 else 255.0 / peak
        image = Image.fromarray(np.clip(np.rint(array * scale), 0, 255).astype(np.uint8))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(canvas, rgba)
    return image.convert("RGB")


def load_image_array(source: str | Path | bytes, size: int) -> np.ndarray:
    """Decode and resize one image to (size, size, 3) uint8, the way training saw it."""
    image = open_rgb(source)
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


def to_float_tensor(
    batch_uint8: np.ndarray | torch.Tensor, device: torch.device | str | None = None
) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float in [0, 1], channels_last (fast on CPU and GPU).

    The copy to the device happens while still uint8: a quarter of the bytes of float32. For
    CUDA the batch is staged in pinned (page-locked) memory first: only from there does a
    `non_blocking` copy run asynchronously (from pageable memory CUDA copies synchronously
    through its own bounce buffer). torch's caching host allocator reuses the pinned blocks,
    so staging costs one memcpy per batch, as DataLoader's pin_memory does.
    """
    device = torch.device(device or "cpu")
    t = torch.as_tensor(batch_uint8)
    if device.type == "cuda" and t.device.type == "cpu":
        t = t.pin_memory()
    t = t.to(device, non_blocking=True)
    return t.permute(0, 3, 1, 2).float().div_(255.0).contiguous(memory_format=torch.channels_last)
