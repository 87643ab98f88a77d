"""SmoothedClassifier: randomized smoothing with the diffusion denoiser (CERTIFY, PREDICT).

The known answer: for a binary linear classifier ``f(z) = 1[w z + b > 0]`` under Gaussian
noise ``N(0, sigma^2 I)`` the probability of the class of ``z`` is exactly
``p_A = Phi(|w z + b| / (sigma ||w||))`` (the margin ``w eps`` is ``N(0, sigma^2 ||w||^2)``),
so the smoothed classifier equals ``f`` and its exact certified radius ``sigma Phi^-1(p_A)``
is the distance ``|w z + b| / ||w||`` to the hyperplane (Cohen et al., 2019, section 3).
"""

import math
import pickle

import numpy as np
import pytest
import torch
from scipy.stats import beta, binomtest, norm
from sklearn.base import clone
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_param_validation, parametrize_with_checks

from _smoothing_helpers import SMOOTHED_EXPECTED_FAILURES, LinearRule, _data
from sknnmfdiff import DiffusionPurifier, SkorchCNNClassifier, SmoothedClassifier
from sknnmfdiff.smoothing import (
    _ESTIMATE,
    _PREDICT,
    _SELECT,
    clopper_pearson_lower,
    smoothing_timestep,
)

FAST_PURIFIER = dict(n_steps=100, t=8, hidden=16, n_layers=2, emb_dim=8, max_epochs=3)


@pytest.fixture(scope="module")
def denoised():
    """A fitted SmoothedClassifier with a (tiny) diffusion denoiser and its data."""
    X, y = _data()
    X = np.abs(X)  # non-negative features, as in the pipeline
    smooth = SmoothedClassifier(
        DiffusionPurifier(**FAST_PURIFIER, random_state=0), LogisticRegression(), sigma=0.3,
        n0=20, n=64, random_state=0,
    ).fit(X, y)
    return smooth, X, y


# ----------------------------------------------------------------- the maths
@pytest.mark.parametrize("sigma", [0.01, 0.12, 0.25, 0.5, 3.0])
def test_smoothing_timestep_is_the_closest_noise_level(sigma):
    purifier = DiffusionPurifier(max_epochs=1).fit(np.random.default_rng(0).random((8, 3)))
    ab = purifier.alphas_cumprod_
    t, sigma_t = smoothing_timestep(ab, sigma)
    levels = np.sqrt((1 - ab) / ab)
    assert sigma_t == pytest.approx(levels[t - 1])
    assert np.all(np.abs(levels - sigma) >= abs(sigma_t - sigma) - 1e-15)
    assert 1 <= t <= ab.shape[0]


def test_smoothing_timestep_errors():
    ab = np.linspace(0.99, 0.5, 10)
    with pytest.raises(ValueError, match="exceeds the largest noise level"):
        smoothing_timestep(ab, 10.0)
    with pytest.raises(ValueError, match="sigma must be"):
        smoothing_timestep(ab, -0.1)
    with pytest.raises(ValueError, match="alphas_cumprod"):
        smoothing_timestep(np.array([1.5]), 0.1)


@pytest.mark.parametrize("alpha", [0.001, 0.01, 0.05])
@pytest.mark.parametrize("n", [1, 10, 100, 1000])
def test_clopper_pearson_matches_scipy(alpha, n):
    ks = np.unique(np.linspace(0, n, 7).astype(int))
    got = clopper_pearson_lower(ks, n, alpha)
    for k, g in zip(ks, got):
        want = binomtest(int(k), n).proportion_ci(confidence_level=1 - 2 * alpha, method="exact").low
        assert g == pytest.approx(want, rel=1e-9, abs=1e-12)
        assert g == pytest.approx(0.0 if k == 0 else beta.ppf(alpha, k, n - k + 1), abs=1e-12)
    assert isinstance(clopper_pearson_lower(3, 10, alpha), float)


def test_clopper_pearson_errors():
    with pytest.raises(ValueError, match="alpha"):
        clopper_pearson_lower(1, 10, 0.7)
    with pytest.raises(ValueError, match="0 <= k <= n"):
        clopper_pearson_lower(11, 10, 0.01)


# --------------------------------------------------------- known answer
def test_certify_linear_classifier_matches_closed_form():
    sigma, n, alpha = 0.5, 20_000, 0.001
    rule = LinearRule()
    X, y = _data(n=30)
    # One point exactly on the hyperplane: p_A = 1/2, so CERTIFY and PREDICT must abstain.
    X[0] = [0.3, 0.2, 0.0, 0.7]
    X[0, 2] = -rule.margin(X[:1])[0] / 0.5
    assert abs(rule.margin(X[:1])[0]) < 1e-6
    smooth = SmoothedClassifier(classifier=rule, sigma=sigma, n0=100, n=n, alpha=alpha,
                                train_on="clean", random_state=0).fit(X, y)
    labels, radius, n_a = smooth.certify(X, return_counts=True)
    margin = rule.margin(X)
    w_norm = np.linalg.norm(rule.w)
    p_true = norm.cdf(np.abs(margin) / (sigma * w_norm))
    distance = np.abs(margin) / w_norm  # the exact certified radius

    assert labels[0] == -1 and np.isnan(radius[0])
    assert smooth.predict(X[:1])[0] == -1
    certified = labels != -1
    assert certified.sum() >= 20
    # the class of z, and the estimate of p_A within Monte Carlo error
    assert np.all(labels[certified] == (margin[certified] > 0))
    se = np.sqrt(p_true * (1 - p_true) / n) + 1 / n
    assert np.all(np.abs(n_a[certified] / n - p_true[certified]) <= 5 * se[certified])
    # the radius: Clopper-Pearson lower bound through Phi^-1, below the exact radius
    p_lower = np.array([binomtest(int(k), n).proportion_ci(1 - 2 * alpha, "exact").low
                        for k in n_a[certified]])
    np.testing.assert_allclose(radius[certified], sigma * norm.ppf(p_lower), rtol=1e-9)
    assert np.all(radius[certified] <= distance[certified] + 1e-9)
    assert np.all(norm.cdf(radius[certified] / sigma) >= p_true[certified] - 8 * se[certified])
    # predict agrees with the sign of the margin wherever p_A is clearly above 1/2
    clear = p_true > 0.55
    assert np.all(smooth.predict(X)[clear] == (margin[clear] > 0))
    proba = smooth.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert np.all(np.abs(proba[np.arange(30), (margin > 0).astype(int)] - p_true) <= 5 * se)


def test_certify_matches_a_row_by_row_reference(denoised):
    """The batched computation equals CERTIFY written out per row and per draw."""
    smooth, X, _ = denoised
    labels, radius, n_a = smooth.certify(X[:4], return_counts=True)
    ab = smooth.purifier_.alphas_cumprod_[smooth.timestep_ - 1]
    eps_sel = smooth._noise(smooth.n0, _SELECT) * smooth.sigma
    eps_est = smooth._noise(smooth.n, _ESTIMATE) * smooth.sigma
    clf = smooth.classifier_

    def votes(z, eps):
        counts = np.zeros(2, dtype=int)
        for e in eps:
            x0 = smooth.purifier_.denoiser_(math.sqrt(ab) * (torch.from_numpy(z) + e)[None],
                                            smooth.timestep_)
            counts[clf.predict(x0.detach().numpy())[0]] += 1
        return counts

    for i in range(4):
        c_a = votes(X[i], eps_sel).argmax()
        k = votes(X[i], eps_est)[c_a]
        assert n_a[i] == k
        p_lower = clopper_pearson_lower(k, smooth.n, smooth.alpha)
        if p_lower < 0.5:
            assert labels[i] == -1 and np.isnan(radius[i])
        else:
            assert labels[i] == c_a
            assert radius[i] == pytest.approx(smooth.sigma * norm.ppf(p_lower))


def test_fit_picks_the_step_and_trains_on_denoised_noise(denoised):
    smooth, X, y = denoised
    t, sigma_t = smoothing_timestep(smooth.purifier_.alphas_cumprod_, 0.3)
    assert (smooth.timestep_, smooth.timestep_sigma_) == (t, sigma_t)
    clean = clone(smooth).set_params(train_on="clean").fit(X, y)
    assert not np.allclose(clean.classifier_.coef_, smooth.classifier_.coef_)
    more = clone(smooth).set_params(n_train_draws=3).fit(X, y)
    assert not np.allclose(more.classifier_.coef_, smooth.classifier_.coef_)


# ------------------------------------------------------ seeds and batches
def test_seeded_reproducible_and_seed_dependent(denoised):
    smooth, X, y = denoised
    first = smooth.certify(X, return_counts=True)
    again = smooth.certify(X, return_counts=True)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    refit = clone(smooth).fit(X, y).certify(X, return_counts=True)
    np.testing.assert_array_equal(refit[2], first[2])
    other = clone(smooth).set_params(random_state=1).fit(X, y).certify(X, return_counts=True)
    assert not np.array_equal(other[2], first[2])


def test_batch_size_and_subsets_do_not_change_results(denoised):
    smooth, X, _ = denoised
    ref = smooth.certify(X, return_counts=True)
    ref_proba = smooth.predict_proba(X)
    for batch_size in (1, 7, 250):
        other = clone(smooth).set_params(batch_size=batch_size)
        other.__dict__.update({k: v for k, v in smooth.__dict__.items() if k.endswith("_")})
        got = other.certify(X, return_counts=True)
        for a, b in zip(ref, got):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(other.predict_proba(X), ref_proba)
    part = smooth.certify(X[5:9], return_counts=True)
    for a, b in zip(ref, part):
        np.testing.assert_array_equal(a[5:9], b)


def test_random_state_none_draws_fresh_noise(denoised):
    smooth, X, _ = denoised
    fresh = clone(smooth).set_params(random_state=None)
    fresh.__dict__.update({k: v for k, v in smooth.__dict__.items() if k.endswith("_")})
    fresh.set_params(n=200)
    assert not np.array_equal(fresh.predict_proba(X), fresh.predict_proba(X))


# ------------------------------------------------------ abstention, labels
def test_abstain_label_and_dtypes():
    X, y = _data()
    names = np.where(y == 1, "tumor", "notumor")
    smooth = SmoothedClassifier(classifier=LinearRule(), sigma=5.0, n=50, random_state=0,
                                train_on="clean").fit(X, y)
    pred = smooth.predict(X)
    assert pred.dtype.kind == "i" and set(np.unique(pred)) <= {-1, 0, 1}
    assert (pred == -1).sum() > 0  # sigma = 5 on features of size 0.5: mostly abstain
    lr = LogisticRegression()
    strings = SmoothedClassifier(classifier=lr, sigma=5.0, n=50, abstain_label="abstain",
                                 random_state=0).fit(X, names)
    pred = strings.predict(X)
    assert pred.dtype.kind == "U" and set(pred) <= {"abstain", "notumor", "tumor"}
    assert "abstain" in set(pred)
    mixed = SmoothedClassifier(classifier=lr, sigma=5.0, n=50, random_state=0).fit(X, names)
    assert mixed.certify(X)[0].dtype == object
    with pytest.raises(ValueError, match="abstain_label=1 is one of the classes"):
        SmoothedClassifier(classifier=lr, abstain_label=1).fit(X, y)


# --------------------------------------------------------- scikit-learn
def test_pickle_round_trip(denoised):
    smooth, X, _ = denoised
    loaded = pickle.loads(pickle.dumps(smooth))
    for a, b in zip(smooth.certify(X), loaded.certify(X)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(smooth.predict(X), loaded.predict(X))


def test_grid_search_pipeline_and_clone():
    X, y = _data(n=90)
    smooth = SmoothedClassifier(classifier=LogisticRegression(), sigma=0.2, n0=10, n=50,
                                random_state=0)
    params = smooth.get_params()
    assert params["classifier__C"] == 1.0 and params["sigma"] == 0.2
    assert clone(smooth).get_params()["n"] == 50
    search = GridSearchCV(smooth, {"sigma": [0.1, 0.4], "classifier__C": [0.1, 10.0]}, cv=3)
    search.fit(X, y)
    assert search.best_params_["sigma"] in (0.1, 0.4)
    assert search.cv_results_["mean_test_score"].max() > 0.7
    pipe = Pipeline([("scale", StandardScaler()), ("smooth", smooth)]).fit(X, y)
    assert pipe.predict(X).shape == (90,)
    assert pipe.predict_proba(X).shape == (90, 2)


def test_frozen_parts_are_used_as_they_are(denoised):
    smooth, X, y = denoised
    frozen = SmoothedClassifier(FrozenEstimator(smooth.purifier_),
                                FrozenEstimator(smooth.classifier_), sigma=0.3, n0=20, n=64,
                                random_state=0).fit(X[:10], y[:10])
    np.testing.assert_array_equal(frozen.certify(X)[1], smooth.certify(X)[1])


def test_skorch_classifier_runs_its_torch_module_directly():
    X, y = _data(n=80)
    smooth = SmoothedClassifier(classifier=SkorchCNNClassifier(max_epochs=3, random_state=0),
                                sigma=0.2, n0=10, n=30, random_state=0).fit(X, y)
    classify = smooth._classify_fn(torch.device("cpu"))
    x = torch.from_numpy(X)
    np.testing.assert_array_equal(classify(x).numpy(),
                                  np.searchsorted(smooth.classes_, smooth.classifier_.predict(X)))
    labels, radius = smooth.certify(X[:5])
    assert labels.shape == (5,) and radius.dtype == np.float64


@parametrize_with_checks(
    [SmoothedClassifier(classifier=LogisticRegression(), sigma=0.05, n0=10, n=100,
                        random_state=0),
     SmoothedClassifier(DiffusionPurifier(**FAST_PURIFIER, random_state=0),
                        LogisticRegression(), sigma=0.05, n0=10, n=100, random_state=0)],
    expected_failed_checks=lambda est: SMOOTHED_EXPECTED_FAILURES,
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_param_validation():
    check_param_validation(
        "SmoothedClassifier", SmoothedClassifier(classifier=LogisticRegression(), n=20)
    )


# ----------------------------------------------------------- bad input
def test_bad_input_errors(denoised):
    smooth, X, y = denoised
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        clone(smooth).fit(bad, y)
    with pytest.raises(ValueError, match="features"):
        smooth.certify(X[:, :2])
    with pytest.raises(ValueError, match="sigma"):
        SmoothedClassifier(sigma=-1.0).fit(X, y)
    with pytest.raises(TypeError, match="denoiser_"):
        SmoothedClassifier(StandardScaler(), LogisticRegression()).fit(X, y)
    with pytest.raises(ValueError, match="largest noise level"):
        SmoothedClassifier(DiffusionPurifier(**FAST_PURIFIER), LogisticRegression(),
                           sigma=1e6).fit(X, y)
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        SmoothedClassifier().predict(X)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            SmoothedClassifier(classifier=LogisticRegression(), device="cuda").fit(X, y)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(denoised):
    smooth, X, _ = denoised
    cuda = clone(smooth).set_params(device="cuda")
    cuda.__dict__.update({k: v for k, v in smooth.__dict__.items() if k.endswith("_")})
    cpu_labels, cpu_radius, cpu_counts = smooth.certify(X, return_counts=True)
    labels, radius, counts = cuda.certify(X, return_counts=True)
    # same noise (drawn on the CPU); kernels may round differently: a vote or two at most
    assert np.abs(counts - cpu_counts).max() <= 2
    assert np.mean(labels == cpu_labels) >= 0.95


# ------------------------------------------- compiled for attacks, in pipelines
def test_compiled_smoothing_is_one_noisy_denoised_draw(denoised):
    """The module an attacker differentiates computes f(D(z + sigma eps)), with D the
    exact denoising step of PREDICT, one draw per call from its own seeded generator."""
    from sknnmfdiff.nn import FeaturePurifier

    X, y = _data(n=80)
    X = np.abs(X)
    smooth = SmoothedClassifier(DiffusionPurifier(**FAST_PURIFIER, random_state=0),
                                SkorchCNNClassifier(max_epochs=3, random_state=0), sigma=0.3,
                                n0=10, n=30, random_state=0).fit(X, y)
    noise = smooth.make_torch_purifier(seed=5)
    assert isinstance(noise, FeaturePurifier) and noise.n_eot == 1 and noise.randomized
    z = torch.from_numpy(X[:6])
    eps = torch.randn((1, 1, X.shape[1]), generator=torch.Generator().manual_seed(5))
    expected = smooth._denoise_fn(torch.device("cpu"))(z + 0.3 * eps[0])
    with torch.no_grad():
        np.testing.assert_allclose(noise(z).numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)
    pipe = Pipeline([("scale", "passthrough"), ("smooth", smooth)])
    from sknnmfdiff import to_torch_module

    module = to_torch_module(pipe, space="feature")
    assert module.randomized and [n for n in module.head_steps] == ["smooth_smooth", "smooth_clf"]
    module.manual_seed(5)
    with torch.no_grad():
        logits = module(z.reshape(6, 1, 1, -1))
        ref = smooth.classifier_.net_.module_(expected)
    np.testing.assert_allclose(logits.numpy(), ref.numpy(), rtol=1e-5, atol=1e-5)
    # The transfer proxy drops the noise and the denoiser: the bare classifier.
    with torch.no_grad():
        np.testing.assert_allclose(module.without_purifier()(z.reshape(6, 1, 1, -1)).numpy(),
                                   smooth.classifier_.net_.module_(z).numpy(), rtol=1e-5)


def test_plain_gaussian_smoothing_compiles_as_noise_only():
    X, y = _data(n=80)
    smooth = SmoothedClassifier(classifier=SkorchCNNClassifier(max_epochs=2, random_state=0),
                                sigma=0.4, n0=10, n=30, random_state=0).fit(X, y)
    noise = smooth.make_torch_purifier(seed=3)
    assert noise.smoothing_sigma == 0.4 and noise.smoothing_denoised is False
    from sknnmfdiff.evaluation._report import describe_model

    described = describe_model(smooth, torch.nn.Sequential(noise))
    assert described["smoothing"] == {"name": "0", "sigma": 0.4, "denoiser_t": None}
    assert described["purifier"] is None
    z = torch.from_numpy(X[:4])
    eps = torch.randn((1, 1, X.shape[1]), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        np.testing.assert_allclose(noise(z).numpy(), (z + 0.4 * eps[0]).numpy(), rtol=1e-6)


def test_smoothed_pipeline_is_evaluated_and_checked_against_its_certificate():
    """make_smoothed_pipeline fits on pixels, certifies its features, and the adaptive
    evaluation's adversarial features scored by PREDICT pass check_certified_bound."""
    from sknnmfdiff import evaluate_robustness, make_phantom_mri, make_smoothed_pipeline
    from sknnmfdiff.evaluation import check_certified_bound

    b = make_phantom_mri(160, image_size=16, random_state=0)
    pipe = make_smoothed_pipeline(n_components=4, k=3, sigma=0.1, n0=20, n=100,
                                  nmf__max_iter=30, smooth__purifier__max_epochs=3,
                                  smooth__classifier__max_epochs=5).fit(b.data[:120], b.target[:120])
    assert [n for n, _ in pipe.steps] == ["nmf", "select", "smooth"]
    X, y = b.data[120:], b.target[120:]
    rep, x_adv = evaluate_robustness(pipe, X, y, eps=0.05, space="feature", protocol="adaptive",
                                     n_restarts=1, n_iter=10, square_queries=20, n_draws=10,
                                     checks=False, progress=False, return_adversarial=True)
    assert x_adv.shape == (len(X), 1, 1, 3) and rep.threat_model["randomized"]
    # the report names the smoothing, not a purifier
    assert rep.model["purifier"] is None
    assert rep.model["smoothing"]["sigma"] == 0.1 and rep.model["smoothing"]["n"] == 100
    assert rep.model["smoothing"]["denoiser_t"] == pipe.named_steps["smooth"].timestep_
    assert "randomized smoothing sigma=0.1, denoiser at t=" in rep.summary()
    smooth = pipe.named_steps["smooth"]
    pred, radii = smooth.certify(pipe[:-1].transform(X))
    check = check_certified_bound(y, pred, radii, smooth.predict(x_adv.reshape(len(X), 3)), 0.05,
                                  n_features=3)
    assert check.passed is True
