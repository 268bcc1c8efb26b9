"""Time a full fscmrmr ranking (1000 features, 3256 samples) and measure the estimators' bias.

Synthetic data shaped like the DarkNet-19 deep features: non-negative (ReLU of a sparse factor
model, so features are correlated in groups) with a 4-class signal in the factors, class sizes
as in the dataset. If runs/full/features.npz exists (keys X, y) it is ranked too. Figure 5 of
each ranking is written next to the JSON.

    .venv/bin/python benchmarks/bench_mrmr.py [--out runs/bench/bench_mrmr.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from blastscan.selection import (
    MRMR,
    AdaptiveMI,
    PluginMI,
    adaptive_relevance,
    equiprobable_bins,
    plot_mrmr_scores,
    plugin_relevance,
)

CLASS_SIZES = (504, 985, 963, 804)  # Benign, Early Pre-B, Pre-B, Pro-B: 3256 images
REAL = Path("runs/full/features.npz")


def synthetic_features(
    n_factors: int = 40,
    density: float = 0.1,
    noise: tuple = (0.5, 3.0),
    n_features: int = 1000,
    seed: int = 0,
):
    """(X, y): ReLU(factors @ sparse loadings + noise), factors shifted by class."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(len(CLASS_SIZES)), CLASS_SIZES)
    class_means = rng.normal(0, 0.6, (len(CLASS_SIZES), n_factors))
    factors = rng.normal(size=(len(y), n_factors)) + class_means[y]
    sparse = rng.random((n_factors, n_features)) < density
    loadings = rng.normal(size=(n_factors, n_features)) * sparse
    scale = rng.uniform(*noise, n_features)
    X = np.maximum(factors @ loadings + rng.normal(size=(len(y), n_features)) * scale, 0)
    return X.astype(np.float32), y


def linear_head_features(n_hidden: int = 1024, n_features: int = 1000, seed: int = 0):
    """(X, y) like DarkNet-19's conv19 on pooled conv18: a random linear map of non-negative,
    class-dependent hidden features (conv19 has a linear activation)."""
    hidden, y = synthetic_features(
        n_factors=50, density=0.2, noise=(1.0, 1.0), n_features=n_hidden, seed=seed
    )
    weights = np.random.default_rng(seed + 1).normal(size=(n_hidden, n_features))
    return (hidden @ weights / np.sqrt(n_hidden)).astype(np.float32), y


def time_fit(X: np.ndarray, y: np.ndarray, threshold: float = 0.25, figure: Path | None = None):
    """Wall and CPU time of MRMR(threshold).fit, what it selected, and optionally Figure 5."""
    wall, cpu = time.perf_counter(), time.process_time()
    sel = MRMR(threshold=threshold).fit(X, y)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    scores = sel.scores_
    if figure is not None:
        plot_mrmr_scores(scores, threshold, figure)
    return {
        "shape": list(X.shape),
        "seconds": round(wall, 2),
        "cpu_seconds": round(cpu, 2),
        "threshold": threshold,
        "n_selected": int(sel.get_support().sum()),
        "n_zero_relevance": int((sel.relevance_ <= 0).sum()),
        "n_inf_scores": int(np.isinf(scores).sum()),
        "first_ten": sel.ranking_[:10].tolist(),
    }


def bias(n: int = 3256, pairs: int = 50, seed: int = 1) -> dict:
    """MI in nats of independent and of nearly copied normals, and of noise with a 4-class y,
    under both estimators (truth: 0, about 2.3 and 0)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 1))
    indep = rng.normal(size=(n, pairs))
    copy = z + 0.1 * rng.normal(size=(n, 1))  # true I = 0.5 ln(1 + 100) = 2.31 nats
    bins = equiprobable_bins(np.hstack([z, copy, indep]))
    others = np.arange(1, pairs + 2)
    y = rng.integers(0, 4, n)
    out = {"n": n, "pairs": pairs}
    for name, mi in (("adaptive", AdaptiveMI(bins)), ("plugin", PluginMI(bins))):
        values = mi(0, others)
        out[name] = {
            "independent_mean": round(float(values[1:].mean()), 4),
            "independent_max": round(float(values[1:].max()), 4),
            "near_copy": round(float(values[0]), 4),
        }
    noise = equiprobable_bins(rng.normal(size=(n, pairs)))
    out["adaptive"]["noise_relevance_mean"] = round(float(adaptive_relevance(noise, y).mean()), 4)
    out["plugin"]["noise_relevance_mean"] = round(float(plugin_relevance(noise, y).mean()), 4)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/bench/bench_mrmr.json"))
    args = parser.parse_args()
    result = {
        "machine": f"{platform.processor() or platform.machine()}, "
        f"{len(__import__('os').sched_getaffinity(0))} cores"
    }
    result["bias"] = bias()
    print("bias:", json.dumps(result["bias"]))
    # "synthetic": 40 factors, sparse loadings, much noise; "synthetic_strong": 5 factors in
    # every feature, little noise: deep partitions, the slow case
    cases = {
        "synthetic": {},
        "synthetic_strong": {"n_factors": 5, "density": 1.0, "noise": (0.1, 0.1)},
    }
    datasets = {name: synthetic_features(**params) for name, params in cases.items()}
    datasets["synthetic_linear_head"] = linear_head_features()
    for name, (X, y) in datasets.items():
        result[name] = time_fit(X, y, figure=args.out.with_name(f"{name}_scores.png"))
        print(f"{name}:", json.dumps(result[name]))
    if REAL.exists():
        data = np.load(REAL)
        figure = args.out.with_name("real_scores.png")
        result["real"] = time_fit(data["X"], data["y"], figure=figure)
        print("real:", json.dumps(result["real"]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
