"""Sharding `extract` and `predict` over the ranks of a torchrun job.

Under `torchrun --nproc-per-node=N [--nnodes=M ...]` every rank runs the same command. Each
takes every world-th image (`shard`, as training splits its batches) and sends its rows to
rank 0 (`gather`), which alone writes the merged result in the single-process order
(`unshard`). Run plainly, a process is rank 0 of 1 and all of this is a no-op.

Training uses the same `Distributed` / `init_distributed` for its DistributedDataParallel
steps, and `configure_threads` for every command that runs the network; training on the CPU
also calls `keep_freed_memory`.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

from blastscan.runtime.device import pick_device

T = TypeVar("T")


def configure_threads() -> None:
    """Use every core for intra-op work, shared fairly between processes of one torchrun node."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    torch.set_num_threads(max(1, (cores or 1) // local_world))


def keep_freed_memory() -> bool:
    """Make glibc keep large freed blocks for reuse instead of returning them to the kernel.

    Why: a training step at 224 px allocates activations and gradients of 100-400 MB each.
    glibc serves blocks that large with mmap and unmaps them on free, so every step
    page-faults gigabytes of fresh, kernel-zeroed memory: 2.7 s of system time per batch of
    64 here, over a third of the step. With mmap and trimming off, freed blocks stay in the
    heap and later steps reuse them (1.3x faster training at 224 px, docs/reference/benchmarks.md).
    The price is memory: the heap keeps its fragments (peak RSS about 1.5x) and the process
    holds its peak until it exits: right for a training run, wrong for a server, so only
    training calls it. No library does this in-process
    (jemalloc and tcmalloc must be preloaded before start), hence mallopt through ctypes.
    Returns whether it applied (glibc on Linux only).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # another C library (musl): leave it alone
        return False
    m_trim_threshold, m_mmap_max = -1, -4  # from glibc's malloc.h
    # A threshold of -1 turns trimming off (man mallopt). The largest positive one, 2 GiB, only
    # raises it: more than 2 GiB freed at the heap's top is still handed back (a test frees
    # 2.4 GB). DarkNet-19 at 224 px, batch 64, trained as fast with either (docs/reference/benchmarks.md).
    return bool(mallopt(m_mmap_max, 0)) and bool(mallopt(m_trim_threshold, -1))


@dataclass(frozen=True)
class Distributed:
    """This process's place in a torchrun job (rank 0 of 1 when run plainly)."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()

    def sum(self, *values: float) -> list[float]:
        """Sum numbers over all ranks (loss, correct, seen), so every rank logs the global figure."""
        if self.world == 1:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64)
        torch.distributed.all_reduce(t)
        return t.tolist()


def init_distributed(requested_device: str | None) -> tuple[Distributed, torch.device]:
    """Join the process group torchrun set up (gloo on CPU, NCCL on GPU), if any."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = pick_device(requested_device)
    if world <= 1:
        return Distributed(), device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Distributed(torch.distributed.get_rank(), torch.distributed.get_world_size()), device


def is_main_process() -> bool:
    """Rank 0, or no torchrun at all; readable before the process group is joined (the CLI
    decides on progress bars and messages first)."""
    return int(os.environ.get("RANK", "0")) == 0


def shard(dist: Distributed, items: Sequence[T]) -> list[T]:
    """This rank's items: every world-th one from its rank, the way training splits batches.

    Interleaving (rather than contiguous blocks) keeps the ranks' loads even when the items are
    sorted by class or folder, whose images may differ in size.
    """
    return list(items[dist.rank :: dist.world])


def gather(dist: Distributed, part: Any) -> list[Any] | None:
    """Every rank's `part` (any picklable object) in rank order on rank 0; None on the others."""
    if dist.world == 1:
        return [part]
    parts: list[Any] | None = [None] * dist.world if dist.main else None
    torch.distributed.gather_object(part, parts, dst=0)
    return parts


def finish(dist: Distributed) -> None:
    """Leave the process group once every rank is done with it.

    A rank that exits with a live gloo group aborts ("terminate called without an active
    exception") and torchrun then reports the whole job as failed.
    """
    if dist.world > 1 and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def unshard(parts: Sequence[Sequence[T]]) -> list[T]:
    """Undo `shard`: item i of rank r's part was item i * world + r of the whole."""
    merged: list[T] = []
    for i in range(max((len(p) for p in parts), default=0)):
        merged.extend(p[i] for p in parts if i < len(p))
    return merged


def unshard_rows(parts: Sequence[Any]) -> Any:
    """`unshard` for NumPy arrays: one (N, ...) array, rows back in the single-process order."""
    import numpy as np

    n = sum(len(p) for p in parts)
    out = np.empty((n, *parts[0].shape[1:]), dtype=parts[0].dtype)
    for rank, part in enumerate(parts):
        out[rank :: len(parts)] = part
    return out
