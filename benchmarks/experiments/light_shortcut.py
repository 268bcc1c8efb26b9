"""How much of the subtype the light alone gives away, on random and on patient-proxy splits.

    python benchmarks/experiments/light_shortcut.py DATA [--run RUN] [--size 128]

A network trained under every lamp (`--brighten/--darken`) cannot use an image's overall
brightness and colour; a plain one can. If those global statistics predict the class on an
image-level random split (where images of one patient, captured under one light, sit on both
sides) much better than across patient-proxy groups (`data.patient_proxy_groups`, blocks of
consecutive file numbers), part of what the plain network scores at x1.0 is the patient's
light, not the cells. For each set of statistics this prints the 5-fold accuracy of a
standardised logistic regression and 5-NN under StratifiedKFold and StratifiedGroupKFold,
and, with --run, the accuracy on that run's own 70/30 split (trained on its train+val).
"""

import argparse
import json
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, cross_val_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from blastscan import data as D
from blastscan.evaluation import colour_statistics


def light_statistics(images: np.ndarray) -> dict[str, np.ndarray]:
    """Per-image global statistics: some a lamp changes, some it leaves (ratios), and the
    colour of the background alone (the two sets `blastscan reproduce` reports, and more)."""
    reported = colour_statistics(images)
    mean, spread = np.split(reported["whole image: mean and s.d. of RGB"], 2, axis=1)
    background = reported["lighter half of the pixels: mean RGB"]
    chromaticity = mean[:, :2] / mean.sum(1, keepdims=True)
    return {
        "mean luminance (1)": (mean @ np.array([0.299, 0.587, 0.114], np.float32))[:, None],
        "mean RGB (3)": mean,
        "mean and s.d. of RGB (6)": reported["whole image: mean and s.d. of RGB"],
        # unchanged by a lamp (every pixel x s, unclipped): what a relit network may still read
        "chromaticity (2)": chromaticity,
        "chromaticity, s.d./mean (5)": np.concatenate([chromaticity, spread / mean], axis=1),
        "lighter half's mean RGB (3)": background,
        "lighter half's chromaticity (2)": background[:, :2] / background.sum(1, keepdims=True),
    }


def models() -> dict:
    return {
        "logistic": make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
        "5-NN": make_pipeline(StandardScaler(), KNeighborsClassifier(5)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--run", type=Path, help="a training run: score on its own split too")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--out", type=Path, help="write the numbers as JSON here")
    args = parser.parse_args()

    dataset = D.scan_dataset(args.data)
    images = D.load_images(dataset, args.size)
    labels = np.asarray(dataset.labels)
    paths = [s.path for s in dataset.samples]
    groups = D.patient_proxy_groups(paths, labels, "blocks")
    split = D.saved_split(args.run, dataset) if args.run else None
    chance = np.bincount(labels).max() / len(labels)
    print(f"{len(labels)} images; majority class {chance:.1%}; {len(set(groups))} proxy groups")
    luminance = light_statistics(images)["mean luminance (1)"][:, 0]
    for k, name in enumerate(dataset.display_names):
        mine = luminance[labels == k]
        low, high = np.percentile(mine, [10, 90])
        print(
            f"  {name}: mean luminance {mine.mean():.1f} (10th-90th percentile {low:.0f}-{high:.0f})"
        )
    results = {}
    for stats_name, X in light_statistics(images).items():
        for model_name, model in models().items():
            row = {
                "random 5-fold": cross_val_score(
                    model, X, labels, cv=StratifiedKFold(5, shuffle=True, random_state=0)
                ).mean(),
                "group 5-fold": cross_val_score(
                    model, X, labels, groups=groups, cv=StratifiedGroupKFold(5)
                ).mean(),
            }
            if split is not None:
                fit_on = np.concatenate([split["train"], split["val"]])
                model.fit(X[fit_on], labels[fit_on])
                row["run's 30%"] = model.score(X[split["test"]], labels[split["test"]])
            results[f"{stats_name}, {model_name}"] = row
            print(
                f"{stats_name:26s} {model_name:9s} "
                + "  ".join(f"{k} {v:.1%}" for k, v in row.items())
            )
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
