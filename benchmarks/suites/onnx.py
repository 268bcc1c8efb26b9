"""Suite `onnx`: ONNX export time, TorchScript-based (legacy) exporter vs torch.export (dynamo).

Rounds alternate the two exporters so that load on a shared machine hits both alike; every
graph is checked against eager PyTorch on synthetic smear-like images (max abs error). The
model is a bundle's (`--onnx-bundle`, default runs/fast-cpu-bundle). ONNX Runtime's inference
speed is a variant of the `infer` part (suite `cnn`).
"""

from __future__ import annotations

import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch
from benchkit import REPO, Context, Part, Result, Skip, time_result


def add_arguments(parser) -> None:
    group = parser.add_argument_group("onnx suite")
    group.add_argument(
        "--onnx-bundle",
        type=Path,
        default=REPO / "runs" / "fast-cpu-bundle",
        metavar="BUNDLE",
        help="export: the bundle whose network is exported",
    )
    group.add_argument("--onnx-rounds", type=int, default=3, help="export: rounds per exporter")  # fmt: skip


def export_once(kind: str, model, size: int) -> tuple[float, bytes]:
    """Seconds of one export with the named exporter, and the ONNX bytes it made."""
    from blastscan.runtime import onnx as O

    wrapper = O.FeaturesAndLogits(O.cpu_copy(model)).eval()
    example = torch.rand(2, 3, size, size)
    names = {"input_names": ["input"], "output_names": ["features", "logits"]}
    export = O._export_legacy if kind == "legacy" else O._export_dynamo
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = Path(tmp) / "model.onnx"
        start = time.perf_counter()
        export(wrapper, example, path, O.OPSET, names)
        return time.perf_counter() - start, path.read_bytes()


def load_bundle(path: Path):
    """The bundle at `path`, or Skip when there is none."""
    from blastscan.bundle import load_bundle

    if not path.is_dir():
        raise Skip(f"no bundle at {path} (--onnx-bundle)")
    return load_bundle(path)


def bench_export(ctx: Context) -> list[Result]:
    """Median export seconds of each exporter; dynamo's speed-up over legacy (usually < 1)."""
    from blastscan.data.synthetic import synthetic_smears
    from blastscan.runtime import onnx as O

    args, log = ctx.args, ctx.log
    bundle = load_bundle(args.onnx_bundle)
    images = synthetic_smears(8, bundle.image_size, seed=0)
    rounds = 1 if ctx.cfg.quick else args.onnx_rounds
    times: dict[str, list[float]] = {"legacy": [], "dynamo": []}
    errors: dict[str, float] = {}
    for r in range(rounds):
        for kind in ("legacy", "dynamo") if r % 2 == 0 else ("dynamo", "legacy"):
            seconds, data = export_once(kind, bundle.model, bundle.image_size)
            error = max(O.onnx_parity(bundle.model, O.OnnxEngine(data), images).values())
            errors[kind] = max(errors.get(kind, 0.0), error)
            times[kind].append(seconds)
            log(f"    round {r + 1} {kind}: {seconds:.2f} s, max abs error vs eager {error:.1e}")
    log(f"  export: median legacy {statistics.median(times['legacy']):.2f} s, "
        f"dynamo {statistics.median(times['dynamo']):.2f} s")  # fmt: skip
    results = []
    for kind in ("legacy", "dynamo"):
        r = time_result(
            f"onnx/export_{kind}",
            f"ONNX export ({kind} exporter, opset {O.OPSET}) of {args.onnx_bundle.name}'s network "
            f"at {bundle.image_size}px, seconds",
            times[kind],
            baseline="legacy exporter",
            baseline_seconds=times["legacy"],
            notes=f"max abs error vs eager {errors[kind]:.1e} on 8 synthetic smears",
        )
        r.extra["max_abs_error_vs_eager"] = errors[kind]
        results.append(r)
    return results


PARTS = [
    Part("export", "ONNX export seconds: legacy (TorchScript) vs dynamo exporter, checked",
         bench_export),
]  # fmt: skip
