"""The compiled torch module: parity with the pipeline, gradients, errors."""

import numpy as np
import pytest
import torch
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from sknnmfdiff import make_baseline_pipeline, make_paper_pipeline, to_torch_module

from _helpers import real_subset

FAST = dict(nmf__max_iter=60, clf__max_epochs=40)


@pytest.fixture(scope="module")
def fitted(real_data_dir):
    X, y = real_subset(str(real_data_dir), image_size=32, per_class=150)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
    base = make_baseline_pipeline(n_components=10, k=6, **FAST).fit(Xtr, ytr)
    deff = make_paper_pipeline(n_components=10, k=6, purify__max_epochs=40, **FAST).fit(Xtr, ytr)
    return Xte, yte, base, deff


def _images(X, side=32):
    return torch.as_tensor(X, dtype=torch.float32).reshape(-1, 1, side, side)


def test_baseline_parity(fitted):
    Xte, _, base, _ = fitted
    module = to_torch_module(base, device="cpu")
    assert not module.training and not module.randomized
    with torch.no_grad():
        proba = torch.softmax(module(_images(Xte)), dim=1).numpy()
    np.testing.assert_allclose(proba, base.predict_proba(Xte), atol=1e-5)


def test_defended_parity_same_seed(fitted):
    Xte, _, _, deff = fitted
    module = to_torch_module(deff, device="cpu")
    assert module.randomized
    with torch.no_grad():
        first = torch.softmax(module(_images(Xte)), dim=1).numpy()
        second = torch.softmax(module(_images(Xte)), dim=1).numpy()
    np.testing.assert_allclose(first, deff.predict_proba(Xte), atol=1e-5)
    # Fresh noise on each call ...
    assert not np.allclose(first, second)
    # ... and rewinding the generator reproduces the first call.
    module.reset()
    with torch.no_grad():
        again = torch.softmax(module(_images(Xte)), dim=1).numpy()
    np.testing.assert_array_equal(first, again)


@pytest.mark.parametrize("which", ["base", "deff"])
def test_batch_size_invariance(fitted, which):
    Xte, _, base, deff = fitted
    module = to_torch_module(base if which == "base" else deff, device="cpu")
    x = _images(np.concatenate([Xte] * 3)[:250])
    outs = []
    for bs in (1, 7, 250):
        parts = []
        for i in range(0, len(x), bs):
            module.manual_seed(123)
            with torch.no_grad():
                parts.append(module(x[i : i + bs]))
        outs.append(torch.cat(parts))
    # Same noise for every row whatever the batch; only float32 rounding of the
    # batched kernels differs (~1e-6).
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(outs[0], outs[2], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("which", ["base", "deff"])
def test_gradients_reach_pixels_and_match_finite_differences(fitted, which):
    Xte, _, base, deff = fitted
    module = to_torch_module(base if which == "base" else deff, device="cpu").double()
    x = _images(Xte[:4]).double().requires_grad_(True)
    module.manual_seed(0)
    out = module(x)
    loss = torch.nn.functional.cross_entropy(out, torch.tensor([0, 1, 0, 1]), reduction="sum")
    (grad,) = torch.autograd.grad(loss, x)
    assert torch.isfinite(grad).all()
    # Every image gets gradient, and on most pixels.
    nonzero = (grad.abs() > 0).double().mean(dim=(1, 2, 3))
    assert (nonzero > 0.5).all(), nonzero
    # Directional finite differences with the noise held fixed.
    rng = np.random.default_rng(0)
    for _ in range(3):
        d = torch.as_tensor(rng.standard_normal(x.shape))
        d = d / d.norm()
        h = 1e-4

        def f(z):
            module.manual_seed(0)
            with torch.no_grad():
                o = module(z)
            return torch.nn.functional.cross_entropy(
                o, torch.tensor([0, 1, 0, 1]), reduction="sum"
            ).item()

        fd = (f(x.detach() + h * d) - f(x.detach() - h * d)) / (2 * h)
        an = float((grad * d).sum())
        assert abs(fd - an) <= 1e-2 * max(abs(fd), abs(an), 1e-6), (fd, an)


def test_feature_space_module(fitted):
    Xte, _, _, deff = fitted
    pix = to_torch_module(deff, device="cpu")
    feat = to_torch_module(deff, device="cpu", space="feature")
    z = pix.features(_images(Xte))
    assert z.shape == (len(Xte), 1, 1, 6)
    assert float(z.min()) >= 0 and float(z.max()) <= 1
    pix.manual_seed(5)
    feat.manual_seed(5)
    with torch.no_grad():
        torch.testing.assert_close(pix(_images(Xte)), feat(z))


@pytest.mark.parametrize("architecture", ["mlp", "paper"])
def test_both_architectures_compile_with_parity_and_gradients(architecture):
    """Either classifier network compiles: softmax of the module's logits equals
    predict_proba, and the input gradient is the bare network's (phantom data)."""
    from sknnmfdiff import make_phantom_mri

    data = make_phantom_mri(120, image_size=16, random_state=0)
    X, y = data.data, data.target
    pipe = make_paper_pipeline(n_components=6, k=4, t=10, n_eot=2, nmf__max_iter=30,
                               purify__max_epochs=5, clf__architecture=architecture,
                               clf__max_epochs=5).fit(X[:90], y[:90])
    module = to_torch_module(pipe, device="cpu", space="feature")
    z = pipe[:2].transform(X[90:])
    with torch.no_grad():
        proba = torch.softmax(module(torch.as_tensor(z)), dim=1).numpy()
    np.testing.assert_allclose(proba, pipe.predict_proba(X[90:]), atol=1e-5)
    bare = to_torch_module(pipe, device="cpu", space="feature").without_purifier()
    x = torch.as_tensor(z).requires_grad_(True)
    (grad,) = torch.autograd.grad(bare(x)[:, 1].sum(), x)
    net = pipe.named_steps["clf"].net_.module_
    x2 = torch.as_tensor(z).requires_grad_(True)
    (expected,) = torch.autograd.grad(net(x2)[:, 1].sum(), x2)
    assert grad.abs().sum() > 0
    torch.testing.assert_close(grad, expected)


def test_uncompilable_step_names_the_step(fitted):
    Xte, yte, base, _ = fitted
    pipe = Pipeline([("scale", StandardScaler()), *base.steps])
    with pytest.raises(TypeError, match="'scale'"):
        to_torch_module(pipe)
    with pytest.raises(TypeError, match="Pipeline"):
        to_torch_module(base.named_steps["clf"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_module(fitted):  # pragma: no cover
    Xte, _, base, _ = fitted
    module = to_torch_module(base, device="cuda")
    with torch.no_grad():
        proba = torch.softmax(module(_images(Xte).cuda()), dim=1).cpu().numpy()
    np.testing.assert_allclose(proba, base.predict_proba(Xte), atol=1e-4)


def test_forward_draws_equals_repeated_calls(fitted):
    Xte, _, _, deff = fitted
    module = to_torch_module(deff, device="cpu")
    x = _images(Xte[:9])
    module.manual_seed(3)
    with torch.no_grad():
        stacked = module.forward_draws(x, 4)
    module.manual_seed(3)
    with torch.no_grad():
        calls = torch.stack([module(x) for _ in range(4)])
    assert stacked.shape == (4, 9, 2)
    torch.testing.assert_close(stacked, calls, rtol=1e-5, atol=1e-6)


def test_without_purifier_is_the_deterministic_baseline_head(fitted):
    Xte, _, _, deff = fitted
    module = to_torch_module(deff, device="cpu")
    bare = module.without_purifier()
    assert not bare.randomized and module.randomized
    x = _images(Xte[:5])
    with torch.no_grad():
        z = module.pixel_features(x)
        expected = deff.named_steps["clf"].net_.module_.eval()(z)
        torch.testing.assert_close(bare(x), expected)


def test_evaluation_reports_transfer_check(fitted):
    from sknnmfdiff import evaluate_robustness

    Xte, yte, _, deff = fitted
    rep = evaluate_robustness(deff, Xte[:12], yte[:12], eps=0.1, space="feature",
                              protocol="paper", n_restarts=1, n_iter=20, square_queries=20,
                              eps_grid=(), n_draws=8, progress=False)
    (check,) = [c for c in rep.checks if c["name"] == "whitebox_at_least_as_strong_as_transfer"]
    assert check["passed"] in (True, False) and 0.0 <= check["value"] <= 1.0
    assert check["details"]["proxy"] == "pipeline without purifier"


# ------------------------------------------------------------- batched EOT draws


def _count_calls(step):
    """A list that receives the batch size of every forward call of ``step``."""
    calls = []
    step.register_forward_hook(lambda m, inp, out: calls.append(int(inp[0].shape[0])))
    return calls


def _loop_seeded(module, x, seeds):
    """The reference: rewind, one call per draw."""
    out = []
    for s in seeds:
        module.manual_seed(s)
        out.append(module(x))
    return torch.stack(out)


@pytest.mark.parametrize("space", ["pixel", "feature"])
def test_seeded_draws_batched_equal_the_loop(fitted, space):
    Xte, _, _, deff = fitted
    module = to_torch_module(deff, device="cpu", space=space)
    x = _images(Xte[:11])
    if space == "feature":
        x = module.features(x)  # (N, 1, 1, k) features of the images
    seeds = [5, 17, 5, 2**31 - 1]
    with torch.no_grad():
        batched = module.forward_seeded_draws(x, seeds)
        loop = _loop_seeded(module, x, seeds)
        module.batch_draws = False
        reference = module.forward_seeded_draws(x, seeds)
    assert batched.shape == (4, 11, 2)
    torch.testing.assert_close(batched, loop, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(reference, loop, rtol=0, atol=0)
    torch.testing.assert_close(batched[0], batched[2])  # the same seed, the same draw
    with pytest.raises(ValueError, match="seeds"):
        module.forward_seeded_draws(x, [])


def test_forward_draws_leaves_the_generator_where_the_calls_would(fitted):
    Xte, _, _, deff = fitted
    module = to_torch_module(deff, device="cpu")
    x = _images(Xte[:6])
    module.manual_seed(9)
    with torch.no_grad():
        module.forward_draws(x, 5)
        after_batched = module(x)
        module.manual_seed(9)
        for _ in range(5):
            module(x)
        after_calls = module(x)
    torch.testing.assert_close(after_batched, after_calls)


def test_predict_proba_draws_batched_equals_loop_and_ignores_batch_size(fitted):
    from sknnmfdiff.evaluation import predict_proba_draws

    Xte, _, _, deff = fitted
    module = to_torch_module(deff, device="cpu")
    x = _images(Xte[:23])
    module.max_rows = 700  # several chunks of draws per pass
    cnn_calls = _count_calls(module.head_steps["clf"])
    runs = {}
    for bs in (1, 7, 250):
        cnn_calls.clear()
        runs[bs] = predict_proba_draws(module, x, n_draws=12, batch_size=bs, random_state=4)
    # batch 250: 23 rows * 8 EOT draws = 184 denoiser rows a draw, so 3 draws a pass
    assert cnn_calls == [3 * 23] * 4
    module.batch_draws = False
    loop = predict_proba_draws(module, x, n_draws=12, batch_size=7, random_state=4)
    assert loop.shape == (12, 23, 2)
    for bs, proba in runs.items():
        np.testing.assert_allclose(proba, loop, rtol=0, atol=1e-6, err_msg=f"batch_size={bs}")
    assert not np.allclose(loop[0], loop[1])  # the draws differ


@pytest.mark.parametrize("space", ["pixel", "feature"])
@pytest.mark.parametrize("n_workers, max_rows, n_passes", [
    (1, 131072, 3),  # 32 draws * 8 EOT draws * 40 rows in cache-sized passes of 12 draws
    (2, 131072, 3),  # the same passes over two worker threads (and the pixel front split)
    (2, 300, 32),  # one draw a pass, passes interleaved over two workers
])
def test_mean_probability_gradient_batched_equals_loop(fitted, space, n_workers, max_rows,
                                                       n_passes):
    from sknnmfdiff.evaluation import MeanProbabilityLogits

    Xte, yte, _, deff = fitted
    module = to_torch_module(deff, device="cpu", space=space)
    x = _images(Xte[:40])
    if space == "feature":
        x = module.features(x)
    y = torch.as_tensor(np.searchsorted(deff.classes_, yte[:40]))
    wrapper = MeanProbabilityLogits(module, n_draws=32)

    def value_and_grad():
        module.manual_seed(3)
        xg = x.clone().requires_grad_(True)
        out = wrapper(xg)
        (g,) = torch.autograd.grad(torch.nn.functional.cross_entropy(out, y), xg)
        return out.detach(), g

    module.n_workers, module.max_rows = n_workers, max_rows
    cnn_calls = _count_calls(module.head_steps["clf"])
    nmf_calls = _count_calls(module.feature_steps["nmf"])
    out, grad = value_and_grad()
    assert len(cnn_calls) == n_passes and sum(cnn_calls) == 32 * 40
    if space == "pixel":  # the front once, its rows split over the workers
        assert nmf_calls == ([40] if n_workers == 1 else [20, 20])
    module.batch_draws = False
    ref_out, ref_grad = value_and_grad()
    torch.testing.assert_close(out, ref_out, rtol=1e-5, atol=1e-6)
    scale = float(ref_grad.abs().max())
    assert scale > 0
    torch.testing.assert_close(grad, ref_grad, rtol=1e-4, atol=1e-5 * scale)
    assert torch.get_num_threads() == 1  # restored (the test session runs one thread)


def test_n_workers_validated_and_none_in_reference_mode(fitted):
    _, _, _, deff = fitted
    module = to_torch_module(deff, device="cpu")
    assert module.n_workers == torch.get_num_threads()
    module.batch_draws = False
    assert module.n_workers is None
    with pytest.raises(ValueError, match="n_workers"):
        module.n_workers = 0
