"""MRMR (fscmrmr) against a slow, literal reference, on constructed cases, as an estimator,
and on MATLAB's documentation example."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from helpers import ASSETS
from scipy.stats import spearmanr
from selection_helpers import correlated_data, mixed_data, ref_dv, ref_relevance
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from blastscan.selection import ENGINES, MRMR, SCORINGS, equiprobable_bins, matlab_fit


def ref_mrmr(relevance: list[float], mi: list[list[float]]) -> tuple[list[int], list[float]]:
    """fscmrmr's documented steps, literally: ranking, and the "mid-bound" score per feature
    (the running minimum of V - W along the ranking, floored at 0)."""
    m = len(relevance)
    scores = [0.0] * m
    pool = [j for j in range(m) if relevance[j] > 0]
    if not pool:
        return list(range(m)), scores
    first = max(pool, key=lambda j: (relevance[j], -j))
    chosen, scores[first] = [first], relevance[first]
    bound = relevance[first]
    pool.remove(first)

    def w(j):
        return sum(mi[j][s] for s in chosen) / len(chosen)

    while pool:
        free = [j for j in pool if w(j) <= 1e-12]
        if free:
            pick = max(free, key=lambda j: (relevance[j], -j))
            redundancy = 0.0
        else:
            pick = max(pool, key=lambda j: (relevance[j] / w(j), -j))
            redundancy = w(pick)
        bound = min(bound, relevance[pick] - redundancy)
        scores[pick] = max(bound, 0.0)
        chosen.append(pick)
        pool.remove(pick)
    return chosen + [j for j in range(m) if relevance[j] <= 0], scores


def informative(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.random.Generator]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    return rng, y, y + rng.normal(size=n)  # a strongly class-dependent feature


# --------------------------------------------------------------------------------------------
# Against the reference


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_ranking_and_scores_match_reference(seed):
    X, y = mixed_data(seed, n=200, m=9)
    sel = MRMR().fit(X, y)
    bins = equiprobable_bins(X)
    cols = [bins[:, j].tolist() for j in range(X.shape[1])]
    relevance = [ref_relevance(c, y.tolist()) for c in cols]
    mi = [[ref_dv(a, b) for b in cols] for a in cols]
    order, scores = ref_mrmr(relevance, mi)
    assert sel.ranking_.tolist() == order
    np.testing.assert_allclose(sel.scores_, scores, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(sel.relevance_, relevance, atol=1e-12)


# --------------------------------------------------------------------------------------------
# Constructed cases


def test_near_copy_ranks_after_an_independent_informative_feature():
    rng, y, strong = informative(1500, 0)
    copy = strong + 0.05 * rng.normal(size=len(y))
    other = y % 2 + rng.normal(size=len(y))  # informative, independent of `strong` given y
    noise = rng.normal(size=(len(y), 3))
    X = np.column_stack([copy, noise[:, 0], strong, other, noise[:, 1:]])
    ranking = MRMR().fit(X, y).ranking_.tolist()
    assert ranking[0] in (0, 2)
    assert ranking.index(3) < ranking.index(0 if ranking[0] == 2 else 2)


def test_noise_ranks_after_every_informative_feature():
    rng, y, strong = informative(1200, 1)
    halves = y % 2 + rng.normal(size=len(y)), (y > 1) + rng.normal(size=len(y))
    signal = np.column_stack([strong, *halves])
    X = np.column_stack([rng.normal(size=(len(y), 4)), signal])
    ranking = MRMR().fit(X, y).ranking_.tolist()
    assert sorted(ranking[:3]) == [4, 5, 6]


def test_zero_relevance_features_come_last_in_input_order_with_score_zero():
    rng, y, strong = informative(400, 2)
    X = np.column_stack([np.ones(len(y)), strong, np.zeros(len(y)), y + rng.normal(size=len(y))])
    sel = MRMR().fit(X, y)
    assert sel.ranking_[-2:].tolist() == [0, 2]
    assert sel.scores_[[0, 2]].tolist() == [0.0, 0.0]
    assert (sel.relevance_[[0, 2]] == 0).all()


@pytest.mark.parametrize("scoring", SCORINGS)
def test_scores_are_finite_and_the_first_pick_scores_its_relevance(scoring):
    X, y = mixed_data(7, n=400, m=10)
    sel = MRMR(scoring=scoring).fit(X, y)
    first = sel.ranking_[0]
    assert np.isfinite(sel.scores_).all()
    assert sel.scores_[first] == pytest.approx(sel.relevance_[first])
    assert (sel.scores_ <= sel.relevance_[first] + 1e-12).all()
    assert (sel.scores_[sel.relevance_ == 0] == 0).all()


def test_scorings_follow_their_definitions():
    X, y = correlated_data(3, n=500, m=20)
    mid = MRMR(scoring="mid").fit(X, y)
    relevant = mid.relevance_ > 0
    np.testing.assert_allclose(
        mid.scores_[relevant], (mid.relevance_ - mid.redundancy_)[relevant], atol=1e-15
    )
    along = (mid.relevance_ - mid.redundancy_)[mid.ranking_]
    bound = MRMR(scoring="mid-bound").fit(X, y)
    expected = np.where(relevant[bound.ranking_], np.maximum(np.minimum.accumulate(along), 0), 0)
    np.testing.assert_allclose(bound.scores_[bound.ranking_], expected, atol=1e-15)
    scaled = MRMR(scoring="rank-scaled").fit(X, y)
    rank = np.argsort(scaled.ranking_) + 1
    np.testing.assert_allclose(scaled.scores_, scaled.relevance_ / rank)


def test_mid_bound_never_rises_along_the_ranking_so_a_threshold_keeps_a_prefix():
    X, y = correlated_data(4, n=500, m=20)
    sel = MRMR(scoring="mid-bound").fit(X, y)
    along = sel.scores_[sel.ranking_]
    assert (np.diff(along) <= 1e-15).all()
    for threshold in np.unique(along):
        kept = sel.set_params(threshold=float(threshold)).get_support()
        assert kept[sel.ranking_].tolist() == sorted(kept.tolist(), reverse=True)


def test_scoring_does_not_change_the_ranking():
    X, y = correlated_data(6, n=400, m=15)
    orders = {tuple(MRMR(scoring=s).fit(X, y).ranking_) for s in SCORINGS}
    assert len(orders) == 1


def test_all_zero_relevance_keeps_input_order():
    rng = np.random.default_rng(3)
    sel = MRMR().fit(np.ones((50, 4)), rng.integers(0, 2, 50))
    assert sel.ranking_.tolist() == [0, 1, 2, 3] and not sel.scores_.any()


# --------------------------------------------------------------------------------------------
# Selection and scikit-learn integration


def test_threshold_keeps_scores_above_it():
    X, y = mixed_data(8, n=400, m=10)
    sel = MRMR(threshold=0.25).fit(X, y)
    np.testing.assert_array_equal(sel.get_support(), sel.scores_ > 0.25)
    assert sel.transform(X).shape[1] == int((sel.scores_ > 0.25).sum())


def test_n_features_keeps_the_top_of_the_ranking():
    X, y = mixed_data(8, n=400, m=10)
    sel = MRMR(n_features=3).fit(X, y)
    assert np.flatnonzero(sel.get_support()).tolist() == sorted(sel.ranking_[:3].tolist())
    np.testing.assert_array_equal(sel.transform(X), X[:, np.sort(sel.ranking_[:3])])


@pytest.mark.parametrize(
    "params",
    [
        {"n_features": 2, "threshold": 0.1},
        {"n_features": 0},
        {"estimator": "knn"},
        {"n_bins": 300},
        {"alpha": 1.5},
        {"engine": "cython"},
        {"scoring": "miq"},
    ],
)
def test_invalid_parameters_raise(params):
    X, y = mixed_data(0, n=50)
    with pytest.raises(ValueError):
        MRMR(**params).fit(X, y)


def test_works_in_pipeline_and_cross_validation():
    X, y = mixed_data(9, n=300, m=10)
    pipe = make_pipeline(MRMR(n_features=4), KNeighborsClassifier())
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.shape == (3,) and scores.mean() > 0.4


def test_plugin_estimator_fits():
    X, y = mixed_data(4, n=200)
    sel = MRMR(estimator="plugin", n_features=3).fit(X, y)
    assert sorted(sel.ranking_.tolist()) == list(range(X.shape[1]))


@parametrize_with_checks(
    [MRMR(), MRMR(n_features=2), MRMR(estimator="plugin"), MRMR(threshold=0.1, scoring="mid")]
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# --------------------------------------------------------------------------------------------
# Threads and engines


@pytest.mark.parametrize("engine", ENGINES)
def test_n_jobs_does_not_change_the_ranking_or_scores(engine):
    X, y = correlated_data(1)
    one = MRMR(n_jobs=1, engine=engine).fit(X, y)
    two = MRMR(n_jobs=2, engine=engine).fit(X, y)
    np.testing.assert_array_equal(two.ranking_, one.ranking_)
    np.testing.assert_array_equal(two.scores_, one.scores_)


def test_engines_give_the_same_ranking_and_scores():
    X, y = correlated_data(5, n=600, m=60)
    fast = MRMR(engine="numba").fit(X, y)
    slow = MRMR(engine="numpy").fit(X, y)
    np.testing.assert_array_equal(fast.ranking_, slow.ranking_)
    np.testing.assert_allclose(fast.scores_, slow.scores_, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(fast.redundancy_, slow.redundancy_, rtol=1e-12)
    np.testing.assert_array_equal(fast.relevance_, slow.relevance_)


@pytest.mark.parametrize("n_jobs", [0, -2, 1.5, True])
def test_invalid_n_jobs_raise(n_jobs):
    X, y = mixed_data(0, n=50)
    with pytest.raises(ValueError):
        MRMR(n_jobs=n_jobs).fit(X, y)


# --------------------------------------------------------------------------------------------
# MATLAB's documentation example: fscmrmr on UCI ionosphere (docs/reference/selection.md, "Fidelity")

IONOSPHERE = ASSETS / "ionosphere.csv"
# [idx, scores] = fscmrmr(X, Y) as MATLAB prints it (1-based; the first 30 of 34 of each)
MATLAB = json.loads((ASSETS / "ionosphere_matlab.json").read_text())
MATLAB_IDX, MATLAB_SCORES = MATLAB["idx"], MATLAB["scores"]


def ionosphere_data() -> tuple[np.ndarray, np.ndarray]:
    rows = np.loadtxt(IONOSPHERE, delimiter=",", dtype=str)
    return rows[:, :34].astype(float), rows[:, 34]


@pytest.fixture
def ionosphere() -> MRMR:
    return MRMR().fit(*ionosphere_data())


def test_ionosphere_agrees_with_matlab_where_it_does(ionosphere):
    """What we reproduce of fscmrmr's documentation example (not its scores: see the docs)."""
    sel = ionosphere
    assert sel.ranking_[0] + 1 == MATLAB_IDX[0]  # the most relevant feature
    assert sel.relevance_[4] == pytest.approx(0.2905, abs=0.05)  # MATLAB's first score
    # MATLAB scores exactly 0 and appends in input order (zero relevance): so do we
    zero = [j for j in range(30) if MATLAB_SCORES[j] == 0]
    assert (sel.relevance_[zero] == 0).all() and (sel.scores_[zero] == 0).all()
    tail = [j for j in sel.ranking_ if sel.relevance_[j] == 0]
    assert tail == sorted(tail) and set(zero) <= set(tail)
    # the order agrees in the large: Spearman correlation of positions over MATLAB's 30
    position = np.argsort(sel.ranking_)
    assert spearmanr(position[np.array(MATLAB_IDX) - 1], np.arange(30)).statistic > 0.6  # 0.67


@pytest.mark.parametrize(
    ("scoring", "within", "mean_error"),
    [("mid-bound", 10, 0.019), ("mid", 7, 0.057), ("rank-scaled", 14, 0.0098)],
)
def test_ionosphere_fit_to_matlab_is_what_the_docs_report(ionosphere, scoring, within, mean_error):
    """The table of docs/reference/selection.md, pinned: a change of estimator or score that moves
    the fit to MATLAB's example shows up here (and the docs must follow). None reaches the
    issue's bar of 25 equal positions or all scores within 0.005."""
    sel = ionosphere.set_params(scoring=scoring)
    sel.fit(*ionosphere_data())
    fit = matlab_fit(sel.ranking_, sel.scores_, MATLAB_IDX, MATLAB_SCORES)
    print(f"\n{scoring}: {fit.summary()}")
    print("ours   idx", (sel.ranking_[:30] + 1).tolist())
    print("MATLAB idx", MATLAB_IDX)
    assert fit.same_position == 3 and fit.position_spearman == pytest.approx(0.670, abs=5e-4)
    assert fit.scores_within == within
    assert fit.mean_score_error == pytest.approx(mean_error, abs=5e-4)


def test_ionosphere_matlab_scores_cannot_be_miq(ionosphere):
    """Feature 1 is binary, so I(x1; y) is the plug-in value of its 2 x 2 table whatever the
    estimator, and any partition estimate of I(x1; z) is at most ln 2: its MIQ is at least
    I(x1; y) / ln 2, yet MATLAB scores it 0.0662 (docs/reference/selection.md, "Fidelity")."""
    rows = np.loadtxt(IONOSPHERE, delimiter=",", dtype=str)
    x1, good = rows[:, 0].astype(float), rows[:, 34] == "g"
    table = np.array([[np.sum((x1 == v) & (good == g)) for g in (0, 1)] for v in (0, 1)])
    p = table / table.sum()
    expected = p.sum(1, keepdims=True) * p.sum(0, keepdims=True)
    cells = zip(*np.nonzero(p), strict=True)
    plugin = sum(p[i, j] * math.log(p[i, j] / expected[i, j]) for i, j in cells)
    assert ionosphere.relevance_[0] == pytest.approx(plugin, abs=1e-12)
    assert MATLAB_SCORES[0] < plugin / math.log(2)
