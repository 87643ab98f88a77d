"""Tests of the diffusion purifier (sknnmfdiff.purification, sknnmfdiff.nn)."""

import math
import pickle

import numpy as np
import pytest
import torch
from sklearn.pipeline import make_pipeline

from sknnmfdiff.nn import (
    DenoiserMLP,
    FeaturePurifier,
    eot_noise,
    linear_beta_schedule,
    sinusoidal_embedding,
)
from sknnmfdiff.purification import DiffusionPurifier

FAST = dict(n_steps=100, t=8, hidden=16, n_layers=2, emb_dim=8, max_epochs=3, n_eot=2)


def _features(n=400, k=6, seed=0):
    """Non-negative, L2-normalised rows clustered around 3 prototypes (NMF-like)."""
    rng = np.random.default_rng(seed)
    protos = rng.random((3, k))
    X = protos[rng.integers(0, 3, n)] + 0.05 * rng.random((n, k))
    return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def fitted():
    """A purifier trained well enough to denoise, on 400 rows; 200 held out."""
    X = _features(600)
    pur = DiffusionPurifier(max_epochs=60, hidden=64, random_state=0).fit(X[:400])
    return pur, X[:400], X[400:]


# --------------------------------------------------------------------------- schedule


def test_linear_beta_schedule_values():
    betas, ab = linear_beta_schedule()
    assert betas.dtype == ab.dtype == torch.float64
    assert betas.shape == ab.shape == (1000,)
    assert betas[0].item() == pytest.approx(1e-4)
    assert betas[-1].item() == pytest.approx(0.02)
    # Hand computation of alpha_bar_41 = prod_{i=0}^{40} (1 - beta_i).
    hand = 1.0
    for i in range(41):
        hand *= 1.0 - (1e-4 + i * (0.02 - 1e-4) / 999)
    assert ab[40].item() == pytest.approx(hand, rel=1e-12)
    assert math.sqrt(1 - hand) == pytest.approx(0.1421, abs=1e-3)
    assert torch.all(torch.diff(ab) < 0)


@pytest.mark.parametrize(
    "kwargs, match",
    [({"n_steps": 0}, "n_steps"), ({"beta_start": 0.1, "beta_end": 0.01}, "beta_start")],
)
def test_linear_beta_schedule_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        linear_beta_schedule(**kwargs)


def test_sinusoidal_embedding():
    t = torch.tensor([0, 1, 41, 999])
    emb = sinusoidal_embedding(t, 32)
    assert emb.shape == (4, 32) and emb.dtype == torch.float32
    np.testing.assert_allclose(emb[0, :16], 0.0)  # sin(0)
    np.testing.assert_allclose(emb[0, 16:], 1.0)  # cos(0)
    freqs = np.exp(-np.log(10000.0) * np.arange(16) / 16)
    np.testing.assert_allclose(emb[2, :16], np.sin(41 * freqs), atol=1e-5)
    np.testing.assert_allclose(emb[2, 16:], np.cos(41 * freqs), atol=1e-5)
    assert sinusoidal_embedding(t, 7).shape == (4, 7)
    with pytest.raises(ValueError, match="1-D"):
        sinusoidal_embedding(torch.zeros(2, 2), 8)


# --------------------------------------------------------------------- torch modules


@pytest.mark.parametrize("precond", [True, False])
def test_denoiser_shapes_and_row_independence(precond):
    _, ab = linear_beta_schedule()
    kw = {"alphas_cumprod": ab, "data_mean": np.full(5, 0.3), "data_scale": 0.2} if precond else {}
    net = DenoiserMLP(5, hidden=16, n_layers=2, emb_dim=8, **kw)
    x = torch.rand(9, 5)
    out = net(x, torch.full((9,), 41))
    assert out.shape == (9, 5) and out.dtype == torch.float32
    torch.testing.assert_close(net(x[3:4], 41), out[3:4])


@pytest.mark.parametrize("precond", [False, True])
def test_shared_time_step_path_equals_the_per_row_path(precond):
    """One time step for all rows (an int) folds the embedding into the first layer's
    bias; values and input gradients equal the per-row path's."""
    _, ab = linear_beta_schedule()
    kw = {"alphas_cumprod": ab, "data_mean": np.full(5, 0.3), "data_scale": 0.2} if precond else {}
    torch.manual_seed(1)
    net = DenoiserMLP(5, hidden=16, n_layers=3, emb_dim=8, **kw)
    x = torch.rand(40, 5, requires_grad=True)
    per_row = net(x, torch.full((40,), 74))
    (g_row,) = torch.autograd.grad(per_row.square().sum(), x)
    shared = net(x, 74)
    (g_shared,) = torch.autograd.grad(shared.square().sum(), x)
    torch.testing.assert_close(shared, per_row, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(g_shared, g_row, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(net(x, torch.tensor(74)), shared)
    torch.testing.assert_close(net(x, torch.tensor([74])), shared)  # one step as a vector
    with pytest.raises(ValueError, match=r"one time step or one per row \(40\), got shape \(3,\)"):
        net(x, torch.full((3,), 74))


def _purifier(t=41, n_eot=8, seed=0):
    _, ab = linear_beta_schedule()
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = DenoiserMLP(6, hidden=16, n_layers=2, alphas_cumprod=ab,
                          data_mean=np.full(6, 0.4), data_scale=0.2)
    return FeaturePurifier(net, ab, t, n_eot).manual_seed(seed)


def test_feature_purifier_t0_is_identity():
    z = torch.rand(5, 6)
    assert _purifier(t=0)(z) is z


def test_feature_purifier_batch_invariance():
    """Each row's output depends only on the row and the seed, not on the batch."""
    z = torch.from_numpy(_features(250))
    full = _purifier()(z)
    ones = torch.cat([_purifier()(z[i : i + 1]) for i in (0, 100, 249)])
    torch.testing.assert_close(ones, full[[0, 100, 249]], rtol=1e-5, atol=1e-6)
    sevens = _purifier()(z[:7])
    torch.testing.assert_close(sevens, full[:7], rtol=1e-5, atol=1e-6)


def test_feature_purifier_fresh_noise_seeding_and_rng():
    z = torch.from_numpy(_features(20))
    state = torch.get_rng_state()
    pur = _purifier()
    a, b = pur(z), pur(z)
    assert not torch.allclose(a, b)  # fresh noise on every call
    pur.reset()
    torch.testing.assert_close(pur(z), a)  # rewound to the seed
    torch.testing.assert_close(_purifier(seed=0)(z), a)
    assert not torch.allclose(_purifier(seed=1)(z), a)
    assert torch.equal(torch.get_rng_state(), state)  # global RNG untouched


def test_feature_purifier_gradients_reach_input():
    z = torch.from_numpy(_features(4)).requires_grad_(True)
    _purifier()(z).sum().backward()
    assert z.grad is not None and torch.isfinite(z.grad).all()
    assert z.grad.abs().sum() > 0


def test_eot_noise_antithetic_pairs_and_independent_draws():
    g = torch.Generator().manual_seed(0)
    eps = eot_noise(8, 3, 5, generator=g)
    assert eps.shape == (8, 3, 5)
    torch.testing.assert_close(eps[4:], -eps[:4])  # pairs (eps, -eps)
    assert torch.equal(eps.sum(0), torch.zeros(3, 5))
    # Odd n_eot: 3 pairs and one unpaired draw, so the sum is that draw.
    odd = eot_noise(7, 2, 4, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(odd[4:], -odd[:3])
    torch.testing.assert_close(odd.sum(0), odd[3])
    # antithetic=False (and n_eot=1) are plain independent draws.
    iid = eot_noise(8, 3, 5, generator=torch.Generator().manual_seed(0), antithetic=False)
    assert torch.equal(iid, torch.randn((8, 3, 5), generator=torch.Generator().manual_seed(0)))
    one = eot_noise(1, 3, 5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(one, torch.randn((1, 3, 5), generator=torch.Generator().manual_seed(0)))
    # Every draw is standard normal.
    for bad in ((0, 3, 5), (8, 0, 5), (8, 3, 0), (2.0, 3, 5)):
        with pytest.raises(ValueError, match="must be an integer >= 1"):
            eot_noise(*bad, generator=torch.Generator())
    big = eot_noise(8, 4000, 5, generator=torch.Generator().manual_seed(2))
    assert abs(float(big.mean())) < 0.01
    assert abs(float(big[0].std()) - 1) < 0.02 and abs(float(big[7].std()) - 1) < 0.02


class _AffineDenoiser(torch.nn.Module):
    """``x0_hat = A x_t + b``: a denoiser whose output is linear in the noise."""

    def __init__(self, k, seed=0):
        super().__init__()
        self.lin = torch.nn.Linear(k, k)
        with torch.no_grad():
            w = torch.randn((k, k), generator=torch.Generator().manual_seed(seed))
            self.lin.weight.copy_(0.3 * w)

    def forward(self, x_t, t):
        return self.lin(x_t)


def test_antithetic_draws_cancel_noise_linear_in_eps():
    """With antithetic draws the EOT mean has no noise term linear in eps.

    For an affine denoiser the purified output is then the same for every seed (the
    noise cancels exactly); independent draws leave a random shift shared by the
    whole batch, which is what moved a call's clean accuracy by several points.
    """
    _, ab = linear_beta_schedule()
    den = _AffineDenoiser(6)
    z = torch.from_numpy(_features(30))
    outs = [FeaturePurifier(den, ab, 41, 8).manual_seed(s)(z) for s in (0, 1, 2)]
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=1e-5)
    torch.testing.assert_close(outs[0], outs[2], rtol=0, atol=1e-5)
    with torch.no_grad():
        exact = den(math.sqrt(float(ab[40])) * z, 41)
    torch.testing.assert_close(outs[0], exact, rtol=0, atol=1e-5)
    iid = [FeaturePurifier(den, ab, 41, 8, antithetic=False).manual_seed(s)(z) for s in (0, 1)]
    assert (iid[0] - iid[1]).abs().max() > 1e-2


def test_feature_purifier_errors():
    _, ab = linear_beta_schedule(n_steps=50)
    net = DenoiserMLP(3)
    with pytest.raises(ValueError, match="t must be"):
        FeaturePurifier(net, ab, 51, 4)
    with pytest.raises(ValueError, match="n_eot"):
        FeaturePurifier(net, ab, 5, 0)
    with pytest.raises(RuntimeError, match="manual_seed"):
        FeaturePurifier(net, ab, 5, 2).reset()


# ------------------------------------------------------------------------ estimator


def test_fitted_attributes(fitted):
    pur, _, _ = fitted
    assert pur.n_features_in_ == 6
    assert pur.alphas_cumprod_.dtype == pur.betas_.dtype == np.float64
    assert pur.alphas_cumprod_.shape == (1000,)
    assert not pur.denoiser_.training
    assert all(p.device.type == "cpu" for p in pur.denoiser_.parameters())
    assert pur.loss_curve_.shape == (60,) and pur.loss_curve_[-1] < pur.loss_curve_[0]


def test_denoiser_denoises_held_out(fitted):
    pur, _, X_test = fitted
    err = pur.denoising_error(X_test, [5, 20, 41, 100, 400], n_draws=4)
    assert err.t.tolist() == [5, 20, 41, 100, 400]
    assert np.all(err.denoised < err.noisy), err
    default = pur.denoising_error(X_test)
    assert 41 in default.t and default.t.min() == 1 and default.t.max() == 1000


def test_transform_deterministic_and_matches_torch_module(fitted):
    pur, _, X_test = fitted
    state = torch.get_rng_state()
    out = pur.transform(X_test)
    assert torch.equal(torch.get_rng_state(), state)
    assert out.dtype == np.float32 and out.shape == X_test.shape
    np.testing.assert_array_equal(pur.transform(X_test), out)
    # The rows of a smaller call are the same rows (shared noise).
    np.testing.assert_allclose(pur.transform(X_test[5:12]), out[5:12], rtol=1e-5, atol=1e-6)
    # The torch module computes transform on its first call.
    module = pur.make_torch_purifier()
    with torch.no_grad():
        np.testing.assert_allclose(module(torch.from_numpy(X_test)).numpy(), out, atol=1e-6)
    # Purification denoises: closer to the clean input than the noise level.
    assert np.mean(np.linalg.norm(out - X_test, axis=1)) < 0.142 * np.sqrt(6)


def test_transform_t0_identity_and_random_state_none(fitted):
    pur, _, X_test = fitted
    same = pur.transform(X_test)
    pur.set_params(t=0)
    try:
        np.testing.assert_array_equal(pur.transform(X_test), X_test)
        pur.set_params(t=41, random_state=None)
        assert not np.allclose(pur.transform(X_test), pur.transform(X_test))
        pur.set_params(t=1001)
        with pytest.raises(ValueError, match="t must be an integer in 0 .. 1000"):
            pur.transform(X_test)
    finally:
        pur.set_params(t=41, random_state=0)
    np.testing.assert_array_equal(pur.transform(X_test), same)


def test_fit_reproducible_and_caller_rng_untouched():
    X = _features(100)
    torch_state, np_state = torch.get_rng_state(), np.random.get_state()
    a = DiffusionPurifier(**FAST, random_state=3).fit(X)
    b = DiffusionPurifier(**FAST, random_state=3).fit(X)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], np_state[1])
    np.testing.assert_array_equal(a.loss_curve_, b.loss_curve_)
    np.testing.assert_array_equal(a.transform(X), b.transform(X))
    c = DiffusionPurifier(**FAST, random_state=4).fit(X)
    assert not np.array_equal(a.loss_curve_, c.loss_curve_)


def test_fit_transform_semantics():
    X = _features(80).astype(np.float64)
    clean = DiffusionPurifier(**FAST, train_on_purified=False, random_state=0)
    out = clean.fit_transform(X)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, X.astype(np.float32))
    assert not np.allclose(clean.transform(X), out)
    purified = DiffusionPurifier(**FAST, train_on_purified=True, random_state=0)
    train = purified.fit_transform(X)
    test = purified.transform(X)
    assert train.dtype == np.float32 and train.shape == X.shape
    # Independent noise per training row: not the shared draws of transform ...
    assert not np.allclose(train, test)
    # ... reproducible for a fixed seed, and each row independent of the others'.
    again = DiffusionPurifier(**FAST, train_on_purified=True, random_state=0).fit_transform(X)
    np.testing.assert_array_equal(train, again)
    # Two identical rows: same output under transform (shared noise), different
    # outputs in training (independent noise per row).
    X2 = np.vstack([X[:1], X[:1], X[1:]])
    fitted = DiffusionPurifier(**FAST, train_on_purified=True, random_state=0)
    tr2 = fitted.fit_transform(X2)
    te2 = fitted.transform(X2)
    np.testing.assert_array_equal(te2[0], te2[1])
    assert not np.allclose(tr2[0], tr2[1])


def test_antithetic_transform_varies_less_between_seeds(fitted):
    """The estimator's transform and fit_transform draw antithetic noise by default.

    On a trained denoiser the spread of the purified features between seeds falls
    well below that of independent draws (the linear part of the noise cancels).
    """
    pur, X_train, X_test = fitted

    def spread(antithetic, method):
        outs = []
        for seed in range(6):
            p = DiffusionPurifier(**{**pur.get_params(), "antithetic": antithetic,
                                     "random_state": seed})
            p.denoiser_, p.alphas_cumprod_, p.betas_ = pur.denoiser_, pur.alphas_cumprod_, pur.betas_
            p.n_features_in_ = pur.n_features_in_
            if method == "transform":
                outs.append(p.transform(X_test))
            else:  # fit_transform's training features, without refitting
                p.fit = lambda X, y=None, _p=p: _p
                outs.append(p.fit_transform(X_test))
        return np.stack(outs).std(axis=0).mean()

    for method in ("transform", "fit_transform"):
        anti, iid = spread(True, method), spread(False, method)
        assert anti < 0.5 * iid, (method, anti, iid)


def test_in_pipeline_with_classifier():
    from sklearn.linear_model import LogisticRegression

    X = _features(200)
    y = (X[:, 0] > np.median(X[:, 0])).astype(int)
    pipe = make_pipeline(DiffusionPurifier(**FAST, random_state=0), LogisticRegression())
    assert pipe.fit(X, y).predict(X).shape == (200,)


def test_pickle_round_trip(fitted):
    pur, _, X_test = fitted
    clone = pickle.loads(pickle.dumps(pur))
    np.testing.assert_array_equal(clone.transform(X_test), pur.transform(X_test))
    assert not clone.denoiser_.training


def test_pickle_from_before_antithetic_keeps_independent_draws(fitted):
    """A model pickled before the ``antithetic`` parameter existed loads with
    independent draws, the noise it was saved with, and transforms as before."""
    pur, _, X_test = fitted
    old = DiffusionPurifier(**{**pur.get_params(), "antithetic": False})
    for attr in ("denoiser_", "alphas_cumprod_", "betas_", "loss_curve_", "n_features_in_"):
        setattr(old, attr, getattr(pur, attr))
    expected = old.transform(X_test)
    del old.__dict__["antithetic"]
    loaded = pickle.loads(pickle.dumps(old))
    assert loaded.antithetic is False
    np.testing.assert_array_equal(loaded.transform(X_test), expected)
    # A current pickle keeps its own setting.
    assert pickle.loads(pickle.dumps(pur)).antithetic is True


@pytest.mark.parametrize(
    "params, match",
    [
        ({"t": 101}, "must not exceed the number of diffusion steps"),
        ({"beta_start": 0.05, "beta_end": 0.01}, "must not exceed beta_end"),
        ({"device": "nonsense"}, "not a torch device"),
    ],
)
def test_fit_errors(params, match):
    with pytest.raises(ValueError, match=match):
        DiffusionPurifier(**{**FAST, **params}).fit(_features(20))


def test_denoising_error_errors(fitted):
    pur, _, X_test = fitted
    with pytest.raises(ValueError, match="1 .. 1000"):
        pur.denoising_error(X_test, [0, 41])
    with pytest.raises(ValueError, match="n_draws"):
        pur.denoising_error(X_test, 41, n_draws=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fit_on_cuda_keeps_denoiser_on_cpu():
    X = _features(100)
    pur = DiffusionPurifier(**FAST, device="cuda", random_state=0).fit(X)
    assert all(p.device.type == "cpu" for p in pur.denoiser_.parameters())
    assert pur.transform(X).shape == X.shape


# ------------------------------------------------------------------ sklearn checks


# ------------------------------------------------------------------------ threads
def _record_threads(monkeypatch, fail_after=None):
    """Patch DenoiserMLP.forward to record torch's thread count (and to raise on call n)."""
    seen = []
    forward = DenoiserMLP.forward

    def spy(self, x_t, t):
        seen.append(torch.get_num_threads())
        if fail_after is not None and len(seen) > fail_after:
            raise RuntimeError("injected failure")
        return forward(self, x_t, t)

    monkeypatch.setattr(DenoiserMLP, "forward", spy)
    return seen


def test_one_thread_inside_fit_and_transform_restored_after(two_threads, monkeypatch):
    X = _features(100)
    seen = _record_threads(monkeypatch)
    pur = DiffusionPurifier(**FAST, random_state=0).fit(X)
    assert seen and set(seen) == {1}
    assert torch.get_num_threads() == two_threads
    for call in (pur.transform, pur.fit_transform, pur.denoising_error):
        seen.clear()
        call(X)
        assert seen and set(seen) == {1}, call.__name__
        assert torch.get_num_threads() == two_threads


@pytest.mark.parametrize("method", ["fit", "transform", "fit_transform"])
def test_thread_count_restored_after_an_exception(method, two_threads, monkeypatch):
    X = _features(100)
    pur = DiffusionPurifier(**FAST, random_state=0).fit(X)
    _record_threads(monkeypatch, fail_after=0 if method == "transform" else 2)
    with pytest.raises(RuntimeError, match="injected failure"):
        getattr(pur, method)(X)
    assert torch.get_num_threads() == two_threads


def test_fit_does_not_depend_on_the_callers_thread_count():
    X = _features(300)
    params = {**FAST, "hidden": 128, "max_epochs": 5, "random_state": 0}
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = DiffusionPurifier(**params).fit(X)
        torch.set_num_threads(2)
        two = DiffusionPurifier(**params).fit(X)
        two_out = two.transform(X), two.fit_transform(X)
    finally:
        torch.set_num_threads(before)
    np.testing.assert_array_equal(one.loss_curve_, two.loss_curve_)
    np.testing.assert_array_equal(one.transform(X), two_out[0])
    np.testing.assert_array_equal(one.fit_transform(X), two_out[1])


# ------------------------------------------------- FeaturePurifier: batched draws


def test_purify_draws_equals_one_call_per_draw():
    """One denoiser pass over n_draws * n_eot * N rows equals n_draws calls."""
    z = torch.from_numpy(_features(13))
    pur = _purifier(n_eot=4)
    eps = torch.stack([pur.draw_noise(6) for _ in range(5)])  # (5, 4, 1, 6)
    batched = pur.purify_draws(z, eps)
    assert batched.shape == (5, 13, 6)
    loop = torch.stack([pur.purify_with_noise(z, e) for e in eps])
    torch.testing.assert_close(batched, loop, rtol=1e-5, atol=1e-6)
    # The noise of draw d is what the d-th call of forward draws after seeding.
    pur.manual_seed(0)
    calls = torch.stack([pur(z) for _ in range(5)])
    torch.testing.assert_close(batched, calls, rtol=1e-5, atol=1e-6)
    # Per-draw features (n_draws, N, k) and per-row noise (R = N) work as well.
    zd = torch.rand(5, 13, 6)
    eps_rows = torch.randn(5, 4, 13, 6)
    loop = torch.stack([pur.purify_with_noise(zd[d], eps_rows[d]) for d in range(5)])
    torch.testing.assert_close(pur.purify_draws(zd, eps_rows), loop, rtol=1e-5, atol=1e-6)


def test_purify_draws_gradient_equals_the_loops():
    z = torch.from_numpy(_features(7))
    pur = _purifier(n_eot=4)
    eps = torch.stack([pur.draw_noise(6) for _ in range(3)])
    w = torch.randn(3, 7, 6)
    grads = []
    for batched in (True, False):
        zg = z.clone().requires_grad_(True)
        out = pur.purify_draws(zg, eps) if batched else torch.stack(
            [pur.purify_with_noise(zg, e) for e in eps])
        (g,) = torch.autograd.grad((out * w).sum(), zg)
        grads.append(g)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-5, atol=1e-6)


def test_purify_draws_t0_and_errors():
    z = torch.rand(4, 6)
    pur0 = _purifier(t=0, n_eot=2)
    out = pur0.purify_draws(z, torch.zeros(3, 2, 1, 6))
    assert out.shape == (3, 4, 6) and torch.equal(out[1], z)
    pur = _purifier(n_eot=2)
    with pytest.raises(ValueError, match="eps must have shape"):
        pur.purify_draws(z, torch.zeros(3, 4, 1, 6))  # n_eot mismatch
    with pytest.raises(ValueError, match="z must have shape"):
        pur.purify_draws(z[0], torch.zeros(3, 2, 1, 6))
