"""Time a full fscmrmr ranking (1000 features, 3256 samples) and measure the estimators' bias.

Synthetic data shaped like the DarkNet-19 deep features: non-negative (ReLU of a sparse factor
model, so features are correlated in groups) with a 4-class signal in the factors, class sizes
as in the dataset. The real deep features are ranked too when one of REAL_CANDIDATES exists
(keys X, y). Figure 5 of each ranking is written next to the JSON.

`--baseline FILE` also times another version of the selector module on the same data in the
same process (fitted just before the current one, so both see about the same machine load) and
checks that it gives the same ranking, and scores, relevance and redundancy equal up to
rounding (their largest relative difference is reported), e.g. before and after a speed-up:

    git show REV:src/blastscan/selection.py > /tmp/selection_before.py
    .venv/bin/python benchmarks/bench_mrmr.py --only real --baseline /tmp/selection_before.py

`--engine numpy` times the numpy reference engine instead of the compiled kernel. The kernel is
compiled (or loaded from numba's on-disk cache) once before any timing; that time is reported
as `kernel_warmup_seconds`.

    .venv/bin/python benchmarks/bench_mrmr.py [--out runs/bench/bench_mrmr.json] [--n-jobs N]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import time
from pathlib import Path
from types import ModuleType

import numpy as np

from blastscan.selection import (
    ENGINES,
    MRMR,
    AdaptiveMI,
    PluginMI,
    adaptive_relevance,
    equiprobable_bins,
    plot_mrmr_scores,
    plugin_relevance,
)

CLASS_SIZES = (504, 985, 963, 804)  # Benign, Early Pre-B, Pre-B, Pro-B: 3256 images
REAL_CANDIDATES = (Path("runs/gpu/features-paper.npz"), Path("runs/full/features.npz"))


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


def load_module(path: Path) -> ModuleType:
    """Another version of blastscan/selection.py, imported under its own name."""
    spec = importlib.util.spec_from_file_location("selection_baseline", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def timed_fit(selector, X: np.ndarray, y: np.ndarray):
    """(fitted selector, wall seconds, CPU seconds of this process, all threads)."""
    wall, cpu = time.perf_counter(), time.process_time()
    selector.fit(X, y)
    return selector, time.perf_counter() - wall, time.process_time() - cpu


def time_fit(
    X: np.ndarray,
    y: np.ndarray,
    threshold: float = 0.25,
    figure: Path | None = None,
    n_jobs: int = -1,
    baseline: ModuleType | None = None,
    engine: str = "numba",
):
    """Wall and CPU time of MRMR(threshold).fit, what it selected, and optionally Figure 5.

    With `baseline`, its MRMR is fitted first on the same data and compared."""
    out = {}
    if baseline is not None:
        old, wall, cpu = timed_fit(baseline.MRMR(threshold=threshold, n_jobs=n_jobs), X, y)
        out["baseline"] = {"seconds": round(wall, 2), "cpu_seconds": round(cpu, 2)}
    sel, wall, cpu = timed_fit(MRMR(threshold=threshold, n_jobs=n_jobs, engine=engine), X, y)
    if baseline is not None:
        out["baseline"]["identical_ranking"] = bool(np.array_equal(old.ranking_, sel.ranking_))
        for name in ("scores_", "relevance_", "redundancy_"):
            out["baseline"][f"max_relative_difference_{name}"] = relative_difference(
                getattr(old, name), getattr(sel, name)
            )
    scores = sel.scores_
    if figure is not None:
        plot_mrmr_scores(scores, threshold, figure)
    return {
        "shape": list(X.shape),
        "n_jobs": n_jobs,
        "seconds": round(wall, 2),
        "cpu_seconds": round(cpu, 2),
        "threshold": threshold,
        "n_selected": int(sel.get_support().sum()),
        "n_zero_relevance": int((sel.relevance_ <= 0).sum()),
        "n_inf_scores": int(np.isinf(scores).sum()),
        "first_ten": sel.ranking_[:10].tolist(),
        **out,
    }


def relative_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Largest |a - b| / |a| over entries where either is nonzero (inf if they differ in which
    entries are infinite)."""
    if not np.array_equal(np.isinf(a), np.isinf(b)):
        return math.inf
    finite = np.isfinite(a) & ((a != 0) | (b != 0))
    if not finite.any():
        return 0.0
    return float(np.max(np.abs(a[finite] - b[finite]) / np.abs(a[finite])))


def warm_kernel() -> float:
    """Seconds to compile the numba kernel, or to load it from the on-disk cache."""
    bins = equiprobable_bins(np.random.default_rng(0).normal(size=(200, 3)))
    start = time.perf_counter()
    AdaptiveMI(bins)(0, np.arange(1, 3))
    return time.perf_counter() - start


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


def datasets(only: set[str] | None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The data sets to rank, by name (those in `only`, if given)."""
    # "synthetic": 40 factors, sparse loadings, much noise; "synthetic_strong": 5 factors in
    # every feature, little noise: deep partitions; "real": the DarkNet-19 features
    makers = {
        "synthetic": lambda: synthetic_features(),
        "synthetic_strong": lambda: synthetic_features(n_factors=5, density=1.0, noise=(0.1, 0.1)),
        "synthetic_linear_head": linear_head_features,
    }
    real = next((path for path in REAL_CANDIDATES if path.exists()), None)
    if real is not None:
        makers["real"] = lambda: tuple(np.load(real)[key] for key in ("X", "y"))
    return {name: make() for name, make in makers.items() if only is None or name in only}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/bench/bench_mrmr.json"))
    parser.add_argument("--only", nargs="+", help="data set names (default: all, and the bias)")
    parser.add_argument("--n-jobs", type=int, default=-1, help="MRMR n_jobs (default -1)")
    parser.add_argument("--baseline", type=Path, help="another selection.py to time and compare")
    parser.add_argument("--engine", choices=ENGINES, default="numba", help="MRMR engine")
    args = parser.parse_args()
    result = {
        "machine": f"{platform.processor() or platform.machine()}, "
        f"{len(os.sched_getaffinity(0))} cores, load average {os.getloadavg()[0]:.1f}",
        "engine": args.engine,
    }
    if args.engine == "numba":
        result["kernel_warmup_seconds"] = round(warm_kernel(), 2)
        print(f"kernel compiled or loaded from cache in {result['kernel_warmup_seconds']} s")
    if args.only is None:
        result["bias"] = bias()
        print("bias:", json.dumps(result["bias"]))
    baseline = load_module(args.baseline) if args.baseline else None
    for name, (X, y) in datasets(set(args.only) if args.only else None).items():
        figure = args.out.with_name(f"{name}_scores.png")
        result[name] = time_fit(
            X, y, figure=figure, n_jobs=args.n_jobs, baseline=baseline, engine=args.engine
        )
        print(f"{name}:", json.dumps(result[name]), flush=True)
    result["load_average_after"] = round(os.getloadavg()[0], 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
