"""Which images does a colour-gated run read with colour, and how well does it read each kind?

    .venv/bin/python benchmarks/experiments/gate_pass_rates.py runs/gated-s0 ../shared/data/all-idb-taleqani
    .venv/bin/python benchmarks/experiments/gate_pass_rates.py runs/gated-s0 $DATA --errors brightness-up:3

Prints the share (%) the gate passes: all held-out images, then per battery kind, severities 1-5
(200 held-out images drawn with seed 0, corruption seed 0). Then, on all held-out images as they
are and under each `--errors KIND:SEVERITY` (corruption seed 1, as `compare --battery --seed 1`),
the CNN's accuracy on the images the gate passes and on those it shuts, and the commonest
confusions among the errors.
"""

import argparse
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from blastscan import data as D
from blastscan.robustness import BATTERY, corrupt
from blastscan.training import load_trained_model

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("run", type=Path)
parser.add_argument("data", type=Path)
parser.add_argument("--errors", nargs="*", default=[], metavar="KIND:SEVERITY")
args = parser.parse_args()

model, meta = load_trained_model(args.run)
model.eval()
dataset, parts = D.run_split(args.run, args.data, meta)
images = D.load_images(dataset, meta["image_size"])
labels = np.asarray(dataset.labels)
test = np.asarray(parts["test"])
sample = test[np.random.default_rng(0).choice(len(test), 200, replace=False)]
torch.set_grad_enabled(False)


def passed(batch: np.ndarray) -> int:
    return round(
        100 * float(model.input_norm.colour_passed(D.to_float_tensor(batch)).float().mean())
    )


def by_gate(name: str, batch: np.ndarray) -> None:
    x = D.to_float_tensor(batch)
    gate = model.input_norm.colour_passed(x).numpy()
    predicted = torch.cat([model(x[i : i + 128]).argmax(1) for i in range(0, len(x), 128)])
    right = predicted.numpy() == labels[test]
    wrong = Counter(
        (dataset.classes[t], dataset.classes[p])
        for t, p in zip(labels[test][~right], predicted.numpy()[~right], strict=True)
    )
    print(
        f"{name}: passed {gate.sum()} ({100 * gate.mean():.1f}%), right on them "
        f"{100 * right[gate].mean():.2f}%; shut {(~gate).sum()}, right on them "
        f"{100 * right[~gate].mean() if (~gate).any() else float('nan'):.2f}%; "
        f"errors among passed / shut {(~right & gate).sum()} / {(~right & ~gate).sum()}; "
        f"commonest (true, read): {wrong.most_common(3)}"
    )


print(f"held-out images ({len(test)}): {passed(images[test])}%")
for kind in BATTERY:
    print(kind, [passed(corrupt(images[sample], kind, s, seed=0)) for s in range(1, 6)])
by_gate("held-out, as they are", images[test])
for item in args.errors:
    kind, severity = item.rsplit(":", 1)
    by_gate(
        f"held-out, {kind} severity {severity}", corrupt(images[test], kind, int(severity), seed=1)
    )
