"""ONNX export: the exportable NNLS, the graph run by onnxruntime against the torch
module, its noise modes, its metadata, its errors and the ``export`` subcommand.

The tests of :func:`sknnmfdiff.nn.nnls_gram_export` need torch only; the others skip
cleanly without ``onnx``, ``onnxscript`` or ``onnxruntime`` (the ``onnx`` extra).
"""

import copy
import json
import warnings

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import train_test_split

from sknnmfdiff import make_baseline_pipeline, make_paper_pipeline, make_phantom_mri
from sknnmfdiff.nn import nnls_gram_export, solve_spd_export
from sknnmfdiff.nn._nnls import nnls_gram

from _helpers import real_subset

FAST = dict(nmf__max_iter=40, clf__max_epochs=30, clf__early_stopping=False, purify__max_epochs=15)


def _problem(n=60, r=7, f=90, seed=0):
    g = torch.Generator().manual_seed(seed)
    H = torch.rand(r, f, generator=g, dtype=torch.float64)
    X = torch.rand(n, f, generator=g, dtype=torch.float64)
    X[:3] = 0.0  # all-zero rows: w = 0
    X[3:10] = X[3:10] * (torch.rand(7, f, generator=g, dtype=torch.float64) > 0.7)  # sparse
    return H @ H.T, X @ H.T


# ---- the exportable NNLS (torch only) --------------------------------------------------


def test_solve_spd_export_matches_linalg_solve():
    g = torch.Generator().manual_seed(1)
    M = torch.rand(5, 6, 6, generator=g, dtype=torch.float64)
    A = M @ M.transpose(1, 2) + 0.1 * torch.eye(6, dtype=torch.float64)
    b = torch.rand(5, 6, generator=g, dtype=torch.float64)
    expected = torch.linalg.solve(A, b.unsqueeze(2)).squeeze(2)
    torch.testing.assert_close(solve_spd_export(A, b), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nnls_gram_export_equals_nnls_gram(seed):
    G, B = _problem(seed=seed)
    w_ref, P_ref = nnls_gram(G, B)
    w, converged = nnls_gram_export(G, B)
    assert converged.all()
    assert (w >= 0).all() and (w[:3] == 0).all()
    torch.testing.assert_close(w, w_ref, rtol=0, atol=1e-12)
    assert torch.equal(w > 0, P_ref & (w_ref > 0))


def test_nnls_gram_export_cap_flags_rows_and_clips_its_last_iterate():
    """At the cap the graph flags the rows it has not solved and keeps their last
    iterate clipped at 0; the rows it flags as converged hold the exact minimiser."""
    G, B = _problem(r=12, seed=3)
    w, converged = nnls_gram_export(G, B, max_iter=1)
    assert not converged.all() and converged[:3].all()  # zero rows converge at once
    w_ref, _ = nnls_gram(G, B)
    torch.testing.assert_close(w[converged], w_ref[converged], rtol=0, atol=1e-10)
    assert not torch.allclose(w[~converged], w_ref[~converged])
    assert (w >= 0).all()


def test_nnls_gram_export_rejects_bad_arguments():
    G, B = _problem()
    with pytest.raises(ValueError, match="max_iter must be None or an integer >= 0"):
        nnls_gram_export(G, B, max_iter=-1)
    with pytest.raises(ValueError, match="G must be"):
        nnls_gram_export(G[:3], B)


# ---- export and onnxruntime ---------------------------------------------------------------


def _onnx():
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    ort = pytest.importorskip("onnxruntime")
    return onnx, ort


@pytest.fixture(scope="module")
def fitted():
    b = make_phantom_mri(240, image_size=32, random_state=0)
    Xtr, Xte, ytr, _ = train_test_split(b.data, b.target, test_size=0.3, stratify=b.target,
                                        random_state=0)
    base = make_baseline_pipeline(n_components=6, k=4).set_params(
        **{k: v for k, v in FAST.items() if not k.startswith("purify")}).fit(Xtr, ytr)
    deff = make_paper_pipeline(n_components=6, k=4, t=200).set_params(**FAST).fit(Xtr, ytr)
    return Xte, base, deff


@pytest.fixture(scope="module")
def exported(fitted, tmp_path_factory):
    _onnx()
    from sknnmfdiff.onnx_export import export_onnx

    _, base, deff = fitted
    root = tmp_path_factory.mktemp("onnx")
    return {
        "base": export_onnx(base, root / "base.onnx"),
        "fixed": export_onnx(deff, root / "fixed.onnx"),
        "input": export_onnx(deff, root / "input.onnx", noise="input"),
    }


def _session(path):
    _, ort = _onnx()
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("which", ["base", "fixed", "input"])
def test_onnxruntime_matches_the_torch_module(fitted, exported, which):
    from sknnmfdiff.onnx_export import check_onnx_export

    Xte, base, deff = fitted
    res = check_onnx_export(base if which == "base" else deff, exported[which], Xte, seed=5,
                            batch_size=25)
    assert res["n_images"] == len(Xte)
    assert res["max_abs_diff"] <= 1e-5
    assert res["same_predictions"] and res["n_disagreements"] == 0
    assert res["nnls_converged_fraction"] == 1.0
    assert res["noise"] == {"base": "none", "fixed": "fixed", "input": "input"}[which]
    if which == "input":
        assert res["max_abs_diff_predict_proba"] is None
    else:  # the graph reproduces the pipeline's own predict_proba
        assert res["max_abs_diff_predict_proba"] <= 1e-5


def test_graph_interface_and_dynamic_batch(fitted, exported):
    Xte, base, _ = fitted
    sess = _session(exported["base"])
    inputs = {i.name: i for i in sess.get_inputs()}
    assert list(inputs) == ["pixels"] and inputs["pixels"].type == "tensor(float)"
    assert inputs["pixels"].shape[1:] == [1, 32, 32] and not isinstance(inputs["pixels"].shape[0], int)
    assert [o.name for o in sess.get_outputs()] == ["probabilities", "nnls_converged"]
    x = Xte.reshape(-1, 1, 32, 32).astype(np.float32)
    expected = base.predict_proba(Xte)
    for n in (1, 7, len(x)):
        prob, conv = sess.run(None, {"pixels": x[:n]})
        assert prob.shape == (n, 2) and prob.dtype == np.float32 and conv.dtype == bool
        np.testing.assert_allclose(prob.sum(1), 1.0, atol=1e-6)
        np.testing.assert_allclose(prob, expected[:n], atol=1e-5)


def test_noise_input_is_used(fitted, exported):
    """The noise input changes the probabilities; the fixed graph has no such input and
    differs from the baseline (the purifier is in it)."""
    Xte, base, deff = fitted
    x = Xte.reshape(-1, 1, 32, 32).astype(np.float32)
    sess = _session(exported["input"])
    noise = {i.name: i for i in sess.get_inputs()}["noise"]
    assert noise.shape == [8, 1, 4]  # (n_eot, 1, k)
    rng = np.random.default_rng(0)
    p1 = sess.run(["probabilities"], {"pixels": x, "noise": rng.standard_normal((8, 1, 4)).astype(np.float32)})[0]
    p2 = sess.run(["probabilities"], {"pixels": x, "noise": rng.standard_normal((8, 1, 4)).astype(np.float32)})[0]
    assert np.abs(p1 - p2).max() > 1e-4
    fixed = _session(exported["fixed"])
    assert [i.name for i in fixed.get_inputs()] == ["pixels"]
    pf = fixed.run(["probabilities"], {"pixels": x})[0]
    assert np.abs(pf - base.predict_proba(Xte)).max() > 1e-4
    np.testing.assert_allclose(pf, deff.predict_proba(Xte), atol=1e-5)


def test_fixed_noise_seed_changes_the_graph(fitted, tmp_path):
    _onnx()
    from sknnmfdiff.onnx_export import check_onnx_export, export_onnx

    Xte, _, deff = fitted
    path = export_onnx(deff, tmp_path / "seed7.onnx", seed=7)
    res = check_onnx_export(deff, path, Xte)
    assert res["max_abs_diff"] <= 1e-5 and res["max_abs_diff_predict_proba"] is None
    p7 = _session(path).run(["probabilities"], {"pixels": Xte.reshape(-1, 1, 32, 32)})[0]
    assert np.abs(p7 - deff.predict_proba(Xte)).max() > 1e-4


def test_metadata(exported):
    onnx, _ = _onnx()
    meta = {p.key: p.value for p in onnx.load(str(exported["input"])).metadata_props}
    assert json.loads(meta["classes"]) == [0, 1]
    assert json.loads(meta["image_shape"]) == [32, 32]
    assert (meta["noise"], meta["n_eot"], meta["k"], meta["t"]) == ("input", "8", "4", "200")
    assert meta["antithetic"] == "true" and meta["nnls_max_iter"] == str(10 * 6 + 20)
    base = {p.key: p.value for p in onnx.load(str(exported["base"])).metadata_props}
    assert (base["noise"], base["t"], base["n_eot"]) == ("none", "0", "")


def test_nnls_cap_is_flagged_in_the_graph(fitted, tmp_path):
    _onnx()
    from sknnmfdiff.onnx_export import export_onnx

    Xte, base, _ = fitted
    big = clone(base).set_params(nmf__n_components=12, nmf__max_iter=40, select__k=4)
    big.fit(Xte, np.arange(len(Xte)) % 2)
    path = export_onnx(big, tmp_path / "cap.onnx", nnls_max_iter=1)
    _, conv = _session(path).run(None, {"pixels": Xte.reshape(-1, 1, 32, 32)})
    H = torch.as_tensor(big.named_steps["nmf"].components_, dtype=torch.float64)
    B = torch.as_tensor(Xte, dtype=torch.float64) @ H.T
    _, expected = nnls_gram_export(H @ H.T, B, max_iter=1)
    assert not expected.all()  # the cap bites on some rows ...
    np.testing.assert_array_equal(conv, expected.numpy())  # ... and the graph says which


def test_export_errors(fitted, tmp_path):
    _onnx()
    from sknnmfdiff.onnx_export import export_onnx

    _, base, deff = fitted
    with pytest.raises(ValueError, match="noise must be one of"):
        export_onnx(deff, tmp_path / "x.onnx", noise="random")
    with pytest.raises(ValueError, match="nnls_max_iter must be None or an integer >= 1"):
        export_onnx(base, tmp_path / "x.onnx", nnls_max_iter=0)
    with pytest.raises(ValueError, match="seed must be None or an integer >= 0"):
        export_onnx(deff, tmp_path / "x.onnx", seed=-1)
    with pytest.raises(ValueError, match="image shape"):
        export_onnx(base, tmp_path / "x.onnx", image_shape=(0, 5))
    dependent = copy.deepcopy(base)
    comps = dependent.named_steps["nmf"].components_
    comps[1] = comps[0]
    with pytest.raises(ValueError, match="linearly dependent"):
        export_onnx(dependent, tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


def test_check_rejects_images_of_another_size(fitted, exported):
    from sknnmfdiff.onnx_export import check_onnx_export

    Xte, base, _ = fitted
    with pytest.raises(ValueError, match="32 x 32"):
        check_onnx_export(base, exported["base"], Xte[:, :100])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        check_onnx_export(base, exported["base"], Xte * 2)


def test_missing_extra_is_a_clear_error(fitted, tmp_path, monkeypatch):
    import sys

    from sknnmfdiff.onnx_export import export_onnx

    monkeypatch.setitem(sys.modules, "onnxscript", None)
    with pytest.raises(ImportError, match=r"sknnmfdiff\[onnx\]"):
        export_onnx(fitted[1], tmp_path / "x.onnx")


def test_cli_export(fitted, tmp_path, capsys):
    _onnx()
    from PIL import Image

    from sknnmfdiff.cli import main

    Xte, base, deff = fitted
    model = tmp_path / "model.joblib"
    joblib.dump({"model": deff, "image_size": 32, "target_names": ["no tumour", "tumour"]}, model)
    data = tmp_path / "data"
    for i, (img, label) in enumerate(zip(Xte[:20].reshape(-1, 32, 32), [0, 1] * 10)):
        d = data / ("yes" if label else "no")
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray((img * 255).round().astype(np.uint8)).save(d / f"{i:02d}.png")
    out = tmp_path / "model.onnx"
    assert main(["export", str(model), "--onnx", str(out), "--check-data", str(data)]) == 0
    text = capsys.readouterr().out
    assert f"Wrote {out}" in text and "['no tumour', 'tumour']" in text
    assert "onnxruntime vs torch on 20 images" in text and "predictions identical" in text
    p = _session(out).run(["probabilities"], {"pixels": Xte[:5].reshape(-1, 1, 32, 32)})[0]
    np.testing.assert_allclose(p, deff.predict_proba(Xte[:5]), atol=1e-5)
    assert main(["export", str(model), "--onnx", str(tmp_path / "nope" / "m.onnx")]) == 2
    assert "existing folder" in capsys.readouterr().err


def test_cli_export_help(capsys):
    from sknnmfdiff.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["export", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "usage: sknnmfdiff export" in out and "--noise {fixed,input}" in out


def test_cli_export_without_the_extra_exit_2(tmp_path, capsys, monkeypatch):
    import sys

    from sknnmfdiff.cli import main

    monkeypatch.setitem(sys.modules, "onnx", None)
    assert main(["export", str(tmp_path / "m.joblib"), "--onnx", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'sknnmfdiff[onnx]'" in err[0]


@pytest.mark.realdata
def test_real_mri_parity(real_data_dir, tmp_path):
    """Real slices (32 x 32, rank 10): onnxruntime within 1e-4 of the torch module,
    identical predictions, for the baseline and the defended pipeline (fixed noise)."""
    _onnx()
    from sknnmfdiff.onnx_export import check_onnx_export, export_onnx

    X, y = real_subset(str(real_data_dir), image_size=32, per_class=100)
    Xtr, Xte, ytr, _ = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
    for pipe in (make_baseline_pipeline(n_components=10, k=6),
                 make_paper_pipeline(n_components=10, k=6)):
        pipe = pipe.set_params(**{k: v for k, v in FAST.items()
                                  if k.split("__")[0] in pipe.named_steps}).fit(Xtr, ytr)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no exporter chatter reaches the user
            path = export_onnx(pipe, tmp_path / "m.onnx")
        res = check_onnx_export(pipe, path, Xte)
        assert res["max_abs_diff"] <= 1e-4 and res["same_predictions"], res
        assert res["nnls_converged_fraction"] == 1.0
