"""Suite `mrmr`: the fscmrmr ranking (1000 features, 3256 samples) and its estimators' bias.

`mrmr`: MRMR(threshold=0.25).fit on the real DarkNet-19 features when a features file is there
(else synthetic look-alikes), against the plug-in (fixed-grid) estimator in the same run.

`mrmr-rank`: full rankings of synthetic data shaped like the deep features (non-negative: ReLU
of a sparse factor model, so features are correlated in groups, with a 4-class signal in the
factors, class sizes as in the dataset) and of the real features when one of REAL_CANDIDATES
exists (keys X, y). `--mrmr-baseline FILE` also times another version of the selector module
on the same data in the same run (fitted just before the current one, so both see about the
same load) and checks that it gives the same ranking, and scores, relevance and redundancy
equal up to rounding (their largest relative difference is reported), e.g. before and after a
speed-up:

    git show REV:src/blastscan/selection/mrmr.py > /tmp/mrmr_before.py
    python benchmarks/run_all.py --only mrmr-rank --mrmr-datasets real --mrmr-baseline /tmp/mrmr_before.py

`--mrmr-engine numpy` times the numpy reference engine instead of the compiled kernel. The
kernel is compiled (or loaded from numba's on-disk cache) once before any timing; that time is
its own row. `--mrmr-figures DIR` writes Figure 5 of each ranking there.

`mrmr-bias`: MI of independent and of nearly copied normals under both estimators.
"""

from __future__ import annotations

import importlib.util
import math
import time
from pathlib import Path
from types import ModuleType

import numpy as np
from benchkit import REPO, Context, Part, Result, time_result, timed

CLASS_SIZES = (504, 985, 963, 804)  # Benign, Early Pre-B, Pre-B, Pro-B: 3256 images
PAPER_SELECTED = 521  # features the paper kept (of 1000) at mRMR score > 0.25
FEATURE_FILES = (
    REPO / "runs" / "full" / "features.npz",
    REPO / "runs" / "gpu" / "features-paper.npz",
    REPO / "runs" / "fast-s0" / "features.npz",
)
REAL_CANDIDATES = (
    REPO / "runs" / "gpu" / "features-paper.npz",
    REPO / "runs" / "full" / "features.npz",
    REPO / "runs" / "fast-s0" / "features.npz",
)


def add_arguments(parser) -> None:
    group = parser.add_argument_group("mrmr suite")
    group.add_argument(
        "--mrmr-datasets",
        nargs="+",
        metavar="NAME",
        help="mrmr-rank: data sets to rank (synthetic, synthetic_strong, "
        "synthetic_linear_head, real; default all)",
    )
    group.add_argument("--mrmr-n-jobs", type=int, default=-1, help="mrmr-rank: MRMR n_jobs")
    group.add_argument(
        "--mrmr-baseline",
        type=Path,
        metavar="FILE",
        help="mrmr-rank: another selector module to time and compare",
    )
    group.add_argument("--mrmr-engine", default="numba", help="mrmr-rank: numba or numpy")
    group.add_argument("--mrmr-figures", type=Path, metavar="DIR",
                       help="mrmr-rank: write Figure 5 of each ranking here")  # fmt: skip


def load_features(cfg, log) -> tuple[np.ndarray, np.ndarray, str]:
    """Real DarkNet-19 features if a features file is there, else synthetic look-alikes."""
    for path in FEATURE_FILES:
        if path.is_file():
            with np.load(path, allow_pickle=False) as f:
                X, y = f["X"], f["y"]
            source = f"{path.relative_to(REPO)} (real DarkNet-19 features)"
            break
    else:
        X, y = synthetic_features()
        source = (
            "synthetic (suites.mrmr.synthetic_features: no runs/full/features.npz "
            "or runs/gpu/features-paper.npz)"
        )
    if cfg.mrmr_features:
        X = X[:, : cfg.mrmr_features]
    log(f"  features: {X.shape[0]} x {X.shape[1]} from {source}")
    return np.ascontiguousarray(X, dtype=np.float64), y, source


def bench_fit(ctx: Context) -> list[Result]:
    """MRMR(threshold=0.25).fit on the features (fscmrmr's adaptive estimator), seconds; the
    plug-in (fixed-grid) estimator, the naive way to estimate MI, measured right after."""
    from blastscan.selection import MRMR

    cfg, log, state = ctx.cfg, ctx.log, ctx.state
    X, y, source = state.get("features") or load_features(cfg, log)
    state["features"] = (X, y, source)
    seconds, selector = timed(lambda: MRMR(threshold=0.25).fit(X, y))
    columns = np.flatnonzero(selector.get_support())
    kept = len(columns)
    log(f"  mrmr adaptive: {seconds:.1f} s, {kept} of {X.shape[1]} features above 0.25")
    if kept == X.shape[1]:  # nothing dropped: take the paper's count from the top of the ranking
        columns = np.sort(selector.ranking_[: round(PAPER_SELECTED * X.shape[1] / 1000)])
        log(f"  mrmr: the threshold keeps every feature; CV uses the top {len(columns)} ranked")
    state["mrmr"] = (seconds, columns, kept)
    results = []
    plugin = []
    if cfg.mrmr_plugin:
        plugin_s, _ = timed(lambda: MRMR(threshold=0.25, estimator="plugin").fit(X, y))
        plugin = [plugin_s]
        log(f"  mrmr plugin: {plugin_s:.1f} s")
    results.append(
        time_result(
            "mrmr/fit_adaptive",
            f"MRMR(threshold=0.25).fit, {X.shape[1]} features x {X.shape[0]} samples, "
            "seconds (lower is better)",
            [seconds],
            baseline="MRMR(estimator='plugin').fit (naive fixed-grid MI)" if plugin else None,
            baseline_seconds=plugin or None,
            notes=f"{source}; {kept} of {X.shape[1]} features score above 0.25",
        )
    )
    results[-1].extra["n_above_threshold"] = int(kept)
    return results


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
    """Another version of the selector module (e.g. `git show REV:src/blastscan/selection/mrmr.py`),
    imported under its own name."""
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
    from blastscan.selection import MRMR, plot_mrmr_scores

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
        "score_at_rank_521": round(float(np.sort(scores)[::-1][PAPER_SELECTED - 1]), 4)
        if len(scores) >= PAPER_SELECTED
        else None,
        "first_ten": sel.ranking_[:10].tolist(),
        **out,
    }


def relative_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Largest |a - b| / |a| over entries where either is nonzero (inf if they differ in which
    entries are infinite, as scores of older versions could be)."""
    if not np.array_equal(np.isinf(a), np.isinf(b)):
        return math.inf
    finite = np.isfinite(a) & ((a != 0) | (b != 0))
    if not finite.any():
        return 0.0
    return float(np.max(np.abs(a[finite] - b[finite]) / np.abs(a[finite])))


def warm_kernel() -> float:
    """Seconds to compile the numba kernel, or to load it from the on-disk cache."""
    from blastscan.selection import AdaptiveMI, equiprobable_bins

    bins = equiprobable_bins(np.random.default_rng(0).normal(size=(200, 3)))
    start = time.perf_counter()
    AdaptiveMI(bins)(0, np.arange(1, 3))
    return time.perf_counter() - start


def bias(n: int = 3256, pairs: int = 50, seed: int = 1) -> dict:
    """MI in nats of independent and of nearly copied normals, and of noise with a 4-class y,
    under both estimators (truth: 0, about 2.3 and 0)."""
    from blastscan.selection import (
        AdaptiveMI,
        PluginMI,
        adaptive_relevance,
        equiprobable_bins,
        plugin_relevance,
    )

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


def bench_rank(ctx: Context) -> list[Result]:
    """Wall seconds of a full ranking per data set (and the baseline module's, when given)."""
    args, log = ctx.args, ctx.log
    results = []
    if args.mrmr_engine == "numba":
        warm = warm_kernel()
        log(f"  mrmr-rank: kernel compiled or loaded from cache in {warm:.2f} s")
        results.append(
            time_result("mrmr-rank/kernel_warmup", "numba kernel compile or cache load, s", [warm])
        )
    baseline = load_module(args.mrmr_baseline) if args.mrmr_baseline else None
    only = set(args.mrmr_datasets) if args.mrmr_datasets else None
    for name, (X, y) in datasets(only).items():
        figure = args.mrmr_figures / f"{name}_scores.png" if args.mrmr_figures else None
        if figure is not None:
            figure.parent.mkdir(parents=True, exist_ok=True)
        out = time_fit(X, y, figure=figure, n_jobs=args.mrmr_n_jobs, baseline=baseline,
                       engine=args.mrmr_engine)  # fmt: skip
        log(f"  mrmr-rank {name}: {out['seconds']} s, {out['n_selected']} selected")
        base = out.get("baseline")
        r = time_result(
            f"mrmr-rank/{name}",
            f"MRMR(threshold=0.25, engine={args.mrmr_engine}).fit, {X.shape[1]} features x "
            f"{X.shape[0]} samples, wall seconds",
            [out["seconds"]],
            baseline=str(args.mrmr_baseline) if base else None,
            baseline_seconds=[base["seconds"]] if base else None,
            notes=f"cpu {out['cpu_seconds']} s; {out['n_selected']} selected",
        )
        r.extra.update(out)
        results.append(r)
    return results


def bench_bias(ctx: Context) -> list[Result]:
    """Mean MI (nats) of independent pairs under each estimator: the truth is 0."""
    out = bias()
    ctx.log(f"  mrmr-bias: {out}")
    results = []
    for name in ("adaptive", "plugin"):
        r = Result(
            f"mrmr-bias/{name}",
            f"MI of {out['pairs']} independent normal pairs, n = {out['n']}, mean (truth 0)",
            out[name]["independent_mean"],
            "nats",
            notes=f"near copy {out[name]['near_copy']} (truth 2.31); noise relevance mean "
            f"{out[name]['noise_relevance_mean']} (truth 0)",
        )
        r.extra.update(out[name])
        results.append(r)
    return results


PARTS = [
    Part("mrmr", "MRMR(threshold=0.25).fit on the features vs the plug-in estimator", bench_fit),
    Part("mrmr-rank", "full rankings of synthetic and real features (--mrmr-baseline compares)",
         bench_rank, default=False),
    Part("mrmr-bias", "the estimators' bias on independent and nearly copied normals", bench_bias,
         default=False),
]  # fmt: skip
