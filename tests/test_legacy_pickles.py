"""Models pickled with an older module layout still load and predict identically.

``tests/data/legacy_pipelines.pkl`` was written by ``tests/data/make_legacy_pickles.py``
before the package was reorganised into sub-packages (its pickles name the old
private modules ``sknnmfdiff._torch_cnn`` and ``sknnmfdiff._torch_diffusion``).
"""

import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

FIXTURE = Path(__file__).resolve().parent / "data" / "legacy_pipelines.pkl"


def _load():
    from sknnmfdiff import InconsistentVersionWarning

    with warnings.catch_warnings():
        # Only the installed versions of the dependencies may differ from the
        # fixture's; the layout must not make loading fail.
        warnings.simplefilter("ignore", InconsistentVersionWarning)
        with open(FIXTURE, "rb") as fh:
            return pickle.load(fh)


def test_fixture_names_the_old_module_layout():
    raw = FIXTURE.read_bytes()
    assert b"sknnmfdiff._torch_cnn" in raw
    assert b"sknnmfdiff._torch_diffusion" in raw


@pytest.mark.parametrize("name", ["baseline", "defended"])
def test_legacy_pickle_predicts_identically(name):
    fx = _load()
    pipe = fx[name]
    X = fx["X"]
    if name == "baseline":
        np.testing.assert_array_equal(pipe[:-1].transform(X), fx[f"{name}_features"])
        np.testing.assert_array_equal(pipe.predict_proba(X), fx[f"{name}_proba"])
    else:  # the denoiser's shared-time-step path: equal up to float32 rounding
        np.testing.assert_allclose(pipe[:-1].transform(X), fx[f"{name}_features"],
                                   rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(pipe.predict_proba(X), fx[f"{name}_proba"],
                                   rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(
        pipe.predict(X), pipe.classes_[fx[f"{name}_proba"].argmax(axis=1)]
    )


def test_legacy_classifier_keeps_the_paper_cnn():
    """A classifier pickled before ``architecture`` existed loads as the paper CNN, so
    get_params describes it and a clone refits the same network (not the new default)."""
    from sklearn.base import clone

    from sknnmfdiff.nn import CNN1d

    fx = _load()
    old = fx["baseline"][-1]
    assert b"architecture" not in FIXTURE.read_bytes()  # saved before the parameter
    assert old.get_params()["architecture"] == "paper"
    assert type(old.net_.module_) is CNN1d
    X = fx["baseline"][:-1].transform(fx["X"])
    y = fx["baseline"].classes_[np.arange(len(X)) % 2]
    refit = clone(old).fit(X, y)
    assert type(refit.net_.module_) is CNN1d
    shapes = {k: v.shape for k, v in old.net_.module_.state_dict().items()}
    assert {k: v.shape for k, v in refit.net_.module_.state_dict().items()} == shapes


def test_legacy_pickle_loads_in_a_fresh_process():
    """Unpickling alone (no sknnmfdiff import before it) must resolve the old paths."""
    code = (
        "import pickle, warnings, numpy as np\n"
        "warnings.simplefilter('ignore')\n"
        f"fx = pickle.load(open({str(FIXTURE)!r}, 'rb'))\n"
        "np.testing.assert_array_equal(fx['defended'].predict_proba(fx['X']), fx['defended_proba'])\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_legacy_pickle_compiles_to_torch():
    from sknnmfdiff import to_torch_module
    from sknnmfdiff.evaluation import predict_proba_draws

    fx = _load()
    module = to_torch_module(fx["baseline"])
    X = fx["X"].reshape(len(fx["X"]), 1, 24, 24)
    proba = predict_proba_draws(module, X, n_draws=1)[0]
    np.testing.assert_allclose(proba, fx["baseline_proba"], atol=1e-5)


@pytest.mark.parametrize("old, new", [
    ("sknnmfdiff._torch_nnls", "sknnmfdiff.nn._nnls"),
    ("sknnmfdiff._torch_diffusion", "sknnmfdiff.nn._diffusion"),
    ("sknnmfdiff._torch_cnn", "sknnmfdiff.nn._cnn"),
])
def test_old_module_paths_are_the_new_modules(old, new):
    """Every moved module is importable at its old path, as the same module object,
    without the new module's spec being rewritten (so reloading it still works)."""
    code = (
        "import importlib, sys\n"
        f"old = importlib.import_module({old!r}); new = importlib.import_module({new!r})\n"
        "assert old is new, (old, new)\n"
        f"assert new.__name__ == {new!r} and new.__spec__.name == {new!r}, new.__spec__\n"
        "names = [n for n in dir(new) if not n.startswith('__')]\n"
        "assert all(getattr(old, n) is getattr(new, n) for n in names)\n"
        "importlib.reload(new)\n"
        f"assert new.__name__ == {new!r}\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
