"""All of a dataset's images decoded once into one uint8 array, cached on disk.

The dataset is small (a few thousand 224x224 JPEGs), so the array is kept in memory and its
cache keyed by the manifest: a second run never decodes again.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from blastscan.data.files import Dataset
from blastscan.data.images import load_image_array
from blastscan.outputs import atomic_save_npy


def default_cache_dir() -> Path:
    """Where decoded arrays live unless the user says otherwise; never inside the dataset."""
    return Path(os.environ.get("BLASTSCAN_CACHE", Path.home() / ".cache" / "blastscan"))


def load_images(
    dataset: Dataset, size: int, cache_dir: Path | None = None, workers: int | None = None
) -> np.ndarray:
    """All images as one (N, size, size, 3) uint8 array, decoded once and cached on disk.

    The cache key covers the files' hashes, their order and the size, so a changed dataset or
    size can never be served stale pixels. Cache files are plain .npy (no pickle).
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = hashlib.sha256(f"{dataset.manifest_digest()}:{size}:bilinear-v1".encode()).hexdigest()[
        :24
    ]
    cache_file = cache_dir / f"images-{size}px-{key}.npy"
    if cache_file.is_file():
        try:
            array = np.load(cache_file, allow_pickle=False, mmap_mode=None)
            if array.shape == (len(dataset.samples), size, size, 3):
                return array
        except (OSError, ValueError):
            pass  # a damaged cache is rebuilt below
    with ThreadPoolExecutor(workers or min(8, (os.cpu_count() or 1) * 2)) as pool:
        arrays = list(pool.map(lambda s: load_image_array(s.path, size), dataset.samples))
    array = np.stack(arrays) if arrays else np.zeros((0, size, size, 3), np.uint8)
    try:
        atomic_save_npy(cache_file, array)
    except OSError as exc:
        warnings.warn(f"could not write image cache {cache_file}: {exc}", stacklevel=2)
    return array
