"""Suite `extract`: `blastscan.features.extract` over the whole dataset, against the naive
eager forward at the same size measured right before and right after it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from benchkit import DATA, REPO, Context, Part, Result, Skip, darknet, rate_result, timed


def _throwaway_run(out: Path, classes: list[str], size: int) -> Path:
    """A run directory `load_trained_model` accepts, holding an untrained DarkNet-19."""
    from blastscan.training import save_checkpoint

    model = darknet(True)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    meta = {
        "classes": classes,
        "image_size": size,
        "epoch": 0,
        "history": [],
        "note": "untrained, benchmark only",
    }
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    save_checkpoint(out / "checkpoints" / "final.safetensors", model, optimizer, meta)
    return out


def bench_extract(ctx: Context) -> list[Result]:
    """`blastscan.features.extract` over the whole dataset (warm image cache), images/s, with the
    naive eager NCHW b32 forward at the same size measured right before and right after."""
    cfg, flops, matmul_flops, log, workdir = (
        ctx.cfg,
        ctx.flops,
        ctx.matmul_flops,
        ctx.log,
        ctx.workdir,
    )
    from blastscan import data as D
    from blastscan.features import extract
    from blastscan.training import limit_per_class, load_trained_model

    if not DATA.is_dir():
        raise Skip(f"dataset not found at {DATA}")
    trained = REPO / "runs" / "fast-cpu"
    final = trained / "checkpoints" / "final.json"
    size = cfg.extract_size
    if final.is_file() and json.loads(final.read_text())["image_size"] == size:
        run_dir, source = trained, "runs/fast-cpu (trained, final.safetensors)"
    else:  # speed does not depend on the weights
        classes = D.discover_classes(D.resolve_class_root(DATA))
        run_dir = _throwaway_run(workdir / "throwaway-run", [name for name, _ in classes], size)
        source = (
            f"throwaway run dir, untrained DarkNet-19 at {size}px (no trained run at that size)"
        )
    cache = workdir / "cache"
    log(f"  extract: model {source}; warming the {size}px image cache ...")
    dataset = limit_per_class(D.scan_dataset(DATA), cfg.max_per_class, 0)
    images = D.load_images(dataset, size, cache)
    n = len(images)

    model, _ = load_trained_model(run_dir)
    naive = model.to(memory_format=torch.contiguous_format)
    x = torch.as_tensor(images[:32]).permute(0, 3, 1, 2).float().div(255).contiguous()

    def naive_rate():
        with torch.inference_mode():
            naive(x)  # warm-up
            return [timed(lambda: naive(x))[0] for _ in range(cfg.extract_naive_batches)]

    before = naive_rate()
    log(f"  extract: naive eager NCHW b32 before: {32 / np.median(before):.1f} images/s")
    out = workdir / "features.npz"
    seconds, _ = timed(
        lambda: extract(
            run_dir,
            DATA,
            out,
            cache_dir=cache,
            show_progress=False,
            max_per_class=cfg.max_per_class,
            seed=0,
        )
    )
    after = naive_rate()
    log(
        f"  extract: {n} images in {seconds:.1f} s; "
        f"naive after: {32 / np.median(after):.1f} images/s"
    )
    scan_s, _ = timed(lambda: limit_per_class(D.scan_dataset(DATA), cfg.max_per_class, 0))
    base = before + after
    return [
        rate_result(
            f"extract_{size}px/features.extract",
            f"blastscan.features.extract on {n} images (scan + cached pixels + "
            f"infer b64 channels_last + write .npz), {size}px, images/s",
            n,
            [seconds],
            baseline=f"eager_nchw_b32 forward at {size}px (measured before and after)",
            baseline_items=32,
            baseline_seconds=base,
            flops_per_item=flops(size),
            matmul_flops=matmul_flops,
            notes=f"model: {source}; of the {seconds:.1f} s, scan_dataset (hash + decode check of "
            "every file) "
            f"takes about {scan_s:.1f} s (timed separately right after)",
        )
    ]


PARTS = [
    Part("extract", "features.extract over the dataset (warm image cache) vs the naive forward",
         bench_extract, floor=True),
]  # fmt: skip
