"""Knowledge distillation: a relit student learns the answers of a plain network (the teacher)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from blastscan import data as D
from blastscan.errors import BlastscanError
from blastscan.training.checkpoints import load_trained_model
from blastscan.training.config import TrainConfig
from blastscan.training.splits import Split

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
