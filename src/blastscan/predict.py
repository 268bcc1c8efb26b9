"""Predicting on new images with a bundle: files in, table and CSV/JSON out, with an OOD flag.

A model trained on one laboratory's smears answers with confidence on anything, a photo of a
cat included; so every prediction carries the Mahalanobis distance of its deep features to
the training features, and a flag when that distance is beyond what held-out smears reach.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from blastscan.errors import BlastscanError
from blastscan.io import atomic_write_text, to_json

if TYPE_CHECKING:
    from blastscan.bundle import Bundle

HEAD_CNN = "cnn"
HEAD_CLASSICAL = "features+classifier"


# ---------------------------------------------------------------- out-of-distribution


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
    gray = x.mean(axis=3)
    edges = np.abs(np.diff(gray, axis=1)).mean(axis=(1, 2)) + np.abs(np.diff(gray, axis=2)).mean(
        axis=(1, 2)
    )
    lap = np.abs(
        4 * gray[:, 1:-1, 1:-1]
        - gray[:, :-2, 1:-1]
        - gray[:, 2:, 1:-1]
        - gray[:, 1:-1, :-2]
        - gray[:, 1:-1, 2:]
    ).mean(axis=(1, 2))
    peak, low = x.max(axis=3), x.min(axis=3)
    saturation = ((peak - low) / np.maximum(peak, 1e-3)).mean(axis=(1, 2))
    eps = 1e-3
    return np.column_stack(
        [
            x.mean(axis=(1, 2)),
            np.log(x.std(axis=(1, 2)) + eps),
            np.log(edges + eps),
            np.log(lap + eps),
            np.log(saturation + eps) if log_saturation else saturation,
        ]
    ).astype(np.float64)


@dataclass
class OODDetector:
    """Out-of-distribution flag from two Mahalanobis distances, each with its own threshold.

    `deep`: the 1000 deep features, class-conditional means with a tied covariance (Lee et al.
    2018). `pixels`: nine colour/texture statistics, one Gaussian; it catches inputs a network
    maps near the smears (a flat colour, a ramp) because it never learned what they are. Each
    threshold is the 1 - (1 - quantile) / 2 quantile of held-out in-distribution distances, so
    the two together flag about 1 - quantile of in-distribution images.
    """

    deep: Mahalanobis
    pixels: Mahalanobis | None
    quantile: float
    n_fit: int
    n_calibration: int
    # Which `image_statistics` the pixel Gaussian was fitted on: 2 = log saturation; bundles
    # that do not say are 1 (linear saturation) and keep being scored as they were fitted.
    pixel_statistics: int = 2

    def _image_statistics(self, images: np.ndarray) -> np.ndarray:
        return image_statistics(images, log_saturation=self.pixel_statistics >= 2)

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
            "Ledoit-Wolf covariance), and of 9 colour/texture statistics (one Gaussian)",
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
) -> OODDetector:
    """Fit on training images' features (and pixels); set thresholds on held-out ones.

    Without `calibration` features, a random fifth of the training rows is held out for the
    thresholds (distances of the rows a covariance was fitted on are optimistically small).
    The pixel-statistics part is fitted only when `images` are given.
    """
    X = np.asarray(features, dtype=np.float64)
    y = np.zeros(len(X), dtype=np.int64) if labels is None else np.asarray(labels)
    P = None if images is None else image_statistics(images)
    P_cal = None if calibration_images is None else image_statistics(calibration_images)
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
    return OODDetector(deep, pixels, quantile, len(X), len(calibration))


# ---------------------------------------------------------------- predictions


@dataclass
class Prediction:
    """What a bundle says about N images: both heads' probabilities and the OOD distance."""

    classes: list[str]
    display_names: list[str]
    probabilities: np.ndarray  # (N, K) of the head that decided
    cnn_probabilities: np.ndarray  # (N, K) softmax of the CNN head
    head: str  # HEAD_CNN or HEAD_CLASSICAL
    features: np.ndarray  # (N, 1000)
    ood_distance: np.ndarray | None = None  # deep-feature Mahalanobis distance
    ood_threshold: float | None = None
    ood_pixel_distance: np.ndarray | None = None  # colour/texture statistics distance
    ood_flag: np.ndarray | None = None
    ood_pixel_threshold: float | None = None

    def __len__(self) -> int:
        return len(self.probabilities)

    @property
    def predicted(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1)

    @property
    def ood(self) -> np.ndarray | None:
        return self.ood_flag

    def _ood_reason(self, i: int) -> str:
        """Which check fired: the deep features, the colour/texture statistics, or both."""
        reasons = []
        if self.ood_threshold is not None and self.ood_distance[i] > self.ood_threshold:
            reasons.append("deep features")
        if (
            self.ood_pixel_distance is not None
            and self.ood_pixel_threshold is not None
            and self.ood_pixel_distance[i] > self.ood_pixel_threshold
        ):
            reasons.append("colour/texture")
        return " and ".join(reasons)

    def record(self, i: int, path: str = "") -> dict[str, Any]:
        """One image as a flat dict: the row of the CSV, the item of the JSON and the web API."""
        k = int(self.predicted[i])
        cnn_k = int(self.cnn_probabilities[i].argmax())
        row: dict[str, Any] = {
            "path": path,
            "predicted": self.display_names[k],
            "class": self.classes[k],
            "probability": float(self.probabilities[i, k]),
            "head": self.head,
        }
        row.update(
            {
                f"p_{n}": float(p)
                for n, p in zip(self.display_names, self.probabilities[i], strict=True)
            }
        )
        row["cnn_predicted"] = self.display_names[cnn_k]
        row["cnn_probability"] = float(self.cnn_probabilities[i, cnn_k])
        if self.ood_flag is not None:
            row["ood"] = bool(self.ood_flag[i])
            row["ood_distance"] = float(self.ood_distance[i])
            if self.ood_pixel_distance is not None:
                row["ood_pixel_distance"] = float(self.ood_pixel_distance[i])
            row["ood_reason"] = self._ood_reason(i)
        return row


# ---------------------------------------------------------------- files


@dataclass
class PredictRun:
    """Rows for the images that were read, and (path, reason) for those that were not."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    engine: str = "torch"


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


def predict_files(
    bundle: Bundle,
    inputs: Sequence[str | Path],
    batch_size: int = 32,
    engine: str = "torch",
    head: str = "auto",
    on_progress: Callable[[int], None] | None = None,
    on_total: Callable[[int], None] | None = None,
) -> PredictRun:
    """Predict every image under `inputs`; unreadable files are listed with the reason."""
    import time

    files, problems = collect_images(inputs)
    if on_total:
        on_total(len(files))
    t0 = time.perf_counter()
    run = _predict_paths(bundle, files, batch_size, engine, head, None, on_progress)
    run.unreadable[:0] = problems
    run.seconds = time.perf_counter() - t0
    return run


def predict_sharded(
    bundle: Bundle,
    inputs: Sequence[str | Path],
    batch_size: int = 32,
    engine: str = "torch",
    head: str = "auto",
    on_progress: Callable[[int], None] | None = None,
    on_total: Callable[[int], None] | None = None,
) -> PredictRun | None:
    """`predict_files` spread over the ranks of a torchrun job (plainly run: the same thing).

    Each rank decodes and predicts every world-th file; rank 0 gets the merged run, in the
    order one process gives, and the other ranks get None: only rank 0 writes results.
    """
    import time

    from blastscan.distributed import configure_threads, finish, gather, init_distributed, shard

    dist, device = init_distributed(None)
    if dist.world == 1:
        return predict_files(bundle, inputs, batch_size, engine, head, on_progress, on_total)
    configure_threads()  # the node's cores shared between its ranks
    t0 = time.perf_counter()
    files, problems = collect_images(inputs)
    mine = shard(dist, files)
    if on_total:
        on_total(len(mine))
    part = _predict_paths(bundle, mine, batch_size, engine, head, str(device), on_progress)
    parts = gather(dist, part)
    finish(dist)
    if parts is None:
        return None
    run = merge_runs(parts, files, problems)
    run.seconds = time.perf_counter() - t0
    return run


def _predict_paths(
    bundle: Bundle,
    files: Sequence[Path],
    batch_size: int,
    engine: str,
    head: str,
    device: str | None,
    on_progress: Callable[[int], None] | None,
) -> PredictRun:
    """Rows for `files` in their order, and the ones that could not be decoded."""
    run = PredictRun(engine=engine)
    for paths, images, bad in decoded_chunks(files, bundle.image_size, max(4 * batch_size, 64)):
        run.unreadable.extend(bad)
        if on_progress and bad:
            on_progress(len(bad))
        if len(images):
            result = bundle.predict(
                images, batch_size, engine, head, device=device, on_batch=on_progress
            )
            run.rows.extend(result.record(i, str(p)) for i, p in enumerate(paths))
    return run


def merge_runs(
    parts: Sequence[PredictRun], files: Sequence[Path], problems: list[tuple[str, str]]
) -> PredictRun:
    """One run from the ranks' parts: rows and unreadable files back in `files` order."""
    order = {str(p): i for i, p in enumerate(files)}
    rows = sorted((r for part in parts for r in part.rows), key=lambda r: order[r["path"]])
    bad = sorted((u for part in parts for u in part.unreadable), key=lambda u: order[u[0]])
    return PredictRun(rows=rows, unreadable=[*problems, *bad], engine=parts[0].engine)


# ---------------------------------------------------------------- output


def csv_text(run: PredictRun) -> str:
    """One row per file, unreadable ones included with an `error` and no prediction."""
    columns = list(dict.fromkeys(k for row in run.rows for k in row)) or ["path", "predicted"]
    columns.append("error")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in run.rows:
        writer.writerow({**{k: _cell(v) for k, v in row.items()}, "error": ""})
    for path, reason in run.unreadable:
        writer.writerow({"path": path, "error": reason})
    return buffer.getvalue()


def _cell(value: Any) -> Any:
    return f"{value:.6g}" if isinstance(value, float) else value


def json_text(run: PredictRun, bundle: Bundle) -> str:
    payload = {
        "bundle": str(bundle.path),
        "engine": run.engine,
        "classes": bundle.display_names,
        "ood_threshold": bundle.ood.threshold if bundle.ood else None,
        "predictions": run.rows,
        "unreadable": [{"path": p, "reason": r} for p, r in run.unreadable],
        "seconds": run.seconds,
    }
    return to_json(payload, indent=1)


def write_results(path: str | Path, run: PredictRun, bundle: Bundle) -> Path:
    """CSV or JSON by the file's suffix, written atomically."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".json"):
        raise BlastscanError(f"{path}: --out must end in .csv or .json")
    atomic_write_text(path, csv_text(run) if suffix == ".csv" else json_text(run, bundle))
    return path


def results_table(run: PredictRun, limit: int = 50):
    """A rich table of the first `limit` predictions and every unreadable file."""
    from rich.table import Table

    table = Table(title=f"{len(run.rows)} image(s), {len(run.unreadable)} unreadable")
    table.add_column("file", overflow="fold", ratio=3)
    for name in ("class", "p", "head"):
        table.add_column(name, no_wrap=True)
    table.add_column("OOD / reason", overflow="fold", ratio=2)
    for row in run.rows[:limit]:
        flag = (
            ""
            if "ood" not in row
            else ("[red]OOD[/red] " + row["ood_reason"] if row["ood"] else "ok")
        )
        head = "cnn" if row["head"] == HEAD_CNN else "clf"
        table.add_row(
            _short(row["path"]), row["predicted"], f"{row['probability']:.2f}", head, flag
        )
    if len(run.rows) > limit:
        table.add_row(f"... {len(run.rows) - limit} more (see --out)", "", "", "", "")
    for path, reason in run.unreadable:
        table.add_row(_short(path), "[red]unreadable[/red]", "", "", reason)
    table.caption = "head: clf = features+classifier, cnn = CNN softmax"
    if any("ood" not in row for row in run.rows):  # a blank column must not read as "ok"
        table.caption += "; no OOD check in this bundle (make it with blastscan bundle --data)"
    return table


def _short(path: str) -> str:
    """Folder and file name: enough to find the image, short enough for a terminal."""
    p = Path(path)
    return f"{p.parent.name}/{p.name}" if p.parent.name else p.name


# ---------------------------------------------------------------- synthetic images


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
