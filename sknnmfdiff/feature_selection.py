"""Univariate feature selection by the aggregate rank of three statistics.

:class:`StatSelector` implements the selection step of the paper (arXiv 2603.13182,
method stage 2, "statistical selection"): every NMF coefficient is scored by
ROC-AUC, Cohen's d and Welch's t-test p-value, each criterion is turned into a rank, and the ``k``
features with the best aggregate rank are kept. The paper names the three criteria
and the aggregate rank but not how ties, degenerate features or more than two classes
are handled; the rules below are our choices and are documented in the class.
"""

import logging
import warnings

import numpy as np
from scipy import special, stats
from sklearn.base import BaseEstimator, _fit_context
from sklearn.feature_selection import SelectorMixin
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from ._constraints import int_interval
from ._persistence import VersionedEstimatorMixin

__all__ = ["StatSelector"]

logger = logging.getLogger(__name__)

#: Names of the criteria, in the order of their default use.
CRITERIA = ("auc", "cohen_d", "welch_p")

_LN10 = np.log(10.0)


def _group_moments(X, mask):
    """Size, mean and sum of squared deviations of the rows ``X[mask]``.

    A column that is constant within the group gets a sum of squares of exactly 0
    (floating-point round-off in the mean would otherwise leave ~1e-35).
    """
    Xg = X[mask]
    n = Xg.shape[0]
    mean = Xg.mean(axis=0)
    ss = ((Xg - mean) ** 2).sum(axis=0)
    ss[np.ptp(Xg, axis=0) == 0] = 0.0
    return n, mean, ss


def _t_logsf_series(t, df):
    """log P(T > t) for Student's t by a series that stays finite far in the tail.

    ``P(T > t) = I_x(df/2, 1/2) / 2`` with ``x = df / (df + t**2)`` and
    ``I_x(a, b) = x**a (1-x)**b / (a B(a, b)) * sum_n (a+b)_n / (a+1)_n x**n``
    (Abramowitz and Stegun 26.5.4 with 15.1.1), in log space, summed until the terms
    fall below 1e-17 of the sum. Accurate for any t > 0, fast when ``x`` is small
    (the far tail, where it is used).
    """
    a, b = df / 2.0, 0.5
    log_x = np.log(df) - np.log(df + t**2)
    log_1mx = 2.0 * np.log(t) - np.log(df + t**2)
    x = np.exp(log_x)
    term = np.ones_like(x)
    total = np.ones_like(x)
    for n in range(1_000_000):
        term = term * (a + b + n) / (a + 1.0 + n) * x
        total = total + term
        if np.all(term <= 1e-17 * total):
            break
    return (
        np.log(0.5) + a * log_x + b * log_1mx - np.log(a) - special.betaln(a, b)
        + np.log(total)
    )


def _t_logsf(t, df):
    """log P(T > t) of Student's t with ``df`` degrees of freedom, without underflow.

    :func:`scipy.stats.t.logsf` returns -inf once the tail drops below float64's
    range (t ~ 100 with df ~ 600); those entries come from :func:`_t_logsf_series`.
    """
    out = np.asarray(stats.t.logsf(t, df), dtype=np.float64).copy()
    bad = np.isneginf(out) & np.isfinite(t) & np.isfinite(df) & (df > 0) & (t > 0)
    if bad.any():
        out[bad] = _t_logsf_series(t[bad], df[bad])
    return out

def _one_vs_rest_scores(X, ranks, positive):
    """|AUC - 0.5|, |Cohen's d| and -log10(Welch p) of ``positive`` against the rest.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), float64
    ranks : ndarray of shape (n_samples, n_features), float64
        Column-wise average ranks of ``X`` (``scipy.stats.rankdata(X, axis=0)``).
    positive : ndarray of shape (n_samples,), bool
        The class against the rest; both sides non-empty.

    Returns
    -------
    scores : ndarray of shape (n_features, 3), float64
        Columns ``auc``, ``cohen_d``, ``welch_p`` as in :data:`CRITERIA`; higher is
        better in every column. NaN where a statistic is undefined (Cohen's d with two
        samples in all; Welch's test with a group of one sample).
    """
    n1 = int(positive.sum())
    n0 = positive.size - n1

    # ROC-AUC through the Mann-Whitney U statistic (ties count 1/2), which equals
    # sklearn.metrics.roc_auc_score(positive, X[:, j]) for every column j.
    u = ranks[positive].sum(axis=0) - n1 * (n1 + 1) / 2.0
    auc = u / (n1 * n0)

    _, m1, ss1 = _group_moments(X, positive)
    _, m0, ss0 = _group_moments(X, ~positive)
    diff = m1 - m0
    with np.errstate(divide="ignore", invalid="ignore"):
        # Cohen's d with the pooled standard deviation (Cohen 1988, eq. 2.5.2).
        dof = n1 + n0 - 2
        pooled_sd = np.sqrt((ss1 + ss0) / dof) if dof > 0 else np.full_like(diff, np.nan)
        d = np.abs(diff) / pooled_sd
        d[(pooled_sd == 0) & (diff == 0)] = np.nan

        # Welch's unequal-variance t-test, the same statistic and Welch-Satterthwaite
        # degrees of freedom as scipy.stats.ttest_ind(equal_var=False), but with the
        # two-sided p-value kept in log space: p-values that underflow to 0.0 in
        # float64 still rank in the order of their true size.
        if n1 > 1 and n0 > 1:
            a = ss1 / (n1 - 1) / n1
            b = ss0 / (n0 - 1) / n0
            se2 = a + b
            t = np.abs(diff) / np.sqrt(se2)
            df = se2**2 / (a**2 / (n1 - 1) + b**2 / (n0 - 1))
            log_p = np.log(2.0) + _t_logsf(t, df)
            log_p = np.minimum(log_p, 0.0)  # p <= 1 despite round-off
            # Zero variance within both groups: a perfect separator (p = 0) when the
            # means differ; undefined when they do not (a constant column).
            zero = se2 == 0
            log_p[zero & (diff != 0)] = -np.inf
            log_p[zero & (diff == 0)] = np.nan
        else:
            log_p = np.full_like(diff, np.nan)
    return np.column_stack([np.abs(auc - 0.5), d, -log_p / _LN10])


def _rank_desc(score):
    """Ranks (1 = largest) of the non-NaN entries; NaNs tie for the last places.

    Average ranks for ties (``scipy.stats.rankdata(method="average")``). A NaN never
    changes the ranks of the other entries.
    """
    out = np.empty(score.shape, dtype=np.float64)
    ok = ~np.isnan(score)
    n_ok = int(ok.sum())
    out[ok] = stats.rankdata(-score[ok], method="average") if n_ok else []
    out[~ok] = (n_ok + 1 + score.size) / 2.0
    return out


class StatSelector(VersionedEstimatorMixin, SelectorMixin, BaseEstimator):
    """Keep the ``k`` features with the best aggregate rank of AUC, Cohen's d and Welch p.

    The selection step of Diffusion-Based Feature Denoising and Using NNMF for Robust
    Brain Tumor Classification (CVPR 2026, arXiv 2603.13182, method stage 2): each
    feature (an NMF coefficient) is scored by three univariate criteria, each criterion is
    ranked, and the top ``k`` by aggregate rank are kept.

    The criteria, for one class against the rest (scores: higher is better):

    - ``"auc"``: ``|AUC - 0.5|``, the ROC-AUC of the raw feature as a score for the
      class, through the Mann-Whitney U statistic (equal to
      :func:`sklearn.metrics.roc_auc_score`); in [0, 0.5]. A feature predictive in
      either direction scores high.
    - ``"cohen_d"``: ``|mean_1 - mean_0| / s_pooled`` with the pooled standard
      deviation ``s_pooled = sqrt((SS_1 + SS_0) / (n_1 + n_0 - 2))``; in [0, inf]
      (inf for a perfect separator with no within-class spread).
    - ``"welch_p"``: ``-log10(p)`` of Welch's two-sided unequal-variance t-test (the
      statistic of ``scipy.stats.ttest_ind(equal_var=False)``, its p-value computed in
      log space so that p-values below float64's range still rank correctly); in
      [0, inf].

    **Ranking rule.** Each selected criterion is ranked over the non-degenerate
    features, 1 = best, ties sharing their average rank (``scipy.stats.rankdata``);
    a feature whose statistic is undefined (NaN) for one criterion ties for the last
    places of that criterion only. The aggregate rank is the ``mean`` (default),
    ``median`` or ``min`` (the best) of a feature's criterion ranks. Features are then
    ordered by, in turn: aggregate rank, mean criterion rank, rank by the first entry
    of ``criteria``, feature index (lowest first). ``ranking_`` holds the resulting
    positions and the first ``k`` are selected, so the result never depends on an
    unstable sort.

    **Degenerate features** -- constant over the training samples, or with every
    selected criterion undefined -- are excluded from the per-criterion ranks (so they
    never shift the ranks of the others) and placed after all other features, by index.
    Their ``scores_`` and ``pvalues_`` are NaN when constant.

    **More than two classes** (one-vs-rest): every criterion is computed for each class
    against the rest and the best value over the classes is kept (largest
    ``|AUC - 0.5|``, largest ``|d|``, smallest p), ignoring classes for which it is
    undefined: a feature that separates any one class well scores well. With two
    classes the single split ``classes_[1]`` against ``classes_[0]`` is used (all three
    criteria are symmetric).

    Parameters
    ----------
    k : int or "all", default=10
        Number of features to keep, >= 0. As in :class:`sklearn.feature_selection.SelectKBest`,
        a ``k`` above the number of features warns (``UserWarning``) and keeps them all,
        and ``k=0`` keeps none. ``"all"`` keeps every feature (the ranking is still
        computed).
    criteria : tuple of str, default=("auc", "cohen_d", "welch_p")
        Non-empty subset of ``"auc"``, ``"cohen_d"``, ``"welch_p"``, without repeats; the
        order sets the column order of ``scores_`` and the first one breaks ties.
    aggregate : {"mean", "median", "min"}, default="mean"
        How the per-criterion ranks of a feature are combined.

    Attributes
    ----------
    scores_ : ndarray of shape (n_features_in_, n_criteria), float64
        The criterion scores (higher is better), columns in the order of ``criteria_``.
    pvalues_ : ndarray of shape (n_features_in_,), float64
        Welch's two-sided p-value (smallest over the one-vs-rest splits), in [0, 1],
        computed whatever ``criteria`` is; NaN where undefined.
    criterion_ranks_ : ndarray of shape (n_features_in_, n_criteria), float64
        Per-criterion ranks, 1 = best; NaN for degenerate features.
    aggregate_rank_ : ndarray of shape (n_features_in_,), float64
        The aggregate of ``criterion_ranks_``; NaN for degenerate features.
    ranking_ : ndarray of shape (n_features_in_,), int64
        Position of each feature in the final order, 1 = best; a permutation of
        1..n_features_in_.
    degenerate_ : ndarray of shape (n_features_in_,), bool
        Features ranked last because they are constant or all their criteria are
        undefined.
    criteria_ : tuple of str
        The criteria used, in column order.
    classes_ : ndarray of shape (n_classes,)
        The class labels seen in ``fit``.
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,), dtype=object
        Names of the features seen in ``fit``, when ``X`` has string column names.

    Raises
    ------
    ValueError
        From ``fit``: ``y`` with fewer than two classes, continuous ``y``, repeated
        or unknown ``criteria``, NaN or infinite ``X``.

    See Also
    --------
    sklearn.feature_selection.SelectKBest : univariate selection by one score.

    References
    ----------
    .. [1] "Diffusion-Based Feature Denoising and Using NNMF for Robust Brain Tumor
       Classification", CVPR 2026, arXiv 2603.13182.
    .. [2] J. Cohen, "Statistical Power Analysis for the Behavioral Sciences", 2nd ed.,
       1988.
    .. [3] B. L. Welch, "The generalization of 'Student's' problem when several different
       population variances are involved", Biometrika 34, 1947.

    Examples
    --------
    >>> import numpy as np
    >>> from sknnmfdiff.feature_selection import StatSelector
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([0, 1], 50)
    >>> X = rng.normal(size=(100, 6))
    >>> X[:, 4] += 2.0 * y
    >>> X[:, 1] += 1.0 * y
    >>> sel = StatSelector(k=2).fit(X, y)
    >>> sel.get_support(indices=True)
    array([1, 4])
    >>> int(sel.ranking_[4])
    1
    """

    _parameter_constraints: dict = {
        "k": [StrOptions({"all"}), int_interval(0, None, closed="left")],
        "criteria": [tuple, list],
        "aggregate": [StrOptions({"mean", "median", "min"})],
    }

    def __init__(self, k=10, *, criteria=CRITERIA, aggregate="mean"):
        self.k = k
        self.criteria = criteria
        self.aggregate = aggregate

    def _check_params(self, n_features):
        criteria = tuple(self.criteria)
        unknown = [c for c in criteria if c not in CRITERIA]
        if not criteria or unknown or len(set(criteria)) != len(criteria):
            raise ValueError(
                f"criteria must be a non-empty subset of {CRITERIA} without repeats; "
                f"got {self.criteria!r}."
            )
        if not isinstance(self.k, str) and self.k > n_features:
            warnings.warn(
                f"k={self.k} is greater than n_features={n_features}. "
                "All the features will be returned.",
                UserWarning,
                stacklevel=3,
            )
        return criteria

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Score and rank every feature of ``X`` against the labels ``y``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training features (any real dtype; statistics computed in float64).
            NaN and infinite values are rejected.
        y : array-like of shape (n_samples,)
            Class labels (any hashable type), at least two distinct classes.

        Returns
        -------
        self : StatSelector
            The fitted selector.

        Raises
        ------
        ValueError
            If ``y`` has fewer than two classes or is not a classification target, or
            ``criteria`` is invalid.
        """
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        criteria = self._check_params(X.shape[1])
        classes, y_idx = np.unique(y, return_inverse=True)
        if classes.size < 2:
            raise ValueError(
                "StatSelector needs samples of at least 2 classes in y; got 1 class "
                f"({classes[0]!r}) in {y.shape[0]} samples."
            )
        n_features = X.shape[1]
        cols = [CRITERIA.index(c) for c in criteria]

        ranks = stats.rankdata(X, axis=0, method="average")
        splits = [1] if classes.size == 2 else range(classes.size)
        per_class = np.stack(
            [_one_vs_rest_scores(X, ranks, y_idx == c) for c in splits]
        )  # (n_splits, n_features, 3)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices
            all_scores = np.nanmax(per_class, axis=0)

        constant = np.ptp(X, axis=0) == 0
        all_scores[constant] = np.nan
        scores = all_scores[:, cols]
        degenerate = constant | np.all(np.isnan(scores), axis=1)

        ok = ~degenerate
        criterion_ranks = np.full(scores.shape, np.nan)
        for j in range(scores.shape[1]):
            criterion_ranks[ok, j] = _rank_desc(scores[ok, j])
        agg = {"mean": np.mean, "median": np.median, "min": np.min}[self.aggregate]
        aggregate_rank = np.full(n_features, np.nan)
        mean_rank = np.full(n_features, np.nan)
        if ok.any():
            aggregate_rank[ok] = agg(criterion_ranks[ok], axis=1)
            mean_rank[ok] = criterion_ranks[ok].mean(axis=1)

        # Lexicographic order: degenerate last, then aggregate rank, mean rank, first
        # criterion's rank, index. np.lexsort sorts by the last key first.
        big = float(n_features + 1)
        order = np.lexsort(
            (
                np.arange(n_features),
                np.nan_to_num(criterion_ranks[:, 0], nan=big),
                np.nan_to_num(mean_rank, nan=big),
                np.nan_to_num(aggregate_rank, nan=big),
                degenerate,
            )
        )
        ranking = np.empty(n_features, dtype=np.int64)
        ranking[order] = np.arange(1, n_features + 1)

        self.criteria_ = criteria
        self.classes_ = classes
        self.scores_ = scores
        self.pvalues_ = 10.0 ** (-all_scores[:, CRITERIA.index("welch_p")])
        self.criterion_ranks_ = criterion_ranks
        self.aggregate_rank_ = aggregate_rank
        self.degenerate_ = degenerate
        self.ranking_ = ranking
        if degenerate.any():
            logger.info(
                "StatSelector: %d degenerate feature(s) ranked last: %s",
                int(degenerate.sum()),
                np.flatnonzero(degenerate).tolist(),
            )
        return self

    def _get_support_mask(self):
        """Boolean mask of the selected features, shape (n_features_in_,)."""
        check_is_fitted(self)
        if self.k == "all":
            return np.ones(self.n_features_in_, dtype=bool)
        return self.ranking_ <= self.k

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        return tags
