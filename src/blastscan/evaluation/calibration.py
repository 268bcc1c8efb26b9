"""How far predicted probabilities can be trusted: top-label ECE and reliability diagrams.

A classifier is calibrated when, of all images it labels with confidence ~0.8, about 80% are
right. The expected calibration error (ECE, Guo et al. 2017, "On Calibration of Modern Neural
Networks") bins the top-label confidence into `n_bins` equal-width bins and averages the gap
|accuracy - mean confidence| over bins, weighted by how many images fall in each:

    ECE = sum_b (n_b / N) * |acc_b - conf_b|

Bins are right-closed, (lo, hi], with the first bin also holding 0, as in Guo et al. A perfectly
calibrated model has ECE ~ 0 (up to sampling noise, which shrinks with N); a model that says
0.99 while being right 70% of the time has ECE ~ 0.29.

For the CNN the probabilities are the softmax of its logits; for the classical classifiers they
come from `predict_proba` (the SVMs' Platt scaling, see `blastscan.classify`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from blastscan.classify import make_classifier
from blastscan.errors import BlastscanError
from blastscan.outputs import atomic_write, atomic_write_json


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, stable for large logits."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _check(proba: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    proba = np.asarray(proba, dtype=np.float64)
    y = np.asarray(y).astype(np.int64).ravel()
    if proba.ndim != 2 or proba.shape[1] < 2:
        raise BlastscanError(f"probabilities must be (N, K) with K >= 2, got shape {proba.shape}")
    if len(proba) != len(y):
        raise BlastscanError(f"{len(proba)} probability rows for {len(y)} labels")
    if len(y) == 0:
        raise BlastscanError("no samples: calibration needs at least one prediction")
    if not np.isfinite(proba).all() or (proba < -1e-9).any():
        raise BlastscanError("probabilities hold NaN, inf or negative values")
    if y.min() < 0 or y.max() >= proba.shape[1]:
        raise BlastscanError(f"labels must lie in 0..{proba.shape[1] - 1}")
    return proba, y


@dataclass
class ReliabilityCurve:
    """Per-bin statistics of top-label confidence; empty bins have count 0 and NaN means."""

    edges: np.ndarray  # (n_bins + 1,) from 0 to 1
    confidence: np.ndarray  # (n_bins,) mean top-label confidence in the bin
    accuracy: np.ndarray  # (n_bins,) fraction correct in the bin
    count: np.ndarray  # (n_bins,) images in the bin

    @property
    def ece(self) -> float:
        n = self.count.sum()
        used = self.count > 0
        gaps = np.abs(self.accuracy[used] - self.confidence[used])
        return float(np.sum(self.count[used] / n * gaps))

    @property
    def mce(self) -> float:
        """Maximum calibration error: the worst gap over non-empty bins."""
        used = self.count > 0
        return float(np.max(np.abs(self.accuracy[used] - self.confidence[used])))

    def to_dict(self) -> dict:
        nan_to_none = lambda a: [None if np.isnan(v) else float(v) for v in a]  # noqa: E731
        return {
            "edges": self.edges.tolist(),
            "confidence": nan_to_none(self.confidence),
            "accuracy": nan_to_none(self.accuracy),
            "count": self.count.astype(int).tolist(),
        }


def reliability_curve(proba: np.ndarray, y: np.ndarray, n_bins: int = 15) -> ReliabilityCurve:
    """Top-label confidence and accuracy in `n_bins` equal-width, right-closed bins over [0, 1]."""
    if n_bins < 1:
        raise BlastscanError(f"n_bins must be at least 1, got {n_bins}")
    proba, y = _check(proba, y)
    conf = proba.max(axis=1)
    correct = (proba.argmax(axis=1) == y).astype(np.float64)
    # (lo, hi]: ceil(conf * n) - 1; confidence 0 goes to the first bin.
    idx = np.clip(np.ceil(conf * n_bins - 1e-12).astype(np.int64) - 1, 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(idx, weights=conf, minlength=n_bins) / count
        acc = np.bincount(idx, weights=correct, minlength=n_bins) / count
    return ReliabilityCurve(np.linspace(0.0, 1.0, n_bins + 1), mean_conf, acc, count)


def expected_calibration_error(proba: np.ndarray, y: np.ndarray, n_bins: int = 15) -> float:
    """Top-label ECE (Guo et al. 2017) with `n_bins` equal-width bins; 0 is perfect."""
    return reliability_curve(proba, y, n_bins).ece


def brier_score(proba: np.ndarray, y: np.ndarray) -> float:
    """Multiclass Brier score: mean over images of sum_k (p_k - [y == k])^2; 0 is perfect."""
    proba, y = _check(proba, y)
    onehot = np.eye(proba.shape[1])[y]
    return float(np.mean(np.sum((proba - onehot) ** 2, axis=1)))


def negative_log_likelihood(proba: np.ndarray, y: np.ndarray, eps: float = 1e-12) -> float:
    proba, y = _check(proba, y)
    return float(-np.mean(np.log(np.clip(proba[np.arange(len(y)), y], eps, 1.0))))


def calibration_summary(proba: np.ndarray, y: np.ndarray, n_bins: int = 15) -> dict:
    """ECE, MCE, Brier, NLL, accuracy and the reliability curve, as plain JSON values."""
    curve = reliability_curve(proba, y, n_bins)
    p, yy = _check(proba, y)
    return {
        "n": len(yy),
        "n_bins": n_bins,
        "accuracy": float(np.mean(p.argmax(1) == yy)),
        "mean_confidence": float(np.mean(p.max(1))),
        "ece": curve.ece,
        "mce": curve.mce,
        "brier": brier_score(p, yy),
        "nll": negative_log_likelihood(p, yy),
        "curve": curve.to_dict(),
    }


def plot_reliability(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]], path: str | Path, n_bins: int = 15
) -> Path:
    """Reliability diagram (accuracy vs confidence per bin) for each named (proba, y), as a PNG.

    Top: one line per model with the ECE in its legend, and the diagonal of perfect calibration.
    Bottom: how many images fall in each confidence bin (most sit in the last bin for a
    confident model, which is why the ECE is dominated by it).
    """
    if not curves:
        raise BlastscanError("plot_reliability needs at least one (proba, y) pair")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, hist) = plt.subplots(
        2, 1, figsize=(5.5, 6), dpi=120, sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfect calibration")
    width = 1.0 / n_bins
    for i, (name, (proba, y)) in enumerate(curves.items()):
        c = reliability_curve(proba, y, n_bins)
        used = c.count > 0
        ax.plot(
            c.confidence[used],
            c.accuracy[used],
            marker="o",
            ms=4,
            label=f"{name} (ECE {c.ece:.3f})",
        )
        centres = (c.edges[:-1] + c.edges[1:]) / 2
        offset = (i - (len(curves) - 1) / 2) * width / max(len(curves), 1)
        hist.bar(
            centres + offset, c.count / c.count.sum(), width=width / max(len(curves), 1), label=name
        )
    ax.set(ylabel="accuracy in bin", xlim=(0, 1), ylim=(0, 1.02), title="Reliability (top label)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    hist.set(xlabel="top-label confidence", ylabel="fraction", yscale="log")
    hist.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
    return path


CNN_NAME = "CNN (softmax)"


def holdout_calibration(
    X: np.ndarray,
    y: np.ndarray,
    logits: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    figure: str | Path,
    classifier: str = "Cubic SVM",
    n_bins: int = 15,
    seed: int = 0,
) -> dict:
    """Calibration of the CNN and of one classifier with probabilities on the same test images.

    The CNN's probabilities are the softmax of `logits[test]`; the classifier (a
    `blastscan.classify` preset, standardised, Platt-scaled) is fitted on `X[train]` only, so
    neither model saw a test image. Draws the reliability diagram of both into `figure` and
    returns JSON values: per model ECE/MCE/Brier/NLL and the curve, plus the test predictions
    (`predictions`), so callers can break accuracy down by image without refitting.
    """
    train, test = np.asarray(train, dtype=np.int64), np.asarray(test, dtype=np.int64)
    y = np.asarray(y)
    cnn = softmax(logits[test])
    model = make_classifier(classifier, probability=True, seed=seed)
    svm = model.fit(np.asarray(X[train], dtype=np.float64), y[train]).predict_proba(
        np.asarray(X[test], dtype=np.float64)
    )
    svm_name = f"{classifier} (Platt)"
    curves = {CNN_NAME: (cnn, y[test]), svm_name: (svm, y[test])}
    path = plot_reliability(curves, figure, n_bins)
    return {
        "n_train": len(train),
        "n_test": len(test),
        "n_bins": n_bins,
        "binning": "top-label confidence, equal-width right-closed bins (Guo et al. 2017)",
        "classifier": classifier,
        "figure": str(path),
        "models": {name: calibration_summary(p, t, n_bins) for name, (p, t) in curves.items()},
        "predictions": {
            CNN_NAME: cnn.argmax(1).astype(int).tolist(),
            svm_name: svm.argmax(1).astype(int).tolist(),
        },
    }


def run_calibration(
    features: str | Path,
    split: str | Path,
    out_dir: str | Path,
    classifier: str = "Cubic SVM",
    n_bins: int = 15,
    seed: int = 0,
) -> dict:
    """ECE of the CNN (softmax of logits) and of a classifier with probabilities, on test images.

    `features` is a file written by `blastscan extract` (deep features and logits of every
    image); `split` is the run's split.json. The classifier (a `blastscan.classify` preset,
    standardised, with Platt-scaled probabilities) is fitted on the split's train+val images and
    both models are scored on its test images. Writes `calibration.json` and
    `figures/reliability.png` under `out_dir`; returns the JSON payload.
    """
    from blastscan.features import load_features  # torch: imported only when needed

    arrays = load_features(features)
    if "logits" not in arrays or "paths" not in arrays:
        raise BlastscanError(f"{features}: has no logits/paths; re-run blastscan extract")
    try:
        parts = json.loads(Path(split).read_text())
    except (OSError, ValueError) as exc:
        raise BlastscanError(f"{split}: not a readable split.json ({exc})") from exc
    index = {p: i for i, p in enumerate(arrays["paths"].tolist())}
    train_paths = parts.get("train", []) + parts.get("val", [])
    missing = [p for p in train_paths + parts.get("test", []) if p not in index]
    if missing:
        raise BlastscanError(
            f"{split}: {len(missing)} paths (e.g. {missing[0]}) are not in {features}; "
            "extract features from the same dataset folder the run was trained on"
        )
    train = np.array([index[p] for p in train_paths], dtype=np.int64)
    test = np.array([index[p] for p in parts["test"]], dtype=np.int64)
    out_dir = Path(out_dir)
    result = holdout_calibration(
        arrays["X"],
        arrays["y"],
        arrays["logits"],
        train,
        test,
        out_dir / "figures" / "reliability.png",
        classifier,
        n_bins,
        seed,
    )
    payload = {
        "split": str(split),
        "features": str(features),
        "n_test": result["n_test"],
        "n_bins": n_bins,
        "binning": result["binning"],
        "models": result["models"],
    }
    atomic_write_json(out_dir / "calibration.json", payload)
    return payload
