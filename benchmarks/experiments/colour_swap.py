"""Does a trained CNN follow the colour or the cells? Recolour each test image like each class.

    python benchmarks/experiments/colour_swap.py DATA RUN [RUN ...] [--out FILE.json]

For every class k, each held-out test image of RUN is given the colour of class k's training
images (Reinhard et al. 2001 in RGB: each channel shifted and scaled so the image's mean and
s.d. become the mean over class k's training images of theirs); the cells stay where they
are. A network that reads cells keeps its answer whatever k is; one that reads colour moves
to k. Prints, per run: clean accuracy; accuracy with every image in its own class's colour;
accuracy in another class's colour (all image x other-class pairs); and how often the answer
becomes that other class ("follows"; chance-level following would be about 1/3 of the errors).
Only the run's training images set the colours; the test images are what gets scored.
"""

import argparse
import json
from pathlib import Path

import numpy as np

from blastscan import data as D
from blastscan.robustness import model_predictor
from blastscan.training import load_trained_model


def channel_statistics(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per image and channel: mean and s.d. of the pixels, (N, 3) each."""
    pixels = images.reshape(len(images), -1, 3).astype(np.float32)
    return pixels.mean(1), pixels.std(1)


def recolour(images: np.ndarray, mean: np.ndarray, spread: np.ndarray) -> np.ndarray:
    """Each image's channels moved to the given mean and s.d. (3,), clipped to 8 bits."""
    own_mean, own_spread = channel_statistics(images)
    x = images.astype(np.float32)
    x = (x - own_mean[:, None, None]) / np.maximum(own_spread[:, None, None], 1e-3)
    x = x * spread + mean
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def class_colours(images: np.ndarray, labels: np.ndarray, n_classes: int) -> list:
    """Per class, the mean over its training images of their channel means and s.d.s."""
    means, spreads = channel_statistics(images)
    return [(means[labels == k].mean(0), spreads[labels == k].mean(0)) for k in range(n_classes)]


def swap(run: Path, data: Path) -> dict:
    model, meta = load_trained_model(run)
    predict = model_predictor(model)
    dataset, indices = D.run_split(run, data, meta)  # scanned once: train sets the colours
    train, test = (dataset.subset(indices[part].tolist()) for part in ("train", "test"))
    images = D.load_images(test, meta["image_size"])
    labels = np.asarray(test.labels)
    colours = class_colours(
        D.load_images(train, meta["image_size"]), np.asarray(train.labels), len(meta["classes"])
    )
    clean = predict(images)[0]
    own, other, follows, n_other = 0, 0, 0, 0
    for k, (mean, spread) in enumerate(colours):
        pred = predict(recolour(images, mean, spread))[0]
        mine, rest = labels == k, labels != k
        own += int((pred[mine] == k).sum())
        other += int((pred[rest] == labels[rest]).sum())
        follows += int((pred[rest] == k).sum())
        n_other += int(rest.sum())
    n = len(labels)
    return {
        "run": str(run),
        "n_test": n,
        "clean": float((clean == labels).mean()),
        "own_class_colour": own / n,
        "other_class_colour": other / n_other,
        "follows_the_colour": follows / n_other,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rows = []
    print(
        "| run | clean | in its own class's colour | in another class's colour | follows the colour |"
    )
    print("|---|---:|---:|---:|---:|")
    for run in args.runs:
        r = swap(run, args.data)
        rows.append(r)
        print(
            f"| {run} | {r['clean']:.1%} | {r['own_class_colour']:.1%} | "
            f"{r['other_class_colour']:.1%} | {r['follows_the_colour']:.1%} |",
            flush=True,
        )
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
