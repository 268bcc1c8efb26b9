"""MATLAB Classification Learner presets as scikit-learn pipelines.

The paper trained its classifiers in MATLAB's Classification Learner, so each preset here mirrors
the options that app's generated code passes (see docs/reference/classifiers.md for the mapping and the
sources). Every preset becomes `Pipeline([select?, StandardScaler, classifier])`: MATLAB
standardises by default, and doing it inside the pipeline means cross-validation fits the scaler
(and any selector) on the training folds only.

- `svm`: MatlabSVC (fitcecoc one-vs-one), MATLAB's kernels and kernel scales, Platt, coupling.
- `naive_bayes`: KernelNB (fitcnb with normal kernels) and its bandwidth.
- `presets`: Preset, PRESETS, PAPER_ROWS, get_preset, make_classifier, backend.
"""

from __future__ import annotations

from blastscan.classify.naive_bayes import KernelNB, normal_reference_bandwidth
from blastscan.classify.presets import (
    PAPER_ROWS,
    PRESETS,
    Float32MLPClassifier,
    KNeighborsClassifier,
    Preset,
    backend,
    get_preset,
    make_classifier,
    squared_inverse,
)
from blastscan.classify.svm import (
    MatlabSVC,
    _BinaryLearner,
    auto_kernel_scale,
    couple_pairwise,
    fit_platt,
    fixed_kernel_scale,
    kernel_matrix,
)

# Fitted classifiers are saved in bundles (skops) and pickles under their module path; these
# keep the public one, blastscan.classify.X, so files written before and after the split into
# modules name the same types (bundle.TRUSTED_TYPES lists them so).
for _persisted in (MatlabSVC, _BinaryLearner, KernelNB, Float32MLPClassifier, squared_inverse):
    _persisted.__module__ = __name__
del _persisted

__all__ = [
    "PAPER_ROWS",
    "PRESETS",
    "Float32MLPClassifier",
    "KNeighborsClassifier",
    "KernelNB",
    "MatlabSVC",
    "Preset",
    "auto_kernel_scale",
    "backend",
    "couple_pairwise",
    "fit_platt",
    "fixed_kernel_scale",
    "get_preset",
    "kernel_matrix",
    "make_classifier",
    "normal_reference_bandwidth",
    "squared_inverse",
]
