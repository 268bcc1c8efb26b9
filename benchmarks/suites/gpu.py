"""Suite `gpu`: DarkNet-19 on a CUDA device: inference throughput, and pinned-memory staging.

`gpu-infer`: images/s at 224 px, bf16 autocast channels_last batch 256 against the naive eager
fp32 NCHW batch 32, same process. `gpu-pinned`: `data.to_float_tensor` pins every CUDA batch
before its non_blocking copy; this runs the real `train_one_epoch` (2,280 random images, batch
128, bf16 autocast) with that path and with the same copy from pageable memory, alternating
the two 3 times in one process (GPUs drift), and reports medians, their ratio, and the
host-to-device time of one batch each way. Both skip without CUDA.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch
from benchkit import Context, Part, Result, Skip, darknet, rate_result


def _cuda() -> torch.device:
    if not torch.cuda.is_available():
        raise Skip("no CUDA device")
    return torch.device("cuda")


def _rate_seconds(model, batch: int, dtype, channels_last: bool, steps: int) -> float:
    """Seconds of `steps` forward passes of one batch (after 3 warm-up passes)."""
    device = next(model.parameters()).device
    x = torch.rand(batch, 3, 224, 224, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)
    with torch.inference_mode(), autocast:
        for _ in range(3):
            model(x)
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(steps):
            model(x)
        torch.cuda.synchronize()
    return time.perf_counter() - start


def bench_gpu_infer(ctx: Context) -> list[Result]:
    device = _cuda()
    model = darknet(False).to(device).eval()
    naive = _rate_seconds(model, 32, torch.float32, False, steps=10)
    fast = _rate_seconds(model.to(memory_format=torch.channels_last), 256, torch.bfloat16, True, 20)
    name = torch.cuda.get_device_name()
    ctx.log(f"  gpu-infer on {name}: naive {320 / naive:,.0f}, bf16 {5120 / fast:,.0f} images/s")
    return [
        rate_result(
            "gpu_infer_224px/bf16_channels_last_b256",
            f"forward (inference_mode), bf16 autocast, 224px, batch 256, 20 batches, {name}, "
            "images/s",
            256 * 20,
            [fast],
            baseline="eager_fp32_nchw_b32 (10 batches)",
            baseline_items=32 * 10,
            baseline_seconds=[naive],
        )
    ]


def pageable(batch_uint8, device=None):
    """The same conversion without pinning: CUDA copies synchronously through a bounce buffer."""
    t = torch.as_tensor(batch_uint8).to(device, non_blocking=True)
    return t.permute(0, 3, 1, 2).float().div_(255.0).contiguous(memory_format=torch.channels_last)


def _epoch_rate(model, optimizer, images, labels, config, device, convert) -> float:
    """Training images/s of one epoch with `convert` as the module's batch conversion."""
    from blastscan import training as T

    # patch the name where train_one_epoch looks it up: its module's own, or its `D` module's
    loop = sys.modules[T.train_one_epoch.__module__]
    target = loop if hasattr(loop, "to_float_tensor") else loop.D
    target.to_float_tensor = convert
    try:
        torch.cuda.synchronize()
        start = time.perf_counter()
        _, _, seen = T.train_one_epoch(
            model, optimizer, images, labels, config, 0, device, len(images) // config.batch_size
        )
        torch.cuda.synchronize()
        return seen / (time.perf_counter() - start)
    finally:
        target.to_float_tensor = _PINNED[0]


_PINNED: list = []  # data.to_float_tensor as imported, restored after each patched epoch


def _copy_ms(convert, batch, device, reps: int = 50) -> float:
    convert(batch, device)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(reps):
        convert(batch, device)
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / reps * 1000


def bench_gpu_pinned(ctx: Context) -> list[Result]:
    from blastscan import data as D
    from blastscan import training as T

    device = _cuda()
    _PINNED[:] = [D.to_float_tensor]
    pinned = D.to_float_tensor
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2280, 224, 224, 3), dtype=np.uint8)
    labels = rng.integers(0, 4, 2280)
    config = T.recipe_config("paper")
    model = darknet(True).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    _epoch_rate(model, optimizer, images, labels, config, device, pinned)  # cuDNN autotune
    seconds: dict[str, list[float]] = {"pinned": [], "pageable": []}
    for _ in range(3):
        for name, convert in (("pinned", pinned), ("pageable", pageable)):
            rate = _epoch_rate(model, optimizer, images, labels, config, device, convert)
            seconds[name].append(len(images) / rate)  # whole batches only: close enough
    batch = images[:128]
    copy = {
        "pinned": _copy_ms(pinned, batch, device),
        "pageable": _copy_ms(pageable, batch, device),
    }
    ctx.log(f"  gpu-pinned: {seconds}; batch-128 copy ms {copy}")
    r = rate_result(
        "gpu_train_224px/pinned",
        f"train_one_epoch, paper recipe, 2,280 random images, {torch.cuda.get_device_name()}, "
        "images/s",
        len(images),
        seconds["pinned"],
        baseline="pageable host memory",
        baseline_seconds=seconds["pageable"],
        notes=f"batch-128 host-to-device copy: pinned {copy['pinned']:.2f} ms, "
        f"pageable {copy['pageable']:.2f} ms",
    )
    r.extra["batch128_to_device_ms"] = copy
    return [r]


PARTS = [
    Part("gpu-infer", "CUDA inference images/s: bf16 channels_last b256 vs eager fp32 b32",
         bench_gpu_infer),
    Part("gpu-pinned", "CUDA training images/s with pinned vs pageable batch staging",
         bench_gpu_pinned),
]  # fmt: skip
