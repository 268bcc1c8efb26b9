"""Suite `precision`: fp32 vs bf16 vs int8 on this host's CPU, speed and parity.

`speed` times, in one run and interleaved, a training step (fp32 channels_last vs bf16
autocast) and a whole extract pass at 224 px (eager fp32, eager bf16, ONNX Runtime fp32,
ONNX Runtime int8) on a fresh DarkNet-19 and synthetic smears. `parity` takes a trained run
with a bundle (`--precision-run`) and scores every engine against eager fp32 on the run's
held-out test images: agreement of both heads, McNemar's p, deep-feature deviation, and the
seconds of each pass. int8 is calibrated on the run's training images only. The record's
`host` names the CPU flags (amx*, avx512_bf16, avx512_vnni): on a host without them bf16 is
emulated and int8 has no VNNI, so the ratios there say nothing of an AMX host's.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from benchkit import DATA, REPO, Context, Part, Result, Skip, darknet, interleave, rate_result


def add_arguments(parser) -> None:
    group = parser.add_argument_group("precision suite")
    group.add_argument(
        "--precision-run",
        type=Path,
        default=REPO / "runs" / "fast-s0",
        metavar="RUN",
        help="parity: a trained run with RUN/bundle",
    )
    group.add_argument(
        "--precision-data",
        type=Path,
        default=DATA,
        metavar="DATA",
        help="parity: the run's dataset",
    )
    group.add_argument(
        "--precision-max-test",
        type=int,
        default=0,
        metavar="N",
        help="parity: a seeded subsample of N test images (0: all)",
    )
    group.add_argument(
        "--precision-bf16-max",
        type=int,
        default=0,
        metavar="N",
        help="parity: bf16 on a seeded subsample of N test images (0: all; "
        "bf16 is slow where it is emulated)",
    )
    group.add_argument("--precision-size", type=int, default=224, help="speed: image size")
    group.add_argument("--precision-images", type=int, default=64,
                       help="speed: images per extract pass")  # fmt: skip


def _engines(model, size: int, calibration: np.ndarray) -> dict:
    """name -> infer(images) for every engine, and how int8 was made."""
    from blastscan.runtime.infer import infer
    from blastscan.runtime.onnx import OnnxEngine, onnx_bytes
    from blastscan.runtime.quantize import quantize_int8

    cpu = torch.device("cpu")
    fp32 = onnx_bytes(model, size)[0]
    int8 = quantize_int8(fp32, calibration)
    engines = {
        "torch-fp32": lambda x: infer(model, x, 32, cpu, precision="fp32"),
        "torch-bf16": lambda x: infer(model, x, 32, cpu, precision="bf16"),
        "onnx-fp32": OnnxEngine(fp32).infer,
        "onnx-int8": OnnxEngine(int8.data).infer,
    }
    return {"engines": engines, "int8": int8}


def bench_speed(ctx: Context) -> list[Result]:
    """Training step fp32 vs bf16, and a whole extract pass in four engines, at one size."""
    import torch.nn.functional as F

    from blastscan.data import to_float_tensor
    from blastscan.data.synthetic import synthetic_smears
    from blastscan.runtime.precision import autocast

    args, cfg, log = ctx.args, ctx.cfg, ctx.log
    size = 64 if cfg.quick else args.precision_size
    n = 8 if cfg.quick else args.precision_images
    rounds = 2 if cfg.quick else 3
    cpu = torch.device("cpu")
    images = synthetic_smears(n, size, seed=0)
    labels = torch.arange(n) % 4
    model = darknet(True)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    batch = 16 if not cfg.quick else 8

    def step(precision: str):
        def run() -> None:
            model.train()
            x = to_float_tensor(images[:batch], cpu)
            with autocast(cpu, precision):
                loss = F.cross_entropy(model(x).float(), labels[:batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        return run

    log(f"  training step, batch {batch} at {size}px")
    train = interleave({p: step(p) for p in ("fp32", "bf16")}, 1, rounds, log=log)
    made = _engines(model.eval(), size, synthetic_smears(32, size, seed=1))
    log(f"  extract pass, {n} images at {size}px")
    passes = {k: (lambda e=e: e(images)) for k, e in made["engines"].items()}
    extract = interleave(passes, 1, rounds, log=log)
    flags = ctx.state.get("flags") or _flags()
    note = f"host matrix flags: {flags or 'none'}"
    results = [
        rate_result(f"precision/train_{p}_{size}", f"training step b{batch} {size}px, {p}",
                    batch, train[p], baseline="fp32 channels_last", baseline_seconds=train["fp32"],
                    notes=note)
        for p in ("fp32", "bf16")
    ]  # fmt: skip
    for name, seconds in extract.items():
        base = "onnx-fp32" if name.startswith("onnx") else "torch-fp32"
        results.append(rate_result(
            f"precision/extract_{name}_{size}", f"extract pass of {n} images {size}px, {name}",
            n, seconds, baseline=base, baseline_seconds=extract[base], notes=note))  # fmt: skip
    return results


def _flags() -> str:
    from blastscan.runtime.precision import host_capability

    return ", ".join(host_capability().flags)


def _run_images(run: Path, data: Path):
    """The bundle, images and split of a trained run (the images from the decoded cache)."""
    from blastscan import data as D
    from blastscan.bundle import load_bundle

    if not (run / "bundle" / "bundle.json").is_file():
        raise Skip(f"no trained run with a bundle at {run} (--precision-run)")
    if not data.is_dir():
        raise Skip(f"no dataset at {data} (--precision-data)")
    bundle = load_bundle(run / "bundle")
    meta = {"classes": bundle.classes, "config": json.loads((run / "config.json").read_text())}
    dataset, split = D.run_split(run, data, meta)
    return bundle, dataset, split, D.load_images(dataset, bundle.image_size)


def _decisions(bundle, inference) -> dict[str, np.ndarray]:
    heads = {"cnn": inference.logits.argmax(1)}
    if bundle.classical is not None:
        k = len(bundle.classes)
        heads["classical"] = bundle.classical.predict_proba(inference.features, k).argmax(1)
    return heads


def bench_parity(ctx: Context) -> list[Result]:
    """Every engine against eager fp32 on a run's held-out images: heads, p, features, time."""
    from blastscan.evaluation.parity import decision_parity, feature_deviation
    from blastscan.runtime.quantize import calibration_sample

    args, log = ctx.args, ctx.log
    bundle, dataset, split, images = _run_images(args.precision_run, args.precision_data)
    rng = np.random.default_rng(0)
    test = split["test"]
    if args.precision_max_test and args.precision_max_test < len(test):
        test = np.sort(rng.choice(test, args.precision_max_test, replace=False))
    train = split["train"]
    calibration = images[train[calibration_sample(len(train), seed=0)]]
    model = bundle.model.cpu().eval()
    made = _engines(model, bundle.image_size, calibration)
    labels = dataset.labels[test]
    outputs, seconds, subset = {}, {}, {}
    for name, engine in made["engines"].items():
        rows = np.arange(len(test))
        if name == "torch-bf16" and args.precision_bf16_max and args.precision_bf16_max < len(test):
            rows = np.sort(np.random.default_rng(1).choice(len(test), args.precision_bf16_max,
                                                           replace=False))  # fmt: skip
        start = time.perf_counter()
        outputs[name] = engine(images[test[rows]])
        seconds[name], subset[name] = time.perf_counter() - start, rows
        log(f"    {name}: {len(rows)} images in {seconds[name]:.1f} s")
    ref = outputs["torch-fp32"]
    table, results = {}, []
    for name in ("torch-bf16", "onnx-fp32", "onnx-int8"):
        rows, got = subset[name], outputs[name]
        ref_heads = _decisions(bundle, type(ref)(ref.features[rows], ref.logits[rows]))
        got_heads = _decisions(bundle, got)
        entry = {
            "images": int(len(rows)),
            "features": feature_deviation(ref.features[rows], got.features),
            "heads": {h: decision_parity(ref_heads[h], got_heads[h], labels[rows])
                      for h in ref_heads},
            "ood": _ood_parity(bundle, ref.features[rows], got.features, images[test[rows]]),
            "seconds": seconds[name],
            "reference_seconds_same_images": seconds["torch-fp32"] * len(rows) / len(test),
        }  # fmt: skip
        table[name] = entry
        base = "onnx-fp32" if name == "onnx-int8" else "torch-fp32"
        base_seconds = seconds[base] * len(rows) / len(subset[base])
        r = rate_result(f"precision/parity_{name}", f"{name} on {len(rows)} held-out images of "
                        f"{args.precision_run.name} at {bundle.image_size}px", len(rows),
                        [seconds[name]], baseline=base, baseline_seconds=[base_seconds],
                        notes=_parity_note(entry))  # fmt: skip
        r.extra.update(entry)
        results.append(r)
        log(f"  {name}: {_parity_note(entry)}")
    results[-1].extra["int8"] = {"calibration_images": made["int8"].calibration_images,
                                 "reduce_range": made["int8"].reduce_range,
                                 "method": made["int8"].method}  # fmt: skip
    return results


def _ood_parity(bundle, reference: np.ndarray, other: np.ndarray, images) -> dict | None:
    """Does the OOD detector (fitted on fp32 features) flag the same held-out images?"""
    if bundle.ood is None:
        return None
    ref_deep, _, ref_flag = bundle.ood.score(reference, images)
    deep, _, flag = bundle.ood.score(other, images)
    return {"flagged_reference": int(ref_flag.sum()), "flagged": int(flag.sum()),
            "flag_agreement": float(np.mean(ref_flag == flag)),
            "deep_distance_median_reference": float(np.median(ref_deep)),
            "deep_distance_median": float(np.median(deep)),
            "deep_threshold": float(bundle.ood.deep.threshold)}  # fmt: skip


def _parity_note(entry: dict) -> str:
    heads = "; ".join(
        f"{h} agree {v['agreement']:.2%} ({v['disagreements']} differ), McNemar p {v['mcnemar_p']:.3g}"
        for h, v in entry["heads"].items()
    )
    f, ood = entry["features"], entry.get("ood")
    flags = (f"; OOD flags {ood['flagged']} vs fp32 {ood['flagged_reference']}, agree "
             f"{ood['flag_agreement']:.2%}") if ood else ""  # fmt: skip
    return f"{heads}; features max {f['max_abs']:.3g} mean {f['mean_abs']:.3g}{flags}"


PARTS = [
    Part("precision_speed", "fp32 vs bf16 vs int8: training step and extract pass, 224 px",
         bench_speed),
    Part("parity", "bf16 and int8 vs fp32 on a run's held-out images: heads, McNemar, features",
         bench_parity),
]  # fmt: skip
