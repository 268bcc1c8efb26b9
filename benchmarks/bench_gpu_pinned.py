"""Does staging batches in pinned memory pay on a GPU? Training images/s at 224 px, paper batch.

    PYTHONPATH=src python benchmarks/bench_gpu_pinned.py      # needs CUDA; prints JSON

`data.to_float_tensor` pins every CUDA batch before its non_blocking copy. This runs the real
`train_one_epoch` (2,280 random images, batch 128, bf16 autocast) with that path and with the
same copy from pageable memory, alternating the two 3 times in one process (GPUs drift), and
reports medians, their ratio, and the host-to-device time of one batch each way.
"""

import json
import statistics
import time

import numpy as np
import torch

from blastscan import data as D
from blastscan import training as T
from blastscan.models import darknet19

PINNED = D.to_float_tensor


def pageable(batch_uint8, device=None):
    """The same conversion without pinning: CUDA copies synchronously through a bounce buffer."""
    t = torch.as_tensor(batch_uint8).to(device, non_blocking=True)
    return t.permute(0, 3, 1, 2).float().div_(255.0).contiguous(memory_format=torch.channels_last)


def epoch_rate(model, optimizer, images, labels, config, device, convert) -> float:
    T.D.to_float_tensor = convert
    try:
        torch.cuda.synchronize()
        start = time.perf_counter()
        _, _, seen = T.train_one_epoch(
            model, optimizer, images, labels, config, 0, device, len(images) // config.batch_size
        )
        torch.cuda.synchronize()
        return seen / (time.perf_counter() - start)
    finally:
        T.D.to_float_tensor = PINNED


def copy_ms(convert, batch, device, reps=50) -> float:
    convert(batch, device)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(reps):
        convert(batch, device)
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / reps * 1000


def main() -> None:
    device = torch.device("cuda")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2280, 224, 224, 3), dtype=np.uint8)
    labels = rng.integers(0, 4, 2280)
    config = T.recipe_config("paper")
    model = darknet19(4).to(device).to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    epoch_rate(model, optimizer, images, labels, config, device, PINNED)  # warm-up (cuDNN autotune)
    rates: dict[str, list[float]] = {"pinned": [], "pageable": []}
    for _ in range(3):
        for name, convert in (("pinned", PINNED), ("pageable", pageable)):
            rates[name].append(
                epoch_rate(model, optimizer, images, labels, config, device, convert)
            )
    batch = images[:128]
    out = {
        "device": torch.cuda.get_device_name(),
        "train_images_per_s": {k: statistics.median(v) for k, v in rates.items()},
        "train_runs": rates,
        "ratio_pinned_over_pageable": statistics.median(rates["pinned"])
        / statistics.median(rates["pageable"]),
        "batch128_to_device_ms": {
            "pinned": copy_ms(PINNED, batch, device),
            "pageable": copy_ms(pageable, batch, device),
        },
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
