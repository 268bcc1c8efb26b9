"""mRMR feature ranking as MATLAB's ``fscmrmr`` does it, as a scikit-learn selector (`MRMR`).

fscmrmr ranks features by relevance I(x; y) over redundancy, the mean I(x; z) over the features
already picked (the algorithm: `mrmr`). Every variable is first discretised into 256
equiprobable bins, or its distinct values when fewer (`binning`).

Two mutual-information estimators exist because the obvious one is wrong here. The default,
"adaptive" (`adaptive_mi`), is the one fscmrmr documents: each pair gets an adaptive bivariate
partition (Darbellay & Vajda, 1999). "plugin" (`plugin_mi`), the plain estimate on the fixed
256 x 256 grid, is badly biased at a few thousand samples (two independent features look about
3 nats redundant, docs/reference/selection.md) and is kept only to measure that.

No library implements the Darbellay-Vajda partition, so it is written here twice: the default
engine "numba" (`adaptive_mi_kernel`, one pair at a time, candidates spread over threads) and
the vectorised "numpy" engine it is tested against (`adaptive_mi`, `adaptive_mi_level2`). Both
cut the same cells at the same medians and tests; only the order of the final sums differs
(rounding, about 1e-15 relative), and neither result depends on the number of threads.

`scores_` are finite, in nats, and never rise along the ranking ("mid-bound": the running
minimum of relevance minus redundancy); MATLAB's own score definition is undocumented and no
candidate reproduces its numbers (docs/reference/selection.md, "Fidelity to MATLAB").
Figure 5: `plot`.
"""

from blastscan.selection.adaptive_mi import ENGINES, AdaptiveMI, adaptive_relevance
from blastscan.selection.binning import MAX_BINS, equiprobable_bins
from blastscan.selection.fidelity import MatlabFit, matlab_fit
from blastscan.selection.mrmr import (
    ESTIMATORS,
    MRMR,
    SCORINGS,
    ZERO_REDUNDANCY,
    MIFunction,
    Ranking,
    kept_columns,
    mrmr_rank,
    ranking_scores,
)
from blastscan.selection.plot import figure_format, plot_mrmr_scores
from blastscan.selection.plugin_mi import PluginMI, plugin_relevance

__all__ = [
    "ENGINES",
    "ESTIMATORS",
    "MAX_BINS",
    "MRMR",
    "SCORINGS",
    "ZERO_REDUNDANCY",
    "AdaptiveMI",
    "MIFunction",
    "MatlabFit",
    "PluginMI",
    "Ranking",
    "adaptive_relevance",
    "equiprobable_bins",
    "figure_format",
    "kept_columns",
    "matlab_fit",
    "mrmr_rank",
    "plot_mrmr_scores",
    "plugin_relevance",
    "ranking_scores",
]
