"""Run blastscan's benchmark suites; write benchmarks/results/<host>-<date>.json and latest.md.

    python benchmarks/run_all.py                          # the CPU suites (~15 min on 2 cores)
    python benchmarks/run_all.py --quick                  # smoke run, small sizes (~3 min)
    python benchmarks/run_all.py --suite cnn --suite mrmr # these suites' default parts
    python benchmarks/run_all.py --only cv --only mrmr    # these parts only (any suite)
    python benchmarks/run_all.py --suite gpu              # on a CUDA machine (benchmarks/device.sh bench)
    python benchmarks/run_all.py --list                   # suites, parts, defaults

Each suite is a module of benchmarks/suites/ with a PARTS list (benchkit.Part) and, where it
takes options, add_arguments(parser). Every number comes with a naive baseline measured in the
same run (interleaved with it where the benchmark repeats), and CNN numbers with their share of
the matmul-bound floor: FLOPs per image / the fp32 matmul rate (best of the measurements at the
start and at the end). The record names the host: CPU model and generation, cores, flags
(avx2, avx512*, amx*), torch, onnxruntime and scikit-learn versions. See docs/reference/benchmarks.md.
"""

from __future__ import annotations

import argparse
import gc
import importlib
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
from types import ModuleType

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # benchkit and suites/ when run as a script from anywhere

from benchkit import (  # noqa: E402
    DATA,
    REPO,
    Context,
    Part,
    Result,
    Skip,
    conv_linear_flops,
    cores,
    darknet,
    git_state,
    load_average,
    machine_info,
    matmul_gflops,
    refloor,
)

SUITES = (
    "cnn", "extract", "mrmr", "classical", "onnx", "pipeline", "gpu", "serve", "precision",
    "recipes",
)  # fmt: skip
CPU_SUITES = ("cnn", "extract", "mrmr", "classical", "onnx", "pipeline")  # the default run


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
    matmul_n: int = 4096  # the floor's fp32 matmul size
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
        f"- suites: {', '.join(report['suites'])}; parts: {', '.join(report['parts'])}",
        *matmul_lines(report),
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


def matmul_lines(report: dict) -> list[str]:
    mm = report["matmul"]
    if mm is None:
        return ["- fp32 matmul: not measured (no selected part compares with the matmul floor)"]
    return [
        f"- fp32 matmul {mm['n']}x{mm['n']}: {mm['gflops']:.1f} GFLOP/s (best of "
        f"{len(mm['seconds'])} at start ({mm['gflops_start']:.1f}) and end "
        f"({mm['gflops_end']:.1f})); DarkNet-19 forward GFLOP/image: "
        + ", ".join(
            f"{k}px {v / 1e9:.2f}"
            for k, v in sorted(report["flops_per_image"].items(), key=lambda kv: -int(kv[0]))
        )
        + " (training step = 3x)"
    ]


def machine_slug(info: dict) -> str:
    name = re.sub(r"[^a-z0-9]+", "-", info["cpu"].lower()).strip("-")
    return f"{name}-{info['cores']}c"


def suite(name: str) -> ModuleType:
    """benchmarks/suites/<name>.py (imports no moved or heavy blastscan names at import time)."""
    return importlib.import_module(f"suites.{name}")


def all_parts() -> dict[str, tuple[str, Part]]:
    """part name -> (its suite, the part), in run order."""
    return {p.name: (name, p) for name in SUITES for p in suite(name).PARTS}


def listing() -> str:
    lines = []
    for name in SUITES:
        module = suite(name)
        about = " ".join((module.__doc__ or "").split("\n\n", 1)[0].split()).split(": ", 1)[-1]
        tag = "default" if name in CPU_SUITES else "on request"
        lines.append(f"{name} ({tag}): {about}")
        for p in module.PARTS:
            flag = "" if p.default else "  [only with --only]"
            lines.append(f"  {p.name:<10} {p.about}{flag}")
    return "\n".join(lines)


def selected_parts(suites: list[str] | None, only: list[str] | None) -> list[tuple[str, Part]]:
    """--only: exactly those parts; else each chosen suite's default parts (default: CPU)."""
    parts = all_parts()
    if only:
        unknown = sorted(set(only) - set(parts))
        if unknown:
            raise SystemExit(f"unknown part(s) {', '.join(unknown)}; see --list")
        return [parts[n] for n in parts if n in only]
    chosen = suites or list(CPU_SUITES)
    return [(s, p) for s, p in parts.values() if s in chosen and p.default]


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--list", action="store_true", help="print the suites and their parts")
    ap.add_argument(
        "--suite",
        action="append",
        choices=SUITES,
        metavar="NAME",
        help=f"run this suite's default parts (repeatable): {', '.join(SUITES)}; "
        f"default: {', '.join(CPU_SUITES)}",
    )
    ap.add_argument(
        "--only",
        action="append",
        metavar="PART",
        help="run only this part (repeatable; any suite, default or not); cv fits "
        "mRMR itself when mrmr is not selected",
    )
    ap.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile variants")
    ap.add_argument(
        "--compile-infer", action="store_true", help="also torch.compile the forward pass"
    )
    ap.add_argument("--extract-size", type=int, help="input size of the extract part (default 128)")
    ap.add_argument(
        "--train-size",
        type=int,
        action="append",
        help="input size of the train part (repeatable; default 224 and 128)",
    )
    ap.add_argument(
        "--compile-size", type=int, help="time torch.compile'd training at this size (default 128)"
    )
    ap.add_argument(
        "--trim-2gib",
        action="store_true",
        help="also train with glibc's trim threshold at 2 GiB (keep_freed_memory's earlier form)",
    )
    ap.add_argument("--out-dir", type=Path, default=HERE / "results")
    ap.add_argument(
        "--keep-workdir", action="store_true", help="keep the temporary caches and outputs"
    )
    for name in SUITES:
        add = getattr(suite(name), "add_arguments", None)
        if add is not None:
            add(ap)
    return ap  # fmt: skip


def config(args: argparse.Namespace) -> Config:
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
    return cfg


def run_parts(parts: list[tuple[str, Part]], ctx: Context) -> dict:
    """Run each part; one broken or skipped part does not lose the others' numbers."""
    results: list[Result] = []
    skipped: dict[str, str] = {}
    errors: dict[str, str] = {}
    seconds: dict[str, float] = {}
    for suite_name, part in parts:
        log(f"== {suite_name}/{part.name} (load average {load_average()})")
        t0 = time.perf_counter()
        try:
            rows = part.run(ctx)
            for r in rows:
                log("  " + one_line(r))
            results += rows
        except Skip as exc:
            skipped[part.name] = str(exc)
            log(f"  SKIPPED {part.name}: {exc}")
        except Exception:
            errors[part.name] = traceback.format_exc(limit=6)
            log(f"  FAILED {part.name}:\n{errors[part.name]}")
        seconds[part.name] = time.perf_counter() - t0
        log(f"   {part.name} took {seconds[part.name]:.0f} s")
        gc.collect()
    return {"results": results, "skipped": skipped, "errors": errors, "seconds": seconds}


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.list:
        print(listing())
        return 0
    import torch

    cfg = config(args)
    parts = selected_parts(args.suite, args.only)
    torch.set_num_threads(cores())  # what training.configure_threads does
    t_start = time.perf_counter()
    load_start = load_average()
    info = machine_info()
    git = git_state()  # at the start: the code that ran, even if files change meanwhile
    log(
        f"machine: {info['cpu']}, {info['cores']} cores ({', '.join(info['cpu_flags'])}); "
        f"torch {info['torch']}; load average {load_start}; dataset "
        f"{'found' if DATA.is_dir() else 'MISSING'} at {DATA}"
    )
    log("parts: " + ", ".join(f"{s}/{p.name}" for s, p in parts))

    @cache
    def flops(size: int) -> float:
        return conv_linear_flops(darknet(False), size)

    floor = any(p.floor for _, p in parts)
    gflops, mm_seconds = matmul_gflops(cfg.matmul_n) if floor else (None, [])
    sizes = sorted({*cfg.train_sizes, cfg.infer_size, cfg.extract_size, cfg.threads_size})
    if floor:
        log(f"fp32 matmul {cfg.matmul_n}^2: {gflops:.1f} GFLOP/s (best of {len(mm_seconds)})")
        for size in sizes[::-1]:
            log(f"DarkNet-19 forward at {size}px: {flops(size) / 1e9:.2f} GFLOP/image")
    workdir = Path(tempfile.mkdtemp(prefix="blastscan-bench-"))
    ctx = Context(cfg, args, log, workdir, flops, gflops * 1e9 if floor else None)
    try:
        ran = run_parts(parts, ctx)
    finally:
        if not args.keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)

    matmul = None
    if floor:
        end_gflops, end_seconds = matmul_gflops(cfg.matmul_n)
        log(f"fp32 matmul at the end: {end_gflops:.1f} GFLOP/s; floors use the best of both")
        refloor(ran["results"], max(gflops, end_gflops) * 1e9)
        matmul = {
            "n": cfg.matmul_n,
            "gflops": max(gflops, end_gflops),
            "gflops_start": gflops,
            "gflops_end": end_gflops,
            "seconds": mm_seconds + end_seconds,
        }
    stamp = time.strftime("%Y-%m-%dT%H%M")
    command = [
        sys.executable,
        "benchmarks/run_all.py",
        *(argv if argv is not None else sys.argv[1:]),
    ]
    report = {
        "schema": 2,
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "command": shlex.join([".venv/bin/python", *command[1:]]),
        "quick": cfg.quick,
        "suites": sorted({s for s, _ in parts}, key=SUITES.index),
        "parts": [p.name for _, p in parts],
        "machine": info,
        "git": git,
        "load_average": {"start": load_start, "end": load_average()},
        "matmul": matmul,
        "flops_per_image": {str(s): flops(s) for s in sizes} if floor else {},
        "config": asdict(cfg),
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "results": [r.as_dict() for r in ran["results"]],
        "skipped": ran["skipped"],
        "errors": ran["errors"],
        "seconds": ran["seconds"],
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
    return 1 if ran["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
