"""A loaded bundle: every file verified, the CNN rebuilt from safetensors and the classifier
from skops with an explicit allow-list of types, so a bundle can carry no code."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from blastscan.bundle.format import (
    CLASSICAL_ARRAYS,
    CLASSIFIER,
    INT8_ONNX,
    MANIFEST,
    ONNX,
    OOD_ARRAYS,
    TRUSTED_TYPES,
    WEIGHTS,
    read_manifest,
    read_verified,
)
from blastscan.bundle.heads import HEAD_CLASSICAL, HEAD_CNN, ClassicalHead, Prediction, TorchEngine
from blastscan.bundle.ood import OODDetector
from blastscan.data import to_float_tensor
from blastscan.errors import BlastscanError
from blastscan.models.input_norm import input_norm_name


@dataclass
class Bundle:
    """A loaded, verified bundle: the CNN, optional heads, and what bundle.json says."""

    path: Path
    manifest: dict[str, Any]
    model: torch.nn.Module
    classical: ClassicalHead | None = None
    ood: OODDetector | None = None
    onnx_bytes: bytes | None = None
    int8_bytes: bytes | None = None
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
        """The manifest's deciding head (chosen on validation images when the bundle was made);
        bundles that do not say decide with the classical head when they have one."""
        decides = self.manifest.get("heads", {}).get("decides")
        if decides == HEAD_CNN or self.classical is None:
            return HEAD_CNN
        return HEAD_CLASSICAL

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
        prediction.lab_colour = self.lab_colour(images)
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

    def lab_colour(self, images: np.ndarray) -> np.ndarray | None:
        """(N,) bool for a colour-gated network: whether its gate let each image's colour in.
        None for networks without a gate. (The gate's few sums are cheap: it is recomputed
        here rather than taken out of every engine's graph.)"""
        gate = getattr(self.model, "input_norm", None)
        if not hasattr(gate, "colour_passed"):
            return None
        with torch.inference_mode():  # in chunks: a float copy of every image at once is large
            chunks = [
                gate.colour_passed(to_float_tensor(images[i : i + 256])).numpy()
                for i in range(0, len(images), 256)
            ]
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=bool)

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
        """A cached inference engine: eager PyTorch, ONNX Runtime (after `blastscan export`) or
        its int8 graph (after `blastscan bundle --int8`)."""
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
            from blastscan.runtime.onnx import OnnxEngine

            return OnnxEngine(self.onnx_bytes)
        if name == "onnx-int8":
            if self.int8_bytes is None:
                raise BlastscanError(
                    f"{self.path}: has no {INT8_ONNX}; rebuild it with blastscan bundle RUN "
                    "--out DIR --data DATA --int8"
                )
            from blastscan.runtime.onnx import OnnxEngine

            return OnnxEngine(self.int8_bytes)
        raise BlastscanError(f"unknown engine {name!r}; use torch, onnx or onnx-int8")


def _png(picture: Image.Image) -> bytes:
    import io

    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def as_bundle(bundle: Bundle | str | Path) -> Bundle:
    return bundle if isinstance(bundle, Bundle) else load_bundle(bundle)


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
    return Bundle(root, manifest, model, classical, ood, blobs.get(ONNX), blobs.get(INT8_ONNX))


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
