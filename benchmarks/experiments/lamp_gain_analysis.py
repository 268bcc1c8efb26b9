"""Relit networks against plain ones, paired, per seed and pooled; with an input gain chosen on
validation images. Reads the files benchmarks/experiments/lamp_logits.py writes.

    python benchmarks/experiments/lamp_gain_analysis.py DIR [--plain plain40s] [--relit ft40s lamp160b]
        [--figure PNG]

DIR holds NAME{seed}.logits.npz for every seed of the plain network and of each relit one
(runs/gpu7 from `benchmarks/device.sh lamp 0 1 2 3`; runs/gpu12 from `device.sh lamp160
2 3` and `lamp160 4 5`, with --relit lamp160s). --figure draws every network's test accuracy against brightness.
For each relit network the gain g* is the one of lowest cross-entropy on its own validation
images at x1.0 (images it never trained on; the test images play no part), ties to the gain
nearest 1. Prints, per seed and over all seeds, test accuracy over brightness at g = 1 and
at g*, and McNemar's exact test against the plain network of the same seed at x1.0 (pooled:
discordant counts summed).
"""

import argparse
from pathlib import Path

import numpy as np
from scipy.special import log_softmax
from scipy.stats import binomtest

from blastscan.evaluation import mcnemar

SHOWN = (0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4)


def load(path: Path) -> dict:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    log_p = log_softmax(logits.astype(np.float64), axis=1)
    return float(-log_p[np.arange(len(labels)), labels].mean())


def index(values: np.ndarray, value: float) -> int:
    return int(np.flatnonzero(np.isclose(values, value))[0])


def chosen_gain(run: dict) -> int:
    """Index of the gain of lowest validation cross-entropy at x1.0; ties go to the gain nearest 1."""
    b1 = index(run["brightness"], 1.0)
    losses = [
        cross_entropy(run["val_logits"][b1, j], run["val_labels"]) for j in range(len(run["gains"]))
    ]
    order = sorted(range(len(losses)), key=lambda j: (round(losses[j], 4), -run["gains"][j]))
    return order[0]


def correct(run: dict, b: float, j: int) -> np.ndarray:
    return run["test_logits"][index(run["brightness"], b), j].argmax(1) == run["test_labels"]


def shown(run: dict) -> list[float]:
    return [b for b in SHOWN if np.isclose(run["brightness"], b).any()]


def row(run: dict, j: int) -> str:
    return " ".join(f"{100 * correct(run, b, j).mean():5.1f}" for b in shown(run))


def plot(dir: Path, names: list[str], path: Path) -> None:
    """Test accuracy against brightness, a line per network and seed, the goal's band shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    ax.axvspan(0.7, 1.3, color="0.93", zorder=0)
    ax.axhline(97, color="0.5", lw=0.8, ls="--")
    for name, colour in zip(names, ("tab:red", "tab:blue", "tab:green"), strict=False):
        for k, path_k in enumerate(sorted(dir.glob(f"{name}[0-9]*.logits.npz"))):
            run = load(path_k)
            b = run["brightness"]
            accuracy = [100 * correct(run, x, len(run["gains"]) - 1).mean() for x in b]
            ax.plot(b, accuracy, color=colour, lw=1, alpha=0.8, label=None if k else name)
    ax.set(xlabel="brightness (x)", ylabel="test accuracy (%)", ylim=(0, 101))
    ax.set_title(f"{dir.name}: a line per seed; shaded x0.7-x1.3, dashed 97%", fontsize=10)
    ax.legend(loc="lower center")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"figure: {path}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dir", type=Path)
    parser.add_argument("--plain", default="plain40s")
    parser.add_argument("--relit", nargs="+", default=["ft40s", "lamp160b"])
    parser.add_argument("--figure", type=Path)
    args = parser.parse_args()
    if args.figure:
        plot(args.dir, [args.plain, *args.relit], args.figure)
    print("accuracy % at brightness " + " ".join(f"{b:>5}" for b in SHOWN))
    for relit in args.relit:
        pooled = {"g1": [0, 0], "gstar": [0, 0]}
        for path in sorted(args.dir.glob(f"{relit}[0-9]*.logits.npz")):
            seed = path.name[len(relit) : -len(".logits.npz")]
            plain, run = load(args.dir / f"{args.plain}{seed}.logits.npz"), load(path)
            assert list(plain["test_paths"]) == list(run["test_paths"]), "different test images"
            base = correct(plain, 1.0, 0)
            g1, gs = len(run["gains"]) - 1, chosen_gain(run)
            print(f"\n{relit}{seed} (plain {args.plain}{seed}: {100 * base.mean():.2f}% at x1.0)")
            print(f"  plain        {row(plain, 0)}")
            for label, j in (("g1", g1), ("gstar", gs)):
                test = mcnemar(base, correct(run, 1.0, j))
                pooled[label][0] += test["a_only"]
                pooled[label][1] += test["b_only"]
                worst = min(100 * correct(run, b, j).mean() for b in shown(run) if 0.7 <= b <= 1.3)
                print(
                    f"  gain {run['gains'][j]:.2f}    {row(run, j)}   worst x0.7-1.3 {worst:.1f}; "
                    f"vs plain at x1.0: {test['a_only']} / {test['b_only']}, p = {test['p_value']:.3f}"
                )
        for label, (a_only, b_only) in pooled.items():
            p = binomtest(a_only, a_only + b_only, 0.5).pvalue if a_only + b_only else 1.0
            print(
                f"{relit} pooled, {label}: only plain right {a_only}, only relit right {b_only}, p = {p:.3f}"
            )


if __name__ == "__main__":
    main()
