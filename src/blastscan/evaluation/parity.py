"""Does a faster number format (bf16, int8) answer as fp32 does? Image by image, on the same
held-out images: agreement of the decisions, McNemar's exact test, feature deviation.

Speed must never cost correctness: an engine passes where it agrees with fp32 on at least
`AGREEMENT_TARGET` of the images and McNemar cannot tell the two accuracies apart (p >= 0.05).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from blastscan.errors import BlastscanError
from blastscan.evaluation.stats import mcnemar

AGREEMENT_TARGET = 0.995
ALPHA = 0.05


def feature_deviation(reference: np.ndarray, other: np.ndarray) -> dict[str, float]:
    """Max and mean absolute deviation of deep features, and the mean relative to their scale."""
    reference, other = np.asarray(reference, np.float64), np.asarray(other, np.float64)
    if reference.shape != other.shape:
        raise BlastscanError(f"features differ in shape: {reference.shape} vs {other.shape}")
    diff = np.abs(reference - other)
    scale = float(np.mean(np.abs(reference))) or 1.0
    return {
        "max_abs": float(diff.max()) if diff.size else 0.0,
        "mean_abs": float(diff.mean()) if diff.size else 0.0,
        "mean_abs_relative": float(diff.mean() / scale) if diff.size else 0.0,
    }


def decision_parity(reference: np.ndarray, other: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Agreement of two heads' decisions and McNemar's test of their accuracies (reference = A)."""
    reference, other, labels = (np.asarray(a) for a in (reference, other, labels))
    if not (reference.shape == other.shape == labels.shape):
        raise BlastscanError(
            f"decisions differ in shape: {reference.shape}, {other.shape}, labels {labels.shape}"
        )
    agree = float(np.mean(reference == other)) if len(labels) else 1.0
    test = mcnemar(reference == labels, other == labels)
    return {
        "n": int(len(labels)),
        "agreement": agree,
        "disagreements": int(np.sum(reference != other)),
        "accuracy_reference": test["accuracy_a"]["value"],
        "accuracy": test["accuracy_b"]["value"],
        "reference_only_right": test["a_only"],
        "only_right": test["b_only"],
        "mcnemar_p": test["p_value"],
        "passes": bool(agree >= AGREEMENT_TARGET and test["p_value"] >= ALPHA),
    }
