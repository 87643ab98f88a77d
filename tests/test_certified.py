"""Certified accuracy, its table and figure, and the check that no attack beats it."""

import math

import numpy as np
import pytest
from matplotlib.figure import Figure
from scipy.stats import binomtest

from _smoothing_helpers import LinearRule, _data
from sknnmfdiff.evaluation import (
    CheckResult,
    certified_accuracy,
    certified_accuracy_table,
    check_certified_bound,
    format_certified_table,
    linf_to_l2_radius,
    max_certified_eps,
)
from sknnmfdiff.plots import plot_certified_accuracy
from sknnmfdiff.smoothing import SmoothedClassifier

RADII = np.array([0.1, 0.5, np.nan, 0.3, 0.0, 0.8])
CORRECT = np.array([True, True, False, False, True, False])


def test_certified_accuracy_by_hand():
    acc = certified_accuracy(RADII, CORRECT, [0.0, 0.1, 0.2, 0.5, 0.6])
    np.testing.assert_allclose(acc, np.array([3, 2, 1, 1, 0]) / 6)
    assert acc.dtype == np.float64


def test_certified_accuracy_is_non_increasing_and_abstentions_never_count():
    rng = np.random.default_rng(0)
    radii = np.where(rng.random(200) < 0.2, np.nan, rng.exponential(0.3, 200))
    correct = rng.random(200) < 0.8
    grid = np.linspace(0, 2, 41)
    acc = certified_accuracy(radii, correct, grid)
    assert np.all(np.diff(acc) <= 0)
    assert acc[0] == pytest.approx(np.mean(correct & ~np.isnan(radii)))


def test_table_intervals_and_linf_rows():
    rows = certified_accuracy_table(RADII, CORRECT, [0.0, 0.25], eps=[0.1], n_features=10,
                                    confidence=0.9)
    assert [r["radius"] for r in rows] == pytest.approx([0.0, 0.25, math.sqrt(10) * 0.1])
    assert [r["eps_linf"] for r in rows] == [None, None, 0.1]
    assert [r["n_certified"] for r in rows] == [3, 1, 1]
    for row in rows:
        ci = binomtest(row["n_certified"], 6).proportion_ci(0.9, method="exact")
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((ci.low, ci.high))
        assert row["ci_low"] <= row["certified_accuracy"] <= row["ci_high"]
    text = format_certified_table(rows)
    assert text.splitlines()[0].startswith("| L2 radius")
    assert "| 0.3162 | 0.1 | 16.7" in text
    assert len(text.splitlines()) == 5


def test_linf_to_l2_radius():
    assert linf_to_l2_radius(0.1, 10) == pytest.approx(0.316227766)
    np.testing.assert_allclose(linf_to_l2_radius([0.0, 0.5], 4), [0.0, 1.0])
    with pytest.raises(ValueError, match="n_features"):
        linf_to_l2_radius(0.1, 0)
    with pytest.raises(ValueError, match="eps"):
        linf_to_l2_radius(-0.1, 3)


@pytest.mark.parametrize("level", [0.25, 0.5, 0.7])
def test_max_certified_eps_is_the_largest_budget(level):
    rng = np.random.default_rng(1)
    radii = np.where(rng.random(50) < 0.1, np.nan, rng.exponential(0.4, 50))
    correct = rng.random(50) < 0.85
    k = 10
    eps = max_certified_eps(radii, correct, k, level=level)
    at = certified_accuracy(radii, correct, [math.sqrt(k) * eps])[0]
    above = certified_accuracy(radii, correct, [math.sqrt(k) * eps * (1 + 1e-9) + 1e-12])[0]
    assert at >= level > above
    assert np.isnan(max_certified_eps(radii, np.zeros(50, bool), k))


def test_certified_input_errors():
    with pytest.raises(ValueError, match="one length"):
        certified_accuracy(RADII, CORRECT[:3], [0.0])
    with pytest.raises(ValueError, match=">= 0"):
        certified_accuracy(-RADII, CORRECT, [0.0])
    with pytest.raises(ValueError, match="radius_grid"):
        certified_accuracy(RADII, CORRECT, [-1.0])
    with pytest.raises(ValueError, match="empty"):
        certified_accuracy([], [], [0.0])
    with pytest.raises(ValueError, match="n_features"):
        certified_accuracy_table(RADII, CORRECT, eps=[0.1])
    with pytest.raises(ValueError, match="level"):
        max_certified_eps(RADII, CORRECT, 3, level=0.0)


# ---------------------------------------------------------------- the check
def _linear_setting(radius_factor=1.0):
    """A certified linear smoothed classifier and the exact worst L-inf attack on it."""
    X, y = _data(n=120, seed=3)
    rule = LinearRule()
    y = (rule.margin(X) > 0).astype(int)  # the rule is right on clean inputs
    smooth = SmoothedClassifier(classifier=rule, sigma=0.25, n0=100, n=2000, alpha=0.001,
                                train_on="clean", random_state=0).fit(X, y)
    labels, radius = smooth.certify(X)
    scorer = smooth.set_params(random_state=1)  # noise the "attack" did not see
    eps = np.array([0.0, 0.05, 0.1, 0.2])
    step = -np.sign(rule.margin(X))[:, None] * np.sign(np.asarray(rule.w))[None, :]
    attacked = np.stack([scorer.predict((X + e * step).astype(np.float32)) for e in eps])
    return y, labels, radius * radius_factor, attacked, eps


def test_check_passes_on_a_correct_certificate_and_a_real_attack():
    y, labels, radius, attacked, eps = _linear_setting()
    res = check_certified_bound(y, labels, radius, attacked, eps, n_features=4)
    assert isinstance(res, CheckResult) and res.name == "certified_bound"
    assert res.passed is True, res.details
    rows = res.details["per_eps"]
    assert [r["eps"] for r in rows] == list(eps)
    # the attack works (accuracy falls) yet stays above the certificate
    assert rows[-1]["attacked_accuracy"] < rows[0]["attacked_accuracy"]
    assert all(r["attacked_non_error_rate"] >= r["certified_accuracy"] for r in rows)
    assert res.value >= 0


def test_check_fails_on_an_inflated_certificate():
    y, labels, radius, attacked, eps = _linear_setting(radius_factor=5.0)
    res = check_certified_bound(y, labels, radius, attacked, eps, n_features=4)
    assert res.passed is False
    assert max(r["violations"] for r in res.details["per_eps"]) > 0
    assert res.value < 0


def test_check_abstentions_are_not_violations():
    y = np.array([0, 1] * 10)
    res = check_certified_bound(y, y, np.ones(20), np.full(20, -1), 0.1, n_features=4)
    row = res.details["per_eps"][0]
    assert res.passed and row["attacked_accuracy"] == 0.0 and row["abstained"] == 20
    wrong = check_certified_bound(y, y, np.ones(20), 1 - y, 0.1, n_features=4)
    assert wrong.passed is False and wrong.details["per_eps"][0]["violations"] == 20
    l2 = check_certified_bound(y, y, np.ones(20), 1 - y, 2.0, norm="L2")
    assert l2.passed is True  # nothing is certified at radius 2


def test_check_input_errors():
    y = np.array([0, 1, 1])
    with pytest.raises(ValueError, match="n_features"):
        check_certified_bound(y, y, np.ones(3), y, 0.1)
    with pytest.raises(ValueError, match="attacked_pred"):
        check_certified_bound(y, y, np.ones(3), y, [0.1, 0.2], n_features=2)
    with pytest.raises(ValueError, match="norm"):
        check_certified_bound(y, y, np.ones(3), y, 0.1, norm="L1")
    with pytest.raises(ValueError, match="one length"):
        check_certified_bound(y, y[:2], np.ones(3), y, 0.1, n_features=2)


# ---------------------------------------------------------------- the figure
def test_plot_certified_accuracy():
    grid = np.linspace(0, 1, 11)
    curves = {"sigma = 0.25": np.linspace(0.8, 0.1, 11), "sigma = 0.5": np.linspace(0.7, 0.3, 11)}
    fig = plot_certified_accuracy(grid, curves, ci={"sigma = 0.25": (curves["sigma = 0.25"] - 0.05,
                                                                     curves["sigma = 0.25"] + 0.05)},
                                  radius_marks={"L-inf eps = 0.1, k = 10": 0.316}, title="features")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert len(ax.lines) == 3 and ax.get_title() == "features"
    assert [t.get_text() for t in ax.get_legend().get_texts()][-2:] == [
        "L-inf eps = 0.1, k = 10", "shaded: 95 % confidence interval"]  # the band named once
    with pytest.raises(ValueError, match="has 2 values"):
        plot_certified_accuracy(grid, {"a": [0.1, 0.2]})
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        plot_certified_accuracy([0.0], {"a": [1.5]})
    with pytest.raises(ValueError, match="not in curves"):
        plot_certified_accuracy([0.0], {"a": [0.5]}, ci={"b": ([0.4], [0.6])})
    with pytest.raises(ValueError, match="radius_marks"):
        plot_certified_accuracy([0.0], {"a": [0.5]}, radius_marks={"m": -1.0})
