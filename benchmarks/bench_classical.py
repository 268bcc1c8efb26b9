"""10-fold CV time and accuracy of each paper classifier row, old vs new, in one run.

    .venv/bin/python benchmarks/bench_classical.py [--features runs/gpu/features-paper.npz]

"old" is each preset as it was before the speed work: plain scikit-learn classes (no
scikit-learn-intelex) and the Wide Neural Network as a float64 MLPClassifier. "new" is
`classify.make_classifier` as it is now (float32 MLP with one BLAS thread; sklearnex KNN with
the `fast` extra installed and BLASTSCAN_SKLEARNEX=1). Both run through `evaluation.cross_validate` (same folds,
n_jobs=-1: one fold per core), old and new alternating which goes first, so load on a shared
machine hits both alike. "selected" is the top 521 of the mRMR ranking in runs/sel.json (the
paper kept 521 of 1000), or the first 521 columns without it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier

from blastscan.classify import PAPER_ROWS, Float32MLPClassifier, backend, make_classifier
from blastscan.evaluation import cross_validate

REPO = Path(__file__).resolve().parent.parent
PAPER_SELECTED = 521


def old_pipeline(name: str):
    """The preset as it ran before: plain sklearn estimators, float64 MLP."""
    pipeline = make_classifier(name, seed=0)
    clf = pipeline.steps[-1][1]
    if isinstance(clf, Float32MLPClassifier):
        pipeline.steps[-1] = ("clf", MLPClassifier(**clf.get_params()))
    elif type(clf).__module__.startswith("sklearnex"):
        pipeline.steps[-1] = ("clf", KNeighborsClassifier(**clf.get_params()))
    return pipeline


def feature_sets(path: Path) -> tuple[dict[str, np.ndarray], np.ndarray]:
    with np.load(path, allow_pickle=False) as f:
        X, y = np.ascontiguousarray(f["X"], dtype=np.float64), f["y"]
    ranking_file = REPO / "runs" / "sel.json"
    if ranking_file.is_file():
        columns = np.sort(json.loads(ranking_file.read_text())["ranking"][:PAPER_SELECTED])
    else:
        columns = np.arange(PAPER_SELECTED)
    return {"all": X, "selected": np.ascontiguousarray(X[:, columns])}, y


def warm_up(rows: list[str], X: np.ndarray, y: np.ndarray) -> None:
    """Start the joblib workers and import every estimator in them, both variants, on a few
    rows: otherwise whichever variant runs first pays the workers' start-up and imports."""
    rng = np.random.default_rng(0)
    few = rng.permutation(len(y))[:400]
    for name in rows:
        for pipeline in (old_pipeline(name), make_classifier(name, seed=0)):
            cross_validate(pipeline, X[few, :50], y[few], n_splits=2, seed=0, n_jobs=-1)


def main_process_fit(X: np.ndarray, y: np.ndarray, rounds: int = 2) -> dict[str, list[float]]:
    """One fold's Wide Neural Network fit in this process (as `bundle` fits its classifier),
    old (float64, BLAS on every core) vs new, seconds per round, alternating which goes first."""
    train = np.random.default_rng(0).permutation(len(y))[: int(0.9 * len(y))]
    name = PAPER_ROWS["ANN"]
    times: dict[str, list[float]] = {"old": [], "new": []}
    for r in range(rounds):
        for variant in ("old", "new") if r % 2 == 0 else ("new", "old"):
            model = old_pipeline(name) if variant == "old" else make_classifier(name, seed=0)
            start = time.perf_counter()
            model.fit(X[train], y[train])
            times[variant].append(time.perf_counter() - start)
        print(f"main-process Wide NN fit, round {r + 1}: old {times['old'][-1]:.1f} s, "
              f"new {times['new'][-1]:.1f} s", flush=True)  # fmt: skip
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--features", default=str(REPO / "runs" / "gpu" / "features-paper.npz"))
    parser.add_argument("--rows", nargs="*", default=list(PAPER_ROWS.values()))
    parser.add_argument("--out", default=None, help="JSON file for the numbers")
    parser.add_argument("--main-fit-rounds", type=int, default=2)
    args = parser.parse_args()
    sets, y = feature_sets(Path(args.features))
    main_fit = main_process_fit(sets["all"], y, args.main_fit_rounds)
    start = time.perf_counter()
    warm_up(args.rows, sets["all"], y)
    print(
        f"backend: {backend()}; joblib workers started and warm in {time.perf_counter() - start:.1f} s"
    )
    results, totals, k = [], {"old": 0.0, "new": 0.0}, 0
    for name in args.rows:
        for set_name, X in sets.items():
            builders = {"old": old_pipeline, "new": lambda n: make_classifier(n, seed=0)}
            order = ["old", "new"] if k % 2 == 0 else ["new", "old"]
            k += 1
            row = {"preset": name, "features": f"{set_name} ({X.shape[1]})"}
            for variant in order:
                cv = cross_validate(builders[variant](name), X, y, n_splits=10, seed=0, n_jobs=-1)
                totals[variant] += cv.seconds
                row[variant] = {
                    "seconds": cv.seconds,
                    "fold_seconds_sum": float(np.sum(cv.fold_seconds)),
                    "accuracy": cv.accuracy,
                    "correct": int(np.sum(cv.y_pred == cv.y_true)),
                }
            row["speedup"] = row["old"]["seconds"] / row["new"]["seconds"]
            results.append(row)
            print(
                f"{name:22s} {row['features']:15s} old {row['old']['seconds']:6.1f} s "
                f"acc {row['old']['accuracy']:.4f} | new {row['new']['seconds']:6.1f} s "
                f"acc {row['new']['accuracy']:.4f} | x{row['speedup']:.2f}",
                flush=True,
            )
    print(
        f"total CV: old {totals['old']:.1f} s, new {totals['new']:.1f} s, "
        f"x{totals['old'] / totals['new']:.2f}"
    )
    if args.out:
        payload = {
            "backend": backend(),
            "rows": results,
            "totals": totals,
            "main_process_wide_nn_fit": main_fit,
        }
        Path(args.out).write_text(json.dumps(payload, indent=1) + "\n")


if __name__ == "__main__":
    main()
