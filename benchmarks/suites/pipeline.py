"""Suite `pipeline`: the stages around the models: image decode and cache, and
`blastscan reproduce --quick` end to end."""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

from benchkit import DATA, Context, Part, Result, Skip, rate_result, time_result, timed

# ---------------------------------------------------------------- decode + cache


def bench_decode(ctx: Context) -> list[Result]:
    """scan_dataset, then load_images cold (fresh cache dir: decode + resize + write .npy) and
    warm (cache hit), images/s. The JPEGs themselves are in the OS page cache after the scan, so
    "cold" means no decoded-array cache, not a cold disk."""
    cfg, log, workdir = ctx.cfg, ctx.log, ctx.workdir
    from blastscan import data as D
    from blastscan.training import limit_per_class

    if not DATA.is_dir():
        raise Skip(f"dataset not found at {DATA}")
    size = cfg.decode_size
    scan_s, full = timed(lambda: D.scan_dataset(DATA))
    n_all = len(full.samples)
    hash_s, _ = timed(
        lambda: [hashlib.sha256(Path(s.path).read_bytes()).hexdigest() for s in full.samples]
    )
    log(f"  decode: scan_dataset {n_all} files {scan_s:.1f} s; read + sha256 only {hash_s:.1f} s")
    dataset = limit_per_class(full, cfg.max_per_class, 0)
    n = len(dataset.samples)
    cold, warm = [], []
    for rep in range(cfg.decode_reps):
        cache = workdir / f"decode-cache-{rep}"
        seconds, array = timed(lambda cache=cache: D.load_images(dataset, size, cache))
        cold.append(seconds)
        assert array.shape == (n, size, size, 3)
        del array
        seconds, array = timed(lambda cache=cache: D.load_images(dataset, size, cache))
        warm.append(seconds)
        del array
        shutil.rmtree(cache, ignore_errors=True)
        log(f"    rep {rep + 1}: cold {cold[-1]:.2f} s, warm {warm[-1]:.2f} s")
    cache_mb = n * size * size * 3 / 2**20
    first = [scan_s * n / n_all + c for c in cold]
    second = [scan_s * n / n_all + w for w in warm]
    return [
        rate_result(
            "decode/scan_dataset",
            f"blastscan.data.scan_dataset over {n_all} files (read, sha256, full "
            "decode check), images/s",
            n_all,
            [scan_s],
            baseline="read + sha256 only (no decode)",
            baseline_seconds=[hash_s],
            notes="ratio < 1: the decode check costs this much over hashing alone; it runs on "
            "every command, cache or not",
        ),
        rate_result(
            f"decode/load_images_cold_{size}px",
            f"load_images with a fresh cache dir: decode + resize "
            f"to {size}px + write the {cache_mb:.0f} MB .npy, {n} images, images/s",
            n,
            cold,
            baseline="itself (naive: decode every run)",
            baseline_seconds=cold,
            paired_ratio=1.0,
        ),
        rate_result(
            f"decode/load_images_warm_{size}px",
            f"load_images, cache hit (np.load of the .npy), {n} images, images/s",
            n,
            warm,
            baseline=f"load_images_cold_{size}px",
            baseline_seconds=cold,
            paired_ratio=statistics.median(c / w for c, w in zip(cold, warm, strict=True)),
        ),
        rate_result(
            f"decode/second_run_{size}px",
            f"what a second command pays: scan_dataset + warm load_images, {n} images, images/s",
            n,
            second,
            baseline="first run: scan_dataset + cold load_images",
            baseline_seconds=first,
            paired_ratio=statistics.median(f / s for f, s in zip(first, second, strict=True)),
            notes="the scan's share is scaled to the images loaded when --quick limits them",
        ),
    ]


# ---------------------------------------------------------------- reproduce --quick


def bench_reproduce(ctx: Context) -> list[Result]:
    """`blastscan reproduce --quick` as a user runs it (fresh out and cache dirs), wall seconds."""
    cfg, log, workdir = ctx.cfg, ctx.log, ctx.workdir
    if not DATA.is_dir():
        raise Skip(f"dataset not found at {DATA}")
    out, cache = workdir / "reproduce-out", workdir / "reproduce-cache"
    exe = Path(sys.executable).with_name("blastscan")
    cmd = [
        str(exe),
        "reproduce",
        "--data",
        str(DATA),
        "--out",
        str(out),
        "--quick",
        "--cache-dir",
        str(cache),
        "--quiet",
    ]
    log(f"  reproduce: {' '.join(cmd)}")
    seconds, proc = timed(
        lambda: subprocess.run(cmd, capture_output=True, text=True, timeout=cfg.reproduce_timeout_s)
    )
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout)[-400:]
        raise RuntimeError(f"reproduce --quick exited {proc.returncode}: {tail}")
    stages = {}
    with contextlib.suppress(OSError, ValueError):
        stages = json.loads((out / "metrics.json").read_text()).get("timings", {})
    breakdown = ", ".join(f"{k} {v:.1f} s" for k, v in stages.items())
    log(f"  reproduce: {seconds:.1f} s ({breakdown})")
    r = time_result(
        "reproduce/quick_end_to_end",
        "blastscan reproduce --quick (train 4 epochs at 64px on 240 images, "
        "extract, paper + holdout protocols, report), subprocess wall seconds",
        [seconds],
        notes=f"stages: {breakdown}; includes interpreter start and imports",
    )
    r.extra["stages"] = stages
    return [r]


PARTS = [
    Part("decode", "scan_dataset, then load_images cold (decode + resize + .npy) and warm",
         bench_decode),
    Part("reproduce", "blastscan reproduce --quick end to end, fresh out and cache dirs",
         bench_reproduce),
]  # fmt: skip
