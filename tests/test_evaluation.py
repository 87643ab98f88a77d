"""Tests of sknnmfdiff.evaluation on small torch modules with known answers."""

import json
import sys

import numpy as np
import pytest
import torch
from torch import nn

from sknnmfdiff.evaluation import (
    MeanProbabilityLogits,
    RobustnessReport,
    autoattack_flags,
    baseline_checks,
    check_gradients,
    classification_metrics,
    evaluate_robustness,
    paper_table,
    predict_proba_draws,
    resolve_attack_config,
    run_attack,
    score,
    score_draws,
)

FAST = {"n_iter": 20, "n_restarts": 2, "square_queries": 200}


class LinearModel(nn.Module):
    """Linear classifier on flattened inputs; optional input noise from its own generator.

    Binary: logits ``[-s/2, s/2]`` with ``s = w.x + b`` (class 1 iff s > 0).
    Multiclass: logits ``x W + b``. The noise vector is drawn once per call and
    shared by the rows (common random numbers), as in the purifier.
    """

    def __init__(self, W, b, noise_std=0.0, seed=0, fail_after=None, detach=False, space="pixel"):
        super().__init__()
        self.W = nn.Parameter(torch.as_tensor(W, dtype=torch.float32), requires_grad=False)
        self.b = nn.Parameter(torch.as_tensor(b, dtype=torch.float32), requires_grad=False)
        self.noise_std = float(noise_std)
        self.randomized = noise_std > 0
        self.n_classes = 2 if self.W.ndim == 1 else self.W.shape[1]
        self.space = space
        self.gen = torch.Generator().manual_seed(seed)
        self.calls = 0
        self.fail_after = fail_after
        self.detach = detach
        self.eval()

    def manual_seed(self, seed):
        self.gen.manual_seed(int(seed))

    def forward(self, x):
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise RuntimeError("simulated interruption")
        z = x.flatten(1)
        if self.detach:
            z = z.detach()
        if self.noise_std:
            z = z + self.noise_std * torch.randn(z.shape[1:], generator=self.gen)
        if self.W.ndim == 1:
            s = z @ self.W + self.b
            return torch.stack([-s / 2, s / 2], dim=1)
        return z @ self.W + self.b


def make_linear_task(n=100, side=8, seed=0, n_classes=2):
    """Inputs (n, 1, side, side) uniform in [0, 1], labels from a noisy linear rule."""
    rng = np.random.default_rng(seed)
    d = side * side
    X = rng.uniform(0, 1, size=(n, 1, side, side)).astype(np.float32)
    if n_classes == 2:
        w = rng.normal(size=d).astype(np.float32)
        b = np.float32(-w.sum() / 2)
        s = X.reshape(n, -1) @ w + b
        y = (s + rng.normal(scale=0.5, size=n) > 0).astype(np.int64)
        return X, y, w, b
    W = rng.normal(size=(d, n_classes)).astype(np.float32)
    b = (-(W.sum(0)) / 2).astype(np.float32)
    y = (X.reshape(n, -1) @ W + b + rng.normal(scale=0.5, size=(n, n_classes))).argmax(1)
    return X, y.astype(np.int64), W, b


def exactly_robust(X, y, w, b, eps):
    """Per sample, whether a binary linear classifier is L-inf robust at ``eps`` in the
    [0, 1] box (closed form: the box's worst corner of the ball)."""
    ysign = 2 * y - 1
    Z = X.reshape(len(X), -1).astype(np.float64)
    worst = np.clip(Z - eps * ysign[:, None] * np.sign(w)[None, :], 0, 1)
    return ysign * (worst @ w + b) > 0


def exact_linf_robust(X, y, w, b, eps):
    """Closed-form L-inf robust accuracy of a binary linear classifier in the [0, 1] box."""
    return np.mean(exactly_robust(X, y, w, b, eps))


@pytest.fixture(scope="module")
def task():
    return make_linear_task()


def test_known_answer_linear_paper(task):
    """Paper protocol (AutoAttack defaults) reaches the exact robust accuracy."""
    X, y, w, b = task
    model = LinearModel(w, b)
    eps = 0.03
    exact = exact_linf_robust(X, y, w, b, eps)
    assert 0.2 < exact < 0.8, "the task should leave some samples robust and break others"
    x_adv = run_attack(model, X, y, eps=eps, protocol="paper", progress=False)
    with torch.no_grad():
        pred = model(torch.from_numpy(x_adv)).argmax(1).numpy()
    found = np.mean(pred == y)
    assert found >= exact - 1e-12  # no attack beats the optimum
    assert found - exact <= 1 / len(y) + 1e-12
    assert np.abs(x_adv - X).max() <= eps + 1e-6


@pytest.mark.parametrize("norm", ["Linf", "L2"])
@pytest.mark.parametrize("protocol", ["paper", "adaptive"])
def test_perturbation_bounds(task, norm, protocol):
    X, y, w, b = task
    model = LinearModel(w, b, noise_std=0.05 if protocol == "adaptive" else 0.0)
    eps = 0.03 if norm == "Linf" else 0.5
    x_adv = run_attack(model, X[:40], y[:40], eps=eps, norm=norm, protocol=protocol,
                       n_eot=4, square_n_eot=2, progress=False, **FAST)
    assert isinstance(x_adv, np.ndarray) and x_adv.dtype == np.float32
    assert x_adv.shape == X[:40].shape and np.isfinite(x_adv).all()
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    d = (x_adv.astype(np.float64) - X[:40]).reshape(40, -1)
    size = np.abs(d).max(1) if norm == "Linf" else np.linalg.norm(d, axis=1)
    assert size.max() <= eps + 1e-5
    assert np.any(size > 0.5 * eps)  # something was actually perturbed


def test_tensor_in_tensor_out(task):
    X, y, w, b = task
    out = run_attack(LinearModel(w, b), torch.from_numpy(X[:10]), torch.from_numpy(y[:10]),
                     eps=0.03, progress=False, **FAST)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32


def test_eps_zero_equals_clean(task):
    X, y, w, b = task
    model = LinearModel(w, b)
    x_adv = run_attack(model, X, y, eps=0.0, progress=False, **FAST)
    np.testing.assert_array_equal(x_adv, X)
    assert score(model, x_adv, y)["rules"] == score(model, X, y)["rules"]


def test_l2_known_answer_without_box():
    """L2: for a linear model with the box far away, robust iff margin / ||w|| > eps."""
    rng = np.random.default_rng(3)
    n, d = 60, 64
    w = rng.normal(size=d).astype(np.float32)
    X = (0.5 + 0.02 * rng.normal(size=(n, 1, 8, 8))).astype(np.float32)
    b = np.float32(-(X.reshape(n, -1) @ w).mean())
    s = X.reshape(n, -1) @ w + b
    y = (s > 0).astype(np.int64)
    eps = float(np.median(np.abs(s)) / np.linalg.norm(w))
    exact = np.mean(np.abs(s) / np.linalg.norm(w) > eps)
    x_adv, det = run_attack(LinearModel(w, b), X, y, eps=eps, norm="L2", progress=False,
                            square_queries=500, return_details=True)
    assert det["config"]["attacks"] == ["apgd-ce", "square"]
    with torch.no_grad():
        found = np.mean(LinearModel(w, b)(torch.from_numpy(x_adv)).argmax(1).numpy() == y)
    assert exact - 1e-12 <= found <= exact + 1 / n + 1e-12


def test_evaluate_deterministic_checks_pass(task):
    """Full evaluation: every sanity check passes on an honest deterministic model."""
    X, y, w, b = task
    model = LinearModel(w, b)
    rep = evaluate_robustness(model, X.reshape(len(X), -1), y, eps=0.03, plateau=True,
                              eps_grid=(0.0, 0.01, 0.5), progress=False, **FAST)
    checks = {c["name"]: c for c in rep.checks}
    expected = {"perturbation_bounds", "eps_zero_equals_clean",
                "robust_accuracy_non_increasing_in_eps", "large_eps_drives_accuracy_to_zero",
                "gradient_nonzero", "gradient_finite_differences",
                "random_noise_weaker_than_attack", "autoattack_flags", "batch_size_invariance",
                "whitebox_at_least_as_strong_as_square", "attack_strength_plateau"}
    assert expected <= set(checks)
    assert rep.failed_checks == [], rep.checks
    grid = sorted(rep.eps_grid, key=lambda r: r["eps"])
    accs = [r["accuracy"] for r in grid]
    assert accs == sorted(accs, reverse=True)
    assert accs[0] == rep.clean["mean_probability"]["accuracy"]
    assert accs[-1] <= 0.05
    assert rep.robust["mean_probability"]["accuracy"] < rep.clean["mean_probability"]["accuracy"]
    assert rep.threat_model["attacks"] == ["apgd-ce", "square"]
    assert rep.autoattack_flags["randomized"] is False
    assert len(rep.per_sample["robust_correct"]["worst_case"]) == len(y)


def test_broken_gradient_is_reported_not_hidden(task):
    """A module that detaches its input fails the gradient check, the evaluation still ends."""
    X, y, w, b = task
    model = LinearModel(w, b, detach=True)
    nonzero, fd = check_gradients(model, X[:20], y[:20])
    assert nonzero.passed is False and nonzero.value == 0.0
    assert fd.passed is False
    rep = evaluate_robustness(model, X[:20], y[:20], eps=0.03, eps_grid=(), progress=False, **FAST)
    assert "gradient_nonzero" in rep.failed_checks
    statuses = {c["name"]: c["status"] for c in rep.checks}
    assert statuses["eps_zero_equals_clean"] == "skipped"
    assert statuses["attack_strength_plateau"] == "skipped"


def test_binary_never_runs_dlr_or_targeted(task, monkeypatch):
    X, y, w, b = task
    model = LinearModel(w, b, noise_std=0.05)
    cfg = resolve_attack_config(model, torch.from_numpy(X), protocol="adaptive")
    assert cfg["attacks"] == ["apgd-ce", "square"]
    from pyautoattack.autopgd_base import APGDAttack, APGDAttack_targeted

    seen = []
    orig = APGDAttack.perturb

    def spy(self, x, y=None, **kw):
        seen.append(self.loss)
        return orig(self, x, y, **kw)

    monkeypatch.setattr(APGDAttack, "perturb", spy)
    for name in ("perturb", "attack_single_run"):
        monkeypatch.setattr(APGDAttack_targeted, name,
                            lambda *a, **k: pytest.fail("targeted APGD run on a binary task"))
    _, det = run_attack(model, X[:20], y[:20], eps=0.03, protocol="adaptive", n_eot=2,
                        square_n_eot=2, progress=False, return_details=True, **FAST)
    assert seen and set(seen) == {"ce"}
    assert set(det["counts"]) == {"clean", "apgd-ce", "square"}


@pytest.mark.parametrize("n_classes, attacks", [
    (3, ["apgd-ce", "apgd-dlr", "square"]),
    (4, ["apgd-ce", "apgd-dlr", "apgd-t", "square"]),
])
def test_multiclass_attack_choice(n_classes, attacks):
    X, y, W, b = make_linear_task(n=30, side=4, n_classes=n_classes)
    model = LinearModel(W, b)
    x_adv, det = run_attack(model, X, y, eps=0.05, protocol="adaptive", progress=False,
                            return_details=True, n_iter=10, n_restarts=1, square_queries=50)
    assert det["config"]["attacks"] == attacks
    assert np.abs(x_adv - X).max() <= 0.05 + 1e-6
    s = score(model, x_adv, y)
    assert np.isfinite(s["rules"]["mean_probability"]["roc_auc"])


def test_adaptive_at_most_as_robust_as_paper_on_randomized():
    """Known answer for a randomized model, and adaptive <= paper.

    With symmetric input noise, the mean-probability decision of the noisy linear
    model is sign(w.x + b), so its exact robust accuracy is the linear closed form.
    The adaptive protocol (EOT on the log mean probability, mean-probability
    acceptance) reaches it; the paper protocol accepts single lucky draws and keeps
    clean inputs elsewhere, so it can only over-credit the model.
    """
    X, y, w, b = make_linear_task(n=40, seed=1)
    eps = 0.03
    exact = exact_linf_robust(X, y, w, b, eps)
    res = {}
    for protocol in ("paper", "adaptive"):
        model = LinearModel(w, b, noise_std=0.1, seed=5)
        x_adv = run_attack(model, X, y, eps=eps, protocol=protocol, n_eot=20, square_n_eot=4,
                           n_iter=50, n_restarts=3, square_queries=200, progress=False)
        res[protocol] = score(model, x_adv, y, n_draws=32)["rules"]
    assert abs(res["adaptive"]["mean_probability"]["accuracy"] - exact) <= 2 / len(y) + 1e-12
    for rule in ("mean_probability", "majority_vote"):
        assert res["adaptive"][rule]["accuracy"] <= res["paper"][rule]["accuracy"] + 1e-12
    for r in res.values():
        assert r["worst_case"]["accuracy"] <= r["majority_vote"]["accuracy"] + 1e-12


def test_randomized_scoring_and_checks():
    X, y, w, b = make_linear_task(n=30, seed=2)
    model = LinearModel(w, b, noise_std=0.1, seed=1)
    rep = evaluate_robustness(model, X, y, eps=0.03, protocol="adaptive", n_draws=16,
                              eps_grid=(0.0,), n_eot=4, square_n_eot=2, progress=False, **FAST)
    assert rep.threat_model["randomized"] and rep.threat_model["n_eot"] == 4
    assert set(rep.robust) == {"single_draw", "mean_probability", "majority_vote", "worst_case"}
    checks = {c["name"]: c for c in rep.checks}
    assert checks["autoattack_flags"]["details"]["randomized"] is True  # AutoAttack sees it
    assert checks["batch_size_invariance"]["passed"] is True
    assert checks["gradient_finite_differences"]["passed"] is True
    assert checks["eps_zero_equals_clean"]["passed"] is True
    for part in (rep.clean, rep.robust):
        for m in part.values():
            lo, hi = m["accuracy_ci"]
            assert lo <= m["accuracy"] <= hi


def test_checkpoint_resume_redoes_nothing(task, tmp_path):
    X, y, w, b = task
    X, y = X[:30], y[:30]
    kw = dict(eps=0.03, batch_size=10, progress=False, **FAST)
    full = LinearModel(w, b)
    x_full = run_attack(full, X, y, checkpoint_dir=tmp_path / "a", **kw)
    assert full.calls > 0
    assert len(list((tmp_path / "a").glob("batch_*.npz"))) == 3
    again = LinearModel(w, b)
    x_again, det = run_attack(again, X, y, checkpoint_dir=tmp_path / "a", return_details=True, **kw)
    assert again.calls == 0 and det["n_batches_loaded"] == 3
    np.testing.assert_array_equal(x_again, x_full)

    # interrupted in the second batch, then resumed
    n_first = LinearModel(w, b)
    run_attack(n_first, X[:10], y[:10], **kw)
    broken = LinearModel(w, b, fail_after=n_first.calls + 5)
    with pytest.raises(RuntimeError, match="simulated interruption"):
        run_attack(broken, X, y, checkpoint_dir=tmp_path / "b", **kw)
    assert [p.name for p in (tmp_path / "b").glob("batch_*.npz")] == ["batch_00000.npz"]
    resumed = LinearModel(w, b)
    x_res, det = run_attack(resumed, X, y, checkpoint_dir=tmp_path / "b", return_details=True, **kw)
    assert det["n_batches_loaded"] == 1
    np.testing.assert_array_equal(x_res, x_full)
    assert resumed.calls < full.calls

    with pytest.raises(ValueError, match="different attack"):
        run_attack(LinearModel(w, b), X, y, checkpoint_dir=tmp_path / "a",
                   **{**kw, "eps": 0.05})
    with pytest.raises(ValueError, match="different attack"):
        run_attack(LinearModel(w * 2, b), X, y, checkpoint_dir=tmp_path / "a", **kw)
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["config"]["eps"] == 0.03 and len(manifest["config_hash"]) == 64


def test_global_rng_untouched(task):
    X, y, w, b = task
    torch.manual_seed(1234)
    np.random.seed(99)
    t_state = torch.get_rng_state().clone()
    n_state = np.random.get_state()
    trace = sys.gettrace()
    model = LinearModel(w, b, noise_std=0.05)
    run_attack(model, X[:20], y[:20], eps=0.03, protocol="paper", progress=False, **FAST)
    autoattack_flags(model, X[:20], y[:20])
    score(model, X[:20], y[:20], n_draws=3)
    assert torch.equal(torch.get_rng_state(), t_state)
    after = np.random.get_state()
    assert after[0] == n_state[0] and np.array_equal(after[1], n_state[1]) and after[2:] == n_state[2:]
    assert sys.gettrace() is trace


def test_attack_is_reproducible(task):
    X, y, w, b = task
    kw = dict(eps=0.03, protocol="adaptive", n_eot=3, square_n_eot=2, progress=False, **FAST)
    a = run_attack(LinearModel(w, b, noise_std=0.1), X[:20], y[:20], **kw)
    c = run_attack(LinearModel(w, b, noise_std=0.1, seed=9), X[:20], y[:20], **kw)
    np.testing.assert_array_equal(a, c)  # the module generator is rewound per batch


def test_json_round_trip_and_paper_table(task, tmp_path):
    X, y, w, b = task
    kw = dict(eps=0.03, eps_grid=(), progress=False, **FAST)
    base = evaluate_robustness(LinearModel(w, b), X[:30], y[:30], **kw)
    defended = evaluate_robustness(LinearModel(w, b, noise_std=0.05), X[:30], y[:30], n_draws=8,
                                   protocol="adaptive", n_eot=3, square_n_eot=2, **kw)
    path = tmp_path / "report.json"
    defended.to_json(path)
    back = RobustnessReport.from_json(path)
    assert back.to_dict() == json.loads(path.read_text())
    assert back.robust == defended.robust and back.threat_model == defended.threat_model
    assert RobustnessReport.from_json(defended.to_json()).checks == defended.checks
    rows, md = paper_table(base, defended)
    assert [r["setting"] for r in rows] == ["Clean baseline", "Clean defended",
                                             "Robust baseline", "Robust defended"]
    assert rows[2]["accuracy"] == base.robust["mean_probability"]["accuracy"]
    assert md.count("\n|") == 5 and "Threat model: pixel space, Linf eps = 0.03" in md
    names = [c.name for c in baseline_checks(base, defended)]
    assert names == ["baseline_near_zero", "same_threat_model"]
    other = evaluate_robustness(LinearModel(w, b), X[:30], y[:30], **{**kw, "eps": 0.05})
    with pytest.raises(ValueError, match="differ in eps"):
        paper_table(other, defended)


def test_feature_space_hook():
    """space='feature' computes the module's input through its `features` hook."""

    class FeatureModel(LinearModel):
        def features(self, x):
            return nn.functional.avg_pool2d(x, 4).reshape(len(x), 1, 1, -1)

    X, y, _, _ = make_linear_task(n=30, side=8, seed=4)
    rng = np.random.default_rng(0)
    w = rng.normal(size=4).astype(np.float32)
    feats = nn.functional.avg_pool2d(torch.from_numpy(X), 4).reshape(30, -1).numpy()
    b = np.float32(-np.median(feats @ w))
    y = (feats @ w + b > 0).astype(np.int64)
    model = FeatureModel(w, b, space="feature")
    rep = evaluate_robustness(model, X.reshape(30, -1), y, space="feature", eps=0.05,
                              eps_grid=(), checks=False, progress=False, **FAST)
    assert rep.threat_model["space"] == "feature"
    assert rep.threat_model["input_shape"] == [1, 1, 4]


def test_score_draws_rules():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=50)
    logits = rng.normal(size=(9, 50, 3)) + 2 * np.eye(3)[y][None]
    P = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    s = score_draws(y, P)
    correct_all = (P.argmax(-1) == y).all(0)
    np.testing.assert_array_equal(s["correct"]["worst_case"], correct_all)
    assert s["rules"]["worst_case"]["accuracy"] <= s["rules"]["majority_vote"]["accuracy"]
    m = classification_metrics(y, P.mean(0))
    assert m == {k: s["rules"]["mean_probability"][k] for k in m}
    from sklearn.metrics import roc_auc_score

    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, P.mean(0), multi_class="ovr"))


def test_mean_probability_logits():
    torch.manual_seed(0)
    lin = LinearModel(np.ones(4, np.float32), 0.0, noise_std=1.0)
    wrap = MeanProbabilityLogits(lin, n_draws=5)
    x = torch.rand(3, 1, 2, 2)
    lin.manual_seed(7)
    out = wrap(x)
    lin.manual_seed(7)
    probs = torch.stack([torch.softmax(lin(x), 1) for _ in range(5)]).mean(0)
    torch.testing.assert_close(out.exp(), probs)
    with pytest.raises(ValueError, match="n_draws"):
        MeanProbabilityLogits(lin, 0)


def test_predict_proba_draws_batch_invariant():
    X, y, w, b = make_linear_task(n=25, seed=6)
    model = LinearModel(w, b, noise_std=0.2)
    a = predict_proba_draws(model, X, n_draws=3, batch_size=1)
    c = predict_proba_draws(model, X, n_draws=3, batch_size=7)
    np.testing.assert_allclose(a, c, atol=1e-6)
    assert not np.allclose(a[0], a[1])  # draws differ


@pytest.mark.parametrize("kwargs, match", [
    ({"protocol": "strong"}, "protocol"),
    ({"norm": "L1"}, "norm"),
    ({"eps": -0.1}, "eps"),
    ({"n_restarts": 0}, "n_restarts"),
])
def test_invalid_settings(task, kwargs, match):
    X, y, w, b = task
    with pytest.raises(ValueError, match=match):
        run_attack(LinearModel(w, b), X[:5], y[:5], progress=False, **kwargs)


def test_l2_square_skipped_on_small_inputs():
    X, y, W, b = make_linear_task(n=10, side=4)
    cfg = resolve_attack_config(LinearModel(W, b), torch.from_numpy(X), norm="L2")
    assert cfg["attacks"] == ["apgd-ce"] and "Square skipped" in cfg["square_note"]


class SineMLP(nn.Module):
    """A very non-linear two-layer net on 8 x 8 inputs (a single APGD step is not enough)."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.l1, self.l2 = nn.Linear(64, 64), nn.Linear(64, 2)
        with torch.no_grad():
            self.l1.weight.copy_(2 * torch.randn(64, 64, generator=g))
            self.l1.bias.copy_(-self.l1.weight.sum(1) / 2)
            self.l2.weight.copy_(torch.randn(2, 64, generator=g))
            self.l2.bias.zero_()
        self.eval()

    def forward(self, x):
        return self.l2(torch.sin(self.l1(x.flatten(1))))


def test_plateau_flags_a_weak_attack(task):
    """One APGD iteration, one restart, one Square query: the figure is still falling."""
    from sknnmfdiff.evaluation import check_attack_plateau

    X = task[0]
    model = SineMLP()
    with torch.no_grad():
        y = model(torch.from_numpy(X)).argmax(1).numpy()
    weak = dict(n_iter=1, n_restarts=1, square_queries=1)
    x_adv, det = run_attack(model, X, y, eps=0.02, progress=False, return_details=True, **weak)
    acc = score(model, x_adv, y)["rules"]["mean_probability"]["accuracy"]
    res = check_attack_plateau(model, torch.from_numpy(X), torch.from_numpy(y), cfg=det["config"],
                               robust_accuracy=acc, factor=20)
    assert res.passed is False and res.value < acc - 1 / len(y)


def test_space_mismatch(task):
    X, y, w, b = task
    with pytest.raises(ValueError, match="space='feature'"):
        evaluate_robustness(LinearModel(w, b), X[:5], y[:5], space="feature", progress=False)


def test_invalid_inputs(task):
    X, y, w, b = task
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        run_attack(LinearModel(w, b), X[:5] * 2, y[:5], progress=False)
    with pytest.raises(ValueError, match="4-D"):
        run_attack(LinearModel(w, b), X[:5].reshape(5, -1), y[:5], progress=False)
    with pytest.raises(ValueError, match="classes"):
        run_attack(LinearModel(w, b), X[:5], np.full(5, 3), progress=False)


def test_report_json_is_strict_json_nan_becomes_null():
    from sknnmfdiff._jsonable import to_jsonable

    obj = {"auc": float("nan"), "x": [1.0, float("inf"), np.float32(2.0)], "n": np.int64(3)}
    out = to_jsonable(obj)
    assert out == {"auc": None, "x": [1.0, None, 2.0], "n": 3}
    import json

    json.dumps(out, allow_nan=False)  # raises ValueError if any NaN/inf survived


def test_summary_names_skipped_checks_and_warns_when_nothing_moved():
    from sknnmfdiff.evaluation import RobustnessReport

    tm = {"protocol": "paper", "norm": "Linf", "eps": 0.1, "space": "pixel"}
    m = {"mean_probability": {"accuracy": 0.7}}
    checks = [
        {"name": "perturbation_bounds", "passed": True, "value": 0.0},
        {"name": "attack_strength_plateau", "passed": None, "value": None},
    ]
    rep = RobustnessReport(threat_model=tm, clean=m, robust=m, checks=checks, timings={},
                           per_sample={})
    line = rep.summary()
    assert "skipped checks: ['attack_strength_plateau']" in line
    assert "changed no input" in line
    checks[0]["value"] = 0.1
    assert "changed no input" not in rep.summary()


# ------------------------------------------------ batched draws and shared work


class SeededDrawsModel(LinearModel):
    """A randomized linear model that scores all draws of a batch in one call."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seeded_calls = []

    def forward_seeded_draws(self, x, seeds):
        self.seeded_calls.append((int(x.shape[0]), len(seeds)))
        out = []
        for s in seeds:  # the reference semantics: rewind, one call per draw
            self.manual_seed(s)
            out.append(self(x))
        return torch.stack(out)


def test_predict_proba_draws_uses_forward_seeded_draws():
    X, y, w, b = make_linear_task(n=25, seed=6)
    plain = predict_proba_draws(LinearModel(w, b, noise_std=0.2), X, n_draws=6, batch_size=10)
    model = SeededDrawsModel(w, b, noise_std=0.2)
    batched = predict_proba_draws(model, X, n_draws=6, batch_size=10)
    assert model.seeded_calls == [(10, 6), (10, 6), (5, 6)]  # one call per batch, all draws
    np.testing.assert_allclose(batched, plain, rtol=0, atol=1e-12)


def test_eps_zero_grid_reuses_the_clean_scores():
    X, y, w, b = make_linear_task(n=30, seed=2)
    model = LinearModel(w, b, noise_std=0.1, seed=1)
    rep = evaluate_robustness(model, X, y, eps=0.03, protocol="adaptive", n_draws=16,
                              eps_grid=(0.0,), n_eot=4, square_n_eot=2, progress=False, **FAST)
    (zero,) = [g for g in rep.eps_grid if g["eps"] == 0.0]
    assert zero["identical_inputs"] is True and zero["clean_scores_reused"] is True
    clean = rep.clean["mean_probability"]
    assert zero["accuracy"] == clean["accuracy"] and zero["accuracy_ci"] == clean["accuracy_ci"]
    # Scoring the unchanged inputs afresh gives the same figure: the reuse is exact.
    again = score(model, X, y, n_draws=16)["rules"]["mean_probability"]
    assert again["accuracy"] == clean["accuracy"]


def test_transfer_attack_reused_for_an_identical_second_call(monkeypatch):
    from sknnmfdiff.evaluation import _attack_checks, check_transfer

    X, y, w, b = make_linear_task(n=20, seed=3)
    calls = []
    real = _attack_checks.run_attack
    monkeypatch.setattr(_attack_checks, "run_attack",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    monkeypatch.setattr(_attack_checks, "_TRANSFER_CACHE", type(_attack_checks._TRANSFER_CACHE)())
    kw = dict(robust_accuracy=0.1, eps=0.03, n_draws=8)
    defended, bare = LinearModel(w, b, noise_std=0.1), LinearModel(w, b)
    first = check_transfer(defended, bare, torch.from_numpy(X), torch.from_numpy(y), **kw)
    second = check_transfer(defended, bare, torch.from_numpy(X), torch.from_numpy(y), **kw)
    assert len(calls) == 1 and first == second
    # Another budget, other inputs or another bare model are attacked afresh.
    check_transfer(defended, bare, torch.from_numpy(X), torch.from_numpy(y), **{**kw, "eps": 0.05})
    other_bare = LinearModel(w, b + 0.5)
    check_transfer(defended, other_bare, torch.from_numpy(X), torch.from_numpy(y), **kw)
    assert len(calls) == 3


class ThreadRecordingModel(LinearModel):
    """Records torch's intra-op thread count in every forward call."""

    n_workers = 2

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.threads = []

    def forward(self, x):
        self.threads.append(torch.get_num_threads())
        return super().forward(x)


@pytest.mark.parametrize("n_workers", [2, None])
def test_small_attack_ops_run_on_one_thread_when_the_module_has_workers(n_workers):
    X, y, w, b = make_linear_task(n=20, seed=5)
    model = ThreadRecordingModel(w, b, noise_std=0.05)
    model.n_workers = n_workers
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        run_attack(model, X, y, eps=0.03, protocol="adaptive", n_eot=2, square_n_eot=2,
                   progress=False, **FAST)
        assert torch.get_num_threads() == 2  # restored
    finally:
        torch.set_num_threads(before)
    assert model.threads and set(model.threads) == ({1} if n_workers else {2})


@pytest.mark.parametrize("noise_std", [0.0, 0.1])
def test_eps_grid_above_the_main_eps_attacks_only_what_the_main_attack_left(monkeypatch, noise_std):
    """The grid shares work with the main attack: above the main eps only the samples
    it left correct are attacked again; below it, every sample."""
    from sknnmfdiff.evaluation import _sanity

    X, y, w, b = make_linear_task(n=40, seed=4)
    sizes = {}
    real = _sanity.run_attack
    monkeypatch.setattr(_sanity, "run_attack", lambda module, x, y, *, eps, **kw: (
        sizes.setdefault(eps, len(x)), real(module, x, y, eps=eps, **kw))[1])
    model = LinearModel(w, b, noise_std=noise_std, seed=1)
    rep = evaluate_robustness(model, X, y, eps=0.03, protocol="adaptive", n_draws=8,
                              eps_grid=(0.01, 0.06, 0.5), n_eot=4, square_n_eot=2,
                              progress=False, **FAST)
    n_robust = int(np.sum(rep.per_sample["robust_correct"]["mean_probability"]))
    assert 0 < n_robust < len(y)
    assert sizes == {0.01: len(y), 0.06: n_robust, 0.5: n_robust}
    grid = {g["eps"]: g for g in rep.eps_grid}
    main = rep.robust["mean_probability"]["accuracy"]
    for e in (0.06, 0.5):
        assert grid[e]["builds_on_main_attack"] is True and grid[e]["n_attacked"] == n_robust
        assert grid[e]["accuracy"] <= main
    assert "builds_on_main_attack" not in grid[0.01]
    assert rep.failed_checks == [], rep.checks


def test_eps_zero_grid_attack_is_short_and_still_checked(monkeypatch):
    """At eps = 0 no input can move: the grid runs a short attack there (1 restart, 10
    iterations, 10 Square queries), and the check still fails when the inputs change."""
    from sknnmfdiff.evaluation import _sanity

    X, y, w, b = make_linear_task(n=30, seed=5)
    seen = {}
    real = _sanity.run_attack
    monkeypatch.setattr(_sanity, "run_attack", lambda module, x, y, *, eps, **kw: (
        seen.setdefault(eps, kw), real(module, x, y, eps=eps, **kw))[1])
    rep = evaluate_robustness(LinearModel(w, b), X, y, eps=0.03, eps_grid=(0.0, 0.01),
                              n_restarts=3, n_iter=40, square_queries=200, progress=False)
    assert (seen[0.0]["n_restarts"], seen[0.0]["n_iter"], seen[0.0]["square_queries"]) == (1, 10, 10)
    assert (seen[0.01]["n_restarts"], seen[0.01]["n_iter"], seen[0.01]["square_queries"]) == (3, 40, 200)
    checks = {c["name"]: c for c in rep.checks}
    assert checks["eps_zero_equals_clean"]["passed"] is True
    # An attack that moves the inputs at eps = 0 is still caught.
    monkeypatch.setattr(_sanity, "run_attack", lambda module, x, y, *, eps, **kw: (
        torch.clamp(torch.as_tensor(x) + 0.2, 0, 1) if eps == 0 else real(module, x, y, eps=eps, **kw)))
    rep = evaluate_robustness(LinearModel(w, b), X, y, eps=0.03, eps_grid=(0.0,), progress=False,
                              **FAST)
    assert "eps_zero_equals_clean" in rep.failed_checks


def _borderline_task(n=40, side=8, seed=3, noise_std=1.0):
    """Samples of class 1 whose noisy linear model is barely right: w.x + b is a
    fraction of the noise's spread, so a few draws often misjudge the clean input,
    while eps = 0.1 moves every sample clearly across the boundary."""
    rng = np.random.default_rng(seed)
    d = side * side
    w = rng.normal(size=d).astype(np.float32)
    X = rng.uniform(0.3, 0.7, size=(n, d))
    s0 = 0.15 * noise_std * np.linalg.norm(w)  # margin: 0.15 noise standard deviations
    X = X + ((s0 - X @ w) / (w @ w))[:, None] * w[None, :]  # w.x = s0 exactly, b = 0
    assert X.min() >= 0 and X.max() <= 1
    return X.reshape(n, 1, side, side).astype(np.float32), np.ones(n, np.int64), w


def _kept_correct(noise_std, seed, n_eot=4):
    """Samples of the borderline task whose adversarial point the exact mean-probability
    decision (sign(w.x), symmetric noise) still classifies correctly."""
    X, y, w = _borderline_task(noise_std=noise_std)
    model = LinearModel(w, 0.0, noise_std=noise_std, seed=seed)
    x_adv, details = run_attack(model, X, y, eps=0.1, protocol="adaptive", n_eot=n_eot,
                                square_n_eot=2, n_iter=20, n_restarts=1, square_queries=50,
                                random_state=seed, progress=False, return_details=True)
    assert details["config"]["attack_pool"] == "all"
    assert exact_linf_robust(X, y, w, 0.0, 0.1) == 0.0  # every sample is breakable
    assert (X.reshape(len(X), -1) @ w > 0).all()  # and right when clean
    return int((x_adv.reshape(len(X), -1) @ w > 0).sum())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_randomized_samples_misjudged_at_clean_are_still_attacked(seed):
    """A randomized model's clean judgement is an estimate from a few draws. A
    correctly classified sample the judge calls wrong must still be attacked: kept at
    its clean input it would be scored correct by fresh draws, although a perturbation
    within eps breaks it (exact robust accuracy 0 here; before the fix, 40 of 40 kept
    for seed 0)."""
    assert _kept_correct(0.125, seed) == 0


def test_kept_point_and_candidate_are_compared_on_the_same_draws():
    """Under heavy noise (single draws nearly 0 or 1), two independent 4-draw losses
    often rank the clean input above the attack's far better point; compared on the
    same draws the attack's point wins (before: 160 of 320 kept over these seeds)."""
    assert sum(_kept_correct(1.0, seed) for seed in range(8)) <= 8


def test_confident_misclassification_needs_the_margin_beyond_its_interval():
    from sknnmfdiff.evaluation._wrappers import confidently_misclassified

    y = torch.tensor([0, 0, 0])
    # per-draw probabilities of class 0: mean 0.45 with a huge spread (5 draws),
    # mean 0.2 with a small one, and a single clearly wrong draw pattern
    p0 = torch.tensor([[0.0, 0.18, 0.1], [0.9, 0.22, 0.1], [0.95, 0.2, 0.1],
                       [0.0, 0.19, 0.1], [0.4, 0.21, 0.1]])
    p = torch.stack([p0, 1 - p0], dim=2)
    fooled = confidently_misclassified(p.log(), y)
    assert fooled.tolist() == [False, True, True]
    assert confidently_misclassified(p[:1].log(), y).tolist() == [True, True, True]


class _GlobalNoiseLinear(LinearModel):
    """The borderline task's noisy linear model drawing its noise from torch's global
    generator (no generator and no ``manual_seed`` of its own), as a user's module may."""

    manual_seed = None

    def forward(self, x):
        s = (x.flatten(1) + self.noise_std * torch.randn(x[0].numel())) @ self.W + self.b
        return torch.stack([-s / 2, s / 2], dim=1)


def test_same_draws_also_for_a_module_drawing_from_the_global_generator():
    """The kept point and the candidate are compared on the same draws also when the
    module has no generator of its own (before: 80 of 320 kept over these seeds)."""
    kept = 0
    for seed in range(8):
        X, y, w = _borderline_task(noise_std=1.0)
        x_adv = run_attack(_GlobalNoiseLinear(w, 0.0, noise_std=1.0), X, y, eps=0.1,
                           protocol="adaptive", n_eot=4, square_n_eot=2, n_iter=20, n_restarts=1,
                           square_queries=50, random_state=seed, progress=False)
        kept += int((x_adv.reshape(len(X), -1) @ w > 0).sum())
    assert kept <= 8


def test_one_eot_draw_on_a_randomized_model_warns(caplog):
    """With n_eot = 1 the confidence rule cannot apply: the config says so in a warning."""
    X, y, w = _borderline_task(n=4)
    model = LinearModel(w, 0.0, noise_std=1.0, seed=0)
    with caplog.at_level("WARNING", logger="sknnmfdiff.evaluation"):
        resolve_attack_config(model, torch.as_tensor(X), protocol="adaptive", n_eot=1)
    assert "n_eot=1 on a randomized model" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="sknnmfdiff.evaluation"):
        resolve_attack_config(model, torch.as_tensor(X), protocol="adaptive", n_eot=2)
    assert "n_eot=1" not in caplog.text
