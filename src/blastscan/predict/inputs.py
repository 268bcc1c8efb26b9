"""The images to predict on: files and folders in, decoded pictures out, a chunk at a time."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from blastscan.errors import BlastscanError


def collect_images(inputs: Sequence[str | Path]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Image files under the given files and folders (recursive, sorted, no duplicates).

    A file named explicitly is tried whatever its extension; in folders only image extensions
    count, and hidden names (macOS "._x.jpg" resource forks, .DS_Store, .git/) are skipped. A
    missing path among others is reported, not raised; a folder with no image, or inputs that
    all do not exist, raise before any model work (else: "0 predicted" and an empty table).
    """
    files: dict[Path, None] = {}
    problems: list[tuple[str, str]] = []
    for raw in inputs:
        path = Path(raw).expanduser()
        if path.is_dir():
            files.update(dict.fromkeys(folder_images(path)))
        elif path.is_file():
            files[path] = None
        else:
            problems.append((str(path), "does not exist"))
    if not files and problems:
        raise BlastscanError(
            f"{problems[0][0]}: does not exist; pass image files or a folder of smear images"
        )
    return list(files), problems


def folder_images(folder: Path) -> list[Path]:
    """`data.image_files`, and an error naming the folder when it holds none."""
    from blastscan.data import IMAGE_EXTENSIONS, image_files

    found = image_files(folder)
    if not found:
        wanted = ", ".join(sorted(IMAGE_EXTENSIONS))
        raise BlastscanError(
            f"{folder}: no images found (looked for {wanted}); point at a folder of smear images"
        )
    return found


def _load(path: Path, size: int) -> np.ndarray | str:
    from blastscan.data import load_image_array

    try:
        return load_image_array(path, size)
    except BlastscanError as exc:
        return str(exc).split(": ", 1)[-1]
    except OSError as exc:
        return f"cannot read ({exc})"


def decoded_chunks(
    files: Sequence[Path], size: int, chunk: int, workers: int | None = None
) -> Iterator[tuple[list[Path], np.ndarray, list[tuple[str, str]]]]:
    """Decode files `chunk` at a time in threads: memory stays bounded for any folder size."""
    workers = workers or min(8, (os.cpu_count() or 1) * 2)
    with ThreadPoolExecutor(workers) as pool:
        for start in range(0, len(files), chunk):
            part = files[start : start + chunk]
            decoded = list(pool.map(lambda p: _load(p, size), part))
            ok = [(p, a) for p, a in zip(part, decoded, strict=True) if isinstance(a, np.ndarray)]
            bad = [(str(p), a) for p, a in zip(part, decoded, strict=True) if isinstance(a, str)]
            images = np.stack([a for _, a in ok]) if ok else np.zeros((0, size, size, 3), np.uint8)
            yield [p for p, _ in ok], images, bad
