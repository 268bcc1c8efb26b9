"""Where a CPU training step's time goes: per op, and per convolution with its GFLOP/s.

    python benchmarks/experiments/profile_train_step.py [--size 224] [--batch 64]

The step is the one training.py takes on a CPU (channels_last, freed memory kept, SGD with
momentum); two warm-up steps, then two profiled ones. docs/reference/benchmarks.md.
"""

import argparse
import math

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from blastscan.models import darknet19

# isort: split
from blastscan.runtime.distributed import keep_freed_memory

CONV_OPS = ("aten::mkldnn_convolution", "aten::convolution_backward")


def conv_gflop(shapes: list, backward: bool) -> float:
    """2 x the multiply-adds of one call. Every DarkNet-19 convolution has stride 1 and 'same'
    padding, so the output has the input's height and width. Backward computes the weight and
    (but for the first layer, whose input needs no gradient) the input gradient, each as many
    multiply-adds as the forward."""
    inp, weight = (shapes[1], shapes[2]) if backward else (shapes[0], shapes[1])
    passes = 2 if backward and inp[1] != 3 else 1
    return passes * 2 * inp[0] * inp[2] * inp[3] * math.prod(weight) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    keep_freed_memory()
    torch.manual_seed(0)
    model = darknet19(4).to(memory_format=torch.channels_last)
    x = torch.rand(args.batch, 3, args.size, args.size).contiguous(
        memory_format=torch.channels_last
    )
    y = torch.randint(0, 4, (args.batch,))
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-4)

    def step() -> None:
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(2):
        step()
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        step()
        step()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))
    print(f"{'convolution':28s} {'ms/step':>8s} {'GFLOP/s':>8s}  input shapes")
    for event in sorted(
        (e for e in prof.key_averages(group_by_input_shape=True) if e.key in CONV_OPS),
        key=lambda e: -e.self_cpu_time_total,
    ):
        seconds = event.self_cpu_time_total / 1e6 / event.count  # one call
        gflop = conv_gflop(event.input_shapes, event.key == "aten::convolution_backward")
        print(
            f"{event.key:28s} {1e3 * seconds * event.count / 2:8.1f} {gflop / seconds:8.1f}  "
            f"{event.input_shapes[:3]}"
        )


if __name__ == "__main__":
    main()
