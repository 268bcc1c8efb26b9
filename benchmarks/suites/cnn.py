"""Suite `cnn`: DarkNet-19 on the CPU: training steps, inference (eager, TorchScript, compile,
ONNX Runtime) and OpenMP threads under load.

Each part takes the run's settings and the fp32 matmul rate measured at the start, and returns
Result rows. Variants run interleaved with their naive baseline (eager fp32 NCHW, batch 32), so
the ratios hold even while other jobs load the machine.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from benchkit import (
    Context,
    Part,
    Result,
    cores,
    darknet,
    interleave,
    paired_speedup,
    rate_result,
    timed,
)


def _batch(batch: int, size: int, channels_last: bool, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, 3, size, size, generator=g)
    y = torch.randint(0, 4, (batch,), generator=g)
    return (x.contiguous(memory_format=torch.channels_last) if channels_last else x), y


_TRAIN_CHILD = r"""
import json, resource, sys, time, torch
import torch.nn.functional as F
from blastscan.runtime.distributed import keep_freed_memory
from blastscan.models import darknet19
batch, size, steps, warmup = (int(a) for a in sys.argv[1:5])
channels_last, compile_ = sys.argv[5] == "1", sys.argv[7] == "1"
keep_memory = sys.argv[6]  # "0": glibc's defaults, "1": keep_freed_memory(), "2GiB": its old form
if keep_memory == "1":
    keep_freed_memory()
elif keep_memory == "2GiB":  # trimming at 2 GiB, the largest positive threshold: not off
    import ctypes
    mallopt = ctypes.CDLL("libc.so.6").mallopt
    mallopt(-4, 0), mallopt(-1, 2**31 - 1)  # M_MMAP_MAX, M_TRIM_THRESHOLD
torch.manual_seed(0)
model = darknet19(4)
x = torch.rand(batch, 3, size, size)
y = torch.randint(0, 4, (batch,))
if channels_last:
    model = model.to(memory_format=torch.channels_last)
    x = x.contiguous(memory_format=torch.channels_last)
# One SGD step as training.train_one_epoch does it (momentum 0.9, weight decay 1e-4).
optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-4)
step_model = torch.compile(model) if compile_ else model
def step():
    loss = F.cross_entropy(step_model(x), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
start = time.perf_counter()
for _ in range(warmup):
    step()
first = time.perf_counter() - start
times = []
before = resource.getrusage(resource.RUSAGE_SELF)
for _ in range(steps):
    start = time.perf_counter()
    step()
    times.append(time.perf_counter() - start)
after = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({
    "times": times,
    "warmup_s": first,
    "minor_faults_per_step": (after.ru_minflt - before.ru_minflt) / steps,
    "system_s_per_step": (after.ru_stime - before.ru_stime) / steps,
    "max_rss_mb": after.ru_maxrss / 1024,
}))
"""


def _train_variants(cfg, size: int) -> dict[str, tuple[int, bool, str, bool]]:
    """name -> (batch, channels_last, keep_freed_memory ("0", "1" or "2GiB"), compile)."""
    base_b, var_b = cfg.train_batches
    variants = {
        f"eager_nchw_b{base_b}": (base_b, False, "0", False),
        f"channels_last_b{var_b}": (var_b, True, "0", False),
        # what training.py does on a CPU
        f"channels_last_keep_memory_b{var_b}": (var_b, True, "1", False),
    }
    if cfg.trim_2gib:
        variants[f"channels_last_keep_memory_trim2GiB_b{var_b}"] = (var_b, True, "2GiB", False)
    if cfg.compile and size == cfg.compile_size:
        variants[f"channels_last_keep_memory_compile_b{var_b}"] = (var_b, True, "1", True)
    return variants


def _memory_note(measured: list[dict]) -> str:
    """Medians over rounds of what the allocator costs a timed step (getrusage)."""

    def median(key: str) -> float:
        return statistics.median(m[key] for m in measured)

    return (
        f"per timed step: {median('minor_faults_per_step'):,.0f} minor page faults, "
        f"{median('system_s_per_step'):.2f} s system time; peak RSS {median('max_rss_mb'):,.0f} MB"
    )


def bench_training(ctx: Context) -> list[Result]:
    """Training images/s: eager fp32 NCHW b32 (naive) vs channels_last b64 vs that with glibc
    keeping freed memory (`distributed.keep_freed_memory`: what training.py does on a CPU) vs
    that under torch.compile (at the compile size only).

    The allocator setting is process-wide, so every variant runs in a fresh process (as
    `bench_threads` does); rounds rotate the order, and ratios pair the variants of a round.
    """
    cfg, flops, matmul_flops, log = ctx.cfg, ctx.flops, ctx.matmul_flops, ctx.log
    results = []
    for size in cfg.train_sizes:
        variants = _train_variants(cfg, size)
        names = list(variants)
        rounds: dict[str, list[float]] = {k: [] for k in names}
        samples: dict[str, list[float]] = {k: [] for k in names}
        warmups: dict[str, list[float]] = {k: [] for k in names}
        memory: dict[str, list[dict]] = {k: [] for k in names}  # page faults, kernel time, RSS
        log(f"  train {size}px: {cfg.train_rounds} rounds of fresh processes: {', '.join(names)}")
        for r in range(cfg.train_rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                if name not in variants:
                    continue
                batch, channels_last, keep, compile_ = variants[name]
                args = [str(a) for a in (batch, size, cfg.train_steps, cfg.train_warmup)]
                args += ["1" if channels_last else "0", keep, "1" if compile_ else "0"]
                out = subprocess.run(
                    [sys.executable, "-c", _TRAIN_CHILD, *args],
                    capture_output=True,
                    text=True,
                    timeout=1800,
                )
                if out.returncode != 0 and compile_:  # inductor needs a C++ toolchain
                    log(f"    {name}: torch.compile failed, dropped: {out.stderr[-200:]}")
                    del variants[name], rounds[name]
                    continue
                if out.returncode != 0:
                    raise RuntimeError(f"{name}: child failed: {out.stderr[-300:]}")
                measured = json.loads(out.stdout.strip().splitlines()[-1])
                samples[name] += measured["times"]
                rounds[name].append(statistics.median(measured["times"]) / batch)
                warmups[name].append(measured["warmup_s"])
                memory[name].append(measured)
            log(
                f"    round {r + 1}: "
                + ", ".join(f"{k} {1 / v[-1]:.2f}/s" for k, v in rounds.items())
            )
        base_name = names[0]
        base_b = variants[base_name][0]
        for name in variants:
            batch, _, _, compile_ = variants[name]
            note = _memory_note(memory[name])
            if compile_:
                note += (
                    f"; first {cfg.train_warmup} step(s) incl. compile: {max(warmups[name]):.0f} s"
                )
            results.append(
                rate_result(
                    f"train_{size}px/{name}",
                    f"SGD training step, DarkNet-19 fp32, {size}px, batch {batch}, fresh "
                    "process per round, images/s",
                    batch,
                    samples[name],
                    baseline=base_name,
                    baseline_items=base_b,
                    baseline_seconds=samples[base_name],
                    # per-image seconds of each round, so batch sizes cancel
                    paired_ratio=paired_speedup(rounds[name], rounds[base_name]),
                    flops_per_item=3 * flops(size),  # forward + backward (two convolutions)
                    matmul_flops=matmul_flops,
                    notes=note,
                )
            )
    return results


# ---------------------------------------------------------------- inference


def _export_onnx(model: torch.nn.Module, size: int, path: Path) -> None:
    from blastscan.runtime.onnx import FeaturesAndLogits

    wrapper = FeaturesAndLogits(model).eval()
    axes = {"input": {0: "batch"}, "features": {0: "batch"}, "logits": {0: "batch"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            (torch.rand(2, 3, size, size),),
            str(path),
            dynamo=False,
            opset_version=17,
            input_names=["input"],
            output_names=["features", "logits"],
            dynamic_axes=axes,
            do_constant_folding=True,
        )


def bench_inference(ctx: Context) -> list[Result]:
    """Inference images/s at cfg.infer_size: eager NCHW b32 (naive), channels_last b32/b64,
    TorchScript-frozen channels_last (conv+BN folded), torch.compile (optional), ONNX Runtime."""
    # torch.compile of the forward only with --compile-infer (another minute or two)
    cfg = replace(ctx.cfg, compile=ctx.cfg.compile and ctx.cfg.compile_infer)
    flops, matmul_flops, log = ctx.flops, ctx.matmul_flops, ctx.log
    from blastscan.runtime.onnx import OnnxEngine

    size, b = cfg.infer_size, cfg.infer_batches[0]
    big = cfg.infer_batches[1]
    eager = darknet(False).eval()
    cl = darknet(True).eval()
    x_nchw, _ = _batch(big, size, False, seed=1)
    x_cl = x_nchw.contiguous(memory_format=torch.channels_last)
    notes: dict[str, str] = {}

    def run(model, x):
        def go():
            with torch.inference_mode():
                return model(x)

        return go

    variants = {
        f"eager_nchw_b{b}": run(eager, x_nchw[:b]),
        f"channels_last_b{b}": run(cl, x_cl[:b]),
        f"channels_last_b{big}": run(cl, x_cl),
    }
    batches = {f"eager_nchw_b{b}": b, f"channels_last_b{b}": b, f"channels_last_b{big}": big}

    seconds, frozen = timed(lambda: _jit_freeze(cl, x_cl[:b]))
    if frozen is not None:
        variants[f"jit_freeze_channels_last_b{b}"] = run(frozen, x_cl[:b])
        batches[f"jit_freeze_channels_last_b{b}"] = b
        notes[f"jit_freeze_channels_last_b{b}"] = (
            f"trace + freeze + optimize_for_inference {seconds:.1f} s"
        )

    if cfg.compile:
        name = f"compile_channels_last_b{b}"
        log(f"  infer {size}px: compiling (first call) ...")
        try:
            compiled = torch.compile(cl)
            seconds, _ = timed(run(compiled, x_cl[:b]))
            variants[name], batches[name] = run(compiled, x_cl[:b]), b
            notes[name] = f"first call (compile + 1 batch) {seconds:.0f} s"
        except Exception as exc:
            notes[name] = f"torch.compile failed: {type(exc).__name__}: {str(exc)[:200]}"
        log(f"  infer {size}px: {notes[name]}")

    ort_name = f"onnxruntime_b{b}"
    diff = None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "darknet19.onnx"
            export_s, _ = timed(lambda: _export_onnx(eager, size, path))
            session_s, engine = timed(lambda: OnnxEngine(path.read_bytes()))
        x_np = x_nchw[:b].numpy()
        session = engine.session
        variants[ort_name] = lambda: session.run(["features", "logits"], {"input": x_np})
        batches[ort_name] = b
        f_ort, z_ort = session.run(["features", "logits"], {"input": x_np})
        with torch.inference_mode():
            f_ref = eager.features(x_nchw[:b])
            z_ref = eager.head(f_ref)
        diff = {
            "features": float(np.abs(f_ort - f_ref.numpy()).max()),
            "logits": float(np.abs(z_ort - z_ref.numpy()).max()),
            "features_scale": float(np.abs(f_ref.numpy()).max()),
        }
        notes[ort_name] = (
            f"legacy exporter (dynamo=False, opset 17, dynamic batch), export {export_s:.1f} s, "
            f"session creation {session_s:.1f} s, ORT_ENABLE_ALL, "
            f"{session.get_session_options().intra_op_num_threads} intra-op threads; "
            f"max |ORT - eager|: features {diff['features']:.2e} "
            f"(max |feature| {diff['features_scale']:.3g}), logits {diff['logits']:.2e}"
        )
        log(f"  infer {size}px: {notes[ort_name]}")
    except Exception as exc:  # an exporter or runtime problem is a finding, not a crash
        notes[ort_name] = f"ONNX export/run failed: {type(exc).__name__}: {str(exc)[:200]}"
        log(f"  infer {size}px: {notes[ort_name]}")

    log(f"  infer {size}px: {cfg.infer_warmup} warm-up + {cfg.infer_rounds} interleaved rounds")
    times = interleave(variants, cfg.infer_warmup, cfg.infer_rounds, cfg.infer_budget_s, log)
    base_name = f"eager_nchw_b{b}"
    results = []
    for name, seconds in times.items():
        results.append(
            rate_result(
                f"infer_{size}px/{name}",
                f"forward pass (eval, inference_mode), fp32, {size}px, "
                f"batch {batches[name]}, images/s",
                batches[name],
                seconds,
                baseline=base_name,
                baseline_items=b,
                baseline_seconds=times[base_name],
                paired_ratio=1.0
                if name == base_name
                else paired_speedup(seconds, times[base_name], batches[name] / b),
                flops_per_item=flops(size),
                matmul_flops=matmul_flops,
                notes=notes.get(name, ""),
            )
        )
        if name == ort_name and diff is not None:
            results[-1].extra["max_abs_diff_vs_eager"] = diff
    return results


def _jit_freeze(model: torch.nn.Module, x: torch.Tensor):
    try:
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(model, x)
            return torch.jit.optimize_for_inference(torch.jit.freeze(traced))
    except Exception:  # TorchScript is deprecated; a failure just drops the variant
        return None


# ---------------------------------------------------------------- OpenMP threads under load

_CHILD = r"""
import json, sys, time, torch
from blastscan.models import darknet19
threads, size, batch, reps = (int(a) for a in sys.argv[1:5])
torch.set_num_threads(threads)
torch.manual_seed(0)
model = darknet19(4).eval().to(memory_format=torch.channels_last)
x = torch.rand(batch, 3, size, size).contiguous(memory_format=torch.channels_last)
with torch.inference_mode():
    model(x)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        model(x)
        times.append(time.perf_counter() - start)
print(json.dumps(times))
"""


def bench_threads(ctx: Context) -> list[Result]:
    """The same channels_last forward in fresh processes: torch's default OpenMP threads (one
    per core, spin-waiting at every barrier) vs OMP_WAIT_POLICY=PASSIVE vs a single thread.

    On a machine shared with other jobs a spinning thread burns the time slice its partner
    needs; this shows how much of the gap to the matmul floor that explains. The policy must be
    set before the OpenMP runtime starts, hence one process per measurement (rounds alternate).
    """
    cfg, flops, matmul_flops, log = ctx.cfg, ctx.flops, ctx.matmul_flops, ctx.log

    size, batch, reps = cfg.threads_size, cfg.threads_batch, cfg.threads_reps
    base_env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    n = cores()
    variants = {
        f"default_{n}_threads": (n, base_env),
        f"omp_passive_{n}_threads": (n, {**base_env, "OMP_WAIT_POLICY": "PASSIVE"}),
        "1_thread": (1, base_env),
    }
    rounds: dict[str, list[float]] = {k: [] for k in variants}
    samples: dict[str, list[float]] = {k: [] for k in variants}
    for r in range(cfg.threads_rounds):
        names = list(variants)[r % 3 :] + list(variants)[: r % 3]
        for name in names:
            threads, env = variants[name]
            args = [sys.executable, "-c", _CHILD, str(threads), str(size), str(batch), str(reps)]
            out = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
            if out.returncode != 0:
                raise RuntimeError(f"{name}: child failed: {out.stderr[-300:]}")
            times = json.loads(out.stdout.strip().splitlines()[-1])
            samples[name] += times
            rounds[name].append(statistics.median(times))
        log(f"    round {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in rounds.items()))
    base = f"default_{n}_threads"
    return [
        rate_result(
            f"threads_{size}px/{name}",
            f"forward, channels_last b{batch} {size}px, fresh process per round, images/s",
            batch,
            samples[name],
            baseline=base,
            baseline_seconds=samples[base],
            paired_ratio=paired_speedup(rounds[name], rounds[base]),
            flops_per_item=flops(size),
            matmul_flops=matmul_flops,
        )
        for name in variants
    ]


PARTS = [
    Part("train", "training images/s: eager NCHW b32 vs channels_last vs kept memory vs compile",
         bench_training, floor=True),
    Part("infer", "inference images/s: eager, channels_last, TorchScript, compile, ONNX Runtime",
         bench_inference, floor=True),
    Part("threads", "forward under default OpenMP threads vs OMP_WAIT_POLICY=PASSIVE vs 1 thread",
         bench_threads, floor=True),
]  # fmt: skip
