"""Which images does a colour-gated run read with colour: its held-out images, and 200 of them
under each kind and severity of the shift battery?

    .venv/bin/python benchmarks/experiments/gate_pass_rates.py runs/gated-s0 ../shared/data/all-idb-taleqani

Prints the share (%) the gate passes: all held-out images, then per battery kind, severities 1-5
(200 held-out images drawn with seed 0, corruption seed 0).
"""

import sys
from pathlib import Path

import numpy as np
import torch

from blastscan import data as D
from blastscan.robustness import BATTERY, corrupt
from blastscan.training import load_trained_model

run, root = Path(sys.argv[1]), sys.argv[2]
model, meta = load_trained_model(run)
dataset, parts = D.run_split(run, root, meta)
images = D.load_images(dataset, meta["image_size"])
test = np.asarray(parts["test"])
sample = test[np.random.default_rng(0).choice(len(test), 200, replace=False)]
torch.set_grad_enabled(False)


def passed(batch: np.ndarray) -> int:
    return round(
        100 * float(model.input_norm.colour_passed(D.to_float_tensor(batch)).float().mean())
    )


print(f"held-out images ({len(test)}): {passed(images[test])}%")
for kind in BATTERY:
    print(kind, [passed(corrupt(images[sample], kind, s, seed=0)) for s in range(1, 6)])
