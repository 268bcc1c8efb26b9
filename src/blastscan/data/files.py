"""Finding a dataset's images: class folders, readable files, their hashes and the manifest."""

from __future__ import annotations

import csv
import hashlib
import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from blastscan.data.images import open_rgb
from blastscan.errors import BlastscanError
from blastscan.outputs import atomic_write

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


# Kaggle folder name -> the name the paper and the report use.
DISPLAY_NAMES = {"Benign": "Benign", "Early": "Early Pre-B", "Pre": "Pre-B", "Pro": "Pro-B"}


KAGGLE_VARIANTS = ("Original", "Segmented")


log = logging.getLogger("blastscan.data")


@dataclass(frozen=True)
class Sample:
    """One image file as the manifest records it."""

    path: str
    label: int
    class_name: str
    sha256: str
    width: int
    height: int


@dataclass
class Dataset:
    """The images of one dataset folder: class names and one Sample per readable image."""

    root: Path
    classes: list[str]
    samples: list[Sample]
    skipped: list[tuple[str, str]]  # (path, reason) of files that could not be read

    @property
    def labels(self) -> np.ndarray:
        return np.array([s.label for s in self.samples], dtype=np.int64)

    @property
    def paths(self) -> list[str]:
        return [s.path for s in self.samples]

    @property
    def display_names(self) -> list[str]:
        return [DISPLAY_NAMES.get(c, c) for c in self.classes]

    def subset(self, indices: Sequence[int]) -> Dataset:
        return Dataset(self.root, self.classes, [self.samples[i] for i in indices], self.skipped)

    def manifest_digest(self) -> str:
        """A key for everything derived from these files, in this order."""
        h = hashlib.sha256()
        for s in self.samples:
            h.update(f"{s.sha256}:{s.label}\n".encode())
        return h.hexdigest()


def resolve_class_root(data_dir: str | Path, variant: str = "Original") -> Path:
    """The folder whose subfolders are the classes: `DIR/Original` in the Kaggle layout, else DIR."""
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise BlastscanError(f"{root}: no such folder; pass the dataset folder with --data")
    if (root / variant).is_dir():
        return root / variant
    if any((root / v).is_dir() for v in KAGGLE_VARIANTS):
        raise BlastscanError(f"{root}: has no {variant}/ folder; choose one of {KAGGLE_VARIANTS}")
    return root


def image_files(folder: Path) -> list[Path]:
    """Image files under `folder`, sorted. Hidden files and anything in a hidden folder are
    skipped: a copy from a Mac carries `._name.jpg` (AppleDouble metadata, not an image)."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in IMAGE_EXTENSIONS
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
        and p.is_file()
    )


def discover_classes(class_root: Path) -> list[tuple[str, list[Path]]]:
    """Class folders in a stable order: the Kaggle order when it applies, else alphabetical."""
    folders = sorted(p for p in class_root.iterdir() if p.is_dir() and not p.name.startswith("."))
    known = [name for name in DISPLAY_NAMES if (class_root / name).is_dir()]
    if known and len(known) == len(folders):
        folders = [class_root / name for name in known]
    found = [(f.name, image_files(f)) for f in folders]
    empty = [name for name, files in found if not files]
    if empty:
        raise BlastscanError(
            f"{class_root}: class folder(s) {', '.join(empty)} hold no images; "
            "add images or remove the folder"
        )
    if len(found) < 2:
        raise BlastscanError(
            f"{class_root}: found {len(found)} class folder(s); a classifier needs at least two "
            "(one subfolder of images per class)"
        )
    return found


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _describe(path: Path, label: int, class_name: str) -> Sample | tuple[str, str]:
    try:
        data = path.read_bytes()
        image = open_rgb(data)
    except BlastscanError as exc:
        return (str(path), str(exc).split(": ", 1)[-1])
    except OSError as exc:
        return (str(path), f"cannot read ({exc})")
    digest = hashlib.sha256(data).hexdigest()
    return Sample(str(path), label, class_name, digest, image.width, image.height)


def scan_dataset(
    data_dir: str | Path, variant: str = "Original", workers: int | None = None
) -> Dataset:
    """Find every image, hash it and check it decodes; unreadable files are skipped and listed."""
    class_root = resolve_class_root(data_dir, variant)
    classes = discover_classes(class_root)
    jobs = [(path, label, name) for label, (name, files) in enumerate(classes) for path in files]
    with ThreadPoolExecutor(workers or min(8, (os.cpu_count() or 1) * 2)) as pool:
        results = list(pool.map(lambda job: _describe(*job), jobs))
    samples = [r for r in results if isinstance(r, Sample)]
    skipped = [r for r in results if not isinstance(r, Sample)]
    for path, reason in skipped:
        log.warning("skipped %s: %s", path, reason)
    missing = {name for name, _ in classes} - {s.class_name for s in samples}
    if missing:
        raise BlastscanError(
            f"{class_root}: no readable image in class folder(s) {sorted(missing)}; "
            "check the files listed as skipped"
        )
    return Dataset(class_root, [name for name, _ in classes], samples, skipped)


def write_manifest(dataset: Dataset, path: Path) -> None:
    """CSV of path, class, label, sha256, width, height: what exactly a run was trained on."""

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["path", "class", "label", "sha256", "width", "height"])
            for s in dataset.samples:
                writer.writerow([s.path, s.class_name, s.label, s.sha256, s.width, s.height])

    atomic_write(path, write)


def summary(dataset: Dataset) -> dict:
    counts = np.bincount(dataset.labels, minlength=len(dataset.classes))
    return {
        "root": str(dataset.root),
        "classes": dataset.classes,
        "display_names": dataset.display_names,
        "counts": dict(zip(dataset.classes, counts.tolist(), strict=True)),
        "images": len(dataset.samples),
        "exact_duplicate_images": int(
            len(dataset.samples) - len({s.sha256 for s in dataset.samples})
        ),
        "skipped": [{"path": p, "reason": r} for p, r in dataset.skipped],
    }
