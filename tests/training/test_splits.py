"""Train/validation/test splits and outer folds."""

import numpy as np
import pytest

from blastscan import training as T
from blastscan.errors import BlastscanError


def test_outer_folds_partition_the_data():
    labels = np.repeat([0, 1, 2], 20)
    groups = np.arange(60) // 2
    tests = [T.outer_fold_split(labels, groups, 4, k, seed=0)[1] for k in range(4)]
    assert sorted(np.concatenate(tests).tolist()) == list(range(60))
    with pytest.raises(BlastscanError):
        T.outer_fold_split(labels, groups, 4, 4, seed=0)
