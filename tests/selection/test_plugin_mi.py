"""The plug-in estimate's bias, next to the adaptive one."""

from __future__ import annotations

import numpy as np

from blastscan.selection import AdaptiveMI, PluginMI, equiprobable_bins


def test_plugin_bias_makes_independent_features_look_redundant():
    rng = np.random.default_rng(0)
    bins = equiprobable_bins(rng.normal(size=(3256, 3)))
    assert AdaptiveMI(bins)(0, np.array([1, 2])).max() < 0.01
    assert PluginMI(bins)(0, np.array([1, 2])).min() > 2.5  # truth is 0
