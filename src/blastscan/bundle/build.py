"""Bundles from a training run: the CNN-only bundle training's end leaves, and one with the OOD
detector and an mRMR + classifier head fitted on the run's training images."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from blastscan.bundle.format import check_replaceable
from blastscan.bundle.heads import HEAD_CLASSICAL, HEAD_CNN, ClassicalHead
from blastscan.bundle.ood import OODDetector, fit_ood, pixel_statistics_version
from blastscan.bundle.write import write_bundle
from blastscan.errors import BlastscanError
from blastscan.models.input_norm import input_norm_name

# What training handed the CNN-only bundle it wrote at its end (its `common` metadata); the
# final checkpoint's other keys (epoch, bn_statistics) were not part of it.
RUN_META = ("classes", "display_names", "image_size", "input", "git_commit", "config")


def write_cnn_bundle(run_dir: str | Path) -> Path:
    """Write RUN/bundle, the CNN-only bundle of a finished training run (replacing an old one).

    The same bundle training wrote at its end: the final checkpoint's weights, the run's
    metadata (config.json, the checkpoint's classes and input), history.json and metrics.json's
    held-out test metrics. `blastscan bundle RUN --data DIR` adds the OOD detector and a
    classifier.
    """
    from blastscan.training import load_trained_model

    run = Path(run_dir)
    if not (run / "checkpoints" / "final.safetensors").is_file():
        raise BlastscanError(
            f"{run}: has no checkpoints/final.safetensors (the run did not finish); "
            "finish it with blastscan train --resume"
        )
    model, saved = load_trained_model(run, "final")
    meta = {key: saved.get(key) for key in RUN_META}
    meta["config"] = _read_json(run / "config.json") or saved.get("config") or {}
    history = _read_json_list(run / "history.json")
    meta["history"] = history if history is not None else saved.get("history") or []
    metrics = _read_json(run / "metrics.json")
    return write_bundle(run / "bundle", model, meta, metrics=metrics, overwrite=True)


def bundle_from_run(
    run_dir: str | Path,
    out: str | Path,
    data_dir: str | Path | None = None,
    *,
    which: str = "final",
    classifier: str | None = None,
    n_features: int | None = None,
    max_per_class: int | None = 200,
    batch_size: int = 64,
    quantile: float = 0.99,
    overwrite: bool = False,
    show_progress: bool = True,
    cache_dir: str | Path | None = None,
    int8: bool = False,
) -> Path:
    """Bundle a training run; with its dataset, also fit the OOD detector and a classical head.

    The OOD covariance and the classifier are fitted on (up to `max_per_class` per class of)
    the run's training images, the OOD threshold on its validation images: never the test set.
    Images come from the decoded-image cache training filled (`cache_dir`): nothing is decoded
    again where the run was trained.
    """
    from blastscan.classify import get_preset
    from blastscan.training import load_trained_model

    if classifier:  # a wrong name or a missing --data fails now, not after the extraction
        get_preset(classifier)
        if data_dir is None:
            raise BlastscanError(
                "a classical head is fitted on the run's training images: pass --data"
            )
    if int8 and data_dir is None:
        raise BlastscanError("--int8 is calibrated on the run's training images: pass --data")
    if Path(out).exists():
        check_replaceable(Path(out), overwrite)
    run = Path(run_dir)
    model, meta = load_trained_model(run, which)
    metrics = _read_json(run / "metrics.json")
    ood, classical, facts, decides = None, None, {}, None
    if data_dir is not None:
        train, val, test = _split_features(
            run,
            data_dir,
            model,
            meta,
            max_per_class,
            batch_size,
            show_progress,
            True,
            cache_dir,
        )
        ood = fit_ood_from(train, val, quantile, input_norm_name(meta.get("config")))
        if len(test[1]):  # the in-distribution false-flag rate, measured where no fit looked
            metrics = {**metrics, "ood_false_flags": false_flag_rate(ood, test, quantile)}
        if classifier:
            classical = fit_classical(train[0], train[1], classifier, n_features, meta["classes"])
            choice = choose_head(classical, val, meta)
            decides = choice["decides"]
            metrics = {**metrics, "head_choice": choice}
            if len(test[1]):  # a run without held-out images leaves the head unscored
                score = held_out_score(classical, test, meta)
                metrics = {**metrics, "classical_head": {**score, "n_fit": len(train[1])}}
        facts["data"] = _data_fact(run, data_dir)
    path = write_bundle(
        out,
        model,
        meta,
        classical=classical,
        ood=ood,
        metrics=metrics,
        card_facts=facts,
        overwrite=overwrite,
        decides=decides,
    )
    if int8:
        add_int8(path, train[2])
    return path


def add_int8(bundle: Path, train_images) -> None:
    """model.int8.onnx, calibrated on a seeded sample of the run's training images."""
    from blastscan.bundle.export import add_int8_onnx
    from blastscan.runtime.quantize import calibration_sample

    rows = calibration_sample(len(train_images), seed=0)
    add_int8_onnx(bundle, train_images[rows], "the run's training images (seeded sample)")


def held_out_score(head: ClassicalHead, test: tuple, meta: dict[str, Any]) -> dict[str, Any]:
    """The classical head's accuracy on the run's held-out test images, decided as `predict`
    decides (the most probable class): the number the card shows for the head that decides."""
    from blastscan.evaluation import proportion

    features, labels = test[0], np.asarray(test[1])
    predicted = head.predict_proba(features, len(meta["classes"])).argmax(axis=1)
    return {
        "name": head.name,
        "accuracy": proportion(int(np.sum(predicted == labels)), len(labels)),
        "split": "the run's held-out test images (split.json 'test'), all of them",
    }


def choose_head(head: ClassicalHead, val: tuple, meta: dict[str, Any]) -> dict[str, Any]:
    """The classical head decides (the paper's pipeline) unless, on the run's validation
    images, it is right less often than the CNN's own softmax: on features of a network
    trained not to see colour, mRMR at the paper's 0.25 may keep a handful of features, and a
    head on them should not overrule a better CNN. The test images play no part."""
    from blastscan.evaluation import proportion

    labels = np.asarray(val[1])
    if not len(labels):
        return {"decides": HEAD_CLASSICAL, "split": "no validation images: the paper's head"}
    cnn = int(np.sum(val[3].argmax(axis=1) == labels))
    proba = head.predict_proba(val[0], len(meta["classes"]))
    classical = int(np.sum(proba.argmax(axis=1) == labels))
    return {
        "decides": HEAD_CLASSICAL if classical >= cnn else HEAD_CNN,
        "cnn": proportion(cnn, len(labels)),
        "classical": proportion(classical, len(labels)),
        "split": "the run's validation images (split.json 'val')",
    }


def false_flag_rate(ood: OODDetector, test: tuple, quantile: float) -> dict[str, Any]:
    """How many of the run's held-out test images (all in distribution) the detector flags,
    with its 95% interval, beside the rate its thresholds aim at (1 - quantile)."""
    from blastscan.evaluation import proportion

    flags = ood.score(test[0], test[2])[2]
    return {
        **proportion(int(flags.sum()), len(flags)),
        "target": 1 - quantile,
        "split": "the run's held-out test images (split.json 'test'), all of them",
    }


def fit_ood_from(
    train: tuple, val: tuple, quantile: float, input_norm: str = "none"
) -> OODDetector:
    """train/val are (features, labels, images): covariance on train, thresholds on val; the
    pixel statistics are the ones that suit the network's first layer (`input_norm`)."""
    version = pixel_statistics_version(input_norm)
    if len(val[0]):
        return fit_ood(
            train[0], train[1], val[0], quantile, train[2], val[2], pixel_statistics=version
        )
    return fit_ood(train[0], train[1], None, quantile, train[2], pixel_statistics=version)


def fit_classical(
    X: np.ndarray, y: np.ndarray, name: str, n_features: int | None, classes: list[str]
) -> ClassicalHead:
    """mRMR (the paper's selection) + a Classification Learner preset, with probabilities."""
    from blastscan.classify import get_preset, make_classifier
    from blastscan.selection import MRMR, kept_columns

    selector = MRMR(n_features=n_features) if n_features else MRMR(threshold=0.25)
    try:
        pipeline = make_classifier(name, selector=selector, probability=True).fit(X, y)
    except ValueError:
        kept_columns(selector)  # the pipeline fits this very selector: say if it kept nothing
        raise
    return ClassicalHead.from_pipeline(pipeline, classes, get_preset(name).name)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _read_json_list(path: Path) -> list | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, list) else None


def _data_fact(run: Path, data_dir: str | Path) -> str:
    summary = _read_json(run / "dataset.json")
    counts = summary.get("counts") or {}
    listing = ", ".join(f"{k} {v}" for k, v in counts.items())
    return f"{Path(data_dir).name}: {summary.get('images', '?')} images ({listing})."


def _split_features(
    run, data_dir, model, meta, max_per_class, batch_size, show_progress, test, cache_dir=None
):
    """Deep features, labels, images and logits of the run's training (capped per class),
    validation and, if `test`, all its held-out test images (else an empty part)."""
    from blastscan import data as D
    from blastscan.progress import progress_bar
    from blastscan.runtime.device import pick_device
    from blastscan.runtime.infer import infer

    dataset, indices = D.run_split(run, data_dir, meta)
    rng = np.random.default_rng(0)
    parts = [
        _cap_per_class(indices["train"], dataset.labels, max_per_class, rng),
        _cap_per_class(indices["val"], dataset.labels, None, rng),
        indices["test"] if test else indices["test"][:0],
    ]
    if not len(parts[0]):
        raise BlastscanError(
            f"{data_dir}: none of the run's training images are there; "
            "pass the dataset it was trained on"
        )
    device = pick_device(None)
    model = model.to(device)
    every_image = D.load_images(dataset, meta["image_size"], cache_dir)  # training's cache file
    out = []
    with progress_bar(show_progress) as bar:
        task = bar.add_task("features", total=sum(len(p) for p in parts))
        for idx in parts:
            images = every_image[idx]
            result = infer(model, images, batch_size, device, lambda n: bar.advance(task, n))
            out.append((result.features, dataset.labels[idx], images, result.logits))
    model.cpu()
    return out[0], out[1], out[2]


def _cap_per_class(idx: np.ndarray, labels: np.ndarray, cap: int | None, rng) -> np.ndarray:
    if not cap:
        return idx
    keep = [rng.permutation(idx[labels[idx] == c])[:cap] for c in np.unique(labels[idx])]
    return np.sort(np.concatenate(keep)) if keep else idx
