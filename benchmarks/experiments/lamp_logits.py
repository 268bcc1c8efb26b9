"""Logits of a run's validation and test images under every lamp, shown to the network at every gain.

    python benchmarks/experiments/lamp_logits.py RUN DATA OUT.npz [--gains]

Why: networks trained under every lamp (`--brighten 0.45 --darken 0.45`) score higher on test
images dimmed to x0.8 than on the clean ones, on every seed measured (docs/results.md). If a
network sees best at some gain g, showing it every image multiplied by g (a fixed first
layer, chosen on the validation split, never on the test images) might close its loss at
x1.0. This dumps what that question needs, so the choice and its paired test can be made
offline: logits[b, g, i] for brightness b (the perturbation of `blastscan robustness`, 8-bit
and clipped like a camera) then gain g (in float, as a first layer would), for the run's
validation and test images. Without --gains only g = 1.
"""

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from blastscan import data as D
from blastscan.robustness import brightness
from blastscan.training import load_trained_model

# isort: split
from blastscan.runtime.device import pick_device
from blastscan.runtime.infer import infer

BRIGHTNESS = np.round(np.arange(0.5, 1.451, 0.05), 2)
GAINS = np.round(np.arange(0.6, 1.001, 0.05), 2)


class Gain(torch.nn.Module):
    def __init__(self, gain: float) -> None:
        super().__init__()
        self.gain = gain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gain


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run", type=Path)
    parser.add_argument("data")
    parser.add_argument("out", type=Path)
    parser.add_argument("--gains", action="store_true")
    parser.add_argument("--brightness", type=float, nargs="*", default=list(BRIGHTNESS))
    args = parser.parse_args()
    gains = GAINS if args.gains else np.array([1.0])
    device = pick_device()
    model, meta = load_trained_model(args.run)
    model = model.to(device)
    norm = model.input_norm
    dataset, parts = D.run_split(args.run, args.data, meta)
    images = D.load_images(dataset, meta["image_size"])
    arrays = {"brightness": np.asarray(args.brightness), "gains": gains}
    for part in ("val", "test"):
        rows = parts[part]
        logits = np.zeros(
            (len(args.brightness), len(gains), len(rows), model.num_classes), np.float16
        )
        for i, b in enumerate(args.brightness):
            lit = brightness(images[rows], b)
            for j, g in enumerate(gains):
                model.input_norm = torch.nn.Sequential(Gain(float(g)), norm)
                logits[i, j] = infer(model, lit, batch_size=512, device=device).logits
        model.input_norm = norm
        arrays[f"{part}_logits"] = logits
        arrays[f"{part}_labels"] = dataset.labels[rows]
        arrays[f"{part}_paths"] = np.asarray(
            ["/".join(Path(dataset.samples[k].path).parts[-2:]) for k in rows], dtype=str
        )
    arrays["metrics"] = np.asarray(json.dumps(json.loads((args.run / "metrics.json").read_text())))
    tmp = args.out.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)
    tmp.replace(args.out)
    clean = np.argmax(
        arrays["test_logits"][list(np.isclose(args.brightness, 1)).index(True), -1], 1
    )
    print(
        f"{args.run.name}: test accuracy at x1.0, gain 1: {np.mean(clean == arrays['test_labels']):.4f}"
    )


if __name__ == "__main__":
    main()
