"""The robustness scorer and the refit rule, in scikit-learn's model selection."""

import pickle

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV, cross_validate

from sknnmfdiff import make_baseline_pipeline, make_paper_pipeline, make_phantom_mri
from sknnmfdiff.model_selection import (
    LIGHT_ATTACK,
    make_robustness_scorer,
    robust_refit,
)

TINY_ATTACK = {"n_restarts": 1, "n_iter": 10, "n_eot": 2, "square_queries": 20,
               "square_n_eot": 1, "n_draws": 4}
FAST = dict(n_components=4, k=3, random_state=0, clf__max_epochs=5)
PURIFIER = dict(purify__max_epochs=3, purify__hidden=16, purify__n_layers=2, purify__emb_dim=8,
                purify__n_steps=100)


@pytest.fixture(scope="module")
def data():
    b = make_phantom_mri(60, image_size=16, random_state=0)
    return b.data, b.target


@pytest.fixture(scope="module")
def defended(data):
    X, y = data
    return make_paper_pipeline(t=5, n_eot=2, **FAST, **PURIFIER).fit(X[:40], y[:40])


def test_scorer_is_deterministic_and_bounded_by_clean(data, defended):
    X, y = data
    scorer = make_robustness_scorer(eps=0.1, attack=TINY_ATTACK)
    a = scorer(defended, X[40:], y[40:])
    assert a == scorer(defended, X[40:], y[40:])
    assert 0.0 <= a <= 1.0
    clean = make_robustness_scorer(eps=0.0, attack=TINY_ATTACK)(defended, X[40:], y[40:])
    report = scorer.evaluate(defended, X[40:], y[40:])
    # eps = 0 cannot move an input: the robust figure is the clean one, under the same draws.
    assert clean == pytest.approx(report.clean[report.primary_rule]["balanced_accuracy"])
    assert a <= clean + 1e-12
    assert report.threat_model["space"] == "feature"
    assert report.threat_model["n_eot"] == TINY_ATTACK["n_eot"]


def test_scorer_metric_rule_and_subsample(data, defended):
    X, y = data
    scorer = make_robustness_scorer(eps=0.05, attack=TINY_ATTACK, metric="accuracy",
                                    rule="worst_case", max_samples=10)
    report = scorer.evaluate(defended, X[40:], y[40:])
    assert len(report.per_sample["y"]) == 10
    assert scorer(defended, X[40:], y[40:]) == report.robust["worst_case"]["accuracy"]


def test_scorer_pickles(data, defended):
    X, y = data
    scorer = make_robustness_scorer(eps=0.1, attack=TINY_ATTACK)
    again = pickle.loads(pickle.dumps(scorer))
    assert again(defended, X[40:], y[40:]) == scorer(defended, X[40:], y[40:])
    assert "eps=0.1" in repr(scorer)


@pytest.mark.parametrize("kwargs, match", [
    (dict(eps=-1), "eps"), (dict(space="image"), "space"), (dict(protocol="x"), "protocol"),
    (dict(metric="f1"), "metric"), (dict(attack="heavy"), "attack"),
    (dict(attack={"steps": 3}), "unknown attack settings"), (dict(max_samples=1), "max_samples"),
])
def test_scorer_rejects_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_robustness_scorer(**kwargs)


def test_light_attack_is_lighter_than_the_adaptive_defaults():
    from sknnmfdiff.evaluation import ADAPTIVE_DEFAULTS

    for key in ("n_restarts", "n_iter", "n_eot", "square_queries", "square_n_eot"):
        assert LIGHT_ATTACK[key] <= ADAPTIVE_DEFAULTS[key]


def test_robust_refit_picks_the_most_robust_within_tolerance():
    cv = {"mean_test_accuracy": [0.90, 0.89, 0.85, 0.895], "mean_test_robust": [0.1, 0.3, 0.9, 0.3]}
    assert robust_refit(tolerance=0.02)(cv) == 3  # ties in robustness: the higher clean score
    assert robust_refit(tolerance=0.0)(cv) == 0
    assert robust_refit(tolerance=0.1)(cv) == 2
    cv_nan = {"mean_test_accuracy": [0.9, 0.9], "mean_test_robust": [np.nan, 0.2]}
    assert robust_refit()(cv_nan) == 1
    with pytest.raises(ValueError, match="tolerance"):
        robust_refit(tolerance=-0.1)
    with pytest.raises(KeyError, match="'balanced'.*'accuracy', 'robust'"):
        robust_refit(clean="balanced")(cv)
    # A robust scorer that failed everywhere (all NaN) is an error, not a clean-only pick.
    cv_failed = {"mean_test_accuracy": [0.9, 0.8], "mean_test_robust": [np.nan, np.nan]}
    with pytest.raises(ValueError, match="every mean_test_robust is NaN"):
        robust_refit()(cv_failed)


def test_grid_search_with_robust_scoring_and_refit(data):
    X, y = data
    search = GridSearchCV(
        make_paper_pipeline(n_eot=2, **FAST, **PURIFIER),
        {"purify__t": [0, 20]},
        scoring={"accuracy": "balanced_accuracy",
                 "robust": make_robustness_scorer(eps=0.1, attack=TINY_ATTACK)},
        refit=robust_refit(clean="accuracy", robust="robust", tolerance=1.0),
        cv=2,
    ).fit(X, y)
    robust = search.cv_results_["mean_test_robust"]
    assert np.all((robust >= 0) & (robust <= 1))
    assert search.best_index_ == int(np.argmax(robust))
    assert hasattr(search, "best_estimator_")


def test_cross_validate_with_the_scorer(data):
    X, y = data
    out = cross_validate(make_baseline_pipeline(**FAST), X, y, cv=2,
                         scoring={"robust": make_robustness_scorer(eps=0.05, attack=TINY_ATTACK)})
    assert out["test_robust"].shape == (2,)
    assert np.all((out["test_robust"] >= 0) & (out["test_robust"] <= 1))


@pytest.mark.parametrize("kwargs, match", [
    ({"norm": "L3"}, "norm"), ({"rule": "bogus"}, "rule"), ({"batch_size": 0}, "batch_size"),
    ({"random_state": "x"}, "random_state"), ({"random_state": None}, "random_state"),
    ({"space": "image"}, "space"), ({"attack": {"n_iters": 3}}, "unknown attack settings"),
])
def test_scorer_options_are_checked_when_built(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_robustness_scorer(**kwargs)


def test_scorer_option_names_match_the_evaluator():
    from sknnmfdiff import model_selection
    from sknnmfdiff.evaluation._common import NORMS, SCORING_RULES

    assert model_selection._NORMS == NORMS and model_selection._RULES == SCORING_RULES
