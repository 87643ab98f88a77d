"""Under the adaptive protocol every sample of the pool is attacked by Square and APGD-T,
and the judge decides on the point the search found: AutoAttack's ``perturb`` skips the
samples its first (noisy) forward pass misclassifies and hands back the clean input for
every sample its last pass does not misclassify."""

import numpy as np
import pytest
import torch

from sknnmfdiff.evaluation import MeanProbabilityLogits, resolve_attack_config, run_attack
from sknnmfdiff.evaluation._autoattack import (
    _attack_stages,
    _make_adversary,
    _run_group,
    _Stage,
)

from test_evaluation import LinearModel, make_linear_task


def _group(model, X, y, cfg, stage, k=1):
    """Run one stage of ``k`` replicas on all of ``X`` through ``_run_group``."""
    xs, ys = torch.as_tensor(X), torch.as_tensor(y)
    judge = MeanProbabilityLogits(model, cfg["n_eot"])
    adversary = _make_adversary(model, cfg, 0, "cpu")
    with torch.no_grad():
        clean_logits = judge(xs)
    return _run_group(adversary, judge, model, xs, ys, xs.clone(), stage, stage.restart, k,
                      cfg, 0, judge_key=(0,), clean_logits=clean_logits)


def _spy(monkeypatch, cls, record):
    method = cls.attack_single_run

    def wrapped(attack, x, yy):
        record.append((int(x.shape[0]), getattr(attack, "y_target", None)))
        return method(attack, x, yy)

    monkeypatch.setattr(cls, "attack_single_run", wrapped)


def test_square_searches_every_pool_sample_of_a_randomized_model(monkeypatch):
    """A noisy model's single pass misclassifies some correct samples: Square must
    search them all the same (``perturb`` would drop them before the search)."""
    from pyautoattack.square import SquareAttack

    X, y, w, b = make_linear_task(n=40, seed=3)
    model = LinearModel(w, b, noise_std=0.4, seed=5)
    cfg = resolve_attack_config(model, torch.as_tensor(X), protocol="adaptive", eps=0.02,
                                square_queries=20, square_n_eot=1, n_eot=8)
    with torch.no_grad():
        model.manual_seed(0)
        one_pass = model(torch.as_tensor(X)).argmax(1).numpy()
    assert (one_pass != y).sum() >= 3  # the noisy first pass would drop these samples
    rows = []
    _spy(monkeypatch, SquareAttack, rows)
    _group(model, X, y, cfg, _Stage("square", 0, 0, 1, "square"))
    assert rows == [(len(X), None)]


def test_square_hands_back_its_search_point_not_the_clean_input():
    """For a sample Square cannot break it returns the best point of its search (every
    query moves the input to a vertex of the eps-ball), not the clean input."""
    X, y, w, b = make_linear_task(n=30, seed=1)
    model = LinearModel(w, b)
    eps = 0.01
    cfg = resolve_attack_config(model, torch.as_tensor(X), protocol="adaptive", eps=eps,
                                square_queries=30)
    adv, fooled, _, _ = _group(model, X, y, cfg, _Stage("square", 0, 0, 1, "square"))
    kept = ~fooled.numpy()
    assert kept.sum() >= 5
    moved = np.abs(adv.numpy() - X).reshape(len(X), -1).max(1)
    np.testing.assert_allclose(moved[kept], eps, atol=1e-6)


@pytest.mark.parametrize("schedule, expected", [
    ("screened", [("apgd-t targets 1-3", 0, 3)]),
    ("sequential", [("apgd-t target 1", 0, 1), ("apgd-t target 2", 1, 1),
                    ("apgd-t target 3", 2, 1)]),
])
def test_targeted_stages_of_each_schedule(schedule, expected):
    X, y, W, b = make_linear_task(n=20, side=4, n_classes=4)
    cfg = resolve_attack_config(LinearModel(W, b, noise_std=0.05), torch.as_tensor(X),
                                protocol="adaptive", schedule=schedule, n_iter=10)
    stages = [(s.label, s.restart, s.replicas) for s in _attack_stages(cfg)
              if s.attack == "apgd-t"]
    assert stages == expected


def test_targeted_replicas_aim_at_each_other_class_in_order(monkeypatch):
    """APGD-T: replica ``j`` of every pool sample aims at its ``j``-th most probable class
    other than the true one (never the true class, also for a misclassified sample), and
    every pool sample is attacked."""
    from pyautoattack.autopgd_base import APGDAttack_targeted

    X, y, W, b = make_linear_task(n=24, side=4, n_classes=4, seed=2)
    model = LinearModel(W, b, noise_std=1e-4)
    cfg = resolve_attack_config(model, torch.as_tensor(X), protocol="adaptive", eps=0.05,
                                n_iter=10, n_eot=4)
    calls = []
    _spy(monkeypatch, APGDAttack_targeted, calls)
    _group(model, X, y, cfg, _Stage("apgd-t", 0, 10, 3, "apgd-t targets 1-3"), k=3)
    assert len(calls) == 1 and calls[0][0] == 3 * len(X)
    targets = calls[0][1].view(3, len(X)).numpy()
    logits = X.reshape(len(X), -1) @ W + b
    assert (logits.argmax(1) != y).any()  # misclassified samples are in the pool too
    logits[np.arange(len(X)), y] = -np.inf
    expected = np.argsort(-logits, axis=1)[:, :3].T
    np.testing.assert_array_equal(targets, expected)
    assert not (targets == y[None, :]).any()


def test_multiclass_adaptive_attack_breaks_at_least_what_autoattack_breaks():
    """The adaptive protocol on a 4-class linear model: no weaker than the paper
    protocol's AutoAttack cascade, which stops at the first misclassified point."""
    X, y, W, b = make_linear_task(n=40, side=4, n_classes=4, seed=4)
    model = LinearModel(W, b)
    kw = dict(eps=0.04, n_iter=20, n_restarts=2, square_queries=100, progress=False)

    def left(protocol):
        x_adv = run_attack(model, X, y, protocol=protocol, **kw)
        with torch.no_grad():
            return int((model(torch.as_tensor(x_adv)).argmax(1).numpy() == y).sum())

    paper, adaptive = left("paper"), left("adaptive")
    with torch.no_grad():
        clean = int((model(torch.as_tensor(X)).argmax(1).numpy() == y).sum())
    assert paper < clean  # the attack does something at this eps
    assert adaptive <= paper


@pytest.mark.parametrize("schedule, batch_size", [("sequential", 250), ("screened", 20)])
def test_each_target_class_is_attacked_once_on_a_randomized_model(monkeypatch, schedule,
                                                                   batch_size):
    """The targets of a sample's APGD-T runs (one stage per target when sequential; replica
    groups split by ``batch_size`` when screened) come from one ranking of its classes:
    each other class at most once. Re-ranking every run on fresh noisy draws attacks
    one class twice and never another."""
    from pyautoattack.autopgd_base import APGDAttack_targeted

    X, y, W, b = make_linear_task(n=12, side=4, n_classes=4, seed=2)
    calls = []  # (rows attacked, their targets), one per APGD-T run
    method = APGDAttack_targeted.attack_single_run

    def spy(attack, x, yy):
        calls.append((x.detach().flatten(1).clone(), attack.y_target.tolist()))
        return method(attack, x, yy)

    monkeypatch.setattr(APGDAttack_targeted, "attack_single_run", spy)
    run_attack(LinearModel(W, b, noise_std=1.0, seed=0), X, y, eps=1e-4, protocol="adaptive",
               n_iter=5, n_restarts=1, square_queries=2, n_eot=4, square_n_eot=2,
               schedule=schedule, batch_size=batch_size, progress=False)
    assert len(calls) > 1  # the targets were ranked more than once
    rows = torch.as_tensor(X).flatten(1)
    targets = {i: [] for i in range(len(X))}
    for x, tg in calls:
        for r, t in zip(x, tg):
            targets[int((rows == r).all(1).nonzero()[0])].append(t)
    for i, ts in targets.items():
        assert y[i] not in ts
        assert len(set(ts)) == len(ts), f"sample {i} (class {y[i]}) targeted {ts}"
