"""int8 DarkNet-19 for ONNX Runtime: static QDQ quantisation calibrated on training images.

ONNX Runtime's own `quantize_static` does the work: weights int8 per output channel,
activations uint8 with ranges from min/max over calibration batches. Calibration images must
be training images, never test images: the ranges are then part of what was fitted. int8 is
fast only where the CPU has VNNI or AMX-INT8; elsewhere ONNX Runtime's u8s8 kernels can
saturate, so there the weights keep 7 bits (`reduce_range`), as ORT's documentation advises.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from blastscan.errors import BlastscanError

CALIBRATION_IMAGES = 128  # per model; min/max ranges settle well before that on DarkNet-19
CALIBRATION_BATCH = 16


@dataclass(frozen=True)
class Int8Model:
    """The quantised graph and how it was made (for bundle.json, a features file's log)."""

    data: bytes
    calibration_images: int
    reduce_range: bool
    method: str = (
        "onnxruntime quantize_static, QDQ, int8 weights per channel, uint8 activations, MinMax"
    )


def calibration_sample(n_images: int, seed: int = 0, limit: int = CALIBRATION_IMAGES) -> np.ndarray:
    """Indices of at most `limit` images, drawn without replacement, seeded: reproducible."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.permutation(n_images)[: min(limit, n_images)])


class _Batches:
    """onnxruntime's CalibrationDataReader over (N, H, W, 3) uint8 images."""

    def __init__(self, images: np.ndarray, batch_size: int) -> None:
        self.batches = iter(range(0, len(images), batch_size))
        self.images, self.batch_size = images, batch_size

    def get_next(self) -> dict[str, np.ndarray] | None:
        start = next(self.batches, None)
        if start is None:
            return None
        batch = self.images[start : start + self.batch_size]
        return {"input": to_nchw_float(batch)}


def to_nchw_float(batch: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float32 in [0, 1]: the graph's input."""
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(255.0)


def quantize_int8(
    model_fp32: bytes, calibration: np.ndarray, reduce_range: bool | None = None
) -> Int8Model:
    """The int8 QDQ graph of an fp32 ONNX model, ranges calibrated on `calibration` images."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if calibration.ndim != 4 or not len(calibration):
        raise BlastscanError(
            "int8 quantisation needs training images to calibrate on; pass the run's --data"
        )
    if reduce_range is None:
        from blastscan.runtime.precision import host_capability

        reduce_range = not host_capability().int8_native
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(_preprocessed(model_fp32, Path(tmp)))
        quantize_static(
            str(src),
            str(dst),
            _Batches(calibration, CALIBRATION_BATCH),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            reduce_range=reduce_range,
            calibrate_method=CalibrationMethod.MinMax,
        )
        return Int8Model(dst.read_bytes(), len(calibration), reduce_range)


def _preprocessed(model: bytes, tmp: Path) -> bytes:
    """ORT's pre-quantisation pass (shape inference, folding BN into conv): better ranges."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    src, dst = tmp / "raw.onnx", tmp / "pre.onnx"
    src.write_bytes(model)
    try:
        quant_pre_process(str(src), str(dst), skip_symbolic_shape=True)
    except Exception:  # the pass is an optimisation: quantise the graph as exported instead
        return model
    return dst.read_bytes()
