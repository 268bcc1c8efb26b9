"""Sharding `extract` and `predict` over the ranks of a torchrun job.

Under `torchrun --nproc-per-node=N [--nnodes=M ...]` every rank runs the same command. Each
takes every world-th image (`shard`, as training splits its batches) and sends its rows to
rank 0 (`gather`), which alone writes the merged result in the single-process order
(`unshard`). Run plainly, a process is rank 0 of 1 and all of this is a no-op.

The process-group handling itself is training's `Distributed` / `init_distributed`, reused here.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import torch

if TYPE_CHECKING:
    from blastscan.training import Distributed

T = TypeVar("T")


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
