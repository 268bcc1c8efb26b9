"""Deep features and logits of a trained DarkNet-19 for every image of a dataset, in a file.

`extract` runs the network through `runtime.infer` (as training's validation and `predict`
do), on the fastest engine for the device, and writes the rows with `save_features`;
`load_features` reads such a file back, checking it is usable.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from blastscan.errors import BlastscanError
from blastscan.outputs import atomic_save_npz, check_output_file
from blastscan.runtime.infer import Inference, infer

log = logging.getLogger("blastscan.extract")


def save_features(
    path: Path,
    inference: Inference,
    labels,
    classes,
    display_names,
    paths,
    sha256,
    made_by: dict[str, str] | None = None,
) -> None:
    """Write a features file: plain arrays only, so loading it needs no pickle. `made_by`
    (engine, precision and why) is kept as one-string arrays beside the rows."""
    arrays = {
        **{k: np.asarray(v, dtype=str) for k, v in (made_by or {}).items()},
        "X": inference.features.astype(np.float32),
        "logits": inference.logits.astype(np.float32),
        "y": np.asarray(labels, dtype=np.int64),
        "classes": np.asarray(classes, dtype=str),
        "display_names": np.asarray(display_names, dtype=str),
        "paths": np.asarray(paths, dtype=str),
        "sha256": np.asarray(sha256, dtype=str),
    }
    atomic_save_npz(Path(path), **arrays)


def extract(
    model_dir: str | Path,
    data_dir: str | Path,
    out: str | Path,
    batch_size: int = 64,
    variant: str = "Original",
    cache_dir: Path | None = None,
    device: str | None = None,
    show_progress: bool = True,
    max_per_class: int | None = None,
    seed: int = 0,
    engine: str = "auto",
    precision: str = "auto",
) -> Path:
    """Write the 1000 deep features (and logits) of every image of a dataset to an .npz file.

    `max_per_class`/`seed` pick the same stratified subset training picked (quick runs).
    Under torchrun each rank decodes and runs every world-th image only; rank 0 gathers the
    rows and writes the one file, identical in order to a single-process run's.
    """
    from blastscan import data as D
    from blastscan.progress import progress_bar
    from blastscan.runtime.distributed import (
        configure_threads,
        finish,
        gather,
        init_distributed,
        shard,
        unshard_rows,
    )
    from blastscan.runtime.precision import resolve_precision
    from blastscan.training import limit_per_class, load_trained_model

    check_output_file(out, (".npz",))
    _check_engine(engine)
    configure_threads()
    dist, torch_device = init_distributed(device)
    chosen = resolve_precision(precision, torch_device)
    model, meta = load_trained_model(model_dir, option="--model")
    model = model.to(torch_device)
    dataset = limit_per_class(D.scan_dataset(data_dir, variant), max_per_class, seed)
    _check_classes(dataset.classes, meta["classes"], data_dir)
    mine = dataset.subset(shard(dist, range(len(dataset.samples))))
    images = D.load_images(mine, meta["image_size"], cache_dir)
    with progress_bar(show_progress and dist.main) as bar:
        task = bar.add_task("extract", total=len(images))
        calibration = (
            _calibration(model_dir, data_dir, variant, meta) if engine == "onnx-int8" else None
        )
        run, used = _runner(
            model, engine, torch_device, meta["image_size"], images, dist, chosen.name, calibration
        )
        result = run(images, batch_size, lambda n: bar.advance(task, n))
    log.info("extract: engine %s, precision %s (%s)", used, chosen.name, chosen.reason)
    parts = gather(dist, result)
    finish(dist)
    if parts is None:  # not rank 0: rank 0 writes everyone's rows
        return Path(out)
    merged = Inference(
        unshard_rows([p.features for p in parts]), unshard_rows([p.logits for p in parts])
    )
    save_features(
        Path(out),
        merged,
        dataset.labels,
        dataset.classes,
        dataset.display_names,
        dataset.paths,
        [s.sha256 for s in dataset.samples],
        {"engine": used, "precision": chosen.name, "precision_reason": chosen.reason},
    )
    return Path(out)


def _check_classes(found: list[str], trained: list[str], data_dir: str | Path) -> None:
    """Feature rows are only meaningful with the label indices the model was trained on."""
    if found != trained:
        from blastscan.errors import BlastscanError

        raise BlastscanError(
            f"{data_dir}: classes {found} differ from the model's {trained}; "
            "pass the dataset (and --variant) the model was trained on"
        )


ENGINES = ("auto", "torch", "onnx", "onnx-int8")


def _check_engine(engine: str) -> None:
    if engine not in ENGINES:
        raise BlastscanError(f"unknown engine {engine!r}; choose one of {ENGINES}")


ONNX_TOLERANCE = 1e-4  # of the largest output's magnitude (onnx_parity's `relative`)


def _calibration(model_dir, data_dir, variant: str, meta: dict) -> np.ndarray:
    """A seeded sample of the training images of the run at `model_dir`: int8's ranges are
    fitted on them, so no test image shapes the features."""
    from blastscan import data as D
    from blastscan.runtime.quantize import calibration_sample

    run = Path(model_dir)
    if not (run / "split.json").is_file():
        raise BlastscanError(
            f"{model_dir}: --engine onnx-int8 calibrates on the run's training images and needs "
            "its split.json; pass the training run directory as --model"
        )
    dataset = D.scan_dataset(data_dir, variant)
    train = D.saved_split(run, dataset)["train"]
    rows = train[calibration_sample(len(train), seed=0)]
    return np.stack([D.load_image_array(dataset.samples[i].path, meta["image_size"]) for i in rows])


def _runner(
    model,
    engine: str,
    device: torch.device,
    image_size: int,
    images: np.ndarray,
    dist=None,
    precision: str = "fp32",
    calibration: np.ndarray | None = None,
):
    """The fastest engine for this device, and its name: onnxruntime on CPU (about 2x eager),
    torch on GPU and wherever bf16 was chosen (ONNX Runtime's graph is fp32), int8 if asked.

    The ONNX graph is checked against eager PyTorch on the first images before it is trusted;
    under torchrun (`dist`) it is trusted only if it passed on every rank, so that all rows of
    one features file come from the same engine.
    """
    from blastscan.errors import BlastscanError

    _check_engine(engine)
    eager = (lambda x, b, cb: infer(model, x, b, device, cb, precision)), f"torch {precision}"
    if engine == "torch" or (engine == "auto" and (device.type != "cpu" or precision == "bf16")):
        return eager
    from blastscan.runtime.onnx import OnnxEngine, onnx_bytes, onnx_parity

    graph = onnx_bytes(model, image_size)[0]
    if engine == "onnx-int8":
        from blastscan.runtime.quantize import quantize_int8

        assert calibration is not None
        return OnnxEngine(quantize_int8(graph, calibration).data).infer, "onnx-int8"
    onnx_engine = OnnxEngine(graph)
    parity = onnx_parity(model, onnx_engine, images[:8], relative=True) if len(images) else {}
    error = max(parity.values(), default=0.0)
    failed = float(error > ONNX_TOLERANCE)
    if dist is not None:
        failed = dist.sum(failed)[0]  # ranks that failed the check: all ranks see the count
    if failed:
        if engine == "onnx":
            raise BlastscanError(
                f"ONNX export differs from PyTorch by {error:.2e} of the outputs' scale (here, "
                "or on another rank); "
                "use --engine torch"
            )
        return eager
    return onnx_engine.infer, "onnx fp32"


def load_features(path: str | Path) -> dict[str, np.ndarray]:
    """Read a features file written by `extract`, checking it is usable.

    Any feature width is accepted: `select` and `evaluate` fit everything on the file itself.
    Rows must be finite, labels integer class indices (at least two classes), and the
    per-image arrays (paths, logits, sha256) one row per label.
    """
    import zipfile
    import zlib

    from blastscan.errors import BlastscanError

    path = Path(path)
    remake = "run blastscan extract to make one"
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ValueError("one bare array, not an .npz of named arrays")
        with loaded as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        reason = str(exc) or type(exc).__name__
        if "pickle" in reason:  # numpy's advice to unpickle would be unsafe: not an .npz
            reason = "not an .npz file"
        raise BlastscanError(f"{path}: not a readable features file ({reason}); {remake}") from exc
    for key in ("X", "y"):
        if key not in arrays:
            raise BlastscanError(f"{path}: has no '{key}' array; {remake}")
    X, y = arrays["X"], arrays["y"]
    if X.ndim != 2 or y.ndim != 1 or len(X) != len(y) or X.shape[1] == 0:
        raise BlastscanError(f"{path}: X has shape {X.shape} for {len(y)} labels; {remake}")
    if X.dtype.kind not in "biuf" or y.dtype.kind not in "biu":
        kinds = f"X is {X.dtype}, y is {y.dtype}"
        raise BlastscanError(f"{path}: {kinds}; need numeric X and integer y; {remake}")
    if not np.isfinite(X).all():
        bad = int((~np.isfinite(X)).any(axis=1).sum())
        raise BlastscanError(f"{path}: {bad} rows hold NaN or inf; re-extract the features")
    n_classes = len(arrays["classes"]) if "classes" in arrays else None
    if len(y) and (y.min() < 0 or (n_classes is not None and y.max() >= n_classes)):
        raise BlastscanError(f"{path}: labels y outside 0..{(n_classes or 1) - 1}; {remake}")
    if len(np.unique(y)) < 2:
        found = f"{len(y)} rows of {len(np.unique(y))} class(es)"
        raise BlastscanError(f"{path}: {found}; a classifier needs at least two classes")
    for key in ("logits", "paths", "sha256"):
        if key in arrays and len(arrays[key]) != len(y):
            rows = f"{key} has {len(arrays[key])} rows for {len(y)} labels"
            raise BlastscanError(f"{path}: {rows}; {remake}")
    return arrays
