"""Does the bundle `blastscan train` leaves flag images unlike the training smears?

    python benchmarks/experiments/ood_unlike.py RUN DATA --out DIR

Writes three folders of images no training smear looks like, from the run's held-out test
images only: the same cells from the dataset's Segmented set (cells cut out onto black, another
acquisition pipeline), grayscale copies, and hue turns of 90 degrees; plus synthetic non-smears
(noise, flat fields, ramps). Then predicts each folder with RUN/bundle, as `blastscan predict
RUN/bundle FOLDER` does, and prints how many were flagged, beside the false-flag rate on the
held-out test images themselves (from the bundle's metrics).
"""

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from blastscan import data as D
from blastscan.bundle import load_bundle
from blastscan.predict import predict_files


def held_out_paths(run: Path, data: str, variant: str) -> list[Path]:
    dataset = D.scan_dataset(data, variant)
    test = D.saved_split(run, D.scan_dataset(data, "Original"))["test"]
    originals = D.scan_dataset(data, "Original")
    wanted = {Path(originals.paths[i]).name for i in test}
    return [Path(p) for p in dataset.paths if Path(p).name in wanted]


def write_sets(run: Path, data: str, out: Path, n: int) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    originals = held_out_paths(run, data, "Original")
    pick = [originals[i] for i in rng.permutation(len(originals))[:n]]
    sets = {name: out / name for name in ("segmented", "grayscale", "hue90", "synthetic")}
    for folder in sets.values():
        folder.mkdir(parents=True, exist_ok=True)
    segmented = held_out_paths(run, data, "Segmented")
    for path in [segmented[i] for i in rng.permutation(len(segmented))[:n]]:
        Image.open(path).save(sets["segmented"] / f"{path.parent.name}-{path.stem}.png")
    for path in pick:
        image = D.open_rgb(path)
        image.convert("L").save(sets["grayscale"] / f"{path.parent.name}-{path.stem}.png")
        hsv = np.asarray(image.convert("HSV")).copy()
        hsv[..., 0] = (hsv[..., 0].astype(np.int16) + 64) % 256  # 90 of 360 degrees
        turned = Image.fromarray(hsv, "HSV").convert("RGB")
        turned.save(sets["hue90"] / f"{path.parent.name}-{path.stem}.png")
    ramp = np.tile(np.linspace(0, 255, 224, dtype=np.uint8), (224, 1))
    for i in range(n // 4):
        noise = rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)
        flat = np.full((224, 224, 3), rng.integers(0, 256, 3), np.uint8)
        for kind, pixels in (("noise", noise), ("flat", flat), ("ramp", np.stack([ramp] * 3, -1))):
            Image.fromarray(pixels).save(sets["synthetic"] / f"{kind}-{i}.png")
    return sets


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run", type=Path)
    parser.add_argument("data")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--n", type=int, default=200, help="images per set")
    args = parser.parse_args()
    bundle = load_bundle(args.run / "bundle")
    rate = bundle.manifest["metrics"].get("ood_false_flags")
    if rate:
        print(
            f"held-out test images (in distribution): {rate['k']} of {rate['n']} flagged "
            f"({rate['value']:.1%}, 95% CI {rate['low']:.1%}-{rate['high']:.1%}; "
            f"target {rate['target']:.0%})"
        )
    for name, folder in write_sets(args.run, args.data, args.out, args.n).items():
        files = sorted(folder.iterdir())
        run = predict_files(bundle, files, batch_size=64)
        flagged = sum(row["ood"] is True for row in run.rows)
        confident = sum(row["ood"] is not True and row["probability"] >= 0.9 for row in run.rows)
        print(
            f"{name}: {flagged} of {len(run.rows)} flagged; "
            f"{confident} given a class at p >= 0.9 unflagged"
        )


if __name__ == "__main__":
    main()
