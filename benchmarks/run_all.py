"""Run blastscan's CPU benchmarks; write benchmarks/results/<machine>-<date>.json and latest.md.

    .venv/bin/python benchmarks/run_all.py                 # everything (~15 min on 2 cores)
    .venv/bin/python benchmarks/run_all.py --quick         # smoke run, small sizes (~3 min)
    .venv/bin/python benchmarks/run_all.py --only cv --only mrmr

Every number comes with a naive baseline measured in the same run (interleaved with it where
the benchmark repeats), and CNN numbers with their share of the matmul-bound floor: FLOPs per
image / the fp32 matmul rate (best of the measurements at the start and at the end).
See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import gc
import json
import re
import shlex
import shutil
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field, replace
from functools import cache
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # benchkit & co. when run as a script from anywhere

import torch  # noqa: E402
from benchkit import (  # noqa: E402
    DATA,
    REPO,
    Result,
    Skip,
    conv_linear_flops,
    cores,
    git_state,
    load_average,
    machine_info,
    matmul_gflops,
    refloor,
)

from blastscan.models import darknet19  # noqa: E402


@dataclass
class Config:
    """Sizes and repetitions; `quick()` shrinks them for a smoke run."""

    quick: bool = False
    max_per_class: int | None = None  # images per class for decode/extract (None: all)
    decode_size: int = 224
    decode_reps: int = 3
    train_sizes: tuple[int, ...] = (224, 128)
    train_batches: tuple[int, int] = (32, 64)  # (naive baseline, variants)
    train_warmup: int = 2  # untimed steps per process (the first is slow: allocation)
    train_steps: int = 3  # timed steps per process
    train_rounds: int = 3
    compile: bool = True
    compile_size: int = 128  # torch.compile the training step at this size only (slow compile)
    compile_infer: bool = False  # torch.compile the forward too (another minute or two)
    trim_2gib: bool = False  # also time keep_freed_memory's earlier form (trim threshold 2 GiB)
    infer_size: int = 224
    infer_batches: tuple[int, int] = (32, 64)
    infer_warmup: int = 1
    infer_rounds: int = 3
    infer_budget_s: float = 90.0
    threads_size: int = 128
    threads_batch: int = 32
    threads_rounds: int = 2
    threads_reps: int = 3
    extract_size: int = 128  # the throwaway model's size (the fast recipe's)
    extract_naive_batches: int = 2
    mrmr_features: int | None = None  # first N features only (None: all)
    mrmr_plugin: bool = True
    cv_folds: int = 10
    mlp_detail: bool = True
    mlp_rounds: int = 1
    reproduce_timeout_s: float = 900.0
    matmul_n: int = 4096
    extra: dict = field(default_factory=dict)

    @classmethod
    def quick_config(cls) -> Config:
        return cls(
            quick=True,
            max_per_class=20,
            decode_reps=1,
            train_sizes=(64,),
            train_batches=(8, 16),
            train_rounds=2,
            threads_size=64,
            threads_batch=8,
            threads_rounds=1,
            train_steps=2,
            compile=False,
            compile_size=64,
            infer_size=64,
            infer_batches=(8, 16),
            infer_rounds=2,
            infer_budget_s=20,
            extract_size=64,
            extract_naive_batches=1,
            mrmr_features=150,
            mrmr_plugin=True,
            cv_folds=3,
            mlp_detail=False,
            matmul_n=2048,
        )


BENCHMARKS = ("decode", "train", "infer", "threads", "extract", "mrmr", "cv", "reproduce")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def fmt(v: float | None, digits: int = 3) -> str:
    if v is None:
        return "-"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}g}"


def one_line(r: Result) -> str:
    line = f"{r.name}: {fmt(r.value)} {r.unit}"
    if r.ratio_vs_baseline is not None:
        line += f" | x{r.ratio_vs_baseline:.2f} vs {r.baseline} ({fmt(r.baseline_value)})"
    if r.ratio_vs_floor is not None:
        line += (
            f" | {100 * r.ratio_vs_floor:.0f}% of the matmul floor ({fmt(r.floor_value)} {r.unit})"
        )
    return line


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [
        f"# Benchmarks: {report['date']}",
        "",
        f"- command: `{report['command']}`",
        f"- machine: {m['cpu']} ({m.get('cpu_generation') or 'generation unknown'}), "
        f"{m['cores']} cores ({', '.join(m['cpu_flags'])}); "
        f"torch {m['torch']}, "
        f"onnxruntime {m['onnxruntime']}, scikit-learn {m['sklearn']}",
        f"- load average (1, 5, 15 min) at start {report['load_average']['start']}, at end "
        f"{report['load_average']['end']} "
        "(shared machine: absolute numbers are noisy, ratios less so)",
        f"- fp32 matmul {report['matmul']['n']}x{report['matmul']['n']}: "
        f"{report['matmul']['gflops']:.1f} GFLOP/s (best of {len(report['matmul']['seconds'])} "
        f"at start ({report['matmul']['gflops_start']:.1f}) and end "
        f"({report['matmul']['gflops_end']:.1f})); DarkNet-19 forward GFLOP/image: "
        + ", ".join(
            f"{k}px {v / 1e9:.2f}"
            for k, v in sorted(report["flops_per_image"].items(), key=lambda kv: -int(kv[0]))
        )
        + " (training step = 3x)",
        f"- total wall time {report['total_seconds'] / 60:.1f} min",
        "",
        "x vs baseline: speed-up over the naive baseline measured in the same run (> 1 = faster). "
        "floor: share of the matmul-bound ideal (FLOPs at the measured matmul rate) reached.",
        "",
        "| benchmark | value | unit | baseline | baseline value | x vs baseline | floor |",
        "|---|---:|---|---|---:|---:|---:|",
    ]
    for r in report["results"]:
        ratio = "-" if r["ratio_vs_baseline"] is None else f"{r['ratio_vs_baseline']:.2f}"
        floor = "-" if r["ratio_vs_floor"] is None else f"{100 * r['ratio_vs_floor']:.0f}%"
        lines.append(
            f"| {r['name']} | {fmt(r['value'])} | {r['unit']} | {r['baseline'] or '-'} | "
            f"{fmt(r['baseline_value'])} | {ratio} | {floor} |"
        )
    for name, reason in report["skipped"].items():
        lines.append(f"\nskipped {name}: {reason}")
    for name, error in report["errors"].items():
        lines.append(f"\nFAILED {name}: {error.splitlines()[-1] if error else ''}")
    notes = [f"- {r['name']}: {r['notes']}" for r in report["results"] if r["notes"]]
    if notes:
        lines += ["", "Notes:", "", *notes]
    return "\n".join(lines) + "\n"


def machine_slug(info: dict) -> str:
    name = re.sub(r"[^a-z0-9]+", "-", info["cpu"].lower()).strip("-")
    return f"{name}-{info['cores']}c"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        action="append",
        choices=BENCHMARKS,
        metavar="NAME",
        help=f"run only this benchmark (repeatable): {', '.join(BENCHMARKS)}",
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile variants")
    parser.add_argument(
        "--compile-infer", action="store_true", help="also torch.compile the forward pass"
    )
    parser.add_argument(
        "--extract-size", type=int, help="input size of the extract benchmark (default 128)"
    )
    parser.add_argument(
        "--train-size",
        type=int,
        action="append",
        help="input size of the train benchmark (repeatable; default 224 and 128)",
    )
    parser.add_argument(
        "--compile-size", type=int, help="time torch.compile'd training at this size (default 128)"
    )
    parser.add_argument(
        "--trim-2gib",
        action="store_true",
        help="also train with glibc's trim threshold at 2 GiB (keep_freed_memory before session 11)",
    )
    parser.add_argument("--out-dir", type=Path, default=HERE / "results")
    parser.add_argument(
        "--keep-workdir", action="store_true", help="keep the temporary caches and outputs"
    )
    args = parser.parse_args(argv)

    cfg = Config.quick_config() if args.quick else Config()
    if args.no_compile:
        cfg = replace(cfg, compile=False)
    if args.extract_size:
        cfg = replace(cfg, extract_size=args.extract_size)
    if args.train_size:
        cfg = replace(cfg, train_sizes=tuple(args.train_size))
    if args.compile_size:
        cfg = replace(cfg, compile_size=args.compile_size)
    if args.compile_infer:
        cfg = replace(cfg, compile_infer=True)
    if args.trim_2gib:
        cfg = replace(cfg, trim_2gib=True)
    selected = args.only or list(BENCHMARKS)
    torch.set_num_threads(cores())  # what training.configure_threads does
    t_start = time.perf_counter()
    load_start = load_average()
    info = machine_info()
    git = git_state()  # at the start: the code that ran, even if files change meanwhile
    log(
        f"machine: {info['cpu']}, {info['cores']} cores; load average {load_start}; dataset "
        f"{'found' if DATA.is_dir() else 'MISSING'} at {DATA}"
    )

    gflops, mm_seconds = matmul_gflops(cfg.matmul_n)
    log(f"fp32 matmul {cfg.matmul_n}^2: {gflops:.1f} GFLOP/s (best of {len(mm_seconds)})")
    matmul_flops = gflops * 1e9

    @cache
    def flops(size: int) -> float:
        return conv_linear_flops(darknet19(4), size)

    for size in sorted({*cfg.train_sizes, cfg.infer_size, cfg.extract_size, cfg.threads_size})[
        ::-1
    ]:
        log(f"DarkNet-19 forward at {size}px: {flops(size) / 1e9:.2f} GFLOP/image")

    sizes = sorted({*cfg.train_sizes, cfg.infer_size, cfg.extract_size, cfg.threads_size})
    workdir = Path(tempfile.mkdtemp(prefix="blastscan-bench-"))
    state: dict = {}
    results: list[Result] = []
    skipped: dict[str, str] = {}
    errors: dict[str, str] = {}
    seconds: dict[str, float] = {}
    import bench_cnn
    import bench_pipeline

    runners = {
        "decode": lambda: bench_pipeline.bench_decode(cfg, log, workdir),
        "train": lambda: bench_cnn.bench_training(cfg, flops, matmul_flops, log),
        "infer": lambda: bench_cnn.bench_inference(
            replace(cfg, compile=cfg.compile and cfg.compile_infer), flops, matmul_flops, log
        ),
        "threads": lambda: bench_cnn.bench_threads(cfg, flops, matmul_flops, log),
        "extract": lambda: bench_cnn.bench_extract(cfg, flops, matmul_flops, log, workdir),
        "mrmr": lambda: bench_pipeline.bench_mrmr(cfg, log, state),
        "cv": lambda: bench_pipeline.bench_cv(cfg, log, state),
        "reproduce": lambda: bench_pipeline.bench_reproduce(cfg, log, workdir),
    }
    try:
        for name in BENCHMARKS:
            if name not in selected:
                continue
            if name == "cv" and "mrmr" not in selected:
                log("cv needs the mRMR selection: fitting it first (its time counts in the total)")
            log(f"== {name} (load average {load_average()})")
            t0 = time.perf_counter()
            try:
                rows = runners[name]()
                for r in rows:
                    log("  " + one_line(r))
                results += rows
            except Skip as exc:
                skipped[name] = str(exc)
                log(f"  SKIPPED {name}: {exc}")
            except Exception:  # one broken benchmark must not lose the others' numbers
                errors[name] = traceback.format_exc(limit=6)
                log(f"  FAILED {name}:\n{errors[name]}")
            seconds[name] = time.perf_counter() - t0
            log(f"   {name} took {seconds[name]:.0f} s")
            gc.collect()
    finally:
        if not args.keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)

    end_gflops, end_seconds = matmul_gflops(cfg.matmul_n)
    log(f"fp32 matmul at the end: {end_gflops:.1f} GFLOP/s; floors use the best of start and end")
    refloor(results, max(gflops, end_gflops) * 1e9)
    stamp = time.strftime("%Y-%m-%dT%H%M")
    report = {
        "schema": 1,
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "command": shlex.join(
            [
                ".venv/bin/python",
                "benchmarks/run_all.py",
                *(argv if argv is not None else sys.argv[1:]),
            ]
        ),
        "quick": cfg.quick,
        "machine": info,
        "git": git,
        "load_average": {"start": load_start, "end": load_average()},
        "matmul": {
            "n": cfg.matmul_n,
            "gflops": max(gflops, end_gflops),
            "gflops_start": gflops,
            "gflops_end": end_gflops,
            "seconds": mm_seconds + end_seconds,
        },
        "flops_per_image": {str(s): flops(s) for s in sizes},
        "config": asdict(cfg),
        "results": [r.as_dict() for r in results],
        "skipped": skipped,
        "errors": errors,
        "seconds": seconds,
        "total_seconds": time.perf_counter() - t_start,
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    suffix = "-quick" if cfg.quick else ""
    path = args.out_dir / f"{machine_slug(info)}-{stamp}{suffix}.json"
    path.write_text(json.dumps(report, indent=1) + "\n")
    (args.out_dir / "latest.md").write_text(markdown(report))
    log(
        f"wrote {path.relative_to(REPO) if path.is_relative_to(REPO) else path} and latest.md "
        f"({report['total_seconds'] / 60:.1f} min)"
    )
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
