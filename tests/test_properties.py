"""Property tests (hypothesis, bounded): mRMR's outputs, the metrics' intervals, the splits."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blastscan.data import stratified_group_split
from blastscan.errors import BlastscanError
from blastscan.evaluation import classification_metrics, wilson_interval
from blastscan.selection import MRMR
from blastscan.training import outer_fold_split

BOUNDED = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
EPS = 1e-12  # rounding slack for bounds computed in floating point

# ------------------------------------------------------------------ strategies


@st.composite
def labelled_features(draw):
    """Small X (n x m) with labels of 2-4 classes, every class present; columns may be
    constant, duplicated, discrete or tied, which is where rankers go wrong."""
    n = draw(st.integers(6, 40))
    m = draw(st.integers(1, 8))
    k = draw(st.integers(2, 4))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    y = np.concatenate([np.arange(k), rng.integers(0, k, n - k)])
    rng.shuffle(y)
    columns = []
    for _ in range(m):
        kind = draw(st.sampled_from(["noise", "signal", "constant", "discrete", "copy"]))
        if kind == "noise":
            col = rng.normal(size=n)
        elif kind == "signal":
            col = y + rng.normal(scale=draw(st.sampled_from([0.01, 0.5, 2.0])), size=n)
        elif kind == "constant":
            col = np.full(n, 3.0)
        elif kind == "discrete":
            col = rng.integers(0, 3, n).astype(float)
        else:
            col = columns[-1].copy() if columns else rng.normal(size=n)
        columns.append(col)
    return np.column_stack(columns), y


@st.composite
def grouped_labels(draw, min_groups: int = 2):
    """Labels and groups where every group holds one class (duplicates share their class)."""
    k = draw(st.integers(2, 4))
    sizes = draw(st.lists(st.integers(1, 4), min_size=max(min_groups, k), max_size=60))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    group_class = np.concatenate([np.arange(k), rng.integers(0, k, len(sizes) - k)])
    labels = np.repeat(group_class, sizes)
    groups = np.repeat(rng.permutation(len(sizes)) * 7 + 3, sizes)  # ids need not be 0..G-1
    order = rng.permutation(len(labels))
    return labels[order], groups[order]


def assert_partition(train: np.ndarray, test: np.ndarray, n: int) -> None:
    assert len(np.intersect1d(train, test)) == 0
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(n))


def assert_groups_not_split(train, test, groups) -> None:
    assert not set(groups[train].tolist()) & set(groups[test].tolist())


# ------------------------------------------------------------------ mRMR


@BOUNDED
@given(labelled_features(), st.sampled_from(["adaptive", "plugin"]))
def test_mrmr_ranking_scores_and_support(data, estimator):
    X, y = data
    m = X.shape[1]
    selector = MRMR(estimator=estimator).fit(X, y)
    ranking, scores = selector.ranking_, selector.scores_
    assert sorted(ranking.tolist()) == list(range(m)), "ranking_ is a permutation"
    assert len(scores) == m and not np.isnan(scores).any()
    assert (scores >= 0).all() and (selector.relevance_ >= 0).all()
    relevant = selector.relevance_ > 0
    # zero-relevance features come last and score 0
    assert set(ranking[relevant.sum() :].tolist()) == set(np.flatnonzero(~relevant).tolist())
    assert (scores[~relevant] == 0).all()
    if relevant.any():
        first = ranking[0]
        assert scores[first] == selector.relevance_[first]
    # finite everywhere, and never rising along the ranking (the default "mid-bound")
    assert np.isfinite(scores).all()
    assert (np.diff(scores[ranking]) <= 1e-15).all()
    # get_support: the threshold rule (a prefix of the ranking), and the top-N rule
    for threshold in (None, 0.0, 0.25, float(np.median(scores))):
        mask = selector.set_params(n_features=None, threshold=threshold).get_support()
        assert (mask == (scores > (threshold or 0.0))).all()
        assert mask[ranking].tolist() == sorted(mask.tolist(), reverse=True)
    for n_features in (1, m, m + 3):
        mask = selector.set_params(threshold=None, n_features=n_features).get_support()
        assert mask.sum() == min(n_features, m)
        assert set(np.flatnonzero(mask).tolist()) == set(ranking[:n_features].tolist())
        assert (selector.get_support(indices=True) == np.flatnonzero(mask)).all()


@BOUNDED
@given(labelled_features())
def test_mrmr_is_deterministic_and_ignores_column_scale(data):
    X, y = data
    a = MRMR().fit(X, y)
    b = MRMR().fit(X * 3.0 + 1.0, y)  # mutual information depends on ranks only
    assert (a.ranking_ == b.ranking_).all()
    np.testing.assert_array_equal(a.scores_, b.scores_)


# ------------------------------------------------------------------ intervals and metrics


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 10**6).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))),
    st.floats(0.5, 0.999),
)
def test_wilson_interval_contains_the_estimate_and_stays_in_unit_range(kn, confidence):
    k, n = kn
    low, high = wilson_interval(k, n, confidence)
    assert 0.0 <= low <= high <= 1.0
    assert low - EPS <= k / n <= high + EPS
    wider_low, wider_high = wilson_interval(k, n, min(0.9999, confidence + 0.0005))
    assert wider_low <= low + EPS and wider_high >= high - EPS


def test_wilson_interval_without_data_is_uninformative():
    assert wilson_interval(0, 0) == (0.0, 1.0)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(2, 5).flatmap(
        lambda k: st.tuples(
            st.just(k),
            st.lists(
                st.tuples(st.integers(0, k - 1), st.integers(0, k - 1)), min_size=1, max_size=80
            ),
        )
    )
)
def test_classification_metrics_are_consistent(case):
    k, pairs = case
    y_true, y_pred = (np.array(v) for v in zip(*pairs, strict=True))
    names = [f"c{i}" for i in range(k)]
    m = classification_metrics(y_true, y_pred, names)
    cm = np.array(m["confusion_matrix"])
    assert cm.shape == (k, k) and cm.sum() == m["n"] == len(y_true)
    assert (cm.sum(axis=1) == np.bincount(y_true, minlength=k)).all()
    assert (cm.sum(axis=0) == np.bincount(y_pred, minlength=k)).all()
    assert math.isclose(m["accuracy"]["value"], float(np.mean(y_true == y_pred)))
    proportions = [m["accuracy"]] + [
        m["per_class"][c][key] for c in names for key in ("precision", "recall", "accuracy")
    ]
    for p in proportions:
        assert 0.0 <= p["low"] <= p["high"] <= 1.0
        assert p["low"] - EPS <= p["value"] <= p["high"] + EPS
        assert 0 <= p["k"] <= p["n"]
    assert sum(m["per_class"][c]["support"] for c in names) == len(y_true)
    for c in names:
        assert 0.0 <= m["per_class"][c]["f1"] <= 1.0
    assert all(0.0 <= v <= 1.0 for v in m["macro"].values())


# ------------------------------------------------------------------ splits


@BOUNDED
@given(grouped_labels(), st.floats(0.1, 0.5), st.integers(0, 1000))
def test_stratified_group_split_partitions_keeps_groups_and_proportions(data, test_size, seed):
    labels, groups = data
    train, test = stratified_group_split(labels, groups, test_size, seed)
    assert_partition(train, test, len(labels))
    assert_groups_not_split(train, test, groups)
    again = stratified_group_split(labels, groups, test_size, seed)
    assert (again[0] == train).all() and (again[1] == test).all()
    largest = int(np.bincount(np.unique(groups, return_inverse=True)[1]).max())
    for cls in np.unique(labels):
        target = round(test_size * np.sum(labels == cls))
        taken = int(np.sum(labels[test] == cls))
        # whole groups move until the target is reached: it overshoots by less than one group
        assert target <= taken <= target + largest - 1 or (target == 0 and taken == 0)


@BOUNDED
@given(grouped_labels(min_groups=6), st.integers(2, 5), st.integers(0, 1000))
@pytest.mark.filterwarnings("ignore:The least populated class:UserWarning")
def test_outer_folds_partition_keep_groups_and_roughly_stratify(data, n_folds, seed):
    labels, groups = data
    n_groups, largest_class = len(np.unique(groups)), int(np.bincount(labels).max())
    if n_folds > min(n_groups, largest_class):  # scikit-learn would fail or leave a fold empty
        with pytest.raises(BlastscanError, match="outer folds do not fit"):
            outer_fold_split(labels, groups, n_folds, 0, seed)
        return
    largest_group = int(np.unique(groups, return_counts=True)[1].max())
    tests = []
    for fold in range(n_folds):
        train, test = outer_fold_split(labels, groups, n_folds, fold, seed)
        assert_partition(train, test, len(labels))
        assert_groups_not_split(train, test, groups)
        tests.append(test)
    assert sorted(np.concatenate(tests).tolist()) == list(range(len(labels))), (
        "folds cover each row once"
    )
    # roughly stratified: each class's count in a test fold is its 1/n_folds share, give or
    # take about one whole group (groups cannot be split)
    for test in tests:
        for cls in np.unique(labels):
            expected = np.sum(labels == cls) / n_folds
            assert abs(np.sum(labels[test] == cls) - expected) <= largest_group + 1


def test_outer_folds_that_cannot_fit_are_a_clear_error():
    labels, groups = np.repeat([0, 1], 3), np.arange(6)
    for n_folds in (1, 4):
        with pytest.raises(BlastscanError, match="use 2 to 3 folds"):
            outer_fold_split(labels, groups, n_folds, 0, seed=0)


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 4), st.integers(0, 1000))
def test_outer_folds_without_duplicates_are_close_to_exactly_stratified(n_folds, seed):
    labels = np.repeat([0, 1, 2], [40, 25, 15])
    groups = np.arange(len(labels))
    for fold in range(n_folds):
        _, test = outer_fold_split(labels, groups, n_folds, fold, seed)
        for cls, count in enumerate((40, 25, 15)):
            assert abs(np.sum(labels[test] == cls) - count / n_folds) <= 1.5
