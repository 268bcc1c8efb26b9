"""Does the OOD pixel check flag a grayscale photograph of a smear? Linear against log saturation.

    python benchmarks/experiments/ood_grayscale.py DATA [--copies DIR]

Fits the one-Gaussian pixel check (`Mahalanobis` on `image_statistics`) on 400 random real
smears at 128 px, sets its threshold at the 99.5th percentile of 200 others (as a bundle does
with q = 0.99), and scores grayscale copies of 50 of those 200, with saturation linear (bundles
made before 2026-11-26) and on a log scale (now). With --copies, also writes the last three smears
of each class and their grayscale copies as PNG, for `blastscan predict BUNDLE DIR`.
"""

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from blastscan import data as D

# isort: split
from blastscan.bundle.ood import Mahalanobis, image_statistics


def gray(images: np.ndarray) -> np.ndarray:
    return np.repeat(images.mean(axis=3, keepdims=True).round().astype(np.uint8), 3, axis=3)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data")
    parser.add_argument("--copies", type=Path)
    args = parser.parse_args()
    dataset = D.scan_dataset(args.data, "Original")
    pick = np.random.default_rng(0).permutation(len(dataset.paths))[:600]
    images = D.load_images(dataset, 128)[pick]
    fit, held = images[:400], images[400:]
    for log_saturation in (False, True):
        fit_stats, held_stats, gray_stats = (
            image_statistics(x, log_saturation=log_saturation) for x in (fit, held, gray(held[:50]))
        )
        check = Mahalanobis.fit(fit_stats, np.zeros(len(fit), dtype=np.int64))
        threshold = np.quantile(check.distances(held_stats), 0.995)
        distances = check.distances(gray_stats)
        print(
            f"{'log' if log_saturation else 'linear'} saturation: threshold {threshold:.2f}; "
            f"grayscale copies {distances.min():.1f}-{distances.max():.1f}, "
            f"{(distances > threshold).mean():.0%} flagged"
        )
    if args.copies:
        args.copies.mkdir(parents=True, exist_ok=True)
        for name in dataset.classes:
            for path in sorted((Path(args.data) / "Original" / name).glob("*.jpg"))[-3:]:
                image = Image.open(path)
                image.save(args.copies / f"colour-{name}-{path.stem}.png")
                image.convert("L").save(args.copies / f"gray-{name}-{path.stem}.png")


if __name__ == "__main__":
    main()
