"""ONNX export of a bundle's CNN: `model.onnx` enters the bundle only after it matches eager
PyTorch on check images (runtime.onnx holds the exporter and the engine)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from blastscan.bundle.format import INT8_ONNX, ONNX, add_file
from blastscan.bundle.loaded import load_bundle
from blastscan.errors import BlastscanError
from blastscan.runtime.onnx import OPSET, TOLERANCE, OnnxEngine, onnx_bytes, onnx_parity


@dataclass
class ExportReport:
    path: Path
    exporter: str
    max_abs_error_features: float
    max_abs_error_logits: float
    max_abs_error_probabilities: float
    n_images: int
    image_source: str

    def as_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in self.__dict__.items()}


def check_images(
    paths: list[str | Path] | None, size: int, n_synthetic: int = 8
) -> tuple[np.ndarray, str]:
    """Images to check the export on: the given files, else synthetic smear-like ones."""
    from blastscan.data import load_image_array
    from blastscan.data.synthetic import synthetic_smears

    if paths:
        return np.stack([load_image_array(p, size) for p in paths]), f"{len(paths)} given image(s)"
    return synthetic_smears(n_synthetic, size, seed=0), f"{n_synthetic} synthetic smear-like images"


def export_onnx(
    bundle_path: str | Path,
    images: list[str | Path] | None = None,
    opset: int = OPSET,
    tolerance: float = TOLERANCE,
) -> ExportReport:
    """Export the bundle's CNN to `model.onnx` in the bundle, after checking it against PyTorch."""
    bundle = load_bundle(bundle_path)
    data, exporter = onnx_bytes(bundle.model, bundle.image_size, opset)
    pixels, source = check_images(images, bundle.image_size)
    errors = onnx_parity(bundle.model, OnnxEngine(data), pixels)
    if max(errors["features"], errors["logits"]) > tolerance:
        raise BlastscanError(
            f"ONNX output differs from PyTorch by up to {max(errors.values()):.2e} "
            f"(> {tolerance:g}); "
            "not added to the bundle"
        )
    info = {
        "file": ONNX,
        "opset": _opset_of(data),
        "exporter": exporter,
        "dynamic_axes": {"input": [0], "features": [0], "logits": [0]},
        "inputs": {"input": ["batch", 3, bundle.image_size, bundle.image_size]},
        "outputs": {"features": ["batch", 1000], "logits": ["batch", len(bundle.classes)]},
        "check": {"max_abs_error": errors, "images": source},
        "onnxruntime": _ort_version(),
    }
    add_file(bundle.path, ONNX, data, "onnx", info)
    return ExportReport(
        bundle.path / ONNX,
        exporter,
        errors["features"],
        errors["logits"],
        errors["probabilities"],
        len(pixels),
        source,
    )


def _opset_of(data: bytes) -> int:
    """The ONNX opset the file declares: 17 from the legacy exporter, `opset` from dynamo."""
    import onnx

    model = onnx.load_model_from_string(data)
    return max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


def add_int8_onnx(bundle_path: str | Path, calibration: np.ndarray, source: str) -> dict[str, Any]:
    """Quantise the bundle's CNN to int8 (QDQ) on `calibration` images, which must be training
    images, and add it as model.int8.onnx with its parity against fp32 on those images."""
    from blastscan.runtime.quantize import quantize_int8

    bundle = load_bundle(bundle_path)
    data, exporter = onnx_bytes(bundle.model, bundle.image_size)
    int8 = quantize_int8(data, calibration)
    errors = onnx_parity(bundle.model, OnnxEngine(int8.data), calibration[:16])
    info = {
        "file": INT8_ONNX,
        "exporter": exporter,
        "quantization": int8.method,
        "reduce_range": int8.reduce_range,
        "calibration": {"images": int8.calibration_images, "source": source},
        "check": {"max_abs_error_vs_fp32": errors, "images": "16 of the calibration images"},
        "onnxruntime": _ort_version(),
    }
    add_file(bundle.path, INT8_ONNX, int8.data, "onnx_int8", info)
    return info
