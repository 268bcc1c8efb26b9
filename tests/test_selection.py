"""MRMR (fscmrmr) against a slow, literal reference, on constructed cases, and as an estimator."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import ASSETS
from scipy.stats import chi2, spearmanr
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from blastscan.selection import (
    ENGINES,
    MRMR,
    AdaptiveMI,
    PluginMI,
    adaptive_relevance,
    equiprobable_bins,
    plot_mrmr_scores,
)

ALPHA = 0.05

# --------------------------------------------------------------------------------------------
# Reference: one pair, one cell at a time, in plain Python


def ref_bins(x: list[float], n_bins: int) -> list[int]:
    """Distinct-value index when few, else floor(lowest rank * n_bins / n)."""
    distinct = sorted(set(x))
    if len(distinct) <= n_bins:
        return [distinct.index(v) for v in x]
    ranked = sorted(x)
    return [ranked.index(v) * n_bins // len(x) for v in x]


def ref_cut(values: list[int]) -> tuple[int, int]:
    """Median cut of a cell: (last value of the lower part, its size), nearer to even halves."""
    c = len(values)
    med = sorted(values)[(c + 1) // 2 - 1]
    upto = sum(v <= med for v in values)
    below = sum(v < med for v in values)
    if below > 0 and (upto == c or abs(2 * below - c) < abs(2 * upto - c)):
        return med - 1, below
    return med, upto


def pearson(observed: list[list[int]]) -> float:
    """Pearson chi-square of a contingency table, over its nonzero-expected cells."""
    total = sum(map(sum, observed))
    rows = [sum(r) for r in observed]
    cols = [sum(c) for c in zip(*observed, strict=True)]
    stat = 0.0
    for i, r in enumerate(observed):
        for j, o in enumerate(r):
            e = rows[i] * cols[j] / total
            if e > 0:
                stat += (o - e) ** 2 / e
    return stat


def ref_dv(z: list[int], x: list[int], alpha: float = ALPHA) -> float:
    """Darbellay-Vajda I(z; x): recursive 2x2 cuts at the cell's marginal medians."""
    n, limit = len(z), chi2.ppf(1 - alpha, 3)

    def info(points, z0, z1, x0, x1):
        c = len(points)
        if c == 0:
            return 0.0
        zc, zl = ref_cut([p[0] for p in points])
        xc, xl = ref_cut([p[1] for p in points])
        if 0 < zl < c and 0 < xl < c:
            quads = [
                [p for p in points if (p[0] > zc) == zh and (p[1] > xc) == xh]
                for zh in (False, True)
                for xh in (False, True)
            ]
            table = [[len(quads[0]), len(quads[1])], [len(quads[2]), len(quads[3])]]
            if pearson(table) > limit:
                ranges = [
                    (z0, zc, x0, xc),
                    (z0, zc, xc + 1, x1),
                    (zc + 1, z1, x0, xc),
                    (zc + 1, z1, xc + 1, x1),
                ]
                return sum(info(q, *r) for q, r in zip(quads, ranges, strict=True))
        nz = sum(z0 <= v <= z1 for v in z)
        nx = sum(x0 <= v <= x1 for v in x)
        return c / n * math.log(c * n / (nz * nx))

    return info(list(zip(z, x, strict=True)), 0, 255, 0, 255)


def ref_relevance(x: list[int], y: list[int], alpha: float = ALPHA) -> float:
    """I(x; y): x intervals cut at their median while the class mix differs (chi-square with
    2 x classes - 1 degrees of freedom, Darbellay-Vajda's sub-cells minus one)."""
    n, classes = len(x), sorted(set(y))
    n_y = {c: y.count(c) for c in classes}

    def info(members):
        c = len(members)
        cut, low = ref_cut([x[i] for i in members])
        if 0 < low < c:
            left = [i for i in members if x[i] <= cut]
            right = [i for i in members if x[i] > cut]
            table = [[sum(y[i] == k for i in part) for k in classes] for part in (left, right)]
            seen = sum(a + b > 0 for a, b in zip(*table, strict=True))
            if seen > 1 and pearson(table) > chi2.ppf(1 - alpha, 2 * seen - 1):
                return info(left) + info(right)
        out = 0.0
        for k in classes:
            nk = sum(y[i] == k for i in members)
            if nk:
                out += nk / n * math.log(nk * n / (c * n_y[k]))
        return out

    return info(list(range(n)))


def ref_mrmr(relevance: list[float], mi: list[list[float]]) -> tuple[list[int], list[float]]:
    """fscmrmr's documented steps, literally: ranking and per-feature scores."""
    m = len(relevance)
    scores = [0.0] * m
    pool = [j for j in range(m) if relevance[j] > 0]
    if not pool:
        return list(range(m)), scores
    first = max(pool, key=lambda j: (relevance[j], -j))
    chosen, scores[first] = [first], relevance[first]
    pool.remove(first)

    def w(j):
        return sum(mi[j][s] for s in chosen) / len(chosen)

    while pool:
        free = [j for j in pool if w(j) <= 1e-12]
        if free:
            pick = max(free, key=lambda j: (relevance[j], -j))
            scores[pick] = math.inf
        else:
            pick = max(pool, key=lambda j: (relevance[j] / w(j), -j))
            scores[pick] = relevance[pick] / w(pick)
        chosen.append(pick)
        pool.remove(pick)
    return chosen + [j for j in range(m) if relevance[j] <= 0], scores


# --------------------------------------------------------------------------------------------
# Data


def mixed_data(seed: int, n: int = 240, m: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Correlated features with ties, a 3-valued one, a constant one, a class signal and one
    feature informative but only weakly dependent on the others."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    f = rng.normal(size=(n, 2)) + y[:, None] * 1.2
    X = f @ rng.normal(size=(2, m)) + rng.normal(size=(n, m)) * rng.uniform(0.2, 2, m)
    X[:, 1] = rng.integers(0, 3, n)
    X[:, 2] = np.maximum(X[:, 2], 0.3)
    X[:, 3] = 1.0
    X[:, 4] = np.round(X[:, 4], 1)
    X[:, 5] = (y == 0) + rng.normal(size=n) * 0.5
    return X, y


def informative(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.random.Generator]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    return rng, y, y + rng.normal(size=n)  # a strongly class-dependent feature


# --------------------------------------------------------------------------------------------
# Against the reference


@pytest.mark.parametrize("n_bins", [4, 16, 256])
def test_bins_match_reference(n_bins):
    X, _ = mixed_data(0, n=60)
    got = equiprobable_bins(X, n_bins)
    for j in range(X.shape[1]):
        assert got[:, j].tolist() == ref_bins(X[:, j].tolist(), n_bins)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("seed", range(4))
def test_adaptive_mi_matches_reference(seed, engine):
    X, _ = mixed_data(seed)
    bins = equiprobable_bins(X, [256, 16, 8, 256][seed])
    mi = AdaptiveMI(bins, engine=engine)
    cols = [bins[:, j].tolist() for j in range(bins.shape[1])]
    for z in range(bins.shape[1]):
        others = np.delete(np.arange(bins.shape[1]), z)
        want = [ref_dv(cols[z], cols[x]) for x in others]
        np.testing.assert_allclose(mi(z, others), want, rtol=0, atol=1e-12)


def test_relevance_matches_reference():
    X, y = mixed_data(5, n=300)
    bins = equiprobable_bins(X)
    want = [ref_relevance(bins[:, j].tolist(), y.tolist()) for j in range(X.shape[1])]
    np.testing.assert_allclose(adaptive_relevance(bins, y), want, rtol=0, atol=1e-12)


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
    np.testing.assert_allclose(sel.scores_, scores, rtol=1e-10)
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


def test_plugin_bias_makes_independent_features_look_redundant():
    rng = np.random.default_rng(0)
    bins = equiprobable_bins(rng.normal(size=(3256, 3)))
    assert AdaptiveMI(bins)(0, np.array([1, 2])).max() < 0.01
    assert PluginMI(bins)(0, np.array([1, 2])).min() > 2.5  # truth is 0


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


def test_scores_are_finite_except_zero_redundancy_picks():
    X, y = mixed_data(7, n=400, m=10)
    sel = MRMR().fit(X, y)
    first = sel.ranking_[0]
    assert sel.scores_[first] == pytest.approx(sel.relevance_[first])
    infinite = np.isinf(sel.scores_)
    assert (sel.redundancy_[infinite] == 0).all() and (sel.relevance_[infinite] > 0).all()
    finite = ~infinite
    assert np.isfinite(sel.scores_[finite]).all() and (sel.scores_ >= 0).all()
    later = finite & (sel.redundancy_ > 0)
    np.testing.assert_allclose(sel.scores_[later], sel.relevance_[later] / sel.redundancy_[later])


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


def test_plot_mrmr_scores_writes_png(tmp_path):
    scores = np.array([0.9, np.inf, 0.3, 0.1, 0.0])
    path = plot_mrmr_scores(scores, 0.25, tmp_path / "fig" / "mrmr.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@parametrize_with_checks([MRMR(), MRMR(n_features=2), MRMR(estimator="plugin")])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# --------------------------------------------------------------------------------------------
# Threads


def correlated_data(seed: int, n: int = 800, m: int = 120) -> tuple[np.ndarray, np.ndarray]:
    """Noisy copies of one class-dependent factor (deep partitions), with a 3-class y."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    factor = rng.normal(size=(n, 1)) + y[:, None]
    return factor + rng.uniform(0.05, 1.0, m) * rng.normal(size=(n, m)), y


@pytest.mark.parametrize("engine", ENGINES)
def test_threads_give_the_same_mutual_information_bit_for_bit(engine):
    X, _ = correlated_data(0)
    bins = equiprobable_bins(X)
    cand = np.arange(1, X.shape[1])
    one = AdaptiveMI(bins, engine=engine)(0, cand)
    assert one.min() > 0.1 and one.max() > 0.7  # deep partitions: every level is exercised
    for threads in (2, 3):
        mi = AdaptiveMI(bins, n_threads=threads, engine=engine)
        np.testing.assert_array_equal(mi(0, cand), one)


@pytest.mark.parametrize("engine", ENGINES)
def test_n_jobs_does_not_change_the_ranking_or_scores(engine):
    X, y = correlated_data(1)
    one = MRMR(n_jobs=1, engine=engine).fit(X, y)
    two = MRMR(n_jobs=2, engine=engine).fit(X, y)
    np.testing.assert_array_equal(two.ranking_, one.ranking_)
    np.testing.assert_array_equal(two.scores_, one.scores_)


# --------------------------------------------------------------------------------------------
# The compiled kernel against the numpy engine


def assert_same_mi(bins: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """Every pair's I(z; x) from both engines: the same zeros, the rest within rounding."""
    fast, slow = AdaptiveMI(bins, alpha, engine="numba"), AdaptiveMI(bins, alpha, engine="numpy")
    values = []
    for z in range(bins.shape[1]):
        cand = np.delete(np.arange(bins.shape[1]), z)
        a, b = fast(z, cand), slow(z, cand)
        np.testing.assert_array_equal(a == 0, b == 0)
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=0)
        values.append(b)
    return np.concatenate(values)


@pytest.mark.parametrize(
    ("make", "n_bins", "alpha"),
    [
        (lambda: correlated_data(2, n=800, m=30)[0], 256, ALPHA),  # deep partitions
        (lambda: correlated_data(3, n=517, m=20)[0], 256, 0.5),  # small cells open (n % 64 != 0)
        (lambda: mixed_data(6, n=333, m=12)[0], 256, ALPHA),  # ties, constant, 3 values
        (lambda: mixed_data(7, n=300, m=12)[0], 6, 0.2),  # few bins: heavy ties
        (lambda: correlated_data(4, n=40, m=10)[0], 256, 0.9),  # tiny n, nearly every cut
    ],
)
def test_numba_engine_matches_numpy_engine(make, n_bins, alpha):
    values = assert_same_mi(equiprobable_bins(make(), n_bins), alpha)
    assert (values > 0).any()


def test_numba_engine_matches_numpy_engine_on_heavy_ties():
    """ReLU-like features: half the samples share the lowest bin, so median cuts hit ties."""
    rng = np.random.default_rng(8)
    factor = rng.normal(size=(1200, 1))
    X = np.maximum(factor + rng.uniform(0.1, 1.5, 16) * rng.normal(size=(1200, 16)), 0)
    X[:, 3] = np.round(X[:, 3], 1)
    values = assert_same_mi(equiprobable_bins(X))
    assert (values > 0.3).any()


def test_engines_give_the_same_ranking_and_scores():
    X, y = correlated_data(5, n=600, m=60)
    fast = MRMR(engine="numba").fit(X, y)
    slow = MRMR(engine="numpy").fit(X, y)
    np.testing.assert_array_equal(fast.ranking_, slow.ranking_)
    np.testing.assert_allclose(fast.scores_, slow.scores_, rtol=1e-12)
    np.testing.assert_allclose(fast.redundancy_, slow.redundancy_, rtol=1e-12)
    np.testing.assert_array_equal(fast.relevance_, slow.relevance_)


@pytest.mark.parametrize("n_jobs", [0, -2, 1.5, True])
def test_invalid_n_jobs_raise(n_jobs):
    X, y = mixed_data(0, n=50)
    with pytest.raises(ValueError):
        MRMR(n_jobs=n_jobs).fit(X, y)


# --------------------------------------------------------------------------------------------
# MATLAB's documentation example: fscmrmr on UCI ionosphere (docs/mrmr.md, "Fidelity")

IONOSPHERE = ASSETS / "ionosphere.csv"
# [idx, scores] = fscmrmr(X, Y) as MATLAB prints it (1-based; the first 30 of 34 of each)
MATLAB_IDX = [5, 4, 1, 7, 24, 29, 12, 3, 34, 33, 15, 21, 9, 32, 31, 27, 25, 8, 13, 19, 30, 6]
MATLAB_IDX += [23, 10, 11, 17, 16, 14, 2, 18]
MATLAB_SCORES = [0.0662, 0, 0.0214, 0.0756, 0.2905, 0.0068, 0.0345, 0.0085, 0.0128, 0.0063]
MATLAB_SCORES += [0.0023, 0.0274, 0.0079, 0.0007, 0.0145, 0.0014, 0.0018, 0, 0.0073, 0]
MATLAB_SCORES += [0.0141, 0, 0.0066, 0.0310, 0.0086, 0, 0.0098, 0, 0.0280, 0.0072]


@pytest.fixture(scope="module")
def ionosphere() -> MRMR:
    rows = np.loadtxt(IONOSPHERE, delimiter=",", dtype=str)
    return MRMR().fit(rows[:, :34].astype(float), rows[:, 34])


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


def test_ionosphere_matlab_scores_cannot_be_miq(ionosphere):
    """Feature 1 is binary, so I(x1; y) is the plug-in value of its 2 x 2 table whatever the
    estimator, and any partition estimate of I(x1; z) is at most ln 2: its MIQ is at least
    I(x1; y) / ln 2, yet MATLAB scores it 0.0662 (docs/mrmr.md, "Fidelity")."""
    rows = np.loadtxt(IONOSPHERE, delimiter=",", dtype=str)
    x1, good = rows[:, 0].astype(float), rows[:, 34] == "g"
    table = np.array([[np.sum((x1 == v) & (good == g)) for g in (0, 1)] for v in (0, 1)])
    p = table / table.sum()
    expected = p.sum(1, keepdims=True) * p.sum(0, keepdims=True)
    cells = zip(*np.nonzero(p), strict=True)
    plugin = sum(p[i, j] * math.log(p[i, j] / expected[i, j]) for i, j in cells)
    assert ionosphere.relevance_[0] == pytest.approx(plugin, abs=1e-12)
    assert MATLAB_SCORES[0] < plugin / math.log(2)
