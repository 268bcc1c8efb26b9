"""The colour swap: every test image in each class's colour; does the answer follow the colour?

`evaluate_colour_swap` gives every test image each other class's colour (the mean colour of
that class's training images): a network that reads the cells keeps its answer, one that reads
stain and light moves to the colour's class.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch

from blastscan.data import channel_statistics, transfer_colour
from blastscan.errors import BlastscanError
from blastscan.evaluation import proportion
from blastscan.robustness.corruptions import _as_uint8, _check_batch
from blastscan.robustness.evaluate import Predictor, as_predictor

log = logging.getLogger("blastscan.robustness")


def _nchw(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255


COLOURS_FROM = (
    "each class's mean over the run's training images of their channel means and s.d.s "
    "(Reinhard transfer in RGB)"
)


def class_colours(images: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Per class, the mean over its images of their channel means and s.d.s: (K, 2, 3) in
    [0, 1], [k, 0] the mean and [k, 1] the s.d. A class without images is an error."""
    labels = np.asarray(labels)
    missing = [k for k in range(n_classes) if not np.any(labels == k)]
    if missing:
        raise BlastscanError(f"no training images of class(es) {missing} to take a colour from")
    colours = np.empty((n_classes, 2, 3), np.float32)
    for k in range(n_classes):
        mean, std = channel_statistics(_nchw(images[labels == k]))
        colours[k] = (mean.mean(0).flatten().numpy(), std.mean(0).flatten().numpy())
    return colours


def recolour(images: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """uint8 NHWC images each given `colour` ((2, 3): channel means and s.d.s in [0, 1]) by
    `data.transfer_colour`, the transfer `train --recolour` uses, saved at 8 bits."""
    images = _check_batch(images)
    mean, std = (torch.as_tensor(c).view(1, 3, 1, 1) for c in colour)
    moved = transfer_colour(_nchw(images), mean, std)
    return _as_uint8(moved.permute(0, 2, 3, 1).numpy() * 255)


def evaluate_colour_swap(
    model: torch.nn.Module | Predictor,
    images: np.ndarray,
    labels: np.ndarray,
    colours: np.ndarray,
    batch_size: int = 64,
    device: torch.device | str | None = None,
    chunk: int = 512,
) -> dict:
    """Accuracy with every image in each class's colour (`class_colours`), and how often the
    answer becomes the colour's class.

    Returns {"matrix": [[accuracy of class i's images in class j's colour]], "own_colour",
    "other_colour", "follows_the_colour"}: proportions with 95% Wilson intervals, the last two
    over every (image, other class) pair. A network that ignores colour follows it no more
    often than its errors land on one class of three by chance.
    """
    images, labels = _check_batch(images), np.asarray(labels, dtype=np.int64)
    predictor = as_predictor(model, batch_size, device)
    n_classes = len(colours)
    right = np.zeros((n_classes, n_classes), np.int64)  # [true class, colour's class]
    follows = 0
    for k, colour in enumerate(colours):
        pred = np.concatenate(
            [
                predictor(recolour(images[i : i + chunk], colour))[0]
                for i in range(0, len(images), chunk)
            ]
        )
        right[:, k] = np.bincount(labels[pred == labels], minlength=n_classes)
        follows += int(np.sum((pred == k) & (labels != k)))
    counts = np.bincount(labels, minlength=n_classes)
    n_other = int(len(labels) * (n_classes - 1))
    log.info(
        "in another class's colour: %.4f right, %.4f follow the colour",
        (right.sum() - np.trace(right)) / n_other, follows / n_other,
    )  # fmt: skip
    return {
        "matrix": [
            [proportion(int(right[i, j]), int(counts[i])) for j in range(n_classes)]
            for i in range(n_classes)
        ],
        "own_colour": proportion(int(np.trace(right)), len(labels)),
        "other_colour": proportion(int(right.sum() - np.trace(right)), n_other),
        "follows_the_colour": proportion(follows, n_other),
    }


def colour_swap_markdown(swap: dict, classes: Sequence[str]) -> str:
    """The colour swap as a table: rows the images' class, columns the colour given them."""
    rows = [
        "| images of / in the colour of | " + " | ".join(classes) + " |",
        "| --- |" + " ---: |" * len(classes),
    ]
    for name, line in zip(classes, swap["matrix"], strict=True):
        rows.append(f"| {name} | " + " | ".join(f"{100 * a['value']:.1f}%" for a in line) + " |")
    own, other, follows = (swap[k] for k in ("own_colour", "other_colour", "follows_the_colour"))
    return (
        "\n".join(rows)
        + f"\n\nIn their own class's colour {100 * own['value']:.1f}% right; in another class's "
        f"{100 * other['value']:.1f}% ({100 * other['low']:.1f}–{100 * other['high']:.1f}%), "
        f"and {100 * follows['value']:.1f}% of the answers became the colour's class.\n"
    )
