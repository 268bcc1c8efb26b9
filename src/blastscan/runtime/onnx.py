"""The ONNX Runtime engine: DarkNet-19 as an ONNX graph, exported, run and checked on the CPU.

The graph has one input (`input`: N x 3 x S x S float32, RGB in [0, 1]) and two outputs
(`features`: N x 1000, the pooled conv19 deep features; `logits`: N x K), with a dynamic
batch axis. `onnx_parity` measures an export against eager PyTorch before it is used.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from blastscan.errors import BlastscanError
from blastscan.runtime.infer import Inference

OPSET = 18
TOLERANCE = 1e-3  # max abs error (features, logits) above which an export is refused


class FeaturesAndLogits(torch.nn.Module):
    """DarkNet-19 with both outputs, so one ONNX run serves the CNN head, mRMR and OOD."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.model.features(x)
        return features, self.model.head(features)


def onnx_bytes(model: torch.nn.Module, image_size: int, opset: int = OPSET) -> tuple[bytes, str]:
    """Serialised ONNX model and the exporter that made it.

    The TorchScript-based exporter goes first: on DarkNet-19 it is 3-15x faster than
    torch.export (dynamo), whose ~10 s `extract --engine auto` paid on every run
    (benchmarks/bench_onnx_export.py; docs/reference/benchmarks.md).
    Dynamo is the fallback for a model or torch version the legacy exporter fails on. Either
    graph is checked against eager PyTorch by the caller before it is used.
    """
    wrapper = FeaturesAndLogits(cpu_copy(model)).eval()
    example = torch.rand(2, 3, image_size, image_size)
    names = {"input_names": ["input"], "output_names": ["features", "logits"]}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        try:
            _export_legacy(wrapper, example, path, opset, names)
            exporter = f"torch.onnx legacy TorchScript (torch {torch.__version__})"
        except Exception as exc:  # any failure of the fast exporter: fall back, say so
            warnings.warn(
                f"legacy ONNX export failed ({exc!r:.200}); using the dynamo exporter",
                stacklevel=2,
            )
            path.unlink(missing_ok=True)
            _export_dynamo(wrapper, example, path, opset, names)
            exporter = f"torch.onnx dynamo (torch {torch.__version__})"
        return path.read_bytes(), exporter


def _export_dynamo(wrapper, example, path: Path, opset: int, names: dict) -> None:
    import logging

    batch = torch.export.Dim("batch", min=1, max=4096)
    quiet = logging.getLogger("torch.onnx")  # "torchvision is not installed" notices
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapper,
                (example,),
                str(path),
                dynamo=True,
                opset_version=opset,
                external_data=False,
                dynamic_shapes=({0: batch},),
                optimize=True,
                verbose=False,
                **names,
            )
    finally:
        quiet.setLevel(level)


def _export_legacy(wrapper, example, path: Path, opset: int, names: dict) -> None:
    axes = {"input": {0: "batch"}, "features": {0: "batch"}, "logits": {0: "batch"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            (example,),
            str(path),
            dynamo=False,
            opset_version=min(opset, 17),
            dynamic_axes=axes,
            do_constant_folding=True,
            **names,
        )


def cpu_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A float32 CPU copy in eval mode: the bundle's model may live on a GPU for predict."""
    import copy

    return copy.deepcopy(model).cpu().float().eval()


def cpu_cores() -> int:
    """This process's share of the cores: all of them, or 1/N under torchrun with N per node."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


class OnnxEngine:
    """An ONNX Runtime InferenceSession: all graph optimisations, one intra-op thread per core."""

    def __init__(self, model: bytes, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or cpu_cores()
        options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise BlastscanError(
                f"model.onnx cannot be loaded by onnxruntime ({exc}); re-export it"
            ) from exc

    def infer(self, images: np.ndarray, batch_size: int = 32, on_batch=None) -> Inference:
        """Same contract as `runtime.infer.infer`: (N, H, W, 3) uint8 in, features and logits out."""
        feats, logits = [], []
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size]
            x = np.ascontiguousarray(batch.transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(
                255.0
            )
            f, z = self.session.run(["features", "logits"], {"input": x})
            feats.append(f)
            logits.append(z)
            if on_batch:
                on_batch(len(batch))
        k = self.session.get_outputs()[1].shape[1]
        return Inference(
            np.concatenate(feats) if feats else np.zeros((0, 1000), np.float32),
            np.concatenate(logits)
            if logits
            else np.zeros((0, k if isinstance(k, int) else 0), np.float32),
        )


def onnx_parity(
    model: torch.nn.Module, engine: OnnxEngine, images: np.ndarray, relative: bool = False
) -> dict[str, float]:
    """Max abs difference of ONNX Runtime vs eager float32 PyTorch on CPU, per output.

    `relative`: each difference over the output's largest magnitude (at least 1). Two float32
    engines sum in different orders, so their difference grows with the values summed: deep
    features of magnitude 5 differ by 1.1e-4 between ONNX Runtime and PyTorch on an AVX-512
    AMD EPYC, 2e-5 of their scale.
    """
    from blastscan.runtime.infer import infer

    reference = infer(cpu_copy(model), images, batch_size=16, device=torch.device("cpu"))
    got = engine.infer(images, batch_size=16)
    errors = {}
    for name in ("features", "logits", "probabilities"):
        want, have = getattr(reference, name), getattr(got, name)
        scale = max(1.0, float(np.abs(want).max())) if relative else 1.0
        errors[name] = float(np.abs(want - have).max()) / scale
    return errors
