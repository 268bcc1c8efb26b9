"""One pass over the training images, drawn from (seed, epoch) alone, and its augmentation.

Every shuffle and augmentation of an epoch comes from `epoch_generator(seed, epoch)`, so an
epoch replayed after a resume draws what the uninterrupted run drew.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F

from blastscan import data as D
from blastscan.runtime.distributed import Distributed
from blastscan.runtime.precision import autocast
from blastscan.training.config import RELIGHTING, TrainConfig, image_size_at, learning_rate
from blastscan.training.distill import distillation_loss


def augmentation(config: TrainConfig, generator: torch.Generator) -> Callable:
    """The run's augmentation, drawing from `generator`: what each training batch goes through,
    and what the final batch-norm statistics must see too."""
    return partial(D.augment, generator=generator, **{k: getattr(config, k) for k in RELIGHTING})


def _generator_copy(generator: torch.Generator) -> torch.Generator:
    copy = torch.Generator()
    copy.set_state(generator.get_state())
    return copy


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 100_003 + epoch)


def batches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    order = torch.randperm(n, generator=generator)
    # Drop a last batch of one: batch-norm cannot normalise a single sample.
    return [b for b in order.split(batch_size) if len(b) > 1]


def train_one_epoch(
    model,
    optimizer,
    images,
    labels,
    config,
    epoch,
    device,
    steps_per_epoch,
    progress=None,
    dist: Distributed | None = None,
    teacher: torch.nn.Module | None = None,
):
    """One pass over the training images; under torchrun each rank takes every world-th sample.

    Every rank draws the same global batch and augmentation, then keeps its own slice, so the
    averaged gradient is the one a single process would compute for the global batch. A
    `teacher` sees each image with the same flips and turns but none of the relighting.
    """
    dist = dist or Distributed()
    model.train()
    gen = epoch_generator(config.seed, epoch)
    augment = augmentation(config, gen)
    size = image_size_at(config, epoch)
    total_loss = correct = seen = 0
    for i, idx in enumerate(batches(len(images), config.batch_size, gen)):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(config, epoch * steps_per_epoch + i, steps_per_epoch)
        batch = D.to_float_tensor(images[idx.numpy()], device)
        # The copy draws the same flips and turns; `gen` then goes on as in a run without teacher.
        plain = D.augment(batch, _generator_copy(gen)) if teacher is not None else None
        x = _rank_slice_at_size(augment(batch), dist, size)
        idx = idx[dist.rank :: dist.world]
        y = torch.as_tensor(labels[idx.numpy()], device=device)
        with autocast(device, config.precision):  # weights, BN statistics and loss stay fp32
            logits = model(x)
            loss = F.cross_entropy(logits.float(), y, label_smoothing=config.label_smoothing)
            if teacher is not None:
                with torch.no_grad():
                    taught = teacher(_rank_slice_at_size(plain, dist, size))
                loss = (1 - config.teacher_weight) * loss + config.teacher_weight * (
                    distillation_loss(logits, taught)
                )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.clip_grad_norm:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad_norm)
        optimizer.step()
        total_loss += loss.item() * len(idx)
        correct += (logits.argmax(1) == y).sum().item()
        seen += len(idx)
        if progress:
            progress(len(idx) * dist.world)
    total_loss, correct, seen = dist.sum(total_loss, correct, seen)
    return total_loss / max(seen, 1), correct / max(seen, 1), int(seen)


def _rank_slice_at_size(x: torch.Tensor, dist: Distributed, size: int) -> torch.Tensor:
    """This rank's share of an augmented global batch, resized for progressive resizing."""
    x = x[dist.rank :: dist.world]
    if x.shape[-1] != size:
        x = F.interpolate(
            x, size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )
    return x.contiguous(memory_format=torch.channels_last)
