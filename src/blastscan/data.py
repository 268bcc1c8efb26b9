"""Finding, decoding, caching and splitting smear images.

The dataset is small (a few thousand 224x224 JPEGs), so every image is decoded once into one
uint8 array and kept in memory; the array is cached on disk keyed by the manifest, so a second
run never decodes again. Training then augments tensors, never files.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from blastscan.errors import BlastscanError
from blastscan.io import atomic_save_npy, atomic_write, atomic_write_text

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


def exact_duplicate_groups(dataset: Dataset) -> np.ndarray:
    """Group id per sample: byte-identical files (same sha256) share a group."""
    ids: dict[str, int] = {}
    return np.array([ids.setdefault(s.sha256, len(ids)) for s in dataset.samples], dtype=np.int64)


def thumbnails(images: np.ndarray, size: int = 32) -> np.ndarray:
    """Zero-mean, unit-norm grayscale thumbnails, one row per image, for near-duplicate search."""
    t = torch.as_tensor(images).permute(0, 3, 1, 2).float().mean(1, keepdim=True)
    t = torch.nn.functional.adaptive_avg_pool2d(t, size).flatten(1)
    t = t - t.mean(1, keepdim=True)
    return (t / t.norm(dim=1, keepdim=True).clamp_min(1e-8)).numpy()


def near_duplicate_pairs(images: np.ndarray, threshold: float = 0.98) -> np.ndarray:
    """Pairs (i, j), i < j, whose 32x32 thumbnails correlate above `threshold`.

    The same field of view captured twice (a small shift, a re-encode) correlates near 1;
    different cells do not. One matrix product over all thumbnails: a few seconds for 3,000.
    """
    thumbs = thumbnails(images)
    corr = thumbs @ thumbs.T
    i, j = np.nonzero(np.triu(corr > threshold, k=1))
    return np.stack([i, j], axis=1)


# Near-duplicates are a property of the files, not of a run: they are searched at this one size,
# so a run at 224 px and one at 128 px group, and so split, the dataset the same way (searched
# at each run's own size, one pair near the threshold moved 95 of 977 test images between
# them). 128 is the fast recipe's size, so the splits of the runs made before stay as they were.
DUPLICATE_SEARCH_SIZE = 128


def find_duplicate_groups(
    dataset: Dataset, cache_dir: Path | None = None, images: np.ndarray | None = None
) -> np.ndarray:
    """`duplicate_groups` with near-duplicates searched at `DUPLICATE_SEARCH_SIZE`.

    `images`, when given, are the run's own decoded images; they are used only if they already
    are at that size, else the images are decoded (or read from the cache) at it.
    """
    if images is None or images.shape[1:3] != (DUPLICATE_SEARCH_SIZE, DUPLICATE_SEARCH_SIZE):
        images = load_images(dataset, DUPLICATE_SEARCH_SIZE, cache_dir)
    return duplicate_groups(dataset, images)


def duplicate_groups(
    dataset: Dataset, images: np.ndarray | None = None, threshold: float = 0.98
) -> np.ndarray:
    """Group id per sample: exact duplicates, and near-duplicates when the pixels are given.

    Groups are the connected components of the 'duplicate of' graph, so chains stay together.
    Ids follow the first appearance of each group, so the same files give the same groups.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    exact = exact_duplicate_groups(dataset)
    n = len(exact)
    first_of_group = {g: i for i, g in reversed(list(enumerate(exact.tolist())))}
    rows = [np.arange(n)]
    cols = [np.array([first_of_group[g] for g in exact.tolist()], dtype=np.int64)]
    if images is not None and n:
        pairs = near_duplicate_pairs(images, threshold)
        rows.append(pairs[:, 0])
        cols.append(pairs[:, 1])
    r, c = np.concatenate(rows), np.concatenate(cols)
    graph = coo_matrix((np.ones(len(r)), (r, c)), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    ids: dict[int, int] = {}
    return np.array([ids.setdefault(k, len(ids)) for k in component.tolist()], dtype=np.int64)


def stratified_group_split(
    labels: np.ndarray, groups: np.ndarray, test_size: float = 0.3, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Reproducible stratified train/test split that never separates a group.

    scikit-learn has stratified group *K-fold* but no stratified group *shuffle* split with an
    exact fraction, so this is done per class: shuffle the groups and move whole groups to the
    test side until it holds `test_size` of that class.
    """
    labels, groups = np.asarray(labels), np.asarray(groups)
    rng = np.random.default_rng(seed)
    test_mask = np.zeros(len(labels), dtype=bool)
    group_label = {}
    for g, y in zip(groups.tolist(), labels.tolist(), strict=True):
        group_label.setdefault(g, y)
    for cls in np.unique(labels):
        class_groups = np.array(sorted(g for g, y in group_label.items() if y == cls))
        rng.shuffle(class_groups)
        target = round(test_size * np.sum(labels == cls))
        taken = 0
        for g in class_groups:
            if taken >= target:
                break
            members = groups == g
            test_mask |= members
            taken += int(members.sum())
    return np.flatnonzero(~test_mask), np.flatnonzero(test_mask)


def save_split(
    path: Path, dataset: Dataset, train_idx: Iterable[int], test_idx: Iterable[int], **info
) -> None:
    """The split as file paths, so anyone can see which images were held out."""
    payload = {
        **info,
        "train": [dataset.samples[i].path for i in train_idx],
        "test": [dataset.samples[i].path for i in test_idx],
    }
    atomic_write_text(path, json.dumps(payload, indent=1))


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


def rotate_hue(x: torch.Tensor, degrees: float | torch.Tensor) -> torch.Tensor:
    """Rotate the HSV hue of (N, 3, H, W) images by `degrees` (one number, or one per image).

    Saturation and value are kept, as a different stain batch or white balance would shift
    the colour. Written out: torchvision's adjust_hue cannot be installed beside our torch, and
    kornia would be a whole dependency for ten lines. With V = max, C = max - min and H in
    [0, 6), channel n (R: 5, G: 3, B: 1) is V - C * clip(min(k, 4 - k), 0, 1),
    k = (n + H) mod 6, the closed form of HSV to RGB (matches matplotlib's).
    """
    r, g, b = x.unbind(1)
    v = x.amax(1)
    c = v - x.amin(1)
    safe = torch.where(c > 0, c, torch.ones_like(c))
    h = torch.where(
        v == r, ((g - b) / safe) % 6, torch.where(v == g, (b - r) / safe + 2, (r - g) / safe + 4)
    )
    shift = torch.as_tensor(degrees, dtype=x.dtype, device=x.device).reshape(-1, 1, 1) / 60
    h = (h + shift) % 6
    k = (
        torch.tensor([5.0, 3.0, 1.0], dtype=x.dtype, device=x.device).view(1, 3, 1, 1) + h[:, None]
    ) % 6
    return v[:, None] - c[:, None] * torch.minimum(k, 4 - k).clamp(0, 1)


def channel_statistics(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each image's per-channel mean and s.d. over its pixels, (N, 3, 1, 1) each."""
    return x.mean((2, 3), keepdim=True), x.std((2, 3), keepdim=True, correction=0)


def transfer_colour(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Reinhard et al. (2001) colour transfer in RGB: each channel of each (N, 3, H, W) image
    shifted and scaled so that its mean and s.d. become `mean` and `std` (broadcast to
    (N, 3, 1, 1)), clipped to [0, 1]. The cells stay where they are; only stain and light move.
    Written out: five lines of arithmetic, where a library (kornia, staintools) would be a
    whole dependency, and this runs on the batch already on the device."""
    own_mean, own_std = channel_statistics(x)
    moved = (x - own_mean) / own_std.clamp_min(1e-3) * std + mean
    return moved.clamp_(0.0, 1.0)


def augment(
    x: torch.Tensor,
    generator: torch.Generator,
    color_jitter: float = 0.0,
    brighten: float = 0.0,
    darken: float = 0.0,
    hue: float = 0.0,
    recolour: float = 0.0,
) -> torch.Tensor:
    """Augment a float batch in place of a file pipeline: flips, 90-degree turns, colour.

    Smears have no up or left, so the 8 dihedral symmetries are free data. Colour jitter
    scales brightness and contrast and shifts the stain per channel; it is what makes the
    network robust to other microscopes' light and stains. `brighten` b > 0 shows half the
    images under a brighter lamp, x -> min(s x, 1) for s uniform in [1, 1 + b], saved at 8
    bits as a camera would: the clipped highlights a dark-point network cannot divide out.
    `darken` d > 0 shows the other half under a dimmer lamp, s uniform in [1 - d, 1]: with
    both, a plain network sees the whole range of lamps it should not care about. `hue`
    h > 0 rotates each image's hue by a uniform draw in [-h, h] degrees (another stain batch).
    `recolour` p > 0 gives each image, with probability p, the colour (channel means and
    s.d.s, `transfer_colour`) of another image of the batch, mostly one of another class:
    on this dataset colour alone tells the class 96% of the time (docs/results.md), and a
    network that cannot count on it has to read the cells.
    """
    n = x.shape[0]
    # Random draws come from a CPU generator (reproducible on any device), then move to x.
    flip = (torch.rand(n, generator=generator) < 0.5).to(x.device)
    turns = torch.randint(0, 4, (n,), generator=generator).to(x.device)
    out = torch.where(flip[:, None, None, None], x.flip(3), x)
    if x.shape[2] == x.shape[3]:
        for k in range(1, 4):
            chosen = turns == k
            out[chosen] = torch.rot90(out[chosen], k, dims=(2, 3))
    if color_jitter > 0:
        s = color_jitter
        draws = (torch.rand(n, 5, generator=generator) * 2 - 1).to(x.device)
        brightness = (1 + draws[:, 0] * s).view(n, 1, 1, 1)
        contrast = (1 + draws[:, 1] * s).view(n, 1, 1, 1)
        stain = (1 + draws[:, 2:] * s * 0.5).view(n, 3, 1, 1)
        mean = out.mean(dim=(1, 2, 3), keepdim=True)
        out = ((out - mean) * contrast + mean) * brightness * stain
        out = out.clamp_(0.0, 1.0)
    if brighten > 0 or darken > 0:  # drawn after the rest: runs without keep their draws
        draws = torch.rand(n, 2, generator=generator).to(x.device)
        scale = torch.where(draws[:, 0] < 0.5, 1 + draws[:, 1] * brighten, 1 - draws[:, 1] * darken)
        out = (out * scale.view(n, 1, 1, 1)).clamp_(0.0, 1.0).mul_(255).round_().div_(255)
    if hue > 0:  # drawn last, for the same reason
        degrees = (torch.rand(n, generator=generator) * 2 - 1).to(x.device) * hue
        out = rotate_hue(out, degrees)
    if recolour > 0:  # drawn last, for the same reason
        chosen = (torch.rand(n, generator=generator) < recolour).to(x.device)
        donor = torch.randperm(n, generator=generator).to(x.device)
        mean, std = channel_statistics(out)
        out = torch.where(
            chosen[:, None, None, None], transfer_colour(out, mean[donor], std[donor]), out
        )
    return out.contiguous(memory_format=torch.channels_last)


def group_summary(groups: np.ndarray) -> dict:
    """How many images share a group with another: what the duplicate search found."""
    sizes = np.bincount(groups)
    return {
        "groups": int(len(sizes)),
        "images_in_shared_groups": int(sizes[sizes > 1].sum()),
        "largest_group": int(sizes.max()) if len(sizes) else 0,
    }


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


GROUP_STRATEGIES = ("blocks", "colour")


def _file_number(path: str) -> int:
    """The trailing number of a file name (WBC-Malignant-Pre-123.jpg -> 123), -1 if none."""
    import re

    match = re.search(r"(\d+)(?=\D*$)", Path(path).stem)
    return int(match.group(1)) if match else -1


def patient_proxy_groups(
    paths: Sequence[str],
    labels: np.ndarray,
    strategy: str = "blocks",
    block_size: int = 37,
    images: np.ndarray | None = None,
) -> np.ndarray:
    """Groups that stand in for patients, which the dataset does not record.

    Images of one patient were captured in runs of consecutive file numbers with one stain and
    light, so 'blocks' cuts each class's numbering into runs of `block_size` (3,256 images / 89
    patients ~ 37), and 'colour' clusters each class's images by their mean and spread of RGB
    into as many clusters as it would have blocks. Both are assumptions, not ground truth.
    """
    labels = np.asarray(labels)
    groups = np.empty(len(labels), dtype=np.int64)
    next_id = 0
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        n_groups = max(2, int(round(len(idx) / block_size)))
        if strategy == "blocks":
            numbers = np.array([_file_number(paths[i]) for i in idx])
            rank = np.argsort(np.argsort(numbers, kind="stable"), kind="stable")
            local = rank * n_groups // len(idx)
        elif strategy == "colour":
            if images is None:
                raise BlastscanError("colour groups need the decoded images")
            from sklearn.cluster import KMeans

            pixels = images[idx].reshape(len(idx), -1, 3).astype(np.float32)
            stats = np.concatenate([pixels.mean(1), pixels.std(1)], axis=1)
            stats = (stats - stats.mean(0)) / (stats.std(0) + 1e-6)
            local = KMeans(
                n_clusters=min(n_groups, len(idx)), n_init=4, random_state=0
            ).fit_predict(stats)
        else:
            raise BlastscanError(
                f"unknown group strategy {strategy!r}; choose one of {GROUP_STRATEGIES}"
            )
        groups[idx] = next_id + local
        next_id += int(local.max()) + 1
    return groups


def image_key(path: str, depth: int = 2) -> str:
    """The last `depth` parts of a path, by default class folder and file name: the same image
    wherever the dataset folder is mounted."""
    return "/".join(Path(path).parts[-depth:])


def image_index(paths: Sequence[str]) -> tuple[dict[str, int], Callable[[str], str]]:
    """Each image's position by its key, and the key function that tells them all apart.

    Class folder and file name are enough for the Kaggle layout; nested class folders
    (Benign/day1/001.jpg beside Pro/day1/001.jpg) need more trailing parts, so the fewest
    that make every key unique are used.
    """
    longest = max((len(Path(p).parts) for p in paths), default=2)
    depth = 2
    keys = [image_key(p, depth) for p in paths]
    while len(set(keys)) < len(keys) and depth < longest:
        depth += 1
        keys = [image_key(p, depth) for p in paths]
    return {k: i for i, k in enumerate(keys)}, partial(image_key, depth=depth)


def run_split(
    run_dir: Path, data_dir: str | Path, meta: dict
) -> tuple[Dataset, dict[str, np.ndarray]]:
    """The dataset a training run used, and indices of its train/val/test images in it.

    Images are matched by class folder and file name, so a dataset moved or mounted elsewhere
    still lines up with the run's split.json; a missing image is an error naming it.
    """
    variant = (meta.get("config") or {}).get("variant", "Original")
    dataset = scan_dataset(data_dir, variant)
    if dataset.classes != meta["classes"]:
        raise BlastscanError(
            f"{data_dir}: classes {dataset.classes} differ from the model's {meta['classes']}"
        )
    return dataset, saved_split(run_dir, dataset)


def saved_split(
    run_dir: Path, dataset: Dataset, fix: str = "pass a training run directory"
) -> dict[str, np.ndarray]:
    """Indices in `dataset` of the train/val/test images a run's split.json lists.

    `fix` is the advice when split.json cannot be read: it depends on what the caller was doing.
    """
    import json

    path = Path(run_dir) / "split.json"
    try:
        split = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BlastscanError(f"{path}: missing or damaged ({exc}); {fix}") from exc
    position, key = image_index([s.path for s in dataset.samples])
    indices = {}
    for part in ("train", "val", "test"):
        wanted = split.get(part, [])
        missing = [p for p in wanted if key(p) not in position]
        if missing:
            raise BlastscanError(
                f"{dataset.root}: {len(missing)} of the run's {len(wanted)} {part} images are not there "
                f"(e.g. {missing[0]}); pass the dataset the run was trained on"
            )
        indices[part] = np.array([position[key(p)] for p in wanted], dtype=np.int64)
    return indices


# --------------------------------------------------------------------------------------------
# Segmented images: how much of each image is cell, and how much black background

# A pixel is foreground when any channel exceeds this level (0-255). The Segmented set draws
# cells on black; JPEG ringing and the palest halo leave faint non-zero pixels around them,
# hence not 0. At 60 the count of nearly empty Pro images (238 of 804) matches the dataset's
# SOURCE.md; the count depends on the level (docs/results.md gives 0-60).
FOREGROUND_LEVEL = 60
# Below this foreground fraction an image is "nearly empty" (as in the dataset's SOURCE.md).
NEARLY_EMPTY_BELOW = 0.005


def foreground_fraction(image: np.ndarray, level: int = FOREGROUND_LEVEL) -> float:
    """Fraction of pixels brighter than `level` in any channel of an (H, W[, C]) uint8 image."""
    pixels = np.asarray(image)
    brightest = pixels.max(axis=-1) if pixels.ndim == 3 else pixels
    return float(np.mean(brightest > level))


def foreground_fractions(
    paths: Sequence[str | Path], level: int = FOREGROUND_LEVEL, workers: int = 4
) -> np.ndarray:
    """`foreground_fraction` of every image file, decoded at full size (threads; JPEG is I/O)."""

    def one(path: str | Path) -> float:
        return foreground_fraction(np.asarray(open_rgb(path)), level)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return np.array(list(pool.map(one, paths)), dtype=np.float64)


def coverage_summary(
    fractions: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    empty_below: float = NEARLY_EMPTY_BELOW,
    level: int = FOREGROUND_LEVEL,
) -> dict:
    """Per class: images, median and 10th-percentile foreground, and how many are nearly empty.

    Nearly empty images carry little but "this is empty" for a classifier to learn from; when
    one class holds most of them (Segmented Pro-B), emptiness itself becomes a class cue.
    """
    fractions, labels = np.asarray(fractions, dtype=np.float64), np.asarray(labels)
    per_class = {}
    for k, name in enumerate(class_names):
        f = fractions[labels == k]
        empty = int(np.sum(f < empty_below))
        per_class[name] = {
            "n": int(len(f)),
            "median_foreground": float(np.median(f)) if len(f) else None,
            "p10_foreground": float(np.percentile(f, 10)) if len(f) else None,
            "nearly_empty": empty,
            "nearly_empty_fraction": empty / len(f) if len(f) else 0.0,
        }
    return {
        "level": level,
        "nearly_empty_below": empty_below,
        "rule": f"foreground = any channel > {level}/255; nearly empty = foreground < "
        f"{100 * empty_below:g}% of the image",
        "n_images": int(len(fractions)),
        "nearly_empty": int(np.sum(fractions < empty_below)),
        "per_class": per_class,
    }


def dataset_coverage(
    data_dir: str | Path,
    variant: str = "Segmented",
    level: int = FOREGROUND_LEVEL,
    empty_below: float = NEARLY_EMPTY_BELOW,
) -> dict:
    """`coverage_summary` of every image of a dataset folder (e.g. the Kaggle Segmented set)."""
    root = resolve_class_root(data_dir, variant)
    classes = discover_classes(root)
    paths = [p for _, files in classes for p in files]
    labels = np.concatenate([np.full(len(files), k) for k, (_, files) in enumerate(classes)])
    names = [DISPLAY_NAMES.get(name, name) for name, _ in classes]
    fractions = foreground_fractions(paths, level)
    return coverage_summary(fractions, labels, names, empty_below, level)
