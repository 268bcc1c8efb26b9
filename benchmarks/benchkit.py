"""Shared pieces of the benchmark suites run by run_all.py: results, timing, FLOPs, the machine.

Every result carries its own naive baseline, measured in the same run (right before/after it,
or interleaved with it), so that ratios stay meaningful on a shared, noisy machine where the
absolute numbers drift from minute to minute.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data" / "all-idb-taleqani"


class Skip(Exception):
    """A benchmark that cannot run here (no dataset, no model, ...): reported, not fatal."""


@dataclass
class Context:
    """What every benchmark gets from the runner: settings, options, a log, scratch space.

    `flops(size)` is DarkNet-19's forward FLOPs per image at that size; `matmul_flops` the fp32
    matmul rate measured at the start (FLOP/s; None when no selected part needs the floor).
    `state` carries results between parts of one run (cv reuses the mRMR selection).
    """

    cfg: Any
    args: Any
    log: Callable[[str], None]
    workdir: Path
    flops: Callable[[int], float]
    matmul_flops: float | None = None
    state: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Part:
    """One named benchmark of a suite: `run(ctx)` returns its Result rows.

    `default`: run when its suite is selected without --only; `floor`: needs the matmul rate.
    """

    name: str
    about: str
    run: Callable[[Context], list[Result]]
    default: bool = True
    floor: bool = False


def darknet(channels_last: bool, seed: int = 0) -> Any:
    """A freshly initialised 4-class DarkNet-19 (speed does not depend on the weights)."""
    import torch

    from blastscan.models import darknet19

    torch.manual_seed(seed)
    model = darknet19(4)
    return model.to(memory_format=torch.channels_last) if channels_last else model


@dataclass
class Result:
    """One measured number and what it is compared with.

    ratio_vs_baseline is a speed-up: > 1 means faster than the naive baseline, whatever the unit
    (value / baseline for rates, baseline / value for seconds). ratio_vs_floor is the share of
    the matmul-bound ideal reached: floor time / measured time (1.0 = as fast as the FLOPs run at
    the measured fp32 matmul rate).
    """

    name: str
    measured: str
    value: float
    unit: str
    baseline: str | None = None
    baseline_value: float | None = None
    ratio_vs_baseline: float | None = None
    floor_value: float | None = None  # same unit as value: the matmul-bound ideal
    ratio_vs_floor: float | None = None
    samples: list[float] = field(default_factory=list)  # raw seconds per repetition
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # anything else worth keeping

    def as_dict(self) -> dict[str, Any]:
        return {k: _round(v) for k, v in asdict(self).items()}


def _round(v: Any) -> Any:
    if isinstance(v, float):
        return float(f"{v:.4g}")
    if isinstance(v, list):
        return [_round(x) for x in v]
    if isinstance(v, dict):
        return {k: _round(x) for k, x in v.items()}
    return v


def rate_result(
    name: str,
    measured: str,
    items: float,
    seconds: Sequence[float],
    unit: str = "images/s",
    baseline: str | None = None,
    baseline_items: float | None = None,
    baseline_seconds: Sequence[float] | None = None,
    paired_ratio: float | None = None,
    flops_per_item: float | None = None,
    matmul_flops: float | None = None,
    notes: str = "",
) -> Result:
    """items / median(seconds), compared with a baseline rate and the matmul floor.

    `paired_ratio` (median of per-round ratios of interleaved runs) is preferred over the ratio
    of the two medians when given: it cancels load changes between rounds.
    """
    value = items / statistics.median(seconds)
    base = None
    if baseline_seconds:
        base = (baseline_items or items) / statistics.median(baseline_seconds)
    ratio = paired_ratio if paired_ratio is not None else (value / base if base else None)
    floor = floor_ratio = None
    if flops_per_item and matmul_flops:
        floor = matmul_flops / flops_per_item  # items/s if every FLOP ran at the matmul rate
        floor_ratio = value / floor
    extra = {"flops_per_item": flops_per_item} if flops_per_item else {}
    return Result(
        name,
        measured,
        value,
        unit,
        baseline,
        base,
        ratio,
        floor,
        floor_ratio,
        list(seconds),
        notes,
        extra,
    )


def time_result(
    name: str,
    measured: str,
    seconds: Sequence[float],
    baseline: str | None = None,
    baseline_seconds: Sequence[float] | None = None,
    notes: str = "",
) -> Result:
    """median(seconds) as the value; speed-up = baseline seconds / these seconds."""
    value = statistics.median(seconds)
    base = statistics.median(baseline_seconds) if baseline_seconds else None
    return Result(
        name,
        measured,
        value,
        "s",
        baseline,
        base,
        base / value if base else None,
        None,
        None,
        list(seconds),
        notes,
    )


def refloor(results: Sequence[Result], matmul_flops: float) -> None:
    """Recompute every floor with a (better) matmul rate, e.g. the best of start and end."""
    for r in results:
        per_item = r.extra.get("flops_per_item")
        if per_item:
            r.floor_value = matmul_flops / per_item
            r.ratio_vs_floor = r.value / r.floor_value


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def interleave(
    variants: dict[str, Callable[[], Any]],
    warmup: int,
    rounds: int,
    budget_s: float | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, list[float]]:
    """Time each variant's step `rounds` times, round-robin, after `warmup` untimed calls each.

    The order inside a round rotates, so no variant always runs right after another one (or
    always first, when the machine's load changes). Stops early (but after 2 rounds) once
    `budget_s` seconds of timed rounds have passed. Returns seconds per call, per variant.
    """
    names = list(variants)
    for name in names:
        for _ in range(warmup):
            variants[name]()
    times: dict[str, list[float]] = {n: [] for n in names}
    start = time.perf_counter()
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            seconds, _ = timed(variants[name])
            times[name].append(seconds)
        log(f"    round {r + 1}: " + ", ".join(f"{n} {times[n][-1]:.2f}s" for n in names))
        if budget_s is not None and r >= 1 and time.perf_counter() - start > budget_s:
            break
    return times


def paired_speedup(
    variant: Sequence[float], baseline: Sequence[float], per_call: float = 1.0
) -> float:
    """Median over rounds of (baseline time / variant time), times `per_call` (items per variant
    call / items per baseline call): the speed-up with the load of each round cancelled."""
    return statistics.median(per_call * b / v for v, b in zip(variant, baseline, strict=False))


# ---------------------------------------------------------------- FLOPs and the matmul floor


def conv_linear_flops(model: Any, image_size: int) -> float:
    """Forward FLOPs of one image: 2 x the multiply-adds of every Conv2d and Linear layer.

    Counted with forward hooks on one real forward pass, so it follows the model as built.
    Batch norm, activations and pooling (a few percent) are left out, as FLOP counts usually do.
    """
    import torch

    macs = [0]

    def conv_hook(module, inputs, output):
        k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
        macs[0] += output.numel() * k

    def linear_hook(module, inputs, output):
        macs[0] += output.numel() * module.in_features

    hooks = []
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, torch.nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            model(torch.zeros(1, 3, image_size, image_size))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return 2.0 * macs[0]


def matmul_gflops(n: int = 4096, repeats: int = 5) -> tuple[float, list[float]]:
    """fp32 GFLOP/s of an n x n matmul with torch's intra-op threads: best of `repeats`.

    Best, not median: the floor is meant as what the cores can do, not what the load left.
    """
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up: thread pool, page faults
    seconds = [timed(lambda: a @ b)[0] for _ in range(repeats)]
    return 2 * n**3 / min(seconds) / 1e9, seconds


# ---------------------------------------------------------------- the machine


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next(
        (line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")),
        [],
    )
    return sorted(
        f for f in flags if f.startswith(("avx512f", "avx512_bf16", "amx", "avx2", "fma"))
    )


def cpu_generation() -> str:
    """ "family F model M" from /proc/cpuinfo: the same model name ("AMD EPYC") has covered
    hosts of different generations here, 1.6-2x apart in speed from one day to the next."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""
    fields = dict(line.split(":", 1) for line in text.splitlines()[:12] if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    if "cpu family" not in fields:
        return ""
    return f"family {fields['cpu family']} model {fields.get('model', '?')}"


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine_info() -> dict[str, Any]:
    import numpy
    import torch

    info = {
        "hostname": platform.node(),
        "cpu": cpu_model(),
        "cpu_generation": cpu_generation(),
        "cores": cores(),
        "cpu_flags": cpu_flags(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "numpy": numpy.__version__,
        "mkldnn": torch.backends.mkldnn.is_available(),
    }
    for module in ("onnxruntime", "sklearn", "sklearnex"):
        try:
            info[module] = __import__(module).__version__
        except Exception:  # not installed / broken install: just not reported
            info[module] = None
    return info


def git_state() -> dict[str, Any]:
    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], capture_output=True, text=True, cwd=REPO, timeout=10
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {
        "commit": git("rev-parse", "HEAD") or None,
        "dirty_files": len(git("status", "--porcelain").splitlines()),
    }
