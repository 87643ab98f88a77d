"""The order of the adaptive attack's APGD runs: the ``"screened"`` schedule (a short
screening run, then every restart for what it left, later restarts side by side)
against AutoAttack's ``"sequential"`` cascade."""

import numpy as np
import pytest
import torch

from sknnmfdiff.evaluation import resolve_attack_config, run_attack, score
from sknnmfdiff.evaluation._autoattack import _attack_stages

from test_evaluation import (
    LinearModel,
    SineMLP,
    exact_linf_robust,
    exactly_robust,
    make_linear_task,
)


class _Recorder:
    """Records every APGD call: (rows, iterations, the output)."""

    def __init__(self, monkeypatch):
        import pyautoattack.autopgd_base as ab

        self.calls = []
        perturb = ab.APGDAttack.perturb

        def wrapped(attack, x, y, *args, **kwargs):
            out = perturb(attack, x, y, *args, **kwargs)
            self.calls.append((int(x.shape[0]), int(attack.n_iter), out.detach().clone(),
                               x.detach().clone()))
            return out

        monkeypatch.setattr(ab.APGDAttack, "perturb", wrapped)


def _labels(cfg):
    return [(s.label, s.n_iter, s.replicas) for s in _attack_stages(cfg)]


def test_stages_of_each_schedule():
    X, y, w, b = make_linear_task(n=10)
    x = torch.as_tensor(X)
    m = LinearModel(w, b)
    kw = dict(n_iter=50, n_restarts=3)
    screened = resolve_attack_config(m, x, protocol="adaptive", **kw)
    assert screened["schedule"] == "screened" and screened["apgd_screen_n_iter"] == 5
    assert _labels(screened) == [("apgd-ce screen", 5, 1), ("apgd-ce restart 1", 50, 1),
                                 ("apgd-ce restarts 2-3", 50, 2), ("square", 0, 1)]
    sequential = resolve_attack_config(m, x, protocol="adaptive", schedule="sequential", **kw)
    assert sequential["apgd_screen_n_iter"] == 0
    assert _labels(sequential) == [("apgd-ce restart 1", 50, 1), ("apgd-ce restart 2", 50, 1),
                                   ("apgd-ce restart 3", 50, 1), ("square", 0, 1)]
    paper = resolve_attack_config(m, x, protocol="paper", **kw)
    assert paper["schedule"] == "sequential"
    assert _labels(paper) == [("apgd-ce restart 1", 50, 1), ("square", 0, 1)]
    one = resolve_attack_config(m, x, protocol="adaptive", n_iter=5, n_restarts=1)
    assert _labels(one) == [("apgd-ce screen", 1, 1), ("apgd-ce restart 1", 5, 1),
                            ("square", 0, 1)]


@pytest.mark.parametrize("schedule, first", [("screened", ("apgd-ce screen", 5, 1)),
                                             ("sequential", ("apgd-ce restart 1", 50, 1))])
@pytest.mark.parametrize("n_classes", [2, 4])
def test_eps_zero_runs_only_the_first_stage(schedule, first, n_classes):
    """Nothing can move an input at eps = 0: one stage runs the code path, not every
    restart and attack."""
    X, y, W, b = make_linear_task(n=10, side=4, n_classes=n_classes)
    cfg = resolve_attack_config(LinearModel(W, b, noise_std=0.1), torch.as_tensor(X),
                                protocol="adaptive", schedule=schedule, n_iter=50,
                                n_restarts=3, eps=0.0)
    assert _labels(cfg) == [first]
    assert len(_labels(dict(cfg, eps=0.1))) > 3


@pytest.mark.parametrize("kwargs, match", [
    ({"protocol": "paper", "schedule": "screened"}, "paper protocol runs AutoAttack's cascade"),
    ({"protocol": "adaptive", "schedule": "fast"}, "schedule must be one of"),
])
def test_bad_schedule_is_refused(kwargs, match):
    X, y, w, b = make_linear_task(n=10)
    with pytest.raises(ValueError, match=match):
        resolve_attack_config(LinearModel(w, b), torch.as_tensor(X), **kwargs)


def test_screen_runs_on_every_sample_then_only_what_it_left(monkeypatch):
    """The screen attacks all samples with n_iter // 10 iterations; the first restart
    attacks only what it left, and the other restarts run as replicas of that pool in
    one call: every sample that survives the screen gets all n_restarts restarts."""
    X, y, w, b = make_linear_task(n=60, seed=4)
    model = LinearModel(w, b)
    with torch.no_grad():
        n_correct = int((model(torch.as_tensor(X)).argmax(1).numpy() == y).sum())
    rec = _Recorder(monkeypatch)
    run_attack(model, X, y, eps=0.03, protocol="adaptive", n_iter=40, n_restarts=4,
               square_queries=20, progress=False)
    (n0, it0, *_), (n1, it1, *_), (n2, it2, out2, x2) = rec.calls
    assert (n0, it0) == (n_correct, 4)  # a deterministic model: the clean-correct samples
    assert 0 < n1 < n_correct and it1 == 40  # the screen broke some, not all
    # restarts 2-4: three replicas of what the first restart left, in one call
    assert n2 % 3 == 0 and 0 < n2 // 3 <= n1 and it2 == 40
    m = n2 // 3
    # the replicas of one sample start from different random points: distinct outputs
    np.testing.assert_array_equal(x2[:m], x2[m:2 * m])
    assert not torch.equal(out2[:m], out2[m:2 * m])


def test_replica_groups_hold_at_most_batch_size_rows(monkeypatch):
    X, y, w, b = make_linear_task(n=40, seed=4)
    rec = _Recorder(monkeypatch)
    run_attack(LinearModel(w, b), X, y, eps=0.05, protocol="adaptive", n_iter=20, n_restarts=6,
               square_queries=5, batch_size=20, progress=False)
    assert len(rec.calls) > 2
    # the screen and the first restart of each batch take the pool; replicas fill at
    # most batch_size rows (one replica per call when the pool is over half of it)
    assert all(n <= 20 for n, *_ in rec.calls)


@pytest.mark.parametrize("seed", [0, 1])
def test_screened_reaches_the_exact_robust_accuracy_of_a_linear_model(seed):
    """Known answer (checklist item 5) under the default adaptive schedule, for a
    deterministic and a randomized (symmetric noise) linear model."""
    X, y, w, b = make_linear_task(n=40, seed=seed)
    eps = 0.03
    exact = exact_linf_robust(X, y, w, b, eps)
    for noise in (0.0, 0.1):
        model = LinearModel(w, b, noise_std=noise, seed=5)
        x_adv, details = run_attack(model, X, y, eps=eps, protocol="adaptive", n_eot=20,
                                    square_n_eot=4, n_iter=50, n_restarts=3, square_queries=200,
                                    random_state=seed, progress=False, return_details=True)
        assert details["config"]["schedule"] == "screened"
        acc = score(model, x_adv, y, n_draws=32)["rules"]["mean_probability"]["accuracy"]
        assert abs(acc - exact) <= 2 / len(y) + 1e-12


def test_screened_is_as_strong_as_sequential_on_a_nonconvex_model():
    """On a very non-linear model the screened schedule leaves no more samples
    correct than AutoAttack's cascade, over three seeds (at this eps the cascade
    leaves a quarter of them: a real comparison)."""
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 1, size=(60, 1, 8, 8)).astype(np.float32)
    model = SineMLP()
    with torch.no_grad():
        y = model(torch.as_tensor(X)).argmax(1).numpy()
    left = {}
    for schedule in ("screened", "sequential"):
        left[schedule] = 0
        for seed in range(3):
            x_adv = run_attack(model, X, y, eps=0.01, protocol="adaptive", n_iter=30, n_restarts=4,
                               square_queries=50, random_state=seed, schedule=schedule,
                               progress=False)
            with torch.no_grad():
                left[schedule] += int((model(torch.as_tensor(x_adv)).argmax(1).numpy() == y).sum())
    assert left["sequential"] > 0  # the attack does not break everything: a real comparison
    assert left["screened"] <= left["sequential"] + 2


def test_interrupted_screened_run_with_replica_groups_resumes_to_the_same_result(
        tmp_path, monkeypatch):
    """A resumed screened run equals an uninterrupted one wherever it was interrupted,
    also inside the replica stage when it runs in several groups (the whole stage is
    redone from the state after the stage before)."""
    from test_resume import NoisyMLP, _mlp_task, _Stages

    X, y = _mlp_task()
    kw = dict(eps=0.02, protocol="adaptive", batch_size=15, n_eot=4, square_n_eot=2, n_iter=20,
              n_restarts=5, square_queries=30, progress=False, return_details=True)
    with monkeypatch.context() as m:
        ref_calls = _Stages(m)
        x_ref, ref = run_attack(NoisyMLP(noise_std=0.3), X, y, **kw)
    calls = ref_calls.calls
    # screen, restart 1, restarts 2-5 in more than one group, Square: > 4 calls a batch
    assert len(calls) > 8 and calls[-1] == "SquareAttack"
    first_of_last = len(calls) - calls[::-1].index("SquareAttack", 1)  # after batch 1's Square
    for at in range(first_of_last + 2, len(calls) + 1):
        d = tmp_path / f"at{at}"
        with monkeypatch.context() as m:
            _Stages(m, interrupt_at=at)
            with pytest.raises(KeyboardInterrupt):
                run_attack(NoisyMLP(noise_std=0.3), X, y, checkpoint_dir=d, **kw)
        x_res, det = run_attack(NoisyMLP(noise_std=0.3), X, y, checkpoint_dir=d, **kw)
        np.testing.assert_array_equal(x_res, x_ref, err_msg=f"interrupted at call {at}")
        assert det["broken_by"] == ref["broken_by"] and det["counts"] == ref["counts"]


@pytest.mark.parametrize("schedule, expected", [("screened", "screened"),
                                                ("sequential", "sequential"),
                                                (None, "sequential")])
def test_checks_attack_with_the_schedule_of_the_main_attack(monkeypatch, schedule, expected):
    """The eps grid and the full plateau check rerun the main attack's schedule; a config
    saved before schedules existed (no ``schedule`` entry) ran AutoAttack's cascade."""
    from sknnmfdiff.evaluation import _attack_checks, _sanity, run_sanity_checks

    X, y, w, b = make_linear_task(n=20, seed=4)
    model = LinearModel(w, b)
    xt, yt = torch.as_tensor(X), torch.as_tensor(y)
    x_adv, details = run_attack(model, X, y, eps=0.03, protocol="adaptive", n_iter=10,
                                n_restarts=2, square_queries=5, progress=False,
                                schedule=schedule or "sequential", return_details=True)
    cfg = dict(details["config"], scoring_draws=1)
    if schedule is None:
        del cfg["schedule"]
    seen = []
    for mod in (_sanity, _attack_checks):
        real = mod.run_attack
        monkeypatch.setattr(mod, "run_attack", lambda *a, _real=real, **kw: (
            seen.append(kw.get("schedule")), _real(*a, **kw))[1])
    clean = score(model, xt, yt)
    robust = score(model, torch.as_tensor(x_adv), yt)
    run_sanity_checks(model, xt, yt, torch.as_tensor(x_adv), cfg=cfg, clean_scores=clean,
                      robust_scores=robust, eps_grid=(0.01,), plateau="full")
    assert seen and set(seen) == {expected}


def test_a_sample_broken_by_one_replica_is_broken(monkeypatch):
    """The replicated restarts: a sample counts as broken when any one of its replicas
    breaks it, and keeps that replica's point. Here the screen, restart 1 and Square find
    nothing (they return the clean input) and, of the replicas of restarts 2-3, only the
    second one returns the exact worst case of a linear model: every breakable sample
    must end broken by APGD-CE at that point."""
    import pyautoattack.autopgd_base as ab
    import pyautoattack.square as sq

    X, y, w, b = make_linear_task(n=40, seed=6)
    eps = 0.05
    model = LinearModel(w, b)
    with torch.no_grad():
        correct = model(torch.as_tensor(X)).argmax(1).numpy() == y
    sign = torch.as_tensor(np.sign(w), dtype=torch.float32).reshape(X.shape[1:])
    calls = []

    def perturb(attack, x, yy, *args, **kwargs):
        calls.append(int(x.shape[0]))
        out = x.clone()
        if len(calls) == 3:  # the replicated stage: two replicas of the pool
            m = x.shape[0] // 2
            ysign = (2 * yy[m:] - 1).float().reshape(-1, 1, 1, 1)
            out[m:] = (x[m:] - eps * ysign * sign).clamp(0, 1)
        return out

    monkeypatch.setattr(ab.APGDAttack, "perturb", perturb)
    monkeypatch.setattr(sq.SquareAttack, "attack_single_run",
                        lambda attack, x, yy: (None, x.clone()))
    x_adv, details = run_attack(model, X, y, eps=eps, protocol="adaptive", n_iter=10,
                                n_restarts=3, square_queries=5, progress=False,
                                return_details=True)
    n_pool = int(correct.sum())
    assert calls[:3] == [n_pool, n_pool, 2 * n_pool]
    breakable = correct & ~exactly_robust(X, y, w, b, eps)
    assert breakable.sum() > 0 and (~breakable & correct).sum() > 0
    broken = np.array([s == "apgd-ce" for s in details["broken_by"]])
    np.testing.assert_array_equal(broken, breakable)
    with torch.no_grad():
        pred = model(torch.as_tensor(x_adv)).argmax(1).numpy()
    assert (pred[breakable] != y[breakable]).all()


def test_details_and_timings_record_every_stage_that_ran(tmp_path):
    """``run_attack`` details list each stage run (label, samples entering, replicas,
    seconds); a batch loaded from a checkpoint adds none; ``evaluate_robustness``
    sums them per stage in ``timings["attack_stages"]``."""
    from sknnmfdiff.evaluation import evaluate_robustness

    X, y, w, b = make_linear_task(n=30, seed=8)
    model = LinearModel(w, b)
    kw = dict(eps=0.03, protocol="adaptive", n_iter=20, n_restarts=3, square_queries=20,
              batch_size=20, progress=False, return_details=True)
    _, det = run_attack(model, X, y, checkpoint_dir=tmp_path, **kw)
    recs = det["stages"]
    with torch.no_grad():
        n_correct = int((model(torch.as_tensor(X[:20])).argmax(1).numpy() == y[:20]).sum())
    first = [r for r in recs if r["batch"] == 0]
    assert first[0]["stage"] == "apgd-ce screen" and first[0]["samples"] == n_correct
    labels = [s.label for s in _attack_stages(det["config"])]
    for b in (0, 1):
        ran = [r["stage"] for r in recs if r["batch"] == b]
        assert ran == [s for s in labels if s in ran] and ran  # in cascade order
    assert all(r["seconds"] >= 0 and r["samples"] >= 1 for r in recs)
    assert [r["samples"] for r in first] == sorted((r["samples"] for r in first), reverse=True)
    assert {r["replicas"] for r in recs if r["stage"] == "apgd-ce restarts 2-3"} <= {2}
    _, again = run_attack(model, X, y, checkpoint_dir=tmp_path, **kw)
    assert again["n_batches_loaded"] == 2 and again["stages"] == []

    rep = evaluate_robustness(model, X, y, eps=0.03, protocol="adaptive", n_iter=20,
                              n_restarts=3, square_queries=20, batch_size=20, checks=False,
                              progress=False)
    stages = rep.timings["attack_stages"]
    assert set(stages) == {r["stage"] for r in recs}
    assert sum(stages.values()) <= rep.timings["attack"] + 1e-6
