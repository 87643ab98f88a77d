"""The evaluation's defaults and records: the plateau check by default for randomized
models (nested, bounded), the eps-zero check when the main eps is 0, clear errors on
malformed scores, Wilson intervals from scipy, and the model named in every report."""

import json
import math

import numpy as np
import pytest
import torch
from test_evaluation import FAST, LinearModel, SineMLP, make_linear_task

from sknnmfdiff.evaluation import (
    RobustnessReport,
    check_attack_plateau,
    check_eps_grid,
    evaluate_robustness,
    run_attack,
    run_sanity_checks,
    score,
)


def _plateau(rep):
    return {c["name"]: c for c in rep.checks}["attack_strength_plateau"]


# ------------------------------------------------------------------ plateau check
def test_plateau_runs_by_default_on_a_randomized_model_only_on_what_is_left(monkeypatch):
    """Default evaluate_robustness: the plateau check runs for a randomized model, and
    attacks again only the samples the main attack left correct."""
    from sknnmfdiff.evaluation import _attack_checks

    X, y, w, b = make_linear_task(n=40, seed=4)
    sizes = []
    real = _attack_checks.run_attack
    monkeypatch.setattr(_attack_checks, "run_attack", lambda module, x, y, **kw: (
        sizes.append((len(x), kw["n_iter"], kw["n_restarts"], kw["n_eot"])),
        real(module, x, y, **kw))[1])
    model = LinearModel(w, b, noise_std=0.1, seed=1)
    rep = evaluate_robustness(model, X, y, eps=0.03, protocol="adaptive", n_draws=8,
                              eps_grid=(), n_eot=4, square_n_eot=2, progress=False, **FAST)
    n_left = int(np.sum(rep.per_sample["robust_correct"]["mean_probability"]))
    assert 0 < n_left < len(y)
    c = _plateau(rep)
    assert c["status"] in ("passed", "failed")
    d = c["details"]
    assert d["form"] == "nested" and d["n_still_correct"] == n_left
    assert d["n_attacked"] == min(n_left, 32) and d["extrapolated"] is (n_left > 32)
    # one more restart, twice as long with twice the EOT draws, on the samples left only
    assert sizes == [(n_left, 2 * FAST["n_iter"], 1, 8)]
    assert c["value"] <= rep.robust["mean_probability"]["accuracy"] + 1e-12
    assert "plateau" in rep.timings["checks_parts"]


def test_plateau_default_skips_a_deterministic_model_and_says_why(monkeypatch):
    X, y, w, b = make_linear_task(n=20, seed=4)
    rep = evaluate_robustness(LinearModel(w, b), X, y, eps=0.03, eps_grid=(), progress=False,
                              **FAST)
    c = _plateau(rep)
    assert c["status"] == "skipped" and "deterministic" in c["details"]["reason"]
    rep = evaluate_robustness(LinearModel(w, b), X, y, eps=0.03, eps_grid=(), plateau=True,
                              progress=False, **FAST)
    assert _plateau(rep)["details"]["form"] == "nested"
    with pytest.raises(ValueError, match="plateau must be one of"):
        evaluate_robustness(LinearModel(w, b), X, y, plateau="yes", progress=False)


def test_nested_plateau_flags_a_weak_attack_and_caps_its_samples(task_weak):
    """The nested form still catches an attack that is too weak; with a cap it attacks
    a random draw of the samples left and extrapolates the drop."""
    model, X, y, det, acc, correct = task_weak
    res = check_attack_plateau(model, torch.from_numpy(X), torch.from_numpy(y),
                               cfg=det["config"], robust_accuracy=acc, factor=20,
                               still_correct=correct)
    assert res.passed is False and res.value < acc - 1 / len(y)
    assert res.details["n_attacked"] == correct.sum() and not res.details["extrapolated"]
    capped = check_attack_plateau(model, torch.from_numpy(X), torch.from_numpy(y),
                                  cfg=det["config"], robust_accuracy=acc, factor=20,
                                  still_correct=correct, max_samples=2)
    d = capped.details
    assert correct.sum() > 2 and d["n_attacked"] == 2 and d["extrapolated"] is True
    assert capped.value == pytest.approx(acc - d["n_broken"] / 2 * correct.sum() / len(y))


def test_nested_plateau_costs_nothing_when_nothing_is_left(monkeypatch, task_weak):
    from sknnmfdiff.evaluation import _attack_checks

    model, X, y, det, _, _ = task_weak
    monkeypatch.setattr(_attack_checks, "run_attack",
                        lambda *a, **k: pytest.fail("nothing should be attacked"))
    res = check_attack_plateau(model, X, y, cfg=det["config"], robust_accuracy=0.0,
                               still_correct=np.zeros(len(y), bool))
    assert res.passed is True and res.value == 0.0 and res.details["n_attacked"] == 0
    with pytest.raises(ValueError, match="entries"):
        check_attack_plateau(model, X, y, cfg=det["config"], robust_accuracy=0.0,
                             still_correct=np.zeros(3, bool))


@pytest.fixture(scope="module")
def task_weak():
    """A non-linear model broken only in part by a deliberately weak attack."""
    X = make_linear_task()[0]
    model = SineMLP()
    with torch.no_grad():
        y = model(torch.from_numpy(X)).argmax(1).numpy()
    x_adv, det = run_attack(model, X, y, eps=0.02, progress=False, return_details=True,
                            n_iter=1, n_restarts=1, square_queries=1)
    s = score(model, x_adv, y)
    acc = s["rules"]["mean_probability"]["accuracy"]
    return model, X, y, det, acc, s["correct"]["mean_probability"]


# ---------------------------------------------------------- eps grid and errors
def test_eps_zero_check_is_decided_when_the_main_eps_is_zero():
    """Main eps 0 on a deterministic model: the eps-zero check compares the main
    attack's inputs with the clean ones and passes, instead of being skipped."""
    X, y, w, b = make_linear_task(n=20, seed=6)
    rep = evaluate_robustness(LinearModel(w, b), X, y, eps=0.0, eps_grid=(0.0, 0.5),
                              progress=False, **FAST)
    c = {c["name"]: c for c in rep.checks}["eps_zero_equals_clean"]
    assert c["status"] == "passed" and c["details"]["identical_inputs"] is True
    row = [g for g in rep.eps_grid if g["eps"] == 0.0][0]
    assert row["identical_inputs"] is True


def test_eps_grid_without_the_inputs_compared_decides_on_the_accuracies():
    grid = [{"eps": 0.0, "accuracy": 0.8, "accuracy_ci": [0.7, 0.9], "identical_inputs": None}]
    c0, _, _ = check_eps_grid(grid, clean=0.8, clean_ci=[0.7, 0.9], randomized=False, n=10)
    assert c0.passed is True and "not compared" in c0.details["rule"]
    c0, _, _ = check_eps_grid(grid, clean=0.7, clean_ci=[0.6, 0.8], randomized=False, n=10)
    assert c0.passed is False
    grid[0]["identical_inputs"] = False
    c0, _, _ = check_eps_grid(grid, clean=0.8, clean_ci=[0.7, 0.9], randomized=False, n=10)
    assert c0.passed is False


@pytest.mark.parametrize("broken, missing", [
    (lambda c, s: ({}, s), r"clean_scores\['rules'\]\['mean_probability'\]"),
    (lambda c, s: ({"rules": {"mean_probability": {"accuracy": 1.0, "n": 4}}}, s),
     r"clean_scores\['rules'\]\['mean_probability'\]\['accuracy_ci'\]"),
    (lambda c, s: (c, {"rules": {}}), r"robust_scores\['rules'\]\['mean_probability'\]"),
])
def test_run_sanity_checks_names_what_malformed_scores_lack(broken, missing):
    X, y, w, b = make_linear_task(n=8, seed=7)
    model = LinearModel(w, b)
    good = score(model, X, y)
    clean, robust = broken(good, good)
    cfg = {"eps": 0.03, "norm": "Linf", "randomized": False}
    with pytest.raises(ValueError, match=missing):
        run_sanity_checks(model, X, y, X, cfg=cfg, clean_scores=clean, robust_scores=robust)
    with pytest.raises(ValueError, match=r"cfg\['randomized'\].*cfg\['protocol'\]"):
        run_sanity_checks(model, X, y, X, cfg={"eps": 0.03, "norm": "Linf"},
                          clean_scores=good, robust_scores=good, eps_grid=(0.0,))


# ------------------------------------------------------------ Wilson intervals
def _wilson_formula(k, n, confidence):
    """The textbook Wilson score interval (Wilson 1927), as the code once computed it."""
    from scipy.stats import norm

    z = norm.ppf(1 - (1 - confidence) / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


@pytest.mark.parametrize("k, n", [(0, 10), (10, 10), (3, 10), (1, 220), (10, 220), (187, 220),
                                  (0, 1), (1, 1)])
@pytest.mark.parametrize("confidence", [0.95, 0.9])
@pytest.mark.filterwarnings("ignore:Only one class:UserWarning")
@pytest.mark.filterwarnings("ignore:A single label:UserWarning")
def test_wilson_intervals_come_from_scipy_with_the_formula_values(k, n, confidence):
    from sknnmfdiff.evaluation._scoring import _wilson

    lo, hi = _wilson(k, n, confidence)
    ref = _wilson_formula(k, n, confidence)
    assert (lo, hi) == pytest.approx(ref, rel=1e-12, abs=1e-12)
    y = np.zeros(n, int)
    P = np.zeros((1, n, 2))
    P[0, np.arange(n), (np.arange(n) >= k).astype(int)] = 1.0  # k correct, n - k wrong
    from sknnmfdiff.evaluation import score_draws

    m = score_draws(y, P, confidence=confidence)["rules"]["mean_probability"]
    assert m["accuracy_ci"] == pytest.approx(ref, rel=1e-12, abs=1e-12)


# ------------------------------------------------------------ the model, named
@pytest.fixture(scope="module")
def small_pipeline():
    from sknnmfdiff import make_paper_pipeline, make_phantom_mri

    b = make_phantom_mri(60, image_size=16, random_state=0)
    pipe = make_paper_pipeline(
        n_components=4, k=3, t=5, n_eot=3, random_state=0, clf__max_epochs=5,
        purify__max_epochs=3, purify__hidden=16, purify__n_layers=2, purify__emb_dim=8,
        purify__n_steps=100, purify__antithetic=False).fit(b.data[:40], b.target[:40])
    return pipe, b.data[40:50], b.target[40:50]


def test_report_names_the_full_model_with_the_purifier(small_pipeline, tmp_path):
    from sknnmfdiff import to_torch_module

    pipe, X, y = small_pipeline
    kw = dict(eps=0.05, space="feature", protocol="adaptive", n_draws=4, eps_grid=(),
              checks=False, progress=False, n_iter=5, n_restarts=1, n_eot=2,
              square_queries=5, square_n_eot=1)
    rep = evaluate_robustness(pipe, X, y, **kw)
    want = {"t": 5, "n_steps": 100, "n_eot": 3, "antithetic": False}
    assert {k: rep.model["purifier"][k] for k in want} == want
    assert [s["name"] for s in rep.model["steps"]] == [n for n, _ in pipe.steps]
    params = {s["name"]: s["params"] for s in rep.model["steps"]}
    assert params["nmf"]["n_components"] == 4 and params["select"]["k"] == 3
    assert params["clf"]["max_epochs"] == 5 and "memory" not in params["purify"]
    assert rep.model["randomized"] is True
    assert "purifier t=5 of 100 steps, 3 independent EOT draws" in rep.summary()
    back = RobustnessReport.from_json(rep.to_json(tmp_path / "e.json"))
    assert back.model == json.loads(json.dumps(rep.model))
    # A compiled module alone still names its purifier, from the module.
    module = to_torch_module(pipe, space="feature")
    rep = evaluate_robustness(module, X, np.searchsorted(pipe.classes_, y), **kw)
    assert {k: rep.model["purifier"][k] for k in want} == want
    assert any(s["class"] == "FeaturePurifier" for s in rep.model["module"]["steps"])
    # Reports written before the model was recorded still load.
    old = back.to_dict()
    del old["model"]
    assert RobustnessReport.from_dict(old).model == {}
