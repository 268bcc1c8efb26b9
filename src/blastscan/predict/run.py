"""Predicting a bundle on every image under some files and folders, in one process or sharded
over the ranks of a torchrun job."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from blastscan.predict.inputs import collect_images, decoded_chunks

if TYPE_CHECKING:
    from blastscan.bundle import Bundle


@dataclass
class PredictRun:
    """Rows for the images that were read, and (path, reason) for those that were not."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    engine: str = "torch"


def predict_files(
    bundle: Bundle,
    inputs: Sequence[str | Path],
    batch_size: int = 32,
    engine: str = "torch",
    head: str = "auto",
    on_progress: Callable[[int], None] | None = None,
    on_total: Callable[[int], None] | None = None,
) -> PredictRun:
    """Predict every image under `inputs`; unreadable files are listed with the reason."""
    import time

    files, problems = collect_images(inputs)
    if on_total:
        on_total(len(files))
    t0 = time.perf_counter()
    run = _predict_paths(bundle, files, batch_size, engine, head, None, on_progress)
    run.unreadable[:0] = problems
    run.seconds = time.perf_counter() - t0
    return run


def predict_sharded(
    bundle: Bundle,
    inputs: Sequence[str | Path],
    batch_size: int = 32,
    engine: str = "torch",
    head: str = "auto",
    on_progress: Callable[[int], None] | None = None,
    on_total: Callable[[int], None] | None = None,
) -> PredictRun | None:
    """`predict_files` spread over the ranks of a torchrun job (plainly run: the same thing).

    Each rank decodes and predicts every world-th file; rank 0 gets the merged run, in the
    order one process gives, and the other ranks get None: only rank 0 writes results.
    """
    import time

    from blastscan.runtime.distributed import (
        configure_threads,
        finish,
        gather,
        init_distributed,
        shard,
    )

    dist, device = init_distributed(None)
    if dist.world == 1:
        return predict_files(bundle, inputs, batch_size, engine, head, on_progress, on_total)
    configure_threads()  # the node's cores shared between its ranks
    t0 = time.perf_counter()
    files, problems = collect_images(inputs)
    mine = shard(dist, files)
    if on_total:
        on_total(len(mine))
    part = _predict_paths(bundle, mine, batch_size, engine, head, str(device), on_progress)
    parts = gather(dist, part)
    finish(dist)
    if parts is None:
        return None
    run = merge_runs(parts, files, problems)
    run.seconds = time.perf_counter() - t0
    return run


def _predict_paths(
    bundle: Bundle,
    files: Sequence[Path],
    batch_size: int,
    engine: str,
    head: str,
    device: str | None,
    on_progress: Callable[[int], None] | None,
) -> PredictRun:
    """Rows for `files` in their order, and the ones that could not be decoded."""
    run = PredictRun(engine=engine)
    for paths, images, bad in decoded_chunks(files, bundle.image_size, max(4 * batch_size, 64)):
        run.unreadable.extend(bad)
        if on_progress and bad:
            on_progress(len(bad))
        if len(images):
            result = bundle.predict(
                images, batch_size, engine, head, device=device, on_batch=on_progress
            )
            run.rows.extend(result.record(i, str(p)) for i, p in enumerate(paths))
    return run


def merge_runs(
    parts: Sequence[PredictRun], files: Sequence[Path], problems: list[tuple[str, str]]
) -> PredictRun:
    """One run from the ranks' parts: rows and unreadable files back in `files` order."""
    order = {str(p): i for i, p in enumerate(files)}
    rows = sorted((r for part in parts for r in part.rows), key=lambda r: order[r["path"]])
    bad = sorted((u for part in parts for u in part.unreadable), key=lambda u: order[u[0]])
    return PredictRun(rows=rows, unreadable=[*problems, *bad], engine=parts[0].engine)
