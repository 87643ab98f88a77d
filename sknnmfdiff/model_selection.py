"""Robustness-aware model selection: a scikit-learn scorer that attacks, and a refit rule.

:func:`make_robustness_scorer` returns a scorer for
:class:`~sklearn.model_selection.GridSearchCV`, :func:`~sklearn.model_selection.cross_validate`
and friends: on each held-out fold it compiles the fitted pipeline
(:func:`~sknnmfdiff.to_torch_module`), attacks the fold with
:func:`~sknnmfdiff.evaluation.evaluate_robustness` and returns the robust balanced
accuracy. :func:`robust_refit` picks, among the candidates whose clean score is within a
tolerance of the best, the most robust one — the trade-off the paper leaves open (it fixes
rank 15 and t = 41 without an ablation, arXiv 2603.13182, Sec. 6).

Example
-------
>>> from sklearn.model_selection import GridSearchCV
>>> from sknnmfdiff import make_paper_pipeline
>>> from sknnmfdiff.model_selection import make_robustness_scorer, robust_refit
>>> search = GridSearchCV(
...     make_paper_pipeline(memory="sknnmfdiff-cache"),
...     {"nmf__n_components": [10, 15], "purify__t": [0, 20, 41]},
...     scoring={"accuracy": "balanced_accuracy",
...              "robust": make_robustness_scorer(eps=0.1, attack="light")},
...     refit=robust_refit(clean="accuracy", robust="robust", tolerance=0.02),
...     cv=3)
"""

import numbers

import numpy as np

__all__ = ["LIGHT_ATTACK", "RobustnessScorer", "make_robustness_scorer", "robust_refit"]

#: Light attack settings for search (``attack="light"``): one APGD restart of 50
#: iterations with 8 EOT draws per gradient, 200 Square queries over 2 draws, and 20
#: scoring draws. Cheap enough to run on every cell of a grid; the figures are upper
#: bounds of what the full adaptive attack reaches (report those with the defaults).
LIGHT_ATTACK = {
    "n_restarts": 1,
    "n_iter": 50,
    "n_eot": 8,
    "square_queries": 200,
    "square_n_eot": 2,
    "n_draws": 20,
}

_METRICS = ("accuracy", "balanced_accuracy", "roc_auc", "mcc")
# The evaluator's option names (sknnmfdiff.evaluation), repeated here so that the scorer
# checks them when built without importing the evaluation (and torch) early.
_NORMS = ("Linf", "L2")
_RULES = ("single_draw", "mean_probability", "majority_vote", "worst_case")


class RobustnessScorer:
    """A scikit-learn scorer: robust accuracy of a fitted pipeline under attack.

    Called as ``scorer(estimator, X, y)`` (the scorer protocol of scikit-learn), it runs
    :func:`~sknnmfdiff.evaluation.evaluate_robustness` on ``(X, y)`` without the
    sanity checks and returns ``report.robust[rule][metric]``. Deterministic for a fixed
    ``random_state``: the attack, the subsample and the scoring draws are seeded.
    Build it with :func:`make_robustness_scorer`.

    Parameters
    ----------
    eps : float, default=0.1
        Budget of the attack, in the input units of ``space``; ``>= 0``.
    space : {"feature", "pixel"}, default="feature"
        Threat model: perturb the selected features or the pixels.
    protocol : {"adaptive", "paper"}, default="adaptive"
        Attack protocol (see :mod:`sknnmfdiff.evaluation`).
    norm : {"Linf", "L2"}, default="Linf"
        Norm of the perturbation ball.
    metric : {"balanced_accuracy", "accuracy", "roc_auc", "mcc"}, default="balanced_accuracy"
        Robust metric returned.
    rule : str or None, default=None
        Scoring rule of a randomized model (``"mean_probability"``, ``"majority_vote"``,
        ``"worst_case"``, ``"single_draw"``); None uses the report's primary rule
        (mean probability).
    attack : "light", "full" or dict, default="light"
        Attack settings: :data:`LIGHT_ATTACK`, the protocol's defaults, or a dict of
        ``n_restarts``, ``n_iter``, ``n_eot``, ``square_queries``, ``square_n_eot``,
        ``n_draws``.
    max_samples : int or None, default=None
        Attack at most this many held-out samples (a seeded, stratified subsample);
        None attacks all.
    random_state : int, default=0
        Seed (>= 0) of the attack, the subsample and the scoring draws; fixed, so that
        every candidate of a search meets the same attack.
    device : str or None, default=None
        Torch device (``"cpu"``, ``"cuda"``); None uses the pipeline's.
    batch_size : int, default=250
        Samples per attacked batch.

    Raises
    ------
    ValueError
        When built (not later, inside a search): on an unknown option (``space``,
        ``protocol``, ``norm``, ``metric``, ``rule``, ``attack`` or its keys), a
        negative ``eps``, ``max_samples < 2``, a ``random_state`` that is not an
        int >= 0, or ``batch_size < 1``.
    """

    def __init__(self, *, eps=0.1, space="feature", protocol="adaptive", norm="Linf",
                 metric="balanced_accuracy", rule=None, attack="light", max_samples=None,
                 random_state=0, device=None, batch_size=250):
        if not isinstance(eps, numbers.Real) or isinstance(eps, bool) or not eps >= 0:
            raise ValueError(f"eps must be a real number >= 0, got {eps!r}.")
        if space not in ("feature", "pixel"):
            raise ValueError(f"space must be 'feature' or 'pixel', got {space!r}.")
        if protocol not in ("adaptive", "paper"):
            raise ValueError(f"protocol must be 'adaptive' or 'paper', got {protocol!r}.")
        if metric not in _METRICS:
            raise ValueError(f"metric must be one of {_METRICS}, got {metric!r}.")
        if not (attack in ("light", "full") or isinstance(attack, dict)):
            raise ValueError(f"attack must be 'light', 'full' or a dict, got {attack!r}.")
        if isinstance(attack, dict):
            unknown = set(attack) - set(LIGHT_ATTACK)
            if unknown:
                raise ValueError(f"unknown attack settings {sorted(unknown)}; "
                                 f"allowed: {sorted(LIGHT_ATTACK)}.")
        if max_samples is not None and (not isinstance(max_samples, numbers.Integral)
                                        or isinstance(max_samples, bool) or max_samples < 2):
            raise ValueError(f"max_samples must be an int >= 2 or None, got {max_samples!r}.")
        if norm not in _NORMS:
            raise ValueError(f"norm must be one of {_NORMS}, got {norm!r}.")
        if rule is not None and rule not in _RULES:
            raise ValueError(f"rule must be None or one of {_RULES}, got {rule!r}.")
        if not isinstance(random_state, numbers.Integral) or isinstance(random_state, bool) \
                or random_state < 0:
            raise ValueError("random_state must be an int >= 0 (the scorer attacks with a "
                             f"fixed seed so that candidates compare), got {random_state!r}.")
        if not isinstance(batch_size, numbers.Integral) or isinstance(batch_size, bool) \
                or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}.")
        self.eps = float(eps)
        self.space = space
        self.protocol = protocol
        self.norm = norm
        self.metric = metric
        self.rule = rule
        self.attack = attack
        self.max_samples = max_samples
        self.random_state = random_state
        self.device = device
        self.batch_size = batch_size

    def _settings(self):
        if self.attack == "full":
            return {}
        return dict(LIGHT_ATTACK if self.attack == "light" else self.attack)

    def _subsample(self, X, y):
        if self.max_samples is None or len(y) <= self.max_samples:
            return X, y
        from sklearn.model_selection import train_test_split

        _, X_s, _, y_s = train_test_split(
            X, y, test_size=self.max_samples, stratify=y, random_state=self.random_state)
        return X_s, y_s

    def evaluate(self, estimator, X, y):
        """The full :class:`~sknnmfdiff.evaluation.RobustnessReport` behind the score.

        Parameters
        ----------
        estimator : sklearn.pipeline.Pipeline
            A fitted sknnmfdiff pipeline.
        X : array-like of shape (n_samples, H*W)
            Pixels in [0, 1].
        y : array-like of shape (n_samples,)
            Labels from the pipeline's ``classes_``.

        Returns
        -------
        report : RobustnessReport
        """
        from .evaluation import evaluate_robustness

        X, y = self._subsample(np.asarray(X), np.asarray(y))
        settings = self._settings()
        n_draws = settings.pop("n_draws", None)
        return evaluate_robustness(
            estimator, X, y, eps=self.eps, norm=self.norm, protocol=self.protocol,
            space=self.space, n_draws=n_draws, eps_grid=(), checks=False,
            batch_size=self.batch_size, random_state=self.random_state, device=self.device,
            progress=False, **settings)

    def __call__(self, estimator, X, y):
        """Robust ``metric`` of ``estimator`` on ``(X, y)``, a float in [0, 1] (MCC in
        [-1, 1]); see :meth:`evaluate` for the parameters."""
        report = self.evaluate(estimator, X, y)
        return float(report.robust[self.rule or report.primary_rule][self.metric])

    def __repr__(self):
        return (f"make_robustness_scorer(eps={self.eps}, space={self.space!r}, "
                f"protocol={self.protocol!r}, metric={self.metric!r}, attack={self.attack!r})")


def make_robustness_scorer(eps=0.1, space="feature", protocol="adaptive", **kwargs):
    """A scikit-learn scorer returning robust balanced accuracy under attack.

    Use it wherever scikit-learn takes a scorer: ``GridSearchCV(..., scoring={"accuracy":
    "balanced_accuracy", "robust": make_robustness_scorer()}, refit=...)``,
    ``cross_validate``, ``permutation_test_score``. On each held-out fold it compiles
    the fitted pipeline and attacks the fold (AutoAttack through
    :func:`~sknnmfdiff.evaluation.evaluate_robustness`, sanity checks off); the light
    attack settings (:data:`LIGHT_ATTACK`) are the default, for search.

    Parameters
    ----------
    eps : float, default=0.1
        Budget, in the input units of ``space`` (feature values or pixel intensities in
        [0, 1]).
    space : {"feature", "pixel"}, default="feature"
        Threat model.
    protocol : {"adaptive", "paper"}, default="adaptive"
        Attack protocol; the adaptive one (EOT gradients) is the honest figure for the
        randomized purifier.
    **kwargs
        ``norm``, ``metric``, ``rule``, ``attack``, ``max_samples``, ``random_state``,
        ``device``, ``batch_size`` of :class:`RobustnessScorer`.

    Returns
    -------
    scorer : RobustnessScorer
        Callable ``scorer(estimator, X, y) -> float``; picklable, so it runs in joblib
        and Dask workers.

    Raises
    ------
    ValueError, TypeError
        On an unknown option (see :class:`RobustnessScorer`).
    """
    return RobustnessScorer(eps=eps, space=space, protocol=protocol, **kwargs)


class _RobustRefit:
    def __init__(self, clean, robust, tolerance):
        self.clean, self.robust, self.tolerance = clean, robust, tolerance

    def __call__(self, cv_results):
        scores = {}
        for name in (self.clean, self.robust):
            key = f"mean_test_{name}"
            if key not in cv_results:
                have = sorted(k[len("mean_test_"):] for k in cv_results if k.startswith("mean_test_"))
                raise KeyError(f"robust_refit: no score named {name!r} in the search's scoring "
                               f"(it has {have}); pass scoring={{{name!r}: ...}} or rename.")
            scores[name] = np.asarray(cv_results[key], dtype=float)
            if not np.isfinite(scores[name]).any():
                raise ValueError(
                    f"robust_refit: every mean_test_{name} is NaN: the {name!r} scorer failed "
                    "on every candidate (see the search's warnings, or pass "
                    "error_score='raise' to see the error).")
        clean, robust = scores[self.clean], scores[self.robust]
        ok = np.flatnonzero(clean >= np.nanmax(clean) - self.tolerance)
        robust_ok = np.where(np.isfinite(robust[ok]), robust[ok], -np.inf)
        # Ties in robustness go to the better clean score, then to the first candidate.
        order = np.lexsort((-clean[ok], -robust_ok))
        return int(ok[order[0]])

    def __repr__(self):
        return (f"robust_refit(clean={self.clean!r}, robust={self.robust!r}, "
                f"tolerance={self.tolerance})")


def robust_refit(clean="accuracy", robust="robust", tolerance=0.02):
    """Refit rule: the most robust candidate whose clean score is within ``tolerance``
    of the best clean score.

    Pass it as ``GridSearchCV(..., refit=robust_refit(...))`` with a ``scoring`` dict
    holding both names. Among the candidates with ``mean_test_<clean> >= best -
    tolerance`` it returns the one with the highest ``mean_test_<robust>`` (ties: the
    higher clean score, then the first).

    Parameters
    ----------
    clean : str, default="accuracy"
        Key of the clean score in the ``scoring`` dict.
    robust : str, default="robust"
        Key of the robust score in the ``scoring`` dict.
    tolerance : float, default=0.02
        Clean score a candidate may give up, in the score's units (0.02 = 2 points of
        balanced accuracy); ``>= 0``.

    Returns
    -------
    refit : callable
        ``refit(cv_results) -> int``, the index of the chosen candidate
        (``best_index_``).

    Raises
    ------
    ValueError
        If ``tolerance`` is negative, or (when called) every clean or every robust
        score is NaN (a scorer that failed on every candidate: the rule never falls
        back to the clean score alone).
    KeyError
        When called, if ``cv_results`` lacks ``mean_test_<clean>`` or
        ``mean_test_<robust>`` (the message lists the names it has).
    """
    if not isinstance(tolerance, numbers.Real) or isinstance(tolerance, bool) or not tolerance >= 0:
        raise ValueError(f"tolerance must be a real number >= 0, got {tolerance!r}.")
    return _RobustRefit(clean, robust, float(tolerance))
