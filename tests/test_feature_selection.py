"""Tests of sknnmfdiff.feature_selection.StatSelector."""

import warnings

import numpy as np
import pytest
from scipy import stats
from sklearn.feature_selection import SelectKBest
from sklearn.metrics import roc_auc_score

from sknnmfdiff.feature_selection import CRITERIA, StatSelector, _t_logsf, _t_logsf_series


def _informative(n=200, n_features=12, informative=(2, 7, 9), shifts=(2.0, 1.0, 0.5), seed=0):
    """Gaussian noise with known class-shifted columns (largest shift = most informative)."""
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], n // 2)
    X = rng.normal(size=(n, n_features))
    for j, s in zip(informative, shifts):
        X[:, j] += s * y
    return X, y


def _cohen_d(a, b):
    na, nb = len(a), len(b)
    sp = np.sqrt(((na - 1) * a.var(ddof=1) + (nb - 1) * b.var(ddof=1)) / (na + nb - 2))
    return abs(a.mean() - b.mean()) / sp


def test_scores_match_reference_implementations():
    X, y = _informative()
    sel = StatSelector(k=3).fit(X, y)
    assert sel.criteria_ == CRITERIA
    assert sel.scores_.shape == (X.shape[1], 3)
    auc = [abs(roc_auc_score(y, X[:, j]) - 0.5) for j in range(X.shape[1])]
    d = [_cohen_d(X[y == 1, j], X[y == 0, j]) for j in range(X.shape[1])]
    p = stats.ttest_ind(X[y == 1], X[y == 0], equal_var=False).pvalue
    np.testing.assert_allclose(sel.scores_[:, 0], auc, rtol=1e-12)
    np.testing.assert_allclose(sel.scores_[:, 1], d, rtol=1e-10)
    np.testing.assert_allclose(sel.pvalues_, p, rtol=1e-8)
    np.testing.assert_allclose(sel.scores_[:, 2], -np.log10(p), rtol=1e-8)


def test_selects_known_informative_features_in_order():
    X, y = _informative()
    sel = StatSelector(k=3).fit(X, y)
    assert sel.get_support(indices=True).tolist() == [2, 7, 9]
    assert sel.ranking_[[2, 7, 9]].tolist() == [1, 2, 3]
    assert sorted(sel.ranking_.tolist()) == list(range(1, 13))
    Xt = sel.transform(X)
    np.testing.assert_array_equal(Xt, X[:, sel.get_support()])


def test_t_tail_beyond_float_range():
    t = np.array([30.0, 50.0, 367.0, 5.0, 3.0])
    df = np.array([598.0, 598.0, 20.0, 3.0, 1.5])
    ref = stats.t.logsf(t, df)
    assert np.isfinite(ref).all()
    np.testing.assert_allclose(_t_logsf_series(t, df), ref, rtol=1e-12)
    # Where scipy underflows to -inf, the tail stays finite and keeps decreasing in t.
    far = _t_logsf(np.array([50.0, 100.0, 367.0]), np.full(3, 598.0))
    assert np.isneginf(stats.t.logsf(100.0, 598.0))
    assert np.isfinite(far).all() and np.all(np.diff(far) < 0)


def test_log_space_p_values_keep_ranking_below_float_range():
    # Two near-perfect separators whose Welch p-values underflow to 0.0 in float64:
    # the log-space p still orders them by their t statistic.
    rng = np.random.default_rng(1)
    y = np.repeat([0, 1], 300)
    X = rng.normal(size=(600, 3))
    X[:, 0] += 30.0 * y
    X[:, 2] += 40.0 * y
    sel = StatSelector(k=1, criteria=("welch_p",)).fit(X, y)
    assert np.all(sel.pvalues_[[0, 2]] == 0.0)
    assert np.isfinite(sel.scores_[[0, 2], 0]).all()
    assert sel.get_support(indices=True).tolist() == [2]


@pytest.mark.parametrize("aggregate", ["mean", "median", "min"])
def test_aggregate_rule(aggregate):
    X, y = _informative(seed=3)
    sel = StatSelector(k="all", aggregate=aggregate).fit(X, y)
    fn = {"mean": np.mean, "median": np.median, "min": np.min}[aggregate]
    np.testing.assert_allclose(sel.aggregate_rank_, fn(sel.criterion_ranks_, axis=1))
    # The final order never contradicts the aggregate rank.
    order = np.argsort(sel.ranking_)
    assert np.all(np.diff(sel.aggregate_rank_[order]) >= 0)
    assert sel.get_support().all()


def test_ties_broken_by_mean_rank_then_first_criterion_then_index():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 50)
    base = rng.normal(size=100) + 1.5 * y
    # Columns 1, 3 and 4 are identical: exact ties in every criterion, broken by index.
    X = np.column_stack([rng.normal(size=100), base, rng.normal(size=100), base, base])
    sel = StatSelector(k=2).fit(X, y)
    assert sel.ranking_[[1, 3, 4]].tolist() == [1, 2, 3]
    assert sel.get_support(indices=True).tolist() == [1, 3]
    # Stable under refitting and under permuting the other columns.
    assert np.array_equal(StatSelector(k=2).fit(X, y).ranking_, sel.ranking_)
    perm = [4, 0, 3, 2, 1]
    sel_p = StatSelector(k=2).fit(X[:, perm], y)
    assert sel_p.get_support(indices=True).tolist() == [0, 2]  # old 4 and 3: lowest new idx


def _tradeoff_features(seed=0):
    """Columns: weak shift; AUC-strong but outlier-inflated SD; few huge shifts (big d,
    small AUC); noise."""
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], 100)
    a = rng.normal(size=200) + 1.0 * y
    a[:5] += 40.0
    b = rng.normal(size=200)
    b[100:110] += 15.0
    c = rng.normal(size=200) + 0.3 * y
    return np.column_stack([c, a, b, rng.normal(size=200)]), y


def test_min_aggregate_tie_broken_by_mean_rank():
    X, y = _tradeoff_features()
    sel = StatSelector(k=1, aggregate="min").fit(X, y)
    # Columns 1 and 2 are each best in some criterion: tied at min rank 1.
    assert sel.aggregate_rank_[[1, 2]].tolist() == [1.0, 1.0]
    mean = sel.criterion_ranks_.mean(axis=1)
    assert mean[2] < mean[1]
    assert sel.ranking_.tolist()[:3] == [3, 2, 1]
    assert sel.get_support(indices=True).tolist() == [2]


@pytest.mark.parametrize(
    "criteria, first", [(("auc", "cohen_d"), 1), (("cohen_d", "auc"), 2)]
)
def test_mean_tie_broken_by_first_criterion(criteria, first):
    X, y = _tradeoff_features()
    X = X[:, 1:]  # a, b, noise: ranks (1, 2) and (2, 1) under AUC and d
    sel = StatSelector(k=1, criteria=criteria).fit(X, y)
    assert sel.aggregate_rank_[0] == sel.aggregate_rank_[1] == 1.5
    assert sel.get_support(indices=True).tolist() == [first - 1]


def test_degenerate_features_rank_last_without_disturbing_the_others():
    X, y = _informative(n_features=6, informative=(1, 4), shifts=(1.5, 0.8))
    clean = StatSelector(k="all").fit(X, y)
    X_deg = np.column_stack([np.zeros(len(y)), X[:, :3], np.full(len(y), 0.1), X[:, 3:]])
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no NaN warnings leak out
        sel = StatSelector(k="all").fit(X_deg, y)
    assert sel.degenerate_.tolist() == [True, False, False, False, True] + [False] * 3
    assert sel.ranking_[[0, 4]].tolist() == [7, 8]  # last, by index
    assert np.isnan(sel.scores_[[0, 4]]).all() and np.isnan(sel.pvalues_[[0, 4]]).all()
    keep = ~sel.degenerate_
    np.testing.assert_array_equal(sel.criterion_ranks_[keep], clean.criterion_ranks_)
    np.testing.assert_array_equal(sel.ranking_[keep], clean.ranking_)
    assert np.isfinite(sel.criterion_ranks_[keep]).all()
    # k larger than the informative set never picks a degenerate column before others.
    assert not StatSelector(k=6).fit(X_deg, y).get_support()[[0, 4]].any()


def test_perfect_separator_with_no_within_class_spread_ranks_first():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 20)
    X = np.column_stack([rng.normal(size=40), y * 3.0, rng.normal(size=40) + y])
    sel = StatSelector(k=1).fit(X, y)
    assert sel.scores_[1, 0] == 0.5 and np.isinf(sel.scores_[1, 1:]).all()
    assert sel.pvalues_[1] == 0.0
    assert sel.get_support(indices=True).tolist() == [1]


def test_multiclass_one_vs_rest():
    rng = np.random.default_rng(0)
    y = np.repeat(["a", "b", "c"], 60)
    X = rng.normal(size=(180, 8))
    X[y == "b", 3] += 2.0  # separates only class b from the rest
    X[y == "c", 6] -= 1.5  # separates only class c from the rest
    sel = StatSelector(k=2).fit(X, y)
    assert sel.classes_.tolist() == ["a", "b", "c"]
    assert sel.get_support(indices=True).tolist() == [3, 6]
    # The kept score is the best one-vs-rest score over the classes.
    j = 3
    per_class = [abs(roc_auc_score(y == c, X[:, j]) - 0.5) for c in "abc"]
    np.testing.assert_allclose(sel.scores_[j, 0], max(per_class))
    p = [stats.ttest_ind(X[y == c, j], X[y != c, j], equal_var=False).pvalue for c in "abc"]
    np.testing.assert_allclose(sel.pvalues_[j], min(p), rtol=1e-8)


def test_criteria_subset_and_order():
    X, y = _informative(seed=2)
    sel = StatSelector(k=3, criteria=("welch_p", "auc")).fit(X, y)
    full = StatSelector(k=3).fit(X, y)
    assert sel.criteria_ == ("welch_p", "auc")
    np.testing.assert_allclose(sel.scores_, full.scores_[:, [2, 0]])
    assert sel.pvalues_.shape == (X.shape[1],)


@pytest.mark.parametrize("criteria", [(), ("auc", "auc"), ("auroc",)])
def test_invalid_criteria(criteria):
    X, y = _informative()
    with pytest.raises(ValueError, match="criteria must be a non-empty subset"):
        StatSelector(criteria=criteria).fit(X, y)


def test_k_like_select_k_best():
    X, y = _informative(n_features=5, informative=(1,), shifts=(1.0,))
    with pytest.warns(UserWarning, match="k=8 is greater than n_features=5"):
        sel = StatSelector(k=8).fit(X, y)
    with pytest.warns(UserWarning, match="k=8 is greater than n_features=5"):
        ref = SelectKBest(k=8).fit(X, y)
    assert sel.get_support().all() and ref.get_support().all()
    assert StatSelector(k="all").fit(X, y).get_support().all()
    assert not StatSelector(k=0).fit(X, y).get_support().any()


def test_single_class_raises():
    X = np.random.default_rng(0).normal(size=(10, 3))
    with pytest.raises(ValueError, match="at least 2 classes"):
        StatSelector(k=1).fit(X, np.ones(10))


def test_feature_names_and_set_output():
    X, y = _informative()
    names = np.array([f"nmf{j}" for j in range(X.shape[1])], dtype=object)
    sel = StatSelector(k=3).fit(X, y)
    assert sel.get_feature_names_out().tolist() == ["x2", "x7", "x9"]
    assert sel.get_feature_names_out(names).tolist() == ["nmf2", "nmf7", "nmf9"]
    sel.set_output(transform="default")
    assert sel.transform(X).shape == (X.shape[0], 3)
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(X, columns=names)
    out = StatSelector(k=3).set_output(transform="pandas").fit(df, y).transform(df)
    assert list(out.columns) == ["nmf2", "nmf7", "nmf9"]


def test_transform_preserves_dtype():
    X, y = _informative()
    sel = StatSelector(k=3).fit(X.astype(np.float32), y)
    assert sel.transform(X.astype(np.float32)).dtype == np.float32
