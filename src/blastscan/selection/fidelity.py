"""How close a ranking and its scores come to a published fscmrmr output.

MATLAB prints `idx` (best first, 1-based) and `scores` (input order); a user with MATLAB can
compare their own output the same way the tests compare the documentation example.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import spearmanr

SCORE_TOLERANCE = 0.005  # "within 0.005": MATLAB prints 4 decimals


@dataclass(frozen=True)
class MatlabFit:
    """Agreement with MATLAB over the entries it printed (`known`)."""

    known: int  # ranks (and scores) MATLAB printed
    same_position: int  # ranks where our feature is MATLAB's
    position_spearman: float  # Spearman of our positions of MATLAB's features vs 1..known
    scores_within: int  # scores within SCORE_TOLERANCE of MATLAB's
    max_score_error: float
    mean_score_error: float

    def summary(self) -> str:
        k = self.known
        return (
            f"idx: {self.same_position}/{k} positions equal, Spearman {self.position_spearman:.3f}; "
            f"scores: {self.scores_within}/{k} within {SCORE_TOLERANCE}, "
            f"max error {self.max_score_error:.4f}, mean {self.mean_score_error:.4f}"
        )


def matlab_fit(
    ranking: np.ndarray, scores: np.ndarray, matlab_idx: list[int], matlab_scores: list[float]
) -> MatlabFit:
    """Compare 0-based `ranking` / `scores` with MATLAB's printed 1-based `idx` and `scores`."""
    known = len(matlab_idx)
    ours = np.asarray(ranking)[:known] + 1
    position = np.argsort(np.asarray(ranking))
    rho = spearmanr(position[np.asarray(matlab_idx) - 1], np.arange(known)).statistic
    error = np.abs(np.asarray(scores)[: len(matlab_scores)] - np.asarray(matlab_scores))
    return MatlabFit(
        known=known,
        same_position=int((ours == np.asarray(matlab_idx)).sum()),
        position_spearman=float(rho),
        scores_within=int((error <= SCORE_TOLERANCE + 1e-12).sum()),
        max_score_error=float(error.max()),
        mean_score_error=float(error.mean()),
    )
