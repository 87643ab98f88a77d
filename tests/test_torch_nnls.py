"""Tests of the batched exact NNLS (sknnmfdiff.nn._nnls)."""

import warnings

import numpy as np
import pytest
import torch
from scipy.optimize import nnls as scipy_nnls

from sknnmfdiff.nn._nnls import NNLSProjection, l2_normalize_rows, nnls, nnls_gram


def _problem(seed=0, n=40, r=6, f=80, shift=0.4):
    """Non-negative basis and data whose NNLS codes have a mix of zeros and positives."""
    rng = np.random.default_rng(seed)
    H = rng.random((r, f))
    X = np.clip(rng.random((n, r)) @ H * 0.3 + rng.random((n, f)) - shift, 0, None)
    X[3] = 0.0  # an all-zero sample
    return X, H


def _rel(a, b):
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_nnls_matches_scipy_per_sample(seed, dtype):
    X, H = _problem(seed)
    W = nnls(torch.tensor(X, dtype=dtype), torch.tensor(H, dtype=dtype)).double().numpy()
    npdt = np.float32 if dtype == torch.float32 else np.float64
    # the reference sees the same (possibly float32-rounded) inputs, solved in float64
    Hr, Xr = H.astype(npdt).astype(float), X.astype(npdt).astype(float)
    ref = np.stack([scipy_nnls(Hr.T, x)[0] for x in Xr])
    assert W.shape == (X.shape[0], H.shape[0])
    assert (W >= 0).all()
    active = (ref == 0).any() and (ref > 0).any()
    assert active, "test problem should exercise both active and passive entries"
    for w, w_ref in zip(W, ref):
        assert _rel(w, w_ref) <= 1e-5 or np.linalg.norm(w_ref) == np.linalg.norm(w) == 0


def test_nnls_kkt_conditions():
    X, H = _problem(5, n=100, r=12, f=60)
    G, B = torch.tensor(H @ H.T), torch.tensor(X @ H.T)
    w, P = nnls_gram(G, B)
    grad = (w @ G - B).numpy()  # gradient of w G w^T / 2 - w b
    scale = np.abs(B.numpy()).max(1, keepdims=True) + 1e-300
    assert (w.numpy() >= 0).all()
    assert np.all(np.abs(grad[P.numpy()]) <= 1e-9 * scale.repeat(12, 1)[P.numpy()])
    assert np.all(grad[~P.numpy()] >= -1e-9 * scale.repeat(12, 1)[~P.numpy()])
    assert torch.all(w[~P] == 0)


@pytest.mark.parametrize("r, f", [(15, 3), (15, 5), (8, 8)])
def test_nnls_singular_gram_is_exact(r, f):
    """More components than features (or dependent ones): H H^T is singular, block
    pivoting can cycle; every row still gets a KKT point with scipy's residual, and no
    warning."""
    rng = np.random.default_rng(r + f)
    H = rng.random((r, f))
    if r == f:
        H[-1] = H[0] + H[1]  # linearly dependent components
    X = rng.random((60, f))
    G, B = torch.tensor(H @ H.T), torch.tensor(X @ H.T)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        w, P = nnls_gram(G, B)
        W = nnls(torch.tensor(X), torch.tensor(H)).numpy()
    ref = np.array([scipy_nnls(H.T, x)[1] for x in X])
    for sol in (W, w.numpy()):  # the minimiser is not unique: compare residuals
        res = np.linalg.norm(X - sol @ H, axis=1)
        np.testing.assert_allclose(res, ref, rtol=1e-9, atol=1e-12)
    grad = (w @ G - B).numpy()
    scale = np.abs(B.numpy()).max(1, keepdims=True)
    assert (W >= 0).all() and (w >= 0).all() and torch.all(w[~P] == 0)
    assert np.all(grad >= -1e-9 * scale)


def test_nnls_batch_independent():
    X, H = _problem(3, n=30)
    Xt, Ht = torch.tensor(X), torch.tensor(H)
    full = nnls(Xt, Ht)
    perm = torch.randperm(30, generator=torch.Generator().manual_seed(0))
    shuffled = nnls(Xt[perm], Ht)
    single = torch.cat([nnls(Xt[i : i + 1], Ht) for i in range(30)])
    torch.testing.assert_close(shuffled, full[perm], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(single, full, rtol=1e-10, atol=1e-12)


def test_zero_sample_gives_zero_code_and_no_nan():
    X, H = _problem(0)
    proj = NNLSProjection(torch.tensor(H))
    Xt = torch.tensor(X, dtype=torch.float32, requires_grad=True)
    out = proj(Xt)
    assert out.dtype == torch.float32 and out.shape == (X.shape[0], H.shape[0])
    assert torch.all(out[3] == 0)
    norms = out.norm(dim=1)
    torch.testing.assert_close(norms[norms > 0], torch.ones_like(norms[norms > 0]))
    out.sum().backward()
    assert torch.isfinite(Xt.grad).all()


def test_l2_normalize_zero_row_grad_finite():
    W = torch.tensor([[0.0, 0.0], [3.0, 4.0]], requires_grad=True)
    Y = l2_normalize_rows(W)
    Y.sum().backward()
    assert torch.equal(Y[0], torch.zeros(2))
    torch.testing.assert_close(Y[1], torch.tensor([0.6, 0.8]))
    assert torch.isfinite(W.grad).all()


def _finite_diff_check(normalize):
    X, H = _problem(7, n=6, r=5, f=30)
    Ht = torch.tensor(H)
    Xt = torch.tensor(X, requires_grad=True)
    def f(x):
        w = nnls(x, Ht)
        if normalize:
            w = l2_normalize_rows(w)
        return (w * torch.linspace(1, 2, w.shape[1], dtype=w.dtype)).sum()

    f(Xt).backward()
    grad = Xt.grad.numpy()
    h = 1e-6
    rng = np.random.default_rng(0)
    for _ in range(25):
        i, j = rng.integers(X.shape[0]), rng.integers(X.shape[1])
        if not X[i].any():
            continue
        Xp, Xm = X.copy(), X.copy()
        Xp[i, j] += h
        Xm[i, j] -= h
        fd = (f(torch.tensor(Xp)) - f(torch.tensor(Xm))).item() / (2 * h)
        assert abs(fd - grad[i, j]) <= 1e-2 * max(abs(fd), 1e-6) + 1e-8


@pytest.mark.parametrize("normalize", [False, True])
def test_gradient_matches_finite_differences(normalize):
    _finite_diff_check(normalize)


def test_gradcheck_away_from_boundaries():
    X, H = _problem(11, n=5, r=4, f=20)
    X = X[[0, 1, 2, 4]]  # row 3 is all zero: a kink of the NNLS map, not differentiable
    Xt = torch.tensor(X, requires_grad=True)
    Ht = torch.tensor(H)
    G, B = torch.tensor(H @ H.T), torch.tensor(X @ H.T)
    w, P = nnls_gram(G, B)
    # away from active-set boundaries: positive entries and the duals of zero entries
    # are bounded away from 0, so finite differences do not cross a boundary
    dual = w @ G - B
    assert w[P].min() > 1e-3 and (not (~P).any() or dual[~P].min() > 1e-3)
    assert torch.autograd.gradcheck(lambda x: nnls(x, Ht), (Xt,), eps=1e-7, atol=1e-6, rtol=1e-4)
    assert torch.autograd.gradcheck(
        lambda x: l2_normalize_rows(nnls(x, Ht)), (Xt,), eps=1e-7, atol=1e-6, rtol=1e-4
    )


def test_projection_module_device_and_errors():
    _, H = _problem(0)
    proj = NNLSProjection(H)
    assert proj.components.dtype == torch.float32
    assert "n_components=6" in repr(proj)
    with pytest.raises(ValueError, match="features"):
        proj(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="2-D"):
        proj(torch.zeros(2, 1, 80))
    with pytest.raises(TypeError, match="floating"):
        nnls(torch.zeros(2, 80, dtype=torch.int64), proj.components)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_projection_cuda_matches_cpu():
    X, H = _problem(2)
    proj = NNLSProjection(H)
    cpu = proj(torch.tensor(X, dtype=torch.float32))
    gpu = proj.to("cuda")(torch.tensor(X, dtype=torch.float32, device="cuda"))
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-5, atol=1e-6)


def test_projection_keeps_its_gram_matrix_only_while_the_basis_is_unchanged():
    """The float64 basis and Gram matrix are kept between calls; an in-place change of
    ``components`` (as ``load_state_dict`` makes) is seen, and a pickled module does
    not carry the kept copy."""
    import pickle

    rng = np.random.default_rng(0)
    H = torch.as_tensor(rng.uniform(0, 1, size=(4, 30)), dtype=torch.float32)
    X = torch.as_tensor(rng.uniform(0, 1, size=(5, 30)), dtype=torch.float32)
    proj = NNLSProjection(H, normalize=False)
    first = proj(X)
    np.testing.assert_array_equal(first.numpy(), nnls(X, H).numpy())
    assert proj._gram_cache is not None
    H2 = torch.as_tensor(rng.uniform(0, 1, size=(4, 30)), dtype=torch.float32)
    proj.load_state_dict({"components": H2})
    np.testing.assert_array_equal(proj(X).numpy(), nnls(X, H2).numpy())
    with torch.no_grad():
        proj.components.mul_(2.0)
    np.testing.assert_allclose(proj(X).numpy(), nnls(X, 2 * H2).numpy(), rtol=1e-6)
    clone = pickle.loads(pickle.dumps(proj))
    assert clone._gram_cache is None
    np.testing.assert_array_equal(clone(X).numpy(), proj(X).numpy())


def test_projection_works_on_an_inference_tensor_basis():
    """A module built (or moved) under ``torch.inference_mode`` holds an inference tensor,
    which has no version counter: the kept Gram matrix must not need one."""
    rng = np.random.default_rng(1)
    H = torch.as_tensor(rng.uniform(0, 1, size=(4, 30)), dtype=torch.float32)
    X = torch.as_tensor(rng.uniform(0, 1, size=(5, 30)), dtype=torch.float32)
    with torch.inference_mode():
        proj = NNLSProjection(H, normalize=False)
        out = proj(X)
    np.testing.assert_array_equal(out.numpy(), nnls(X, H).numpy())


def test_projection_sees_a_new_basis_at_a_reused_address():
    """The kept Gram matrix is keyed on the buffer; a new buffer allocated where a freed
    one was (same address, same version 0) must not be taken for the old one."""
    rng = np.random.default_rng(2)
    H1 = rng.uniform(0, 1, size=(4, 30)).astype(np.float32)
    X = torch.as_tensor(rng.uniform(0, 1, size=(5, 30)), dtype=torch.float32)
    proj = NNLSProjection(H1, normalize=False)
    proj(X)
    old_ptr = proj.components.data_ptr()
    proj.components = torch.zeros(4, 30)  # the first buffer is freed (nothing else holds it)
    H3 = rng.uniform(0, 1, size=(4, 30)).astype(np.float32)
    for _ in range(50):  # a fresh tensor of the same size usually lands on the freed block
        cand = torch.from_numpy(H3).clone()
        if cand.data_ptr() == old_ptr:
            break
    else:
        cand = torch.from_numpy(H3).clone()
    proj.components = cand
    np.testing.assert_array_equal(proj(X).numpy(), nnls(X, torch.from_numpy(H3)).numpy())


def test_projection_cache_is_not_deep_copied():
    import copy

    rng = np.random.default_rng(3)
    H = torch.as_tensor(rng.uniform(0, 1, size=(4, 30)), dtype=torch.float32)
    X = torch.as_tensor(rng.uniform(0, 1, size=(5, 30)), dtype=torch.float32)
    proj = NNLSProjection(H, normalize=False)
    proj(X)
    clone = copy.deepcopy(proj)
    assert clone._gram_cache is None
    np.testing.assert_array_equal(clone(X).numpy(), proj(X).numpy())


def test_projection_called_under_inference_mode_then_differentiated():
    """A first call under ``torch.inference_mode`` (prediction) must not leave a kept
    Gram matrix that a later call with gradients (an attack) cannot save for backward."""
    rng = np.random.default_rng(4)
    H = torch.as_tensor(rng.uniform(0, 1, size=(4, 30)), dtype=torch.float32)
    X = torch.as_tensor(rng.uniform(0, 1, size=(5, 30)), dtype=torch.float32)
    proj = NNLSProjection(H, normalize=True)
    with torch.inference_mode():
        proj(X)
    Xg = X.clone().requires_grad_(True)
    proj(Xg).sum().backward()
    ref = X.clone().requires_grad_(True)
    NNLSProjection(H, normalize=True)(ref).sum().backward()
    np.testing.assert_array_equal(Xg.grad.numpy(), ref.grad.numpy())
