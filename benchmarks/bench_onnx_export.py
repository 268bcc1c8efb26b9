"""ONNX export time: TorchScript-based (legacy) exporter vs torch.export (dynamo), same run.

    .venv/bin/python benchmarks/bench_onnx_export.py [BUNDLE] [--rounds 3]

Rounds alternate the two exporters so that load on a shared machine hits both alike; every
graph is checked against eager PyTorch on synthetic smear-like images (max abs error).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch

from blastscan import export as E
from blastscan.bundle import load_bundle
from blastscan.predict import synthetic_smears

REPO = Path(__file__).resolve().parent.parent


def export_once(kind: str, model: torch.nn.Module, size: int) -> tuple[float, bytes]:
    """Seconds of one export with the named exporter, and the ONNX bytes it made."""
    wrapper = E.FeaturesAndLogits(E.cpu_copy(model)).eval()
    example = torch.rand(2, 3, size, size)
    names = {"input_names": ["input"], "output_names": ["features", "logits"]}
    export = E._export_legacy if kind == "legacy" else E._export_dynamo
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = Path(tmp) / "model.onnx"
        start = time.perf_counter()
        export(wrapper, example, path, E.OPSET, names)
        return time.perf_counter() - start, path.read_bytes()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("bundle", nargs="?", default=str(REPO / "runs" / "fast-cpu-bundle"))
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    bundle = load_bundle(args.bundle)
    images = synthetic_smears(8, bundle.image_size, seed=0)
    times: dict[str, list[float]] = {"legacy": [], "dynamo": []}
    for r in range(args.rounds):
        for kind in ("legacy", "dynamo") if r % 2 == 0 else ("dynamo", "legacy"):
            seconds, data = export_once(kind, bundle.model, bundle.image_size)
            error = max(E.compare(bundle.model, E.OnnxEngine(data), images).values())
            times[kind].append(seconds)
            print(f"round {r + 1} {kind}: {seconds:.2f} s, max abs error vs eager {error:.1e}")
    legacy, dynamo = (statistics.median(times[k]) for k in ("legacy", "dynamo"))
    print(
        f"median of {args.rounds}: legacy {legacy:.2f} s, dynamo {dynamo:.2f} s, "
        f"dynamo / legacy = {dynamo / legacy:.1f}x ({bundle.image_size} px, {args.bundle})"
    )


if __name__ == "__main__":
    main()
