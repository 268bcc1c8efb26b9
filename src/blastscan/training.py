"""Fine-tuning DarkNet-19 with the paper's recipe (or a faster one), resumable.

Everything random in an epoch (shuffling, augmentation) comes from a generator seeded by
(seed, epoch), and the learning rate is a pure function of the step, so a run resumed from the
checkpoint of epoch e continues exactly as the uninterrupted run would have.
"""

from __future__ import annotations

import json
import logging
import math
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from blastscan import data as D
from blastscan.distributed import (
    Distributed,
    configure_threads,
    init_distributed,
    keep_freed_memory,
)
from blastscan.errors import BlastscanError
from blastscan.features import infer
from blastscan.models import darknet19
from blastscan.models.stain import input_norm_name
from blastscan.outputs import (
    atomic_write,
    atomic_write_json,
    atomic_write_text,
    remove_stale_temporaries,
    to_json,
)

log = logging.getLogger("blastscan.train")

CHECKPOINT_FORMAT = "blastscan-checkpoint-1"
# What a final checkpoint's metadata says of its batch-norm statistics. Before session 3's fix
# they were computed over class-sorted batches and said "population, over the training images";
# before session 4's, over un-augmented images (wrong for runs trained under other lamps).
AUGMENTED_BN_STATISTICS = (
    "population, over the training images augmented as in training, in shuffled batches"
)
SHUFFLED_BN_STATISTICS = "population, over the training images in shuffled batches"
CLASS_SORTED_BN_STATISTICS = "population, over the training images"
RESTART = "train again into a new --out (or delete this run directory)"


@dataclass
class TrainConfig:
    """Hyper-parameters; the defaults are the paper's Table 1."""

    epochs: int = 30
    batch_size: int = 128
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: str = "piecewise"  # "piecewise" (paper: x0.1 every lr_drop_period) or "onecycle"
    lr_drop_period: int = 10
    lr_drop_factor: float = 0.1
    image_size: int = 224
    start_image_size: int | None = None  # progressive resizing from this size up to image_size
    test_size: float = 0.3
    outer_folds: int = 0  # > 0: hold out fold `outer_fold` of a group K-fold instead of 30%
    outer_fold: int = 0
    val_fraction: float = 0.1  # of the training part, for choosing the 'best' checkpoint
    seed: int = 0
    color_jitter: float = 0.0
    brighten: float = 0.0  # > 0: half the images brightened by up to 1 + brighten, clipped
    darken: float = 0.0  # > 0: the other half darkened by down to 1 - darken
    hue: float = 0.0  # > 0: each image's hue rotated by up to +-hue degrees
    recolour: float = 0.0  # > 0: this share of images takes another batch image's colour
    # parameter-free first layer: "none", "stain" (per-image colour standardisation),
    # "whitepoint" (brightness-invariant darkness of red and green) or "darkpoint" (every
    # channel against its own dark level); see models/stain.py
    input_norm: str = "none"
    clip_grad_norm: float | None = None  # MATLAB's default GradientThreshold is Inf: no clipping
    label_smoothing: float = 0.0
    variant: str = "Original"
    pretrained: str | None = None
    # A trained run (or its checkpoint) whose answers on the un-relit image the network also
    # learns to give on the relit one (knowledge distillation); see `load_teacher`.
    teacher: str | None = None
    teacher_weight: float = 0.5  # share of the distillation term in the loss
    max_per_class: int | None = None  # a stratified subset, for quick runs and tests
    compile: bool = False
    device: str | None = None
    recipe: str = "paper"
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        values = {**values, "input_norm": input_norm_name(values)}  # old runs said stain_norm
        return cls(**{k: v for k, v in values.items() if k in names})


# One-cycle at a high peak rate: batch-norm statistics settle as the rate anneals,
# which the piecewise schedule at lr 0.01 from scratch does not give in few epochs.
# Clipping keeps the peak rate from blowing up the loss (seen at lr 0.05 without it).
# 17 epochs at 128 px train in 18.5 min on a 2-core AVX-512 CPU (the 20-minute budget of
# the speed issue): 99.39% on the 30% split, 14 epochs 99.08%; with --val-fraction 0
# 99.59 / 99.90 / 99.39 / 99.39 / 99.49 / 99.80% on seeds 0-5 (pooled 99.59%), a gain over
# the validation slice not shown significant (docs/results.md).
_FAST = dict(
    epochs=17,
    batch_size=64,
    lr=0.05,
    schedule="onecycle",
    image_size=128,
    clip_grad_norm=2.0,
    label_smoothing=0.1,
)

RECIPES: dict[str, dict] = {
    "paper": {},
    "fast": _FAST,
    # The fast recipe under every lamp (half the images brightened up to x1.45, half dimmed
    # down to x0.55), long enough to lose nothing on clean images: on six seeds (H100)
    # >= 98.5% from brightness x0.7 to x1.3 and, at x1.0, 16 images won against 20 lost to
    # the plain fast recipe of 40 epochs, paired (p = 0.62; docs/results.md "Six seeds").
    # 40 epochs hold the brightness range but lose at x1.0 (9 / 0 images, p = 0.004).
    "robust": {**_FAST, "epochs": 160, "brighten": 0.45, "darken": 0.45},
}


def recipe_config(recipe: str, **overrides) -> TrainConfig:
    if recipe not in RECIPES:
        raise BlastscanError(f"unknown recipe {recipe!r}; choose one of {sorted(RECIPES)}")
    base = replace(TrainConfig(), recipe=recipe, **RECIPES[recipe])
    return replace(base, **{k: v for k, v in overrides.items() if v is not None})


def learning_rate(config: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """The rate at a global step: a pure function, so resuming needs no scheduler state."""
    epoch = step // steps_per_epoch
    if config.schedule == "piecewise":
        return config.lr * config.lr_drop_factor ** (epoch // config.lr_drop_period)
    if config.schedule == "onecycle":
        total = config.epochs * steps_per_epoch
        warm = max(1, int(0.25 * total))
        if step < warm:  # cosine warm-up from lr/25
            return (
                config.lr / 25
                + (config.lr - config.lr / 25) * (1 - math.cos(math.pi * step / warm)) / 2
            )
        t = (step - warm) / max(1, total - warm)
        return config.lr * 1e-3 + (config.lr - config.lr * 1e-3) * (1 + math.cos(math.pi * t)) / 2
    raise BlastscanError(f"unknown schedule {config.schedule!r}; use piecewise or onecycle")


def image_size_at(config: TrainConfig, epoch: int) -> int:
    """Progressive resizing: small images early (fast), the full size for the last third."""
    start = config.start_image_size
    if not start or start >= config.image_size:
        return config.image_size
    ramp_end = max(1, int(config.epochs * 2 / 3))
    if epoch >= ramp_end:
        return config.image_size
    size = start + (config.image_size - start) * epoch / ramp_end
    return int(round(size / 32) * 32)


@dataclass
class Split:
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def make_split(dataset: D.Dataset, config: TrainConfig, groups: np.ndarray) -> Split:
    """70/30 train/test split (or one outer fold), then a validation slice of the training part.

    Duplicate groups (exact and near, `data.find_duplicate_groups`) never straddle any of the
    three parts.
    """
    labels = dataset.labels
    if config.outer_folds:
        train, test = outer_fold_split(
            labels, groups, config.outer_folds, config.outer_fold, config.seed
        )
    else:
        train, test = D.stratified_group_split(labels, groups, config.test_size, config.seed)
    val = np.array([], dtype=np.int64)
    if config.val_fraction > 0:
        fit_part, val_part = D.stratified_group_split(
            labels[train], groups[train], config.val_fraction, config.seed + 1
        )
        train, val = train[fit_part], train[val_part]
    return Split(np.sort(train), np.sort(val), np.sort(test))


def outer_fold_split(
    labels, groups, n_folds: int, fold: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Train/test indices of one fold of a stratified group K-fold (the strict protocol's folds)."""
    from sklearn.model_selection import StratifiedGroupKFold

    if not 0 <= fold < n_folds:
        raise BlastscanError(f"outer fold {fold} is out of range for {n_folds} folds")
    largest = int(np.unique(labels, return_counts=True)[1].max(initial=0))
    n_groups = len(np.unique(groups))
    if n_folds < 2 or n_folds > min(largest, n_groups):
        raise BlastscanError(
            f"{n_folds} outer folds do not fit {n_groups} duplicate groups, largest class "
            f"{largest} images; use 2 to {max(2, min(largest, n_groups))} folds"
        )
    cv = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    train, test = list(cv.split(np.zeros(len(labels)), labels, groups))[fold]
    return train, test


def limit_per_class(dataset: D.Dataset, max_per_class: int | None, seed: int) -> D.Dataset:
    if not max_per_class:
        return dataset
    rng = np.random.default_rng(seed)
    keep = []
    for cls in range(len(dataset.classes)):
        idx = np.flatnonzero(dataset.labels == cls)
        keep.extend(rng.permutation(idx)[:max_per_class].tolist())
    return dataset.subset(sorted(keep))


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).parent,
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


# ---------------------------------------------------------------- checkpoints


def save_checkpoint(path: Path, model: torch.nn.Module, optimizer, meta: dict) -> None:
    """Model and optimizer tensors in one safetensors file, metadata in JSON beside it.

    The two files cannot be replaced together, so the tensors' header carries the metadata too
    and is what `load_checkpoint` trusts: a kill between the two writes leaves the JSON one
    checkpoint ahead, never tensors without their epoch. The JSON goes first, so a `final` that
    exists always has its JSON (readers take the classes from it).
    """
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    for i, param in enumerate(optimizer.param_groups[0]["params"]):
        buf = optimizer.state.get(param, {}).get("momentum_buffer")
        if buf is not None:
            tensors[f"optim.{i}.momentum_buffer"] = buf.detach().cpu().contiguous()
    text = to_json({**meta, "format": CHECKPOINT_FORMAT})
    stamp = {"format": CHECKPOINT_FORMAT, "epoch": str(meta["epoch"]), "meta": text}
    atomic_write_text(path.with_suffix(".json"), text)
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=stamp))


def load_checkpoint(path: Path, model: torch.nn.Module, optimizer=None, fix: str = RESTART) -> dict:
    """Restore model (and optimizer) from a checkpoint; returns its metadata.

    The metadata comes from the tensors' header (written with them), or from the JSON beside
    them for checkpoints older than that. A missing, truncated or mismatched checkpoint raises
    BlastscanError ending in `fix`.
    """
    from safetensors import SafetensorError, safe_open

    meta_path = path.with_suffix(".json")
    try:
        with safe_open(str(path), "pt") as handle:
            header = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
        meta = json.loads(header["meta"] if "meta" in header else meta_path.read_text())
    except (OSError, ValueError, SafetensorError) as exc:
        raise BlastscanError(f"{path}: checkpoint missing or damaged ({exc}); {fix}") from exc
    if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
        raise BlastscanError(f"{meta_path}: not a {CHECKPOINT_FORMAT} checkpoint; {fix}")
    if isinstance(meta.get("history"), list):
        meta["history"] = history_floats(meta["history"])
    state = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    expected = model.state_dict()
    wrong = [k for k in expected if k not in state or state[k].shape != expected[k].shape]
    wrong += [k for k in state if k not in expected]
    if wrong:
        raise BlastscanError(
            f"{path}: weights do not fit the model ({len(wrong)} missing, extra or mis-shaped "
            f"tensors, e.g. {wrong[0]}); {fix}"
        )
    model.load_state_dict(state)
    if optimizer is not None:
        params = optimizer.param_groups[0]["params"]
        for i, p in enumerate(params):
            key = f"optim.{i}.momentum_buffer"
            if key in tensors:
                optimizer.state[p]["momentum_buffer"] = tensors[key].to(p.device)
    return meta


# ---------------------------------------------------------------- training


@dataclass
class TrainResult:
    run_dir: Path
    history: list[dict]
    test_metrics: dict
    seconds: float


# The augmentations that change an image's light and colour, hence its batch-norm statistics.
RELIGHTING = ("color_jitter", "brighten", "darken", "hue", "recolour")


def augmentation(config: TrainConfig, generator: torch.Generator) -> Callable:
    """The run's augmentation, drawing from `generator`: what each training batch goes through,
    and what the final batch-norm statistics must see too."""
    return partial(D.augment, generator=generator, **{k: getattr(config, k) for k in RELIGHTING})


# Hinton et al.'s softened targets: at T = 2 the teacher's second choices carry weight.
DISTILL_TEMPERATURE = 2.0


def distillation_loss(
    student: torch.Tensor, teacher: torch.Tensor, temperature: float = DISTILL_TEMPERATURE
) -> torch.Tensor:
    """KL(teacher || student) of the temperature-softened class probabilities, times T^2 so
    its gradients keep their size whatever T is (Hinton, Vinyals and Dean, 2015)."""
    t = temperature
    return F.kl_div(
        F.log_softmax(student.float() / t, 1),
        F.log_softmax(teacher.float() / t, 1),
        log_target=True,
        reduction="batchmean",
    ) * (t * t)


def load_teacher(config: TrainConfig, dataset: D.Dataset, split: Split, device):
    """The network a relit student learns from (`config.teacher`), frozen, in eval mode.

    Why: training under every lamp costs a few images at x1.0 against a plain network
    (docs/results.md). With a teacher, the student is asked, for every relit image, for the
    answer the plain network gives to the same image under its own lamp. The teacher must
    not have trained on any image this run holds out: its answers would carry those images
    into the student. Its split.json proves it; a teacher without one is refused.
    """
    if not config.teacher:
        return None
    path = Path(config.teacher)
    run_dir = path if path.is_dir() else path.parent.parent
    teacher, meta = load_trained_model(path, option="--teacher")
    if list(meta["classes"]) != list(dataset.classes):
        raise BlastscanError(
            f"{path}: the teacher knows classes {meta['classes']}, this data has "
            f"{dataset.classes}; pass a teacher trained on the same classes"
        )
    where = run_dir / "split.json"
    _, key = D.image_index([s.path for s in dataset.samples])
    try:
        trained_on = {key(p) for p in json.loads(where.read_text())["train"]}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BlastscanError(
            f"{where}: missing or damaged ({exc}); pass the teacher's run directory: its "
            "split.json shows what it trained on"
        ) from exc
    held_out = np.concatenate([split.val, split.test])
    leaked = sum(key(dataset.samples[i].path) in trained_on for i in held_out)
    if leaked:
        raise BlastscanError(
            f"{path}: the teacher trained on {leaked} images this run holds out "
            "(validation or test); train it with the same --seed on the same data"
        )
    teacher.requires_grad_(False)
    return teacher.to(device).eval()


def _generator_copy(generator: torch.Generator) -> torch.Generator:
    copy = torch.Generator()
    copy.set_state(generator.get_state())
    return copy


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 100_003 + epoch)


def _batches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
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
    gen = _epoch_generator(config.seed, epoch)
    augment = augmentation(config, gen)
    size = image_size_at(config, epoch)
    total_loss = correct = seen = 0
    for i, idx in enumerate(_batches(len(images), config.batch_size, gen)):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(config, epoch * steps_per_epoch + i, steps_per_epoch)
        batch = D.to_float_tensor(images[idx.numpy()], device)
        # The copy draws the same flips and turns; `gen` then goes on as in a run without teacher.
        plain = D.augment(batch, _generator_copy(gen)) if teacher is not None else None
        x = _rank_slice_at_size(augment(batch), dist, size)
        idx = idx[dist.rank :: dist.world]
        y = torch.as_tensor(labels[idx.numpy()], device=device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
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


def evaluate_logits(model, images, labels, batch_size, device) -> tuple[float, float, np.ndarray]:
    out = infer(model, images, batch_size=batch_size, device=device)
    logits = torch.from_numpy(out.logits)
    loss = F.cross_entropy(logits, torch.from_numpy(labels)).item() if len(labels) else float("nan")
    pred = out.logits.argmax(1)
    return loss, float((pred == labels).mean()) if len(labels) else float("nan"), pred


def prepare_run_dir(out: Path, resume: bool) -> None:
    """Refuse to overwrite a run; drop the temp files of writes that a kill cut short."""
    last = out / "checkpoints" / "last.safetensors"
    if out.exists() and last.exists() and not resume:
        raise BlastscanError(
            f"{out}: already holds a training run; pass --resume or choose another --out"
        )
    remove_stale_temporaries(out)
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    (out / "figures").mkdir(exist_ok=True)


def _add_log_file(out: Path) -> logging.Handler:
    handler = logging.FileHandler(out / "train.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    return handler


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
    (`distributed.keep_freed_memory`: 1.3x faster steps, the peak memory stays reserved).
    """
    out = Path(out)
    # Killed before its first checkpoint, a run has nothing to resume: it starts again.
    resume = resume and (out / "checkpoints" / "last.safetensors").exists()
    dist, device = init_distributed(config.device)
    if not dist.main:
        dist.barrier()  # wait until rank 0 has checked and created the run directory
        return _train(data_dir, out, config, resume, cache_dir, False, dataset, dist, device)
    prepare_run_dir(out, resume)
    handler = _add_log_file(out)
    dist.barrier()
    try:
        return _train(
            data_dir, out, config, resume, cache_dir, show_progress, dataset, dist, device
        )
    finally:
        log.removeHandler(handler)
        handler.close()


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
    dataset = dataset or D.scan_dataset(data_dir, config.variant)
    dataset = limit_per_class(dataset, config.max_per_class, config.seed)
    images = D.load_images(dataset, config.image_size, cache_dir)
    if resume:  # a resumed run goes on with its own split, even where the splitting rule changed
        split = Split(**D.saved_split(out, dataset, fix=RESTART))
    else:
        groups = D.find_duplicate_groups(dataset, cache_dir, images)
        split = make_split(dataset, config, groups)
        if dist.main:
            _write_run_facts(out, config, dataset, groups, split)
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
    steps_per_epoch = len(_batches(len(train_images), config.batch_size, _epoch_generator(0, 0)))
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
                model, images[split.val], labels[split.val], 2 * config.batch_size, device
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
            augment=augmentation(config, _epoch_generator(config.seed, config.epochs)),
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
    from blastscan.bundle import write_bundle

    # A CNN-only bundle; `blastscan bundle RUN --data DIR` adds the OOD detector and classifier.
    write_bundle(
        out / "bundle", model, {**common, "history": history}, metrics=test_metrics, overwrite=True
    )
    log.info(
        "test accuracy (final epoch, %d held-out images): %.4f",
        len(split.test),
        test_metrics["accuracy"],
    )
    return TrainResult(out, history, test_metrics, seconds)


@torch.no_grad()
def recompute_bn_statistics(
    model,
    images: np.ndarray,
    batch_size: int,
    device,
    seed: int = 0,
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> None:
    """Batch-norm statistics over the whole training set, as MATLAB's trainNetwork does at the end.

    Running averages lag far behind the weights at high learning rates (few steps per epoch);
    population statistics make the final network's eval mode match what it learned. The
    batches must be shuffled like training batches: the images are stored class by class, and
    one-class batches normalise each layer by that class's own statistics, so every deeper
    layer's averages came out wrong (a 99.1% network scored 93.9% on its test images).
    `augment` shows them as training did: a network trained under dimmed and brightened
    lamps normalises by the statistics of that mix, and clean-image statistics cost it 30 pp
    at brightness x0.6 (docs/robustness.md).
    """
    from torch.optim.swa_utils import update_bn

    order = np.random.default_rng(seed).permutation(len(images))
    batches = (
        (augment or (lambda x: x))(D.to_float_tensor(images[order[i : i + batch_size]], device))
        for i in range(0, len(images), batch_size)
    )
    update_bn(batches, model, device=device)
    model.eval()


def _write_run_facts(
    out: Path, config: TrainConfig, dataset: D.Dataset, groups, split: Split
) -> None:
    """What a reader needs to know what was trained on what: config, data, manifest, split."""
    atomic_write_json(out / "config.json", asdict(config))
    atomic_write_json(
        out / "dataset.json", {**D.summary(dataset), "duplicate_groups": D.group_summary(groups)}
    )
    D.write_manifest(dataset, out / "manifest.csv")
    val = [dataset.samples[i].path for i in split.val]
    D.save_split(out / "split.json", dataset, split.train, split.test, val=val, seed=config.seed)


def write_history(out: Path, history: list[dict]) -> None:
    atomic_write_json(out / "history.json", history)
    keys = list(history[0])
    lines = [",".join(keys)] + [",".join(f"{h[k]}" for k in keys) for h in history]
    atomic_write_text(out / "history.csv", "\n".join(lines) + "\n")


def final_test_metrics(model, images, labels, split, dataset, config, device) -> dict:
    """Confusion matrix and per-class precision/recall/F1 on the held-out 30%, final epoch."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    _, acc, pred = evaluate_logits(
        model, images[split.test], labels[split.test], 2 * config.batch_size, device
    )
    y = labels[split.test]
    k = len(dataset.classes)
    p, r, f, s = precision_recall_fscore_support(y, pred, labels=range(k), zero_division=0)
    return {
        "split": "held-out 30% (duplicate-aware), final epoch's weights",
        "n_test": len(y),
        "accuracy": acc,
        "classes": dataset.display_names,
        "confusion_matrix": confusion_matrix(y, pred, labels=range(k)).tolist(),
        "per_class": {
            name: {
                "precision": float(p[i]),
                "recall": float(r[i]),
                "f1": float(f[i]),
                "support": int(s[i]),
            }
            for i, name in enumerate(dataset.display_names)
        },
    }


def history_floats(history: list[dict]) -> list[dict]:
    """History rows with JSON's null (a NaN when written, e.g. no validation split) as NaN again."""
    return [
        {k: math.nan if v is None else v for k, v in row.items()} if isinstance(row, dict) else row
        for row in history
    ]


def plot_training_curves(history: list[dict], figures: Path) -> dict[str, Path]:
    """The paper's Figure 3 (accuracy) and Figure 4 (loss) against epoch."""
    history = history_floats(history)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    paths = {}
    for key, title, name in (
        ("accuracy", "Accuracy", "accuracy.png"),
        ("loss", "Loss", "loss.png"),
    ):
        fig, ax = plt.subplots(figsize=(6, 3.6), dpi=120)
        ax.plot(epochs, [h[f"train_{key}"] for h in history], marker="o", ms=3, label="training")
        if any(not math.isnan(h[f"val_{key}"]) for h in history):
            ax.plot(
                epochs, [h[f"val_{key}"] for h in history], marker="s", ms=3, label="validation"
            )
        ax.set(xlabel="epoch", ylabel=key, title=f"DarkNet-19 training {title.lower()}")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        path = figures / name
        atomic_write(path, lambda tmp, fig=fig: fig.savefig(tmp, format="png"))
        plt.close(fig)
        paths[key] = path
    return paths


def load_trained_model(run_or_checkpoint: str | Path, which: str = "final", option: str = ""):
    """A trained DarkNet-19 and its checkpoint metadata, from a run directory or a checkpoint.

    'final' is the last epoch with population batch-norm statistics; an interrupted run has
    only 'last' (and 'best'), which is used instead. `option` is the caller's flag for the run
    (e.g. "--model"), named in the error for a path that is not a run; commands that take the
    run as an argument leave it empty.
    """
    path = Path(run_or_checkpoint)
    ckpt = checkpoint_path(path, which, option)

    fix = "restore the run's checkpoints/ folder, or retrain with blastscan train"
    try:
        saved = json.loads(ckpt.with_suffix(".json").read_text())
        classes = saved["classes"]
        if not isinstance(classes, list) or len(classes) < 2:
            raise ValueError(f"classes is {classes!r}")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        meta_path = ckpt.with_suffix(".json")
        raise BlastscanError(f"{meta_path}: missing or damaged metadata ({exc}); {fix}") from exc
    model = darknet19(len(classes), input_norm=input_norm_name(saved.get("config")))
    meta = load_checkpoint(ckpt, model, fix=fix)
    stale = _stale_bn_statistics(meta)
    if stale:
        log.warning(
            "%s: its batch-norm statistics were computed over %s, which costs accuracy "
            "(docs/results.md, 'Correction'); to recompute them: delete the run's "
            "checkpoints/final.* and run blastscan train --data DIR --out RUN --resume",
            ckpt,
            stale,
        )
    return model.to(memory_format=torch.channels_last).eval(), meta


def checkpoint_path(path: Path, which: str = "final", option: str = "") -> Path:
    """The checkpoint file to load; when a run lacks the one asked for, say which it has."""
    folder = path / "checkpoints"
    ckpt = folder / f"{which}.safetensors" if path.is_dir() else path
    if path.is_dir() and which == "final" and not ckpt.is_file():
        ckpt = folder / "last.safetensors"
    if ckpt.is_file():
        return ckpt
    have = (
        sorted(p.stem for p in folder.glob("*.safetensors") if not p.name.startswith("."))
        if path.is_dir() and folder.is_dir()
        else []
    )
    if not have:
        flag = f" ({option})" if option else ""
        raise BlastscanError(f"{ckpt}: no checkpoint there; pass a training run directory{flag}")
    if which == "final":  # the default: there is no choice to offer the caller
        raise BlastscanError(
            f"{path}: has no final or last checkpoint, only {', '.join(have)}; "
            "resume or retrain it with blastscan train"
        )
    if which == "best" and _validation_fraction(path) == 0:
        raise BlastscanError(
            f"{path}: has no best checkpoint (trained with --val-fraction 0: no validation split "
            f"to pick it); choose one of {', '.join(have)} with --checkpoint"
        )
    raise BlastscanError(
        f"{path}: has checkpoints {', '.join(have)}, no {which}; "
        "choose one of them with --checkpoint"
    )


def _validation_fraction(run: Path) -> float | None:
    """The run's --val-fraction from its config.json; None when unreadable."""
    try:
        return float(json.loads((run / "config.json").read_text())["val_fraction"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _stale_bn_statistics(meta: dict) -> str | None:
    """What was wrong with a final checkpoint's population statistics, if anything."""
    statistics = meta.get("bn_statistics")
    if statistics == CLASS_SORTED_BN_STATISTICS:
        return "class-sorted batches"
    config = meta.get("config") or {}
    relit = any(config.get(k, 0) for k in RELIGHTING)
    if statistics == SHUFFLED_BN_STATISTICS and relit:
        return "un-augmented images although training changed their light and colour"
    return None
