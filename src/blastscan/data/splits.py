"""Train/test splits that keep duplicates and patient proxies together, and a run's saved split."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from pathlib import Path

import numpy as np

from blastscan.data.files import Dataset, scan_dataset
from blastscan.errors import BlastscanError
from blastscan.outputs import atomic_write_text


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
