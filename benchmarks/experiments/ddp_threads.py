"""Is one 2-thread process or two 1-thread DDP processes faster for a CPU training step?

    .venv/bin/torchrun --nproc-per-node=2 benchmarks/experiments/ddp_threads.py 64 224 4 2
    .venv/bin/python benchmarks/experiments/ddp_threads.py 64 224 4 2      # one process

Arguments: global batch, image size, timed steps, warm-up steps. Prints images/s (rank 0).
"""

import os
import sys
import time

import torch
import torch.distributed as torch_dist
import torch.nn.functional as F

from blastscan.models import darknet19

# isort: split
from blastscan.runtime.distributed import keep_freed_memory

batch, size, steps, warmup = (int(a) for a in sys.argv[1:5])
world = int(os.environ.get("WORLD_SIZE", "1"))
if world > 1:
    torch_dist.init_process_group("gloo")
    torch.set_num_threads(max(1, (os.cpu_count() or 2) // world))
keep_freed_memory()
torch.manual_seed(0)
model = darknet19(4).to(memory_format=torch.channels_last)
local = batch // world
x = torch.rand(local, 3, size, size).contiguous(memory_format=torch.channels_last)
y = torch.randint(0, 4, (local,))
step_model = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-4)


def step() -> None:
    loss = F.cross_entropy(step_model(x), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


for _ in range(warmup):
    step()
times = []
for _ in range(steps):
    if world > 1:
        torch_dist.barrier()
    start = time.perf_counter()
    step()
    times.append(time.perf_counter() - start)
if int(os.environ.get("RANK", "0")) == 0:
    times.sort()
    median = times[len(times) // 2]
    print(
        f"world {world} threads {torch.get_num_threads()} batch {batch} size {size}: "
        f"{batch / median:.2f} images/s (median of {steps} steps, {median:.2f} s/step)"
    )
if world > 1:
    torch_dist.destroy_process_group()
