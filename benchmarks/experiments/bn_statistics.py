"""A run's test accuracy under brightness with batch-norm statistics over clean vs relit images.

    .venv/bin/python benchmarks/experiments/bn_statistics.py runs/lamp-cpu ../shared/data/all-idb-taleqani

Loads the run's final weights and scores its test images at brightness x0.6, x0.7, x1.0, x1.2
and x1.3 three times: with the statistics saved, recomputed over the clean training images
(what training did at first) and over the training images augmented as the run's config
says (seed 0, batches of 128). It showed that a relit run's statistics must come from relit
images (docs/robustness.md).
"""

import sys
from pathlib import Path

import numpy as np
import torch

from blastscan import data as D
from blastscan import robustness as R
from blastscan.training import (
    TrainConfig,
    augmentation,
    load_trained_model,
    recompute_bn_statistics,
)

run, root = Path(sys.argv[1]), sys.argv[2]
model, meta = load_trained_model(run)
dataset, parts = D.run_split(run, root, meta)
images = D.load_images(dataset, meta["image_size"])
train = images[parts["train"]]
test, labels = images[parts["test"]], dataset.labels[parts["test"]]
torch.set_grad_enabled(False)


def accuracy(x: np.ndarray) -> float:
    pred = [model(D.to_float_tensor(x[i : i + 128])).argmax(1) for i in range(0, len(x), 128)]
    return float((torch.cat(pred).numpy() == labels).mean())


def grid(tag: str) -> None:
    scores = {
        s: accuracy(test if s == 1 else R.brightness(test, s)) for s in (0.6, 0.7, 1, 1.2, 1.3)
    }
    print(tag, {f"x{s}": f"{100 * a:.1f}%" for s, a in scores.items()}, flush=True)


grid("statistics as saved:         ")
recompute_bn_statistics(model, train, 128, torch.device("cpu"))
grid("statistics over clean images:")
relight = augmentation(TrainConfig.from_dict(meta["config"]), torch.Generator().manual_seed(0))
recompute_bn_statistics(model, train, 128, torch.device("cpu"), augment=relight)
grid("statistics over relit images:")
