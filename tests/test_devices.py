"""Devices: a model fitted on a GPU still predicts on a machine without CUDA (on the
CPU, with a warning), the purifier's noise does not depend on the device, and
``benchmarks/gpu_check.py`` (its dry CPU run and its no-CUDA exit).

A model "fitted on a GPU" is simulated on the CPU by setting its ``device`` parameters
to ``"cuda"`` after fitting: that is what ``joblib.load`` of a GPU-fitted pipeline gives
on a CPU-only machine (skorch maps the net itself; every other fitted array is on the
CPU already).
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from sknnmfdiff import (DiffusionPurifier, SmoothedClassifier, make_baseline_pipeline,
                        make_paper_pipeline, make_phantom_mri, to_torch_module)
from sknnmfdiff.nn import FeaturePurifier, cpu_if_no_cuda

ROOT = Path(__file__).resolve().parents[1]
FAST = dict(nmf__max_iter=30, clf__max_epochs=10, purify__max_epochs=5)
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA present")


@pytest.fixture(scope="module")
def phantom():
    b = make_phantom_mri(120, image_size=24, random_state=0)
    return train_test_split(b.data, b.target, test_size=0.25, stratify=b.target, random_state=0)


def _set_cuda(pipe):
    return pipe.set_params(**{f"{name}__device": "cuda" for name, est in pipe.steps
                              if "device" in est.get_params()})


@no_cuda
@pytest.mark.parametrize("factory", [make_baseline_pipeline, make_paper_pipeline])
def test_gpu_fitted_pipeline_predicts_without_cuda(phantom, factory):
    Xtr, Xte, ytr, _ = phantom
    pipe = factory(n_components=5, k=3)
    pipe = pipe.set_params(**{k: v for k, v in FAST.items() if k.split("__")[0] in pipe.named_steps})
    pipe.fit(Xtr, ytr)
    expected = pipe.predict_proba(Xte)
    _set_cuda(pipe)
    with pytest.warns(UserWarning, match="CUDA is not available on this machine: it runs on the CPU"):
        proba = pipe.predict_proba(Xte)
    np.testing.assert_array_equal(proba, expected)
    # fitting on a missing GPU still raises
    with pytest.raises(ValueError, match="CUDA"):
        clone(pipe).fit(Xtr, ytr)


@no_cuda
def test_gpu_fitted_smoothed_classifier_predicts_without_cuda():
    rng = np.random.default_rng(0)
    X = np.abs(rng.normal(size=(60, 4))).astype(np.float32)
    y = (X[:, 0] > np.median(X[:, 0])).astype(int)
    smooth = SmoothedClassifier(
        DiffusionPurifier(n_steps=100, t=8, hidden=16, n_layers=2, emb_dim=8, max_epochs=2,
                          random_state=0),
        LogisticRegression(), sigma=0.3, n0=10, n=32, random_state=0).fit(X, y)
    expected = smooth.predict(X)
    smooth.set_params(device="cuda")
    with pytest.warns(UserWarning, match="SmoothedClassifier has device='cuda'"):
        np.testing.assert_array_equal(smooth.predict(X), expected)


def test_cpu_if_no_cuda_leaves_other_devices_alone():
    assert cpu_if_no_cuda("cpu", "X") == "cpu"
    assert cpu_if_no_cuda("auto", "X") == "auto"  # resolved by the estimator
    assert cpu_if_no_cuda("not a device", "X") == "not a device"  # rejected by the estimator
    if not torch.cuda.is_available():
        with pytest.warns(UserWarning, match="X has device='cuda:1'"):
            assert cpu_if_no_cuda("cuda:1", "X") == "cpu"


def _purifier(seed=3):
    den = torch.nn.Linear(4, 4)

    class Den(torch.nn.Module):  # (x_t, t) -> x0_hat
        def __init__(self):
            super().__init__()
            self.lin = den

        def forward(self, x, t):
            return self.lin(x)

    return FeaturePurifier(Den(), torch.linspace(0.99, 0.5, 50), t=10, n_eot=4).manual_seed(seed)


def test_purifier_noise_is_drawn_on_the_cpu_for_every_device():
    """The noise for any device comes from one CPU stream: drawing for another device
    (here the 'meta' device, which every torch build has) advances the same generator
    as drawing for the CPU, so a seed gives the same noise on a GPU as on the CPU."""
    p = _purifier()
    on_cpu = [p.draw_noise(4, device="cpu") for _ in range(3)]
    p.reset()
    first = p.draw_noise(4, device="cpu")
    other = p.draw_noise(4, device="meta")
    third = p.draw_noise(4, device="cpu")
    assert other.device.type == "meta" and other.shape == (4, 1, 4)
    assert p._generator.device.type == "cpu"
    torch.testing.assert_close(first, on_cpu[0], rtol=0, atol=0)
    torch.testing.assert_close(third, on_cpu[2], rtol=0, atol=0)


def test_compiled_module_draws_noise_on_the_cpu(phantom):
    Xtr, Xte, ytr, _ = phantom
    pipe = make_paper_pipeline(n_components=5, k=3).set_params(**FAST).fit(Xtr, ytr)
    module = to_torch_module(pipe, device="cpu")
    x = torch.as_tensor(Xte[:5]).reshape(-1, 1, 24, 24)
    module.manual_seed(1)
    with torch.no_grad():
        draws = module.forward_draws(x, 3)
    purifier = module.head_steps["purify"]
    assert purifier._generator.device.type == "cpu"
    module.manual_seed(1)
    with torch.no_grad():
        loop = torch.stack([module(x) for _ in range(3)])
    torch.testing.assert_close(draws, loop, rtol=1e-5, atol=1e-5)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_defended_module_on_cuda_matches_cpu_with_the_same_seed(phantom):  # pragma: no cover
    """The noise is drawn on the CPU for both devices: same seed, same outputs up to
    float rounding (TF32 off, so that both compute in float32)."""
    Xtr, Xte, ytr, _ = phantom
    pipe = make_paper_pipeline(n_components=5, k=3).set_params(**FAST).fit(Xtr, ytr)
    x = torch.as_tensor(Xte).reshape(-1, 1, 24, 24)
    old = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        out = {}
        for dev in ("cpu", "cuda"):
            module = to_torch_module(pipe, device=dev).manual_seed(5)
            with torch.no_grad():
                out[dev] = torch.softmax(module(x.to(dev)), dim=1).cpu()
    finally:
        torch.backends.cudnn.allow_tf32 = old
    torch.testing.assert_close(out["cuda"], out["cpu"], rtol=0, atol=1e-4)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_adversarial_examples_figure_with_a_cuda_module(phantom, tmp_path):  # pragma: no cover
    from sknnmfdiff.study import StudyConfig, _adversarial_examples

    Xtr, Xte, ytr, yte = phantom
    base = make_baseline_pipeline(n_components=5, k=3).set_params(
        nmf__max_iter=30, clf__max_epochs=10).fit(Xtr, ytr)
    cfg = StudyConfig(image_size=24, device="cuda", out=str(tmp_path))
    path = _adversarial_examples(cfg, base, Xte, yte, tmp_path)
    assert (tmp_path / path).is_file()


# ---- benchmarks/gpu_check.py -----------------------------------------------------------


def _gpu_check(*args, env_extra=None, timeout=600):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", **(env_extra or {}))
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), *args],
                          capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT)


def test_gpu_check_without_cuda_says_so_and_exits_0():
    out = _gpu_check(env_extra={"CUDA_VISIBLE_DEVICES": ""})
    assert out.returncode == 0, out.stderr[-2000:]
    assert "CUDA is not available" in out.stdout and "nothing to check" in out.stdout


def test_gpu_check_dry_run_on_cpu(tmp_path):
    """Every step of the check, on the CPU against itself, on tiny phantom data: the
    table lists every step and they pass (or the new format is 'not available')."""
    out = _gpu_check("--device", "cpu", "--tiny", "--out", str(tmp_path / "gpu.md"),
                     env_extra={"CUDA_VISIBLE_DEVICES": ""})
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    text = out.stdout
    for step in ("fit baseline", "fit defended", "paper protocol, baseline",
                 "adaptive protocol, defended", "parity baseline", "parity defended",
                 "load joblib without CUDA", "load new format without CUDA",
                 "time paper protocol"):
        assert step in text, step
    assert "FAIL" not in text
    assert (tmp_path / "gpu.md").read_text().startswith("# GPU check")
