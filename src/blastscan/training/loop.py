"""A whole training run (`train`): data, split, epochs, checkpoints, final statistics, metrics.

Everything random in an epoch (shuffling, augmentation) comes from a generator seeded by
(seed, epoch), and the learning rate is a pure function of the step, so a run resumed from the
checkpoint of epoch e continues exactly as the uninterrupted run would have.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from blastscan import data as D
from blastscan.errors import BlastscanError
from blastscan.models import darknet19
from blastscan.models.input_norm import fit_input_norm, input_norm_learns
from blastscan.outputs import atomic_write_json
from blastscan.runtime.distributed import configure_threads, init_distributed, keep_freed_memory
from blastscan.training.batchnorm import recompute_bn_statistics
from blastscan.training.checkpoints import RESTART, load_checkpoint, save_checkpoint
from blastscan.training.config import (
    AUGMENTED_BN_STATISTICS,
    TrainConfig,
    image_size_at,
    learning_rate,
)
from blastscan.training.distill import load_teacher
from blastscan.training.epoch import augmentation, batches, epoch_generator, train_one_epoch
from blastscan.training.evaluate import evaluate_logits, final_test_metrics
from blastscan.training.history import plot_training_curves, write_history
from blastscan.training.rundir import add_log_file, git_commit, prepare_run_dir, write_run_facts
from blastscan.training.splits import Split, limit_per_class, make_split

log = logging.getLogger("blastscan.train")


@dataclass
class TrainResult:
    run_dir: Path
    history: list[dict]
    test_metrics: dict
    seconds: float


def train(
    data_dir: str | Path,
    out: str | Path,
    config: TrainConfig,
    resume: bool = False,
    cache_dir: Path | None = None,
    show_progress: bool = True,
    dataset: D.Dataset | None = None,
) -> TrainResult:
    """Train DarkNet-19 on a dataset folder and leave a complete, readable run directory.

    Under `torchrun` this trains with DistributedDataParallel; rank 0 alone writes files.
    On a CPU it also sets glibc to keep freed memory for the rest of the process
    (`runtime.distributed.keep_freed_memory`: 1.3x faster steps, the peak memory stays reserved).
    """
    out = Path(out)
    # Killed before its first checkpoint, a run has nothing to resume: it starts again.
    resume = resume and (out / "checkpoints" / "last.safetensors").exists()
    dist, device = init_distributed(config.device)
    if not config.precision_reason:  # a wrong --precision fails before the run directory exists
        from blastscan.runtime.precision import resolve_precision

        resolve_precision(config.precision, device)
    if not dist.main:
        dist.barrier()  # wait until rank 0 has checked and created the run directory
        return _train(data_dir, out, config, resume, cache_dir, False, dataset, dist, device)
    prepare_run_dir(out, resume)
    handler = add_log_file(out)
    dist.barrier()
    try:
        return _train(
            data_dir, out, config, resume, cache_dir, show_progress, dataset, dist, device
        )
    finally:
        log.removeHandler(handler)
        handler.close()


def _with_precision(config: TrainConfig, device: torch.device) -> TrainConfig:
    """The config with the precision chosen for `device`, logged with the reason."""
    from dataclasses import replace

    from blastscan.runtime.precision import resolve_precision

    if config.precision_reason:  # a resumed run: the format it started in
        log.info("precision %s (%s; resumed)", config.precision, config.precision_reason)
        return config
    chosen = resolve_precision(config.precision, device)
    log.info("precision %s (%s; %s)", chosen.name, chosen.reason, chosen.capability.describe())
    return replace(config, precision=chosen.name, precision_reason=chosen.reason)


def _train(
    data_dir, out, config, resume, cache_dir, show_progress, dataset, dist, device
) -> TrainResult:
    configure_threads()
    if device.type == "cpu":
        keep_freed_memory()
    if resume:
        import json

        try:
            config = TrainConfig.from_dict(json.loads((out / "config.json").read_text()))
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            where = out / "config.json"
            raise BlastscanError(f"{where}: missing or damaged ({exc}); {RESTART}") from exc
    config = _with_precision(config, device)
    dataset = dataset or D.scan_dataset(data_dir, config.variant)
    dataset = limit_per_class(dataset, config.max_per_class, config.seed)
    images = D.load_images(dataset, config.image_size, cache_dir)
    if resume:  # a resumed run goes on with its own split, even where the splitting rule changed
        split = Split(**D.saved_split(out, dataset, fix=RESTART))
    else:
        groups = D.find_duplicate_groups(dataset, cache_dir, images)
        split = make_split(dataset, config, groups)
        if dist.main:
            write_run_facts(out, config, dataset, groups, split)
    log.info(
        "data: %d images, %d train / %d val / %d test, device %s, %d process(es)",
        len(dataset.samples),
        len(split.train),
        len(split.val),
        len(split.test),
        device,
        dist.world,
    )

    labels = dataset.labels
    teacher = load_teacher(config, dataset, split, device)
    torch.manual_seed(config.seed)  # the initial weights are part of the run's reproducibility
    model = darknet19(len(dataset.classes), config.pretrained, config.input_norm).to(device)
    model = model.to(memory_format=torch.channels_last)
    if not resume and input_norm_learns(model):  # a resumed run's gate is in its checkpoint
        fit_input_norm(
            model,
            D.to_float_tensor(images[split.train], device),
            labels[split.train],
            quantile=config.gate_quantile,
        )
        log.info("colour gate fitted on the %d training images", len(split.train))
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    step_model: torch.nn.Module = model
    if dist.world > 1:
        step_model = torch.nn.parallel.DistributedDataParallel(model)
    if config.compile:
        step_model = torch.compile(step_model)

    history: list[dict] = []
    start_epoch, best_acc = 0, -1.0
    last_ckpt = out / "checkpoints" / "last.safetensors"
    if resume:
        meta = load_checkpoint(last_ckpt, model, optimizer)
        history, start_epoch, best_acc = (
            meta["history"],
            meta["epoch"] + 1,
            meta.get("best_val_accuracy", -1.0),
        )
        log.info("resumed from epoch %d", start_epoch)

    train_images, train_labels = images[split.train], labels[split.train]
    steps_per_epoch = len(batches(len(train_images), config.batch_size, epoch_generator(0, 0)))
    t_start = time.perf_counter() - sum(h["seconds"] for h in history)
    common = {
        "classes": dataset.classes,
        "display_names": dataset.display_names,
        "image_size": config.image_size,
        "input": "RGB in [0,1], NCHW, no mean/std normalisation",
        "git_commit": git_commit(),
        "config": asdict(config),
    }

    from blastscan.progress import progress_bar

    with progress_bar(show_progress) as bar:
        task = bar.add_task("train", total=(config.epochs - start_epoch) * len(train_images))
        for epoch in range(start_epoch, config.epochs):
            t0 = time.perf_counter()
            tr_loss, tr_acc, seen = train_one_epoch(
                step_model,
                optimizer,
                train_images,
                train_labels,
                config,
                epoch,
                device,
                steps_per_epoch,
                lambda n: bar.advance(task, n),
                dist,
                teacher,
            )
            train_seconds = time.perf_counter() - t0
            if not dist.main:
                continue
            val_loss, val_acc, _ = evaluate_logits(
                model,
                images[split.val],
                labels[split.val],
                2 * config.batch_size,
                device,
                config.precision,
            )
            row = {
                "epoch": epoch + 1,
                "lr": learning_rate(config, epoch * steps_per_epoch, steps_per_epoch),
                "image_size": image_size_at(config, epoch),
                "train_loss": tr_loss,
                "train_accuracy": tr_acc,
                "val_loss": val_loss,
                "val_accuracy": val_acc,
                "seconds": time.perf_counter() - t0,
                "train_images_per_second": seen / train_seconds,
            }
            history.append(row)
            log.info(
                "epoch %d/%d %s",
                epoch + 1,
                config.epochs,
                {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()},
            )
            bar.update(
                task,
                description=f"epoch {epoch + 1}/{config.epochs} loss {tr_loss:.3f} val {val_acc:.3f}",
            )
            meta = {**common, "epoch": epoch, "history": history}
            if len(split.val) and val_acc > best_acc:
                best_acc = val_acc
                save_checkpoint(
                    out / "checkpoints" / "best.safetensors",
                    model,
                    optimizer,
                    {**meta, "picked_on": "validation split (part of the 70%)"},
                )
            meta["best_val_accuracy"] = best_acc
            save_checkpoint(last_ckpt, model, optimizer, meta)
            write_history(out, history)

    seconds = time.perf_counter() - t_start
    if dist.world > 1:  # every rank must hold the same weights: DDP kept them in sync
        checksum = sum(p.double().sum().item() for p in model.parameters())
        print(f"rank {dist.rank} weights checksum {checksum:.12e}", file=sys.stderr, flush=True)
    if not dist.main:
        return TrainResult(out, history, {}, seconds)
    if history:  # again: a kill may have come between the last checkpoint and its history
        write_history(out, history)
    if not (out / "checkpoints" / "final.safetensors").exists():
        recompute_bn_statistics(
            model,
            train_images,
            2 * config.batch_size,
            device,
            config.seed,
            augment=augmentation(config, epoch_generator(config.seed, config.epochs)),
        )
        save_checkpoint(
            out / "checkpoints" / "final.safetensors",
            model,
            optimizer,
            {
                **common,
                "epoch": config.epochs - 1,
                "history": history,
                "bn_statistics": AUGMENTED_BN_STATISTICS,
            },
        )
    else:
        load_checkpoint(out / "checkpoints" / "final.safetensors", model)
    test_metrics = final_test_metrics(model, images, labels, split, dataset, config, device)
    test_metrics["train_seconds"] = seconds
    test_metrics["train_images_per_second_mean"] = (
        float(np.mean([h["train_images_per_second"] for h in history])) if history else None
    )
    atomic_write_json(out / "metrics.json", test_metrics)
    plot_training_curves(history, out / "figures")
    log.info(
        "test accuracy (final epoch, %d held-out images): %.4f",
        len(split.test),
        test_metrics["accuracy"],
    )
    return TrainResult(out, history, test_metrics, seconds)
