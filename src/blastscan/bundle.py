"""Model bundle: one folder that holds everything needed to use a trained model, and no pickle.

Layout (see docs/bundle.md): `bundle.json` (format, classes, input, versions, metrics and the
sha256 of every other file), `MODEL_CARD.md`, `model.safetensors` (CNN weights), optionally
`ood.safetensors` (OOD detector), `classical.safetensors` + `classifier.skops` (mRMR columns,
scaler, classifier) and `model.onnx`. Loading reads each file once, checks its sha256 against
bundle.json and only then parses it: tensors come from safetensors, the classifier from skops
with an explicit allow-list of types, so a bundle can carry no code.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from blastscan.errors import BlastscanError
from blastscan.io import atomic_write_bytes, atomic_write_json, to_json, umask
from blastscan.models.stain import input_norm_name
from blastscan.predict import HEAD_CLASSICAL, HEAD_CNN, OODDetector, Prediction

FORMAT = "blastscan-bundle"
FORMAT_VERSION = 1
MANIFEST = "bundle.json"
CARD = "MODEL_CARD.md"
WEIGHTS = "model.safetensors"
OOD_ARRAYS = "ood.safetensors"
CLASSICAL_ARRAYS = "classical.safetensors"
CLASSIFIER = "classifier.skops"
ONNX = "model.onnx"

# Types a classifier file may contain beyond skops' own trusted scikit-learn/numpy types.
# Only blastscan's own estimators (classify.py) are added; anything else fails to load.
TRUSTED_TYPES = [
    "blastscan.classify.MatlabSVC",
    "blastscan.classify._BinaryLearner",
    "blastscan.classify.KernelNB",
    "blastscan.classify.Float32MLPClassifier",
    "blastscan.classify.squared_inverse",
]
DEFAULT_DATA = "Peripheral blood smear images of acute lymphoblastic leukemia and benign cases."
INPUT_SPEC = {
    "layout": "NCHW",
    "dtype": "float32",
    "channels": "RGB",
    "range": [0.0, 1.0],
    "mean": [0.0, 0.0, 0.0],
    "std": [1.0, 1.0, 1.0],
    "decode": "EXIF orientation applied; alpha composited on white; gray/CMYK/16-bit to RGB8",
    "resize": "bilinear (PIL) to size x size, whole image, no crop",
}


# ---------------------------------------------------------------- classical head


@dataclass
class ClassicalHead:
    """mRMR-selected deep features -> standardisation -> a fitted classifier.

    `columns` index the 1000 features in the order the classifier saw them; `class_index`
    maps the classifier's `classes_` to the bundle's class order.
    """

    columns: np.ndarray
    scaler_mean: np.ndarray
    scaler_scale: np.ndarray
    classifier: Any
    class_index: np.ndarray
    name: str = "classifier"
    scores: np.ndarray | None = None  # mRMR scores of the selected columns, for the card
    n_inputs: int | None = None  # deep features the selector chose from (1000)
    mrmr: dict[str, Any] | None = None  # its rule: {"threshold": T} or {"n_features": K}

    def predict_proba(self, features: np.ndarray, n_classes: int) -> np.ndarray:
        """Class probabilities in bundle order; one-hot when the classifier has no probabilities."""
        Z = (
            np.asarray(features, dtype=np.float64)[:, self.columns] - self.scaler_mean
        ) / self.scaler_scale
        if len(Z) == 0:
            return np.zeros((0, n_classes))
        try:
            proba = np.asarray(self.classifier.predict_proba(Z), dtype=np.float64)
        except (AttributeError, NotImplementedError):
            picked = np.searchsorted(self.classifier.classes_, self.classifier.predict(Z))
            proba = np.eye(len(self.classifier.classes_))[picked]
        out = np.zeros((len(Z), n_classes))
        out[:, self.class_index] = proba
        return out

    @classmethod
    def from_pipeline(
        cls, pipeline: Any, classes: list[str], name: str | None = None
    ) -> ClassicalHead:
        """From a fitted `make_classifier` pipeline: [select ->] StandardScaler -> classifier."""
        steps = (
            dict(pipeline.named_steps) if hasattr(pipeline, "named_steps") else {"clf": pipeline}
        )
        selector, scaler = steps.get("select"), steps.get("scale")
        classifier = steps.get("clf", list(steps.values())[-1])
        n_in = getattr(selector or scaler or classifier, "n_features_in_", None)
        columns = (
            np.flatnonzero(selector.get_support())
            if selector is not None
            else np.arange(n_in or 1000)
        )
        scores = (
            np.asarray(selector.scores_)[columns]
            if selector is not None and hasattr(selector, "scores_")
            else None
        )
        mean = getattr(scaler, "mean_", None)
        scale = getattr(scaler, "scale_", None)
        return cls(
            columns.astype(np.int64),
            np.zeros(len(columns)) if mean is None else np.asarray(mean, dtype=np.float64),
            np.ones(len(columns)) if scale is None else np.asarray(scale, dtype=np.float64),
            classifier,
            _class_index(classifier.classes_, classes),
            name or type(classifier).__name__,
            scores,
            int(n_in) if n_in is not None else None,
            _selection_rule(selector),
        )


def _selection_rule(selector: Any) -> dict[str, Any] | None:
    """How a fitted selector chose its columns, for the model card (None: no selector)."""
    if selector is None:
        return None
    if getattr(selector, "n_features", None):
        return {"n_features": int(selector.n_features)}
    threshold = getattr(selector, "threshold", None)
    return {"threshold": None if threshold is None else float(threshold)}


def _class_index(labels: np.ndarray, classes: list[str]) -> np.ndarray:
    """Bundle class index of each classifier label (an index, a class or a display name)."""
    from blastscan.data import DISPLAY_NAMES

    out = []
    for label in np.asarray(labels).tolist():
        if isinstance(label, int) and 0 <= label < len(classes):
            out.append(label)
            continue
        names = {c: i for i, c in enumerate(classes)} | {
            DISPLAY_NAMES.get(c, c): i for i, c in enumerate(classes)
        }
        if str(label) not in names:
            raise BlastscanError(
                f"classifier label {label!r} is not one of the model's classes {classes}"
            )
        out.append(names[str(label)])
    return np.asarray(out, dtype=np.int64)


# ---------------------------------------------------------------- the bundle


@dataclass
class Bundle:
    """A loaded, verified bundle: the CNN, optional heads, and what bundle.json says."""

    path: Path
    manifest: dict[str, Any]
    model: torch.nn.Module
    classical: ClassicalHead | None = None
    ood: OODDetector | None = None
    onnx_bytes: bytes | None = None
    _engines: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def classes(self) -> list[str]:
        return list(self.manifest["classes"])

    @property
    def display_names(self) -> list[str]:
        return list(self.manifest["display_names"])

    @property
    def image_size(self) -> int:
        return int(self.manifest["input"]["size"])

    @property
    def default_head(self) -> str:
        return HEAD_CLASSICAL if self.classical is not None else HEAD_CNN

    def class_index(self, name: str) -> int:
        """Index of a class given by folder name or display name (case-insensitive)."""
        for i, (c, d) in enumerate(zip(self.classes, self.display_names, strict=True)):
            if name.strip().lower() in (c.lower(), d.lower()):
                return i
        raise BlastscanError(
            f"unknown class {name!r}; the bundle's classes are {self.display_names}"
        )

    def prepare(self, image: Image.Image | np.ndarray | str | Path | bytes) -> np.ndarray:
        """One image as (size, size, 3) uint8, decoded and resized the way training saw it."""
        from blastscan.data import load_image_array, open_rgb

        if isinstance(image, str | Path | bytes):
            return load_image_array(image, self.image_size)
        picture = (
            image
            if isinstance(image, Image.Image)
            else Image.fromarray(np.asarray(image, np.uint8))
        )
        picture = open_rgb(_png(picture)) if picture.mode != "RGB" else picture
        if picture.size != (self.image_size, self.image_size):
            picture = picture.resize((self.image_size, self.image_size), Image.Resampling.BILINEAR)
        return np.array(picture, dtype=np.uint8)

    def predict(
        self,
        images: np.ndarray,
        batch_size: int = 32,
        engine: str = "torch",
        head: str = "auto",
        device: str | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> Prediction:
        """Both heads and the OOD distance for (N, H, W, 3) uint8 images (resized if needed).

        `head` 'auto' lets the features+classifier head decide when the bundle has one (it is
        the paper's pipeline), else the CNN; 'cnn' or 'classical' force one.
        """
        images = self._at_input_size(np.asarray(images))
        inference = self.engine(engine, device).infer(images, batch_size, on_batch)
        cnn = inference.probabilities
        chosen = self.resolve_head(head)
        probs = (
            self.classical.predict_proba(inference.features, len(self.classes))
            if chosen == HEAD_CLASSICAL
            else cnn
        )
        prediction = Prediction(
            self.classes, self.display_names, probs, cnn, chosen, inference.features
        )
        if self.ood is not None:
            deep, pixel, flag = self.ood.score(inference.features, images)
            prediction.ood_distance, prediction.ood_pixel_distance, prediction.ood_flag = (
                deep,
                pixel,
                flag,
            )
            prediction.ood_threshold = self.ood.threshold
            prediction.ood_pixel_threshold = self.ood.pixels.threshold if self.ood.pixels else None
        return prediction

    def resolve_head(self, head: str) -> str:
        """The head that decides: "auto" is the classical head when the bundle has one."""
        if head == "auto":
            return self.default_head
        if head == "cnn":
            return HEAD_CNN
        if head in ("classical", HEAD_CLASSICAL):
            if self.classical is None:
                raise BlastscanError(
                    f"{self.path}: has no features+classifier head; use --head cnn"
                )
            return HEAD_CLASSICAL
        raise BlastscanError(f"unknown head {head!r}; use auto, cnn or classical")

    def _at_input_size(self, images: np.ndarray) -> np.ndarray:
        if images.ndim != 4 or images.shape[-1] != 3:
            raise BlastscanError(f"images must be (N, H, W, 3) uint8, got shape {images.shape}")
        if images.shape[1:3] == (self.image_size, self.image_size):
            return images.astype(np.uint8, copy=False)
        return np.stack([self.prepare(Image.fromarray(a.astype(np.uint8))) for a in images])

    def engine(self, name: str = "torch", device: str | None = None):
        """A cached inference engine: eager PyTorch or ONNX Runtime (after `blastscan export`)."""
        key = f"{name}:{device}"
        if key not in self._engines:
            self._engines[key] = self._make_engine(name, device)
        return self._engines[key]

    def _make_engine(self, name: str, device: str | None):
        if name == "torch":
            return TorchEngine(self.model, device)
        if name == "onnx":
            if self.onnx_bytes is None:
                raise BlastscanError(
                    f"{self.path}: has no model.onnx; run blastscan export {self.path} --onnx"
                )
            from blastscan.export import OnnxEngine

            return OnnxEngine(self.onnx_bytes)
        raise BlastscanError(f"unknown engine {name!r}; use torch or onnx")


class TorchEngine:
    """Eager PyTorch through `features.infer`, the path training and extract use."""

    def __init__(self, model: torch.nn.Module, device: str | None = None) -> None:
        from blastscan.features import pick_device

        self.device = pick_device(device)
        self.model = model.to(self.device).eval()

    def infer(self, images: np.ndarray, batch_size: int = 32, on_batch=None):
        from blastscan.features import infer

        return infer(self.model, images, batch_size, self.device, on_batch)


def _png(picture: Image.Image) -> bytes:
    import io

    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def as_bundle(bundle: Bundle | str | Path) -> Bundle:
    return bundle if isinstance(bundle, Bundle) else load_bundle(bundle)


# ---------------------------------------------------------------- writing


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def versions(extra: bool = False) -> dict[str, str]:
    """Library versions that produced the files; skops and scikit-learn when a classifier is in."""
    from importlib.metadata import PackageNotFoundError, version

    names = ["blastscan", "torch", "numpy", "safetensors"] + (
        ["scikit-learn", "skops"] if extra else []
    )
    out = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "unknown"
    return out


def write_bundle(
    out_dir: str | Path,
    model: torch.nn.Module,
    meta: dict[str, Any],
    *,
    classical: ClassicalHead | Any | None = None,
    ood: OODDetector | None = None,
    metrics: dict[str, Any] | None = None,
    card_facts: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a bundle folder atomically: built in a temporary folder beside it, then renamed.

    `meta` is a checkpoint's metadata (classes, display_names, image_size, config, history);
    `classical` a ClassicalHead or a fitted `make_classifier` pipeline; `metrics` the held-out
    test metrics; `card_facts` extra lines for the model card (e.g. {"data": "..."}).
    """
    out = Path(out_dir)
    if out.exists():
        _check_replaceable(out, overwrite)
    classes = list(meta["classes"])
    if classical is not None and not isinstance(classical, ClassicalHead):
        classical = ClassicalHead.from_pipeline(classical, classes)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        files = _write_files(tmp, model, classical, ood)
        manifest = _manifest(meta, classical, ood, metrics, card_facts)
        card = model_card(manifest)
        (tmp / CARD).write_text(card, encoding="utf-8")
        files[CARD] = sha256_bytes(card.encode("utf-8"))
        manifest["files"] = dict(sorted(files.items()))
        (tmp / MANIFEST).write_text(to_json(manifest), encoding="utf-8")
        _readable_modes(tmp)
        _swap_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _write_files(
    tmp: Path, model: torch.nn.Module, classical: ClassicalHead | None, ood: OODDetector | None
) -> dict[str, str]:
    from safetensors.numpy import save as save_arrays
    from safetensors.torch import save as save_tensors

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    blobs = {WEIGHTS: save_tensors(state, metadata={"format": FORMAT})}
    if ood is not None:
        blobs[OOD_ARRAYS] = save_arrays(ood.to_arrays())
    if classical is not None:
        blobs[CLASSICAL_ARRAYS] = save_arrays(_classical_arrays(classical))
        blobs[CLASSIFIER] = _dump_classifier(classical.classifier)
    for name, data in blobs.items():
        (tmp / name).write_bytes(data)
    return {name: sha256_bytes(data) for name, data in blobs.items()}


def _classical_arrays(head: ClassicalHead) -> dict[str, np.ndarray]:
    arrays = {
        "columns": head.columns.astype(np.int64),
        "scaler_mean": head.scaler_mean.astype(np.float64),
        "scaler_scale": head.scaler_scale.astype(np.float64),
        "class_index": head.class_index.astype(np.int64),
    }
    if head.scores is not None:
        arrays["scores"] = np.asarray(head.scores, dtype=np.float64)
    return arrays


def _dump_classifier(classifier: Any) -> bytes:
    """skops bytes, refused at write time if loading would need a type outside the allow-list."""
    import skops.io as sio

    data = sio.dumps(classifier)
    untrusted = set(sio.get_untrusted_types(data=data)) - set(TRUSTED_TYPES)
    if untrusted:
        raise BlastscanError(
            f"the classifier holds types a bundle may not load: {sorted(untrusted)}; "
            "use a blastscan.classify preset"
        )
    return data


def _readable_modes(folder: Path) -> None:
    """mkdtemp makes a private (0700) folder; a bundle is meant to be shared."""
    mask = umask()
    folder.chmod(0o777 & ~mask)
    for item in folder.iterdir():
        item.chmod(0o666 & ~mask)


def _check_replaceable(out: Path, overwrite: bool) -> None:
    """--overwrite replaces an old bundle or an empty folder, never a run or a folder of runs."""
    if not overwrite:
        raise BlastscanError(f"{out}: already exists; choose another --out or pass --overwrite")
    if not out.is_dir() or not ((out / MANIFEST).is_file() or not any(out.iterdir())):
        raise BlastscanError(
            f"{out}: not a bundle (no {MANIFEST}), so --overwrite will not delete it; "
            "choose another --out"
        )


def _swap_into_place(tmp: Path, out: Path) -> None:
    """Rename the finished folder to `out`; an old bundle there is moved aside, then removed."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _manifest(meta, classical, ood, metrics, card_facts) -> dict[str, Any]:
    history = meta.get("history") or []
    config = meta.get("config") or {}
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": (card_facts or {}).get("name", "DarkNet-19 ALL subtype classifier"),
        "architecture": "darknet19",
        "classes": list(meta["classes"]),
        "display_names": list(meta.get("display_names") or meta["classes"]),
        "input": {
            "size": int(meta["image_size"]),
            **INPUT_SPEC,
            "input_norm": input_norm_name(config),
        },
        "outputs": {"features": 1000, "logits": len(meta["classes"])},
        "heads": {
            "cnn": True,
            "classical": classical is not None,
            "decides": HEAD_CLASSICAL if classical is not None else HEAD_CNN,
        },
        "versions": versions(extra=classical is not None),
        "training": {
            "config": config,
            "epochs": len(history),
            "git_commit": meta.get("git_commit"),
            "last_epoch": history[-1] if history else None,
            "bn_statistics": meta.get("bn_statistics"),
        },
        "metrics": metrics or {},
        "card_facts": card_facts or {},
    }
    if classical is not None:
        manifest["classical"] = {
            "name": classical.name,
            "n_features": int(len(classical.columns)),
            "n_inputs": classical.n_inputs,
            "selection": "mRMR" if classical.scores is not None else "none",
            "mrmr": classical.mrmr,
            "trusted_types": TRUSTED_TYPES,
        }
    if ood is not None:
        manifest["ood"] = ood.summary()
    return manifest


def model_card(manifest: dict[str, Any]) -> str:
    """A short model card: what the model is for, what it saw, how it was measured, its limits."""
    facts = manifest.get("card_facts") or {}
    metrics = manifest.get("metrics") or {}
    config = manifest["training"].get("config") or {}
    measured = _measured(metrics, manifest)
    lines = [
        f"# Model card: {manifest['name']}",
        "",
        "**Research use only. Not a medical device; not for diagnosis or treatment decisions.**",
        "",
        "## Model",
        f"- DarkNet-19 CNN, {len(manifest['classes'])} classes: "
        f"{', '.join(manifest['display_names'])}.",
        f"- Input: whole image resized to {manifest['input']['size']} px, RGB in [0, 1], "
        "no mean/std normalisation.",
        f"- Deciding head: {manifest['heads']['decides']}"
        + (f", {_classical_line(manifest)}" if manifest["heads"]["classical"] else "")
        + ".",
        "",
        "## Data",
        f"- {facts.get('data', DEFAULT_DATA)}",
        "",
        "## Protocol",
        f"- {facts.get('protocol', _protocol(config, manifest['training'].get('epochs')))}",
        f"- Measured: {measured}.",
        "",
        "## Out-of-distribution flag",
        f"- {_ood_line(manifest.get('ood'))}",
        "",
        "## Limits",
        "- Trained on one centre's images, one stain and microscope; other laboratories' smears",
        "  may be misclassified with high confidence. The OOD flag catches gross mismatches only.",
        "- Knows only the classes above: T-ALL, AML or other cells are forced into one of them.",
        "- Small dataset with near-duplicate fields of view; held-out accuracy may be optimistic.",
        "",
        "## Versions",
        *(f"- {k} {v}" for k, v in manifest["versions"].items()),
    ]
    return "\n".join(lines) + "\n"


def _classical_line(manifest: dict[str, Any]) -> str:
    """What the classical head sees: all deep features, or how many mRMR kept and by what rule."""
    info = manifest["classical"]
    name, kept = info["name"], info["n_features"]
    total = info.get("n_inputs") or manifest.get("outputs", {}).get("features", kept)
    if info.get("selection") != "mRMR":
        return f"{name} on all {kept} deep features, no selection"
    rule = info.get("mrmr") or {}
    if rule.get("n_features"):
        how, at = f"the top {rule['n_features']} of its ranking", ""
    elif rule.get("threshold") is not None:
        how = f"threshold {rule['threshold']:g}"
        at = f" at {how}"
    else:
        how, at = "score above 0" if "threshold" in rule else "its rule", ""
    if kept >= total:
        return f"{name} on all {total} deep features (mRMR{at} kept every one)"
    return f"{name} on {kept} of {total} deep features kept by mRMR ({how})"


def _measured(metrics: dict[str, Any], manifest: dict[str, Any]) -> str:
    """Whose held-out score the card shows: the run's metrics are the CNN softmax's, always."""
    acc = metrics.get("accuracy")
    if not isinstance(acc, int | float):
        return "no held-out metrics were given when the bundle was written"
    n_test = metrics.get("n_test", "?")
    split = metrics.get("split", "held-out split")
    if manifest["heads"].get("decides") == HEAD_CNN:
        return (
            f"CNN softmax (the deciding head) on the run's {n_test} held-out test images: "
            f"accuracy {acc:.4f} ({split})"
        )
    cnn = f"CNN softmax on the run's {n_test} held-out test images: accuracy {acc:.4f} ({split})"
    head = metrics.get("classical_head") or {}
    if not isinstance(head.get("accuracy"), dict):
        return f"{cnn}; the deciding {manifest['classical']['name']} head was not scored on them"
    score = head["accuracy"]
    fitted = f", fitted on {head['n_fit']} training images" if head.get("n_fit") else ""
    return (
        f"the deciding {head.get('name', 'classical')} head{fitted}, on the run's {score['n']} "
        f"held-out test images: accuracy {score['value']:.4f} (95% CI {score['low']:.4f}-"
        f"{score['high']:.4f}); the CNN softmax on them: accuracy {acc:.4f} ({split})"
    )


def _protocol(config: dict[str, Any], epochs_done: int | None = None) -> str:
    if not config:
        return "Training protocol not recorded."
    planned = config.get("epochs", "?")
    epochs = (
        f"{epochs_done} of {planned} planned epochs"
        if epochs_done and epochs_done != planned
        else f"{planned} epochs"
    )
    return (
        f"Recipe '{config.get('recipe', '?')}', {epochs}, image size "
        f"{config.get('image_size', '?')} px, seed {config.get('seed', '?')}; duplicate-aware "
        f"stratified split, {config.get('test_size', 0.3):.0%} held out for testing."
    )


def _ood_line(ood: dict[str, Any] | None) -> str:
    if not ood:
        return "No OOD detector in this bundle."
    pixel = (
        f" or the distance of 9 colour/texture statistics exceeds {ood['pixel_threshold']:.2f}"
        if "pixel_threshold" in ood
        else ""
    )
    return (
        f"Flagged when the Mahalanobis distance of the deep features to the nearest class mean "
        f"(tied Ledoit-Wolf covariance, shrinkage {ood['shrinkage']:.3f}, {ood['n_fit']} training "
        f"images) exceeds {ood['threshold']:.2f}{pixel}; thresholds set so that about "
        f"{1 - ood['quantile']:.0%} of {ood['n_calibration']} held-out in-distribution images "
        "are flagged."
    )


# ---------------------------------------------------------------- reading


def read_manifest(path: str | Path) -> dict[str, Any]:
    """bundle.json of a bundle folder, with its format checked."""
    root = Path(path)
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise BlastscanError(
            f"{root}: not a model bundle (no {MANIFEST}); make one with blastscan bundle"
        )
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BlastscanError(f"{manifest_path}: unreadable ({exc}); re-create the bundle") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BlastscanError(f"{manifest_path}: not a {FORMAT} file")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BlastscanError(
            f"{root}: bundle format version {manifest.get('format_version')!r}, this blastscan "
            f"reads version {FORMAT_VERSION}; re-create the bundle with this blastscan's "
            "`blastscan bundle`"
        )
    return manifest


def read_verified(root: Path, manifest: dict[str, Any], name: str) -> bytes:
    """A file's bytes, read once and checked against bundle.json's sha256 before parsing."""
    files = manifest.get("files") or {}
    if name not in files:
        raise BlastscanError(f"{root}: bundle.json lists no {name}")
    if Path(name).name != name or name.startswith("."):
        raise BlastscanError(f"{root}: bundle.json names {name!r}, which is not a plain file name")
    try:
        data = (root / name).read_bytes()
    except OSError as exc:
        raise BlastscanError(
            f"{root / name}: missing or unreadable ({exc}); re-create the bundle"
        ) from exc
    if sha256_bytes(data) != files[name]:
        raise BlastscanError(
            f"{root / name}: sha256 does not match bundle.json; the file was changed or damaged "
            "(tampered?); re-create or re-download the bundle"
        )
    return data


def load_bundle(path: str | Path) -> Bundle:
    """Load and verify a bundle; every file's sha256 is checked, nothing is unpickled."""
    root = Path(path)
    if not root.exists():
        raise BlastscanError(
            f"{root}: does not exist; pass a bundle directory (blastscan bundle RUN --out DIR)"
        )
    manifest = read_manifest(root)
    try:
        return _load_verified(root, manifest)
    except (KeyError, TypeError, AttributeError) as exc:  # a hand-edited bundle.json
        raise BlastscanError(
            f"{root / MANIFEST}: a field is missing or malformed ({type(exc).__name__}: {exc}); "
            "re-create the bundle"
        ) from exc


def _load_verified(root: Path, manifest: dict[str, Any]) -> Bundle:
    from safetensors.numpy import load as load_arrays
    from safetensors.torch import load as load_tensors

    from blastscan.models import darknet19

    # Every listed file is read and verified once, before any of them is parsed.
    blobs = {name: read_verified(root, manifest, name) for name in manifest.get("files") or {}}
    if WEIGHTS not in blobs:
        raise BlastscanError(f"{root}: bundle.json lists no {WEIGHTS}; re-create the bundle")
    model = darknet19(len(manifest["classes"]), input_norm=input_norm_name(manifest["input"]))
    try:
        model.load_state_dict(load_tensors(blobs[WEIGHTS]))
    except (RuntimeError, ValueError) as exc:
        raise BlastscanError(f"{root / WEIGHTS}: does not fit DarkNet-19 ({exc})") from exc
    model = model.to(memory_format=torch.channels_last).eval()
    ood = None
    if OOD_ARRAYS in blobs:
        ood = OODDetector.from_arrays(load_arrays(blobs[OOD_ARRAYS]), manifest["ood"])
    classical = None
    if CLASSIFIER in blobs and CLASSICAL_ARRAYS in blobs:
        classical = _load_classical(root, manifest, blobs[CLASSICAL_ARRAYS], blobs[CLASSIFIER])
    return Bundle(root, manifest, model, classical, ood, blobs.get(ONNX))


def _load_classical(
    root: Path, manifest: dict[str, Any], array_bytes: bytes, data: bytes
) -> ClassicalHead:
    import skops.io as sio
    from safetensors.numpy import load as load_arrays

    arrays = load_arrays(array_bytes)
    untrusted = set(sio.get_untrusted_types(data=data)) - set(TRUSTED_TYPES)
    if untrusted:
        raise BlastscanError(
            f"{root / CLASSIFIER}: holds types outside the allow-list: {sorted(untrusted)}"
        )
    try:
        classifier = sio.loads(data, trusted=TRUSTED_TYPES)
    except Exception as exc:  # skops raises several types for a file it cannot rebuild
        raise BlastscanError(
            f"{root / CLASSIFIER}: cannot be loaded ({exc}); re-create the bundle"
        ) from exc
    return ClassicalHead(
        arrays["columns"],
        arrays["scaler_mean"],
        arrays["scaler_scale"],
        classifier,
        arrays["class_index"],
        manifest["classical"]["name"],
        arrays.get("scores"),
        manifest["classical"].get("n_inputs"),
        manifest["classical"].get("mrmr"),
    )


def add_file(root: str | Path, name: str, data: bytes, section: str, info: dict[str, Any]) -> None:
    """Add (or replace) a file in a bundle and record it: the file first, then bundle.json."""
    root = Path(root)
    manifest = read_manifest(root)
    atomic_write_bytes(root / name, data)
    manifest.setdefault("files", {})[name] = sha256_bytes(data)
    manifest["files"] = dict(sorted(manifest["files"].items()))
    manifest[section] = info
    atomic_write_json(root / MANIFEST, manifest)


# ---------------------------------------------------------------- from a training run


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
    if Path(out).exists():
        _check_replaceable(Path(out), overwrite)
    run = Path(run_dir)
    model, meta = load_trained_model(run, which)
    metrics = _read_json(run / "metrics.json")
    ood, classical, facts = None, None, {}
    if data_dir is not None:
        train, val, test = _split_features(
            run,
            data_dir,
            model,
            meta,
            max_per_class,
            batch_size,
            show_progress,
            bool(classifier),
            cache_dir,
        )
        ood = fit_ood_from(train, val, quantile)
        if classifier:
            classical = fit_classical(train[0], train[1], classifier, n_features, meta["classes"])
            if len(test[1]):  # a run without held-out images leaves the head unscored
                score = held_out_score(classical, test, meta)
                metrics = {**metrics, "classical_head": {**score, "n_fit": len(train[1])}}
        facts["data"] = _data_fact(run, data_dir)
    return write_bundle(
        out,
        model,
        meta,
        classical=classical,
        ood=ood,
        metrics=metrics,
        card_facts=facts,
        overwrite=overwrite,
    )


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


def fit_ood_from(train: tuple, val: tuple, quantile: float) -> OODDetector:
    """train/val are (features, labels, images): covariance on train, thresholds on val."""
    from blastscan.predict import fit_ood

    if len(val[0]):
        return fit_ood(train[0], train[1], val[0], quantile, train[2], val[2])
    return fit_ood(train[0], train[1], None, quantile, train[2])


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


def _data_fact(run: Path, data_dir: str | Path) -> str:
    summary = _read_json(run / "dataset.json")
    counts = summary.get("counts") or {}
    listing = ", ".join(f"{k} {v}" for k, v in counts.items())
    return f"{Path(data_dir).name}: {summary.get('images', '?')} images ({listing})."


def _split_features(
    run, data_dir, model, meta, max_per_class, batch_size, show_progress, test, cache_dir=None
):
    """Deep features, labels and images of the run's training (capped per class), validation
    and, if `test`, all its held-out test images (else an empty part)."""
    from blastscan import data as D
    from blastscan.features import infer, pick_device
    from blastscan.progress import progress_bar

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
            feats = infer(
                model, images, batch_size, device, lambda n: bar.advance(task, n)
            ).features
            out.append((feats, dataset.labels[idx], images))
    model.cpu()
    return out[0], out[1], out[2]


def _cap_per_class(idx: np.ndarray, labels: np.ndarray, cap: int | None, rng) -> np.ndarray:
    if not cap:
        return idx
    keep = [rng.permutation(idx[labels[idx] == c])[:cap] for c in np.unique(labels[idx])]
    return np.sort(np.concatenate(keep)) if keep else idx
