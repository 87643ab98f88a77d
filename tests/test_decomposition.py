"""Tests of KLNMFTransformer (sknnmfdiff.decomposition)."""

import pickle
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy.optimize import nnls as scipy_nnls
from sklearn.decomposition import NMF
from sklearn.decomposition._nmf import _beta_divergence, _initialize_nmf
from sklearn.model_selection import GridSearchCV

from sknnmfdiff.nn import NNLSProjection
from sknnmfdiff.nn import nnls as nnls_t
from sknnmfdiff.decomposition import KLNMFTransformer, _kl_divergence


def _data(seed=0, n=50, f=120, r=6):
    """Non-negative low-rank-plus-noise data with exact zeros (like MRI background)."""
    rng = np.random.default_rng(seed)
    X = rng.random((n, r)) @ rng.random((r, f)) + 0.1 * rng.random((n, f))
    X[X < np.quantile(X, 0.25)] = 0.0
    return X


@pytest.fixture(scope="module")
def fitted():
    X = _data()
    return X, KLNMFTransformer(n_components=5, max_iter=60, random_state=0).fit(X)


@pytest.mark.parametrize("init", ["nndsvda", "nndsvdar", "random"])
def test_loss_matches_sklearn_at_equal_iterations(init):
    X = _data(1)
    n_iter = 40
    ours = KLNMFTransformer(5, init=init, max_iter=n_iter, tol=0, relaxation=1.0,
                            random_state=0).fit(X)
    W0, H0 = _initialize_nmf(X.astype(np.float32), 5, init=init, eps=1e-6, random_state=0)
    ref = NMF(5, init="custom", beta_loss="kullback-leibler", solver="mu",
              max_iter=n_iter, tol=0).fit(X, W=W0.astype(float), H=H0.astype(float))
    assert ours.n_iter_ == n_iter
    kl_ours, kl_ref = ours.loss_curve_[-1], ref.reconstruction_err_**2 / 2
    assert abs(kl_ours - kl_ref) <= 0.01 * kl_ref
    # the safeguarded over-relaxed default is at least as good at equal iterations
    fast = KLNMFTransformer(5, init=init, max_iter=n_iter, tol=0, random_state=0).fit(X)
    assert fast.loss_curve_[-1] <= 1.001 * kl_ref


def test_kl_divergence_definition_matches_sklearn():
    X = _data(2).astype(np.float32)
    rng = np.random.default_rng(0)
    W, H = rng.random((X.shape[0], 4)), rng.random((4, X.shape[1]))
    W[0] = 0.0  # WH = 0 where X > 0: clamped like sklearn
    ours = _kl_divergence(torch.tensor(X), torch.tensor(W, dtype=torch.float32),
                          torch.tensor(H, dtype=torch.float32))
    ref = _beta_divergence(X, W.astype(np.float32), H.astype(np.float32), 1)
    assert ours == pytest.approx(ref, rel=1e-5)


@pytest.mark.parametrize("relaxation", [1.0, 1.5, 2.0])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("init", ["nndsvda", "random"])
def test_loss_never_increases(dtype, init, relaxation):
    X = _data(3)
    m = KLNMFTransformer(4, init=init, max_iter=80, tol=0, eval_every=1, dtype=dtype,
                         relaxation=relaxation, random_state=0).fit(X)
    curve = m.loss_curve_
    assert curve.shape == (81,) and np.array_equal(m.loss_curve_iter_, np.arange(81))
    rtol = 1e-6 if dtype == "float32" else 1e-12  # float32 rounding of the sums only
    assert np.all(np.diff(curve) <= rtol * curve[:-1])
    assert curve[-1] < 0.8 * curve[0]


def test_fitted_attributes(fitted):
    X, m = fitted
    assert m.components_.dtype == np.float32 and m.components_.shape == (5, X.shape[1])
    assert (m.components_ >= 0).all() and (m.components_.max(axis=1) > 0).all()
    assert 1 <= m.n_iter_ <= 60 and m.n_features_in_ == X.shape[1]
    assert m.reconstruction_err_ == pytest.approx(np.sqrt(2 * m.loss_curve_[-1]))
    assert list(m.get_feature_names_out()) == [f"klnmftransformer{i}" for i in range(5)]


def test_tol_stops_early():
    X = _data(4)
    m = KLNMFTransformer(4, max_iter=2000, tol=1e-3, random_state=0).fit(X)
    assert m.n_iter_ < 2000 and m.n_iter_ % 10 == 0
    last = m.loss_curve_
    assert (last[-2] - last[-1]) <= 1e-3 * last[-2]


def test_transform_is_nnls_then_l2(fitted):
    X, m = fitted
    Z = m.transform(X)
    assert Z.dtype == np.float32 and Z.shape == (X.shape[0], 5)
    H = m.components_.astype(np.float64)
    for x, z in zip(X.astype(np.float32).astype(np.float64), Z):
        w = scipy_nnls(H.T, x)[0]
        ref = w / np.linalg.norm(w)
        assert np.linalg.norm(z - ref) <= 1e-5 * np.linalg.norm(ref)
    np.testing.assert_allclose(np.linalg.norm(Z, axis=1), 1.0, rtol=1e-6)


def test_projection_matches_scipy_unnormalised(fitted):
    X, m = fitted
    proj = NNLSProjection(m.components_, normalize=False)
    W = proj(torch.tensor(X, dtype=torch.float32)).numpy().astype(np.float64)
    H = m.components_.astype(np.float64)
    for x, w in zip(X.astype(np.float32).astype(np.float64), W):
        ref = scipy_nnls(H.T, x)[0]
        assert np.linalg.norm(w - ref) <= 1e-5 * np.linalg.norm(ref)


def test_fit_transform_equals_fit_then_transform():
    X = _data(5)
    a = KLNMFTransformer(4, max_iter=30, random_state=0).fit_transform(X)
    b = KLNMFTransformer(4, max_iter=30, random_state=0).fit(X).transform(X)
    np.testing.assert_array_equal(a, b)


def test_batch_independent_transform(fitted):
    X, m = fitted
    full = m.transform(X)
    singles = np.vstack([m.transform(X[i : i + 1]) for i in range(10)])
    np.testing.assert_allclose(singles, full[:10], rtol=1e-6, atol=1e-7)
    m2 = pickle.loads(pickle.dumps(m))
    m2.set_params(batch_size=7)
    np.testing.assert_allclose(m2.transform(X), full, rtol=1e-6, atol=1e-7)


def test_zero_sample_stays_zero(fitted):
    X, m = fitted
    X0 = X[:3].copy()
    X0[1] = 0
    Z = m.transform(X0)
    assert np.all(Z[1] == 0) and np.isfinite(Z).all()


def test_dtypes_cast_consistently(fitted):
    X, m = fitted
    Xi = np.round(X * 100).astype(np.int64)
    m32 = KLNMFTransformer(4, max_iter=20, random_state=0).fit(Xi.astype(np.float32))
    m64 = KLNMFTransformer(4, max_iter=20, random_state=0).fit(Xi)
    np.testing.assert_array_equal(m32.components_, m64.components_)
    assert m64.transform(Xi).dtype == np.float32
    np.testing.assert_array_equal(m64.transform(Xi), m32.transform(Xi.astype(np.float32)))


def test_float64_updates():
    X = _data(6)
    m = KLNMFTransformer(4, max_iter=30, dtype="float64", random_state=0).fit(X)
    assert m.components_.dtype == np.float32
    assert m.transform(X).dtype == np.float32


def test_random_state_none_runs_and_seeded_is_reproducible():
    X = _data(7)
    KLNMFTransformer(3, init="random", max_iter=5).fit(X)
    a = KLNMFTransformer(3, init="random", max_iter=5, random_state=3).fit(X).components_
    b = KLNMFTransformer(3, init="random", max_iter=5, random_state=3).fit(X).components_
    np.testing.assert_array_equal(a, b)


def test_input_errors(fitted):
    X, m = fitted
    with pytest.raises(ValueError, match="Negative values"):
        KLNMFTransformer(3).fit(-X)
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        KLNMFTransformer(3).fit(bad)
    bad[0, 0] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        m.transform(bad)
    with pytest.raises(ValueError, match="features"):
        m.transform(X[:, :10])
    with pytest.raises(TypeError, match="[Ss]parse"):
        KLNMFTransformer(3).fit(sp.csr_matrix(X))
    with pytest.raises(ValueError, match="device"):
        KLNMFTransformer(3, device="tpu-nonsense").fit(X)


def test_n_components_too_large_error():
    X = _data(8, n=10, f=30)
    with pytest.raises(ValueError, match=r"n_components=12 .*n_samples=10, n_features=30"):
        KLNMFTransformer(12, init="nndsvda").fit(X)
    KLNMFTransformer(12, init="random", max_iter=5, random_state=0).fit(X)  # allowed
    search = GridSearchCV(KLNMFTransformer(max_iter=5, init="nndsvda"), {"n_components": [9]},
                          cv=2, scoring=lambda est, X, y=None: 0.0, error_score="raise")
    with pytest.raises(ValueError, match="n_components=9"):
        search.fit(X[:15])


@pytest.mark.parametrize("shape, n_components, expected", [
    ((50, 120), 15, "nndsvda"),   # the paper's case: rank below both sizes
    ((10, 30), 10, "nndsvda"),    # equal to min(n_samples, n_features)
    ((10, 30), 12, "random"),     # more components than samples
    ((30, 3), 15, "random"),      # more components than features (over-complete)
])
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_init_none_resolves_like_sklearn_nmf(shape, n_components, expected):
    """init=None (the default) picks what sklearn's NMF picks, and then fits exactly as
    the explicit choice does."""
    X = _data(3, n=shape[0], f=shape[1])
    ours = KLNMFTransformer(n_components, max_iter=20, random_state=0).fit(X)
    assert ours.init_ == expected
    explicit = KLNMFTransformer(n_components, init=expected, max_iter=20, random_state=0).fit(X)
    np.testing.assert_array_equal(ours.components_, explicit.components_)
    # scikit-learn's own resolution (sklearn/decomposition/_nmf.py, _initialize_nmf)
    W_ref, H_ref = _initialize_nmf(X.astype(np.float32), n_components, init=None,
                                   random_state=0)
    W_exp, H_exp = _initialize_nmf(X.astype(np.float32), n_components, init=expected,
                                   random_state=0)
    np.testing.assert_array_equal(H_ref, H_exp)
    ref = NMF(n_components, beta_loss="kullback-leibler", solver="mu", max_iter=5,
              random_state=0).fit(X)
    assert ref.components_.shape == ours.components_.shape == (n_components, shape[1])


def test_more_components_than_features_projects_exactly():
    """n_components > n_features (sklearn's NMF allows it): the basis is over-complete,
    H H^T is singular, and transform still returns an exact NNLS code for every row
    (the residual of scipy's NNLS), with no warning."""
    X = _data(5, n=30, f=5)
    m = KLNMFTransformer(random_state=0).fit(X)  # the default rank 15 on 5 features
    assert m.init_ == "random" and m.components_.shape == (15, 5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Z = m.transform(X)
        W = nnls_t(torch.tensor(X, dtype=torch.float32), torch.from_numpy(m.components_))
    assert np.isfinite(Z).all() and (Z >= 0).all()
    H = m.components_.astype(np.float64)
    W = W.double().numpy()
    X32 = X.astype(np.float32).astype(np.float64)
    ours = np.linalg.norm(X32 - W @ H, axis=1)
    ref = np.array([scipy_nnls(H.T, x)[1] for x in X32])
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-6)  # W is float32


def test_set_output_pandas(fitted):
    pd = pytest.importorskip("pandas")
    X, m = fitted
    m2 = pickle.loads(pickle.dumps(m)).set_output(transform="pandas")
    out = m2.transform(X)
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == list(m.get_feature_names_out())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    X = _data(9)
    cpu = KLNMFTransformer(4, max_iter=30, random_state=0).fit(X)
    gpu = KLNMFTransformer(4, max_iter=30, random_state=0, device="cuda").fit(X)
    assert gpu.reconstruction_err_ == pytest.approx(cpu.reconstruction_err_, rel=1e-3)
    np.testing.assert_allclose(gpu.transform(X), cpu.transform(X), rtol=1e-3, atol=1e-4)


@pytest.mark.realdata
def test_real_mri_images(real_data_dir):
    from PIL import Image

    files = sorted((real_data_dir / "Training" / "notumor").glob("*.jpg"))[:24]
    files += sorted((real_data_dir / "Training" / "glioma").glob("*.jpg"))[:24]
    X = np.stack([
        np.asarray(Image.open(f).convert("L").resize((32, 32), Image.BILINEAR),
                   dtype=np.float32).ravel() / 255.0
        for f in files
    ])
    m = KLNMFTransformer(15, max_iter=50, tol=0, eval_every=5, random_state=0).fit(X)
    assert np.all(np.diff(m.loss_curve_) <= 1e-6 * m.loss_curve_[:-1])
    Z = m.transform(X)
    assert np.isfinite(Z).all() and (Z >= 0).all()


def test_fit_does_not_depend_on_the_alignment_of_the_input():
    """A buffer deserialised by Dask can start at any byte; the fit must not change
    (BLAS takes other code paths on unaligned float32 data)."""
    from sknnmfdiff import make_phantom_mri

    X = make_phantom_mri(240, image_size=32, random_state=0).data[:90]  # a case that differed
    buf = np.empty(X.nbytes + 160, dtype=np.uint8)
    start = (-buf.ctypes.data) % 64 + 63  # one byte short of a 64-byte boundary
    X_odd = np.frombuffer(buf[start:start + X.nbytes].data, dtype=np.float32).reshape(X.shape)
    X_odd[...] = X
    assert not X_odd.flags["ALIGNED"]
    a = KLNMFTransformer(n_components=6, max_iter=50, random_state=0).fit(X)
    b = KLNMFTransformer(n_components=6, max_iter=50, random_state=0).fit(X_odd)
    np.testing.assert_array_equal(a.components_, b.components_)
    np.testing.assert_array_equal(a.transform(X), b.transform(X_odd))


def test_wrong_image_size_names_the_sizes():
    """Images of another size than the fit's get sklearn's message plus the two sizes."""
    rng = np.random.default_rng(0)
    m = KLNMFTransformer(n_components=3, max_iter=5, random_state=0).fit(rng.random((20, 64)))
    with pytest.raises(ValueError, match=r"X has 16 features, but KLNMFTransformer is expecting "
                       r"64 features as input\. .*4 x 4 images.*8 x 8.*image_size=8"):
        m.transform(rng.random((3, 16)))
    with pytest.raises(ValueError, match=r"expecting 64 features as input\.$"):
        m.transform(rng.random((3, 15)))  # not square: no image hint
