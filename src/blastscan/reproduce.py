"""`blastscan reproduce`: the paper's whole method, end to end, into one run directory.

train (or reuse) the CNN -> extract the 1000 deep features of every image -> mRMR ->
classifiers under each protocol -> metrics.json, report.md, report.html.
Every stage leaves its outputs in the run directory, so an interrupted run resumes at the
first stage whose output is missing.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from blastscan import __version__
from blastscan.errors import BlastscanError
from blastscan.evaluation import classification_metrics
from blastscan.features import extract, load_features
from blastscan.io import atomic_write_json
from blastscan.protocols import PAPER_THRESHOLD, holdout_protocol, paper_protocol, strict_protocol
from blastscan.selection import plot_mrmr_scores
from blastscan.training import TrainConfig, recipe_config, train

log = logging.getLogger("blastscan.reproduce")
PROTOCOLS = ("paper", "holdout", "strict", "group")


@dataclass
class ReproduceOptions:
    protocols: tuple[str, ...] = ("paper", "holdout")
    presets: list[str] | None = None  # default: the paper's four rows
    threshold: float = PAPER_THRESHOLD
    n_features: int | None = None  # keep the top N instead (the paper kept 521)
    n_splits: int = 10
    strict_folds: int = 5
    group_block_size: int = 37  # 3,256 images / 89 patients
    seed: int = 0
    quick: bool = False
    train_config: TrainConfig = field(default_factory=TrainConfig)


def quick_options(**overrides) -> ReproduceOptions:
    """The same chain, small: a few epochs at 64 px on 60 images per class, 5 folds."""
    config = recipe_config(
        "fast", epochs=4, image_size=64, batch_size=32, max_per_class=60, val_fraction=0.0
    )
    return ReproduceOptions(
        n_splits=5, strict_folds=3, quick=True, train_config=config, **overrides
    )


def run_split_indices(paths: np.ndarray, run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """Sorted train (incl. validation) and test indices of a CNN run's split in a features file.

    Matched by class folder and file name (`data.image_index`), like `data.run_split`, so
    features extracted from a moved copy of the dataset still line up.
    """
    from blastscan.data import image_index

    split = json.loads((run_dir / "split.json").read_text())
    position, key = image_index(paths.tolist())

    def indices(wanted: list[str]) -> np.ndarray:
        missing = [p for p in wanted if key(p) not in position]
        if missing:
            raise BlastscanError(
                f"{missing[0]}: in the CNN's split but not in the features file; "
                "extract features from the same dataset the CNN was trained on"
            )
        return np.sort(np.array([position[key(p)] for p in wanted], dtype=np.int64))

    return indices(split["train"] + split.get("val", [])), indices(split["test"])


def cnn_summary(cnn_dir: Path, features: dict) -> tuple[dict, np.ndarray, np.ndarray]:
    """The CNN's own held-out result, and its train/test indices into the features file."""
    train_idx, test_idx = run_split_indices(features["paths"], cnn_dir)
    y, names = features["y"], list(features["display_names"])
    pred = features["logits"][test_idx].argmax(1)
    block = {
        "split": "70/30 (duplicate- and near-duplicate-aware)",
        "train_fraction": 0.7,
        "n_train": int(len(train_idx)),
        "n_test": int(len(test_idx)),
        "seed": json.loads((cnn_dir / "split.json").read_text()).get("seed", 0),
        "test_metrics": classification_metrics(y[test_idx], pred, names),
    }
    return block, train_idx, test_idx


def _stage(timings: dict, name: str):
    class _Timer:
        def __enter__(self):
            self.t = time.perf_counter()
            log.info("stage %s ...", name)

        def __exit__(self, *exc):
            timings[name] = time.perf_counter() - self.t

    return _Timer()


def reproduce(
    data_dir: str | Path,
    out: str | Path,
    options: ReproduceOptions,
    cnn_dir: Path | None = None,
    features_path: Path | None = None,
    cache_dir: Path | None = None,
    show_progress: bool = True,
    strict_dir: Path | None = None,
) -> Path:
    """Run the whole method; returns the run directory holding report.md/html and metrics.json."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    bad = set(options.protocols) - set(PROTOCOLS)
    if bad:
        raise BlastscanError(f"unknown protocol(s) {sorted(bad)}; choose from {PROTOCOLS}")
    atomic_write_json(
        out / "reproduce.json",
        {
            "options": {**options.__dict__, "train_config": options.train_config.__dict__},
            "data": str(data_dir),
        },
    )

    cnn_dir = Path(cnn_dir) if cnn_dir else out / "cnn"
    if not (cnn_dir / "metrics.json").exists():
        with _stage(timings, "train_cnn"):
            train(
                data_dir,
                cnn_dir,
                options.train_config,
                resume=(cnn_dir / "checkpoints" / "last.safetensors").exists(),
                cache_dir=cache_dir,
                show_progress=show_progress,
            )
    features_path = Path(features_path) if features_path else out / "features.npz"
    if not features_path.exists():
        with _stage(timings, "extract"):
            extract(
                cnn_dir,
                data_dir,
                features_path,
                variant=options.train_config.variant,
                cache_dir=cache_dir,
                show_progress=show_progress,
                max_per_class=options.train_config.max_per_class,
                seed=options.train_config.seed,
            )
    features = load_features(features_path)
    variant = options.train_config.variant
    _check_subset(features, cnn_dir, variant)
    cnn, train_idx, test_idx = cnn_summary(cnn_dir, features)
    cnn_variant = _cnn_variant(cnn_dir)
    cnn.update(trained_on=cnn_variant, evaluated_on=variant)
    X, y, names = features["X"].astype(np.float64), features["y"], list(features["display_names"])
    rows = np.sort(np.concatenate([train_idx, test_idx]))  # the images the CNN's run used
    common = dict(
        presets=options.presets,
        threshold=options.threshold,
        n_features=options.n_features,
        seed=options.seed,
    )
    protocols: dict[str, dict] = {}
    figures: dict[str, Path] = {}

    if "paper" in options.protocols:
        with _stage(timings, "paper_protocol"):
            protocols["paper"], selector = paper_protocol(
                X[rows], y[rows], names, cnn, n_splits=options.n_splits, **common
            )
        figures["paper:mrmr_scores"] = plot_mrmr_scores(
            selector.scores_, options.threshold, out / "figures" / "mrmr_scores.png"
        )
        figures["mrmr_scores"] = figures["paper:mrmr_scores"]
    if "group" in options.protocols:
        with _stage(timings, "group_protocol"):
            protocols["group"] = group_protocol(
                X[rows], y[rows], features["paths"][rows], names, cnn, options, common
            )
    if "holdout" in options.protocols:
        with _stage(timings, "holdout_protocol"):
            protocols["holdout"] = holdout_protocol(X, y, train_idx, test_idx, names, cnn, **common)
        with _stage(timings, "calibration"):
            protocols["holdout"]["calibration"] = _calibration(
                features, train_idx, test_idx, out, options.seed
            )
        figures["holdout:reliability"] = out / protocols["holdout"]["calibration"]["figure"]
    if "strict" in options.protocols:
        with _stage(timings, "strict_protocol"):
            protocols["strict"] = run_strict(
                data_dir, out, options, strict_dir, cache_dir, show_progress, names
            )

    for key, name in (("training_accuracy", "accuracy.png"), ("training_loss", "loss.png")):
        if (cnn_dir / "figures" / name).exists():
            figures[key] = cnn_dir / "figures" / name
    metrics = {
        "schema_version": 1,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "blastscan_version": __version__,
        "quick": options.quick,
        "dataset": _dataset_block(features, rows, names, variant),
        "cnn_run": str(cnn_dir),
        "cnn_variant": cnn_variant,
        "timings": {},  # filled in before writing, once every stage has run
        "protocols": protocols,
    }
    with _stage(timings, "colour_baseline"):
        metrics["colour_baseline"] = _colour_baseline(
            data_dir, variant, features, train_idx, test_idx, cache_dir
        )
    if cnn_variant == variant:  # the CNN on its own test images, each in every class's colour
        from blastscan.robustness import run_colour_swap

        with _stage(timings, "colour_swap"):
            metrics["colour_swap"] = run_colour_swap(
                cnn_dir, data_dir, cache_dir, device=options.train_config.device
            )
    if variant == "Segmented":
        with _stage(timings, "coverage"):
            _add_coverage(metrics, data_dir, features, rows, test_idx)
    protocols.get("holdout", {}).get("calibration", {}).pop("predictions", None)  # per image
    metrics["timings"] = {**_cnn_timings(cnn_dir), **timings}  # with the stages just above
    atomic_write_json(out / "metrics.json", metrics)
    from blastscan.report import write_report

    write_report(out, metrics, figures)
    if cnn_variant != variant:
        log.info("CNN trained on %s, features of %s: no bundle written", cnn_variant, variant)
    else:
        write_run_bundle(cnn_dir, out / "bundle", data_dir, options, show_progress, cache_dir)
    return out


def _cnn_variant(cnn_dir: Path) -> str:
    """The image set (Original or Segmented) a training run was trained on, from its config."""
    try:
        return json.loads((cnn_dir / "config.json").read_text()).get("variant", "Original")
    except (OSError, ValueError):
        return "Original"


def _calibration(
    features: dict, train_idx: np.ndarray, test_idx: np.ndarray, out: Path, seed: int
) -> dict:
    """Reliability of the CNN's softmax and of the paper's SVM row (Platt) on the holdout 30%.

    The SVM is fitted on all deep features of the 70% (mRMR at the paper's threshold keeps all
    of them anyway), standardised inside the pipeline, so no test image reaches a fitted step.
    """
    from blastscan.calibration import holdout_calibration
    from blastscan.classify import PAPER_ROWS

    figure = Path("figures") / "reliability_holdout.png"
    result = holdout_calibration(
        features["X"],
        features["y"],
        features["logits"],
        train_idx,
        test_idx,
        out / figure,
        classifier=PAPER_ROWS["SVM"],
        seed=seed,
    )
    return {**result, "figure": figure.as_posix()}


COLOUR_SIZE = 64  # px: colour statistics need no detail, and 3,256 images fit in 160 MB


def _colour_baseline(
    data_dir, variant: str, features: dict, train_idx: np.ndarray, test_idx: np.ndarray, cache_dir
) -> dict:
    """What colour alone gives away, on the CNN's own split (`evaluation.colour_baseline`)."""
    from blastscan import data as D
    from blastscan.evaluation import colour_baseline

    dataset = D.scan_dataset(data_dir, variant)
    position, key = D.image_index([s.path for s in dataset.samples])
    paths = features["paths"].tolist()
    missing = [p for p in paths if key(p) not in position]
    if missing:
        raise BlastscanError(
            f"{missing[0]}: in the features file but not in {data_dir}; pass the dataset the "
            "features were extracted from"
        )
    rows = [position[key(p)] for p in paths]
    images = D.load_images(dataset.subset(rows), COLOUR_SIZE, cache_dir)
    return colour_baseline(images, features["y"], train_idx, test_idx)


def _add_coverage(
    metrics: dict, data_dir, features: dict, rows: np.ndarray, test_idx: np.ndarray
) -> None:
    """Segmented only: how empty the images are per class, and holdout accuracy on the emptiest.

    Nearly empty images are almost all Pro-B, so "empty" alone predicts the class; accuracy on
    them says whether a model learned cells or emptiness.
    """
    from blastscan.data import (
        NEARLY_EMPTY_BELOW,
        coverage_summary,
        foreground_fractions,
        image_key,
        resolve_class_root,
    )

    root = resolve_class_root(data_dir, "Segmented")
    files = [root / image_key(p) for p in features["paths"].tolist()]
    fractions = np.full(len(files), np.nan)
    fractions[rows] = foreground_fractions([files[i] for i in rows])
    y, names = features["y"], list(features["display_names"])
    metrics["dataset"]["foreground"] = coverage_summary(fractions[rows], y[rows], names)
    holdout = metrics["protocols"].get("holdout")
    if holdout and "calibration" in holdout:
        empty = fractions[test_idx] < NEARLY_EMPTY_BELOW
        holdout["nearly_empty"] = _subset_accuracy(
            holdout["calibration"], y[test_idx], empty, names
        )


def _subset_accuracy(calibration: dict, y_test: np.ndarray, mask: np.ndarray, names: list) -> dict:
    """Accuracy (Wilson 95%) of each calibrated model on the masked test images and the rest."""
    from blastscan.evaluation import proportion

    block: dict = {
        "n_test": int(mask.sum()),
        "by_class": {n: int(np.sum(mask & (y_test == k))) for k, n in enumerate(names)},
        "accuracy": {},
        "accuracy_rest": {},
    }
    for model, pred in calibration["predictions"].items():
        right = np.asarray(pred) == y_test
        block["accuracy"][model] = proportion(int(right[mask].sum()), int(mask.sum()))
        block["accuracy_rest"][model] = proportion(int(right[~mask].sum()), int((~mask).sum()))
    return block


def write_run_bundle(
    cnn_dir: Path,
    out: Path,
    data_dir,
    options: ReproduceOptions,
    show_progress: bool,
    cache_dir: Path | None = None,
) -> None:
    """The trained CNN, its OOD detector and the paper's SVM row on mRMR features, as a bundle."""
    from blastscan.bundle import bundle_from_run
    from blastscan.classify import PAPER_ROWS

    if not any((cnn_dir / "checkpoints" / f"{w}.safetensors").exists() for w in ("final", "last")):
        log.warning("no CNN weights in %s (features were reused); no bundle written", cnn_dir)
        return
    bundle_from_run(
        cnn_dir,
        out,
        data_dir,
        classifier=PAPER_ROWS["SVM"],
        n_features=options.n_features,
        max_per_class=options.train_config.max_per_class or 200,
        overwrite=True,
        show_progress=show_progress,
        cache_dir=cache_dir,
    )


def group_protocol(X, y, paths, names, cnn, options: ReproduceOptions, common: dict) -> dict:
    """The paper's classical stage with folds that keep blocks of consecutive file numbers together."""
    from blastscan.data import patient_proxy_groups

    groups = patient_proxy_groups(paths, y, "blocks", options.group_block_size)
    protocol, _ = paper_protocol(
        X,
        y,
        names,
        cnn,
        n_splits=options.n_splits,
        groups=groups,
        title=f"Group protocol ({len(np.unique(groups))} blocks of consecutive file numbers as patient proxies)",
        **common,
    )
    protocol["description"] = (
        "As the paper protocol, but every cross-validation fold keeps whole groups: runs of about "
        f"{options.group_block_size} consecutive file numbers per class, which stand in for the 89 "
        "patients (the dataset records no patient IDs; images of one patient were captured in "
        "runs of consecutive numbers with one stain and light, so this is an assumption). The CNN "
        "and mRMR are those of the paper protocol, so their leaks remain; the drop against the "
        "paper protocol's random folds shows how much the classifiers lean on near neighbours."
    )
    return protocol


def _check_subset(features: dict, cnn_dir: Path, variant: str = "Original") -> None:
    """Features must carry paths/logits, come from the asked-for image set, and match a run."""
    from blastscan.data import KAGGLE_VARIANTS

    if "paths" not in features or "logits" not in features:
        raise BlastscanError("features file lacks paths/logits; re-run blastscan extract")
    sets = {Path(p).parent.parent.name for p in features["paths"].tolist()}
    other = (sets & set(KAGGLE_VARIANTS)) - {variant}
    if other:
        raise BlastscanError(
            f"features file holds {sorted(other)[0]} images but --variant is {variant}; "
            "extract features of the same image set"
        )
    if not (cnn_dir / "split.json").exists():
        raise BlastscanError(
            f"{cnn_dir}: no split.json; pass the CNN's training run directory with --cnn"
        )


def _dataset_block(features: dict, rows: np.ndarray, names: list[str], variant: str) -> dict:
    y = features["y"][rows]
    return {
        "name": "ALL (Aria et al., Taleqani Hospital)",
        "variant": variant,
        "n_images": int(len(rows)),
        "class_names": names,
        "class_counts": {n: int((y == i).sum()) for i, n in enumerate(names)},
    }


def _cnn_timings(cnn_dir: Path) -> dict:
    try:
        m = json.loads((cnn_dir / "metrics.json").read_text())
        return {"train_cnn": m["train_seconds"]}
    except (OSError, ValueError, KeyError):
        return {}


def run_strict(data_dir, out, options, strict_dir, cache_dir, show_progress, names) -> dict:
    """Train one CNN per outer fold (or reuse `strict_dir/fold{k}`), then evaluate in-fold."""
    strict_dir = Path(strict_dir) if strict_dir else out / "strict"
    fold_features, fold_logits, splits = [], [], []
    for k in range(options.strict_folds):
        fold_dir = strict_dir / f"fold{k}"
        fold_file = strict_dir / f"fold{k}.npz"
        config = replace(options.train_config, outer_folds=options.strict_folds, outer_fold=k)
        if not (fold_dir / "metrics.json").exists():
            train(
                data_dir,
                fold_dir,
                config,
                resume=(fold_dir / "checkpoints" / "last.safetensors").exists(),
                cache_dir=cache_dir,
                show_progress=show_progress,
            )
        if not fold_file.exists():
            extract(
                fold_dir,
                data_dir,
                fold_file,
                variant=config.variant,
                cache_dir=cache_dir,
                show_progress=show_progress,
                max_per_class=config.max_per_class,
                seed=config.seed,
            )
        f = load_features(fold_file)
        fold_features.append(f["X"].astype(np.float64))
        splits.append(run_split_indices(f["paths"], fold_dir))
        fold_logits.append(f["logits"])
        y = f["y"]
    cnn_pred = np.concatenate(
        [z[t].argmax(1) for z, (_, t) in zip(fold_logits, splits, strict=True)]
    )
    cnn_true = np.concatenate([y[t] for _, t in splits])
    cnn = {
        "split": f"{len(splits)} outer folds (pooled)",
        "train_fraction": 1 - 1 / len(splits),
        "n_train": int(np.mean([len(tr) for tr, _ in splits])),
        "n_test": int(len(cnn_true)),
        "seed": options.seed,
        "test_metrics": classification_metrics(cnn_true, cnn_pred, names),
    }
    return strict_protocol(
        fold_features,
        y,
        splits,
        names,
        cnn,
        presets=options.presets,
        threshold=options.threshold,
        n_features=options.n_features,
        seed=options.seed,
    )
