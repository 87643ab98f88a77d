"""Model files that cannot run code (sknnmfdiff.save / sknnmfdiff.load): round trips of
every pipeline the package makes, the state next to unpickling's, trust, tampering."""

import hashlib
import json
import pickle
import warnings
import zipfile

import numpy as np
import pytest
import safetensors.torch
import skops.io
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.pipeline import Pipeline

import sknnmfdiff
from sknnmfdiff import (
    DiffusionPurifier,
    InconsistentVersionWarning,
    KLNMFTransformer,
    ModelFileError,
    SkorchCNNClassifier,
    SmoothedClassifier,
    StatSelector,
    UntrustedTypeError,
    make_adversarial_pipeline,
    make_baseline_pipeline,
    make_paper_pipeline,
    make_phantom_mri,
    make_smoothed_pipeline,
)
from sknnmfdiff import model_file

TINY = dict(n_components=6, k=4, nmf__max_iter=30, clf__max_epochs=6)
TINY_PURIFIER = dict(n_steps=100, t=8, hidden=16, n_layers=2, emb_dim=8, max_epochs=4)


@pytest.fixture(scope="module")
def data():
    b = make_phantom_mri(120, image_size=16, random_state=0)
    return b.data, b.target


def _smoothed_pipeline():
    return Pipeline([
        ("nmf", KLNMFTransformer(n_components=6, max_iter=30, random_state=0)),
        ("select", StatSelector(k=4)),
        ("smooth", SmoothedClassifier(DiffusionPurifier(**TINY_PURIFIER, random_state=0),
                                      SkorchCNNClassifier(max_epochs=6, random_state=0),
                                      sigma=0.25, n0=10, n=40, random_state=0)),
    ])


FACTORIES = {
    "defended": lambda: make_paper_pipeline(**TINY, purify__max_epochs=4, purify__hidden=16),
    "baseline": lambda: make_baseline_pipeline(**TINY),
    "smoothed": _smoothed_pipeline,
    "smoothed-factory": lambda: make_smoothed_pipeline(
        n_components=6, k=4, n0=10, n=40, nmf__max_iter=30, smooth__purifier__max_epochs=4,
        smooth__purifier__hidden=16, smooth__classifier__max_epochs=6),
    "adversarial": lambda: make_adversarial_pipeline(
        n_components=6, k=4, method="pgd", eps=0.05, n_steps=2, nmf__max_iter=30,
        adv__purifier__max_epochs=4, adv__purifier__hidden=16, adv__classifier__max_epochs=3),
    "adversarial-pixel": lambda: make_adversarial_pipeline(
        n_components=6, k=4, method="trades", eps=0.02, n_steps=2, purify=False, space="pixel",
        adv__features__nmf__max_iter=30, adv__classifier__max_epochs=3),
}


@pytest.fixture(scope="module")
def fitted(data):
    X, y = data
    return {name: make().fit(X, y) for name, make in FACTORIES.items()}


@pytest.fixture
def saved(fitted, tmp_path):
    return model_file.save(fitted["defended"], tmp_path / "model.sknnmfdiff")


def _load_quiet(path, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # same versions: no warning at all
        return sknnmfdiff.load(path, **kw)


# ------------------------------------------------------------------ round trips
@pytest.mark.parametrize("name", list(FACTORIES))
def test_round_trip_predicts_identically(name, fitted, data, tmp_path):
    X, _ = data
    pipe = fitted[name]
    loaded = _load_quiet(sknnmfdiff.save(pipe, tmp_path / "m.sknnmfdiff"))
    assert loaded is not pipe
    np.testing.assert_array_equal(loaded.predict(X), pipe.predict(X))
    if name.startswith("smoothed"):
        for a, b in zip(loaded[-1].certify(loaded[:-1].transform(X)),
                        pipe[-1].certify(pipe[:-1].transform(X))):
            np.testing.assert_array_equal(a, b)
    else:  # exactly, the defended one too: the same seed draws the same noise
        np.testing.assert_array_equal(loaded.predict_proba(X), pipe.predict_proba(X))


def test_unfitted_pipeline_and_cli_blob_round_trip(fitted, tmp_path):
    pipe = make_paper_pipeline(k=7, purify__t=12)
    loaded = _load_quiet(sknnmfdiff.save(pipe, tmp_path / "u.sknnmfdiff"))
    assert repr(loaded) == repr(pipe) and loaded.get_params()["purify__t"] == 12
    blob = {"model": fitted["baseline"], "image_size": 16, "target_names": ["a", "b"]}
    back = _load_quiet(sknnmfdiff.save(blob, tmp_path / "b.sknnmfdiff"))
    assert back["image_size"] == 16 and back["target_names"] == ["a", "b"]
    assert type(back["model"]) is Pipeline


def _same_state(a, b, where):
    """The state loaded from a model file equals the state unpickling gives."""
    from skorch import NeuralNet

    if isinstance(a, float | np.floating) and isinstance(b, float | np.floating):
        assert a == b or (np.isnan(a) and np.isnan(b)), where  # JSON gives Python floats
        return
    assert type(a) is type(b), where
    if isinstance(a, torch.nn.Module):
        sa, sb = a.state_dict(), b.state_dict()
        assert list(sa) == list(sb), where
        for k in sa:
            assert torch.equal(sa[k], sb[k]) and sa[k].dtype == sb[k].dtype, f"{where}.{k}"
        assert a.training == b.training, where
        assert {k: v for k, v in vars(a).items() if not k.startswith("_")} == {
            k: v for k, v in vars(b).items() if not k.startswith("_")}, where
    elif isinstance(a, NeuralNet):
        _same_state(a.module_, b.module_, f"{where}.module_")
        assert list(a.history_) == list(b.history_), where
        pa, pb = a.get_params(deep=False), b.get_params(deep=False)
        plain = [k for k, v in pa.items() if isinstance(v, bool | int | float | str)]
        assert {k: pa[k] for k in plain} == {k: pb[k] for k in plain}, where
        assert a.device == b.device and a.initialized_ and b.initialized_, where
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype, where
        np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for k in a:
            _same_state(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (u, v) in enumerate(zip(a, b)):
            _same_state(u, v, f"{where}[{i}]")
    elif isinstance(a, BaseEstimator):
        assert sorted(vars(a)) == sorted(vars(b)), where
        for k in vars(a):
            _same_state(vars(a)[k], vars(b)[k], f"{where}.{k}")
    else:
        assert a == b, where


@pytest.mark.parametrize("name", list(FACTORIES))
def test_loaded_state_equals_unpickled_state(name, fitted, tmp_path):
    pipe = fitted[name]
    _same_state(_load_quiet(sknnmfdiff.save(pipe, tmp_path / "m.sknnmfdiff")),
                pickle.loads(pickle.dumps(pipe)), name)


def test_loaded_model_compiles_to_the_same_torch_module(fitted, data, saved):
    X, _ = data
    x = torch.as_tensor(X[:12]).reshape(-1, 1, 16, 16)
    a, b = (sknnmfdiff.to_torch_module(p) for p in (fitted["defended"], _load_quiet(saved)))
    with torch.no_grad():
        torch.testing.assert_close(a.manual_seed(3)(x), b.manual_seed(3)(x), rtol=0, atol=0)


def test_load_leaves_the_global_torch_rng_alone(saved):
    before = torch.random.get_rng_state()
    _load_quiet(saved)
    assert torch.equal(before, torch.random.get_rng_state())


def test_save_does_not_change_the_model(fitted, data, tmp_path):
    X, _ = data
    pipe = fitted["defended"]
    before = pipe.predict_proba(X)
    sknnmfdiff.save(pipe, tmp_path / "m.sknnmfdiff")
    assert hasattr(pipe[-1], "net_") and hasattr(pipe[-2], "denoiser_")
    np.testing.assert_array_equal(pipe.predict_proba(X), before)


def test_file_holds_what_the_docs_say(saved):
    with zipfile.ZipFile(saved) as zf:
        assert sorted(zf.namelist()) == ["manifest.json", "objects.skops", "weights.safetensors"]
        manifest = json.loads(zf.read("manifest.json"))
        tensors = safetensors.torch.load(zf.read("weights.safetensors"))
    assert set(manifest["versions"]) == {"sknnmfdiff", "sklearn", "skorch", "torch", "numpy",
                                         "skops", "safetensors"}
    assert [(r["path"], r["handler"]) for r in manifest["torch_state"]] == [
        (["steps", 2, 1], "denoiser"), (["steps", 3, 1], "skorch_net")]
    assert "0/head.weight" in tensors and "1/head.1.weight" in tensors


# ------------------------------------------------------------------------ trust
class _Scale(TransformerMixin, BaseEstimator):
    """A transformer that sknnmfdiff does not know."""

    def fit(self, X, y=None):
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def transform(self, X):
        return np.asarray(X) * 1.0


def test_unknown_type_is_refused_with_how_to_trust_it(fitted, data, tmp_path):
    X, y = data
    pipe = Pipeline([("scale", _Scale()), *make_baseline_pipeline(**TINY).steps]).fit(X, y)
    path = sknnmfdiff.save(pipe, tmp_path / "m.sknnmfdiff")
    name = f"{__name__}._Scale"
    with pytest.raises(UntrustedTypeError, match=rf"'{name}'.*trusted=\['{name}'\]") as err:
        sknnmfdiff.load(path)
    assert err.value.types == [name] and len(str(err.value).splitlines()) == 1
    for trusted in ([name], [_Scale]):
        np.testing.assert_array_equal(
            _load_quiet(path, trusted=trusted).predict_proba(X), pipe.predict_proba(X))
    with pytest.raises(TypeError, match="trusted must be a list"):
        sknnmfdiff.load(path, trusted=name)


def test_a_new_estimator_type_is_one_registry_entry(data, tmp_path, monkeypatch):
    """A final step wrapping a skorch net as SkorchCNNClassifier does (a subclass, as
    sknnmfdiff.adversarial's classifier is) needs only its module's entry."""
    X, y = data
    pipe = Pipeline([*make_baseline_pipeline(**TINY).steps[:-1],
                     ("clf", _WrappedCNN(max_epochs=6, random_state=0))]).fit(X, y)
    path = sknnmfdiff.save(pipe, tmp_path / "m.sknnmfdiff")
    with pytest.raises(UntrustedTypeError, match="_WrappedCNN"):
        sknnmfdiff.load(path)
    monkeypatch.setitem(model_file.KNOWN_TYPES, __name__, ("_WrappedCNN",))
    np.testing.assert_array_equal(_load_quiet(path).predict_proba(X), pipe.predict_proba(X))


class _WrappedCNN(SkorchCNNClassifier):
    """A SkorchCNNClassifier subclass unknown to sknnmfdiff."""


def test_save_refuses_torch_state_it_cannot_write(tmp_path):
    with pytest.raises(TypeError, match=r"torch\.nn\.modules\.linear\.Linear at model"):
        sknnmfdiff.save({"model": torch.nn.Linear(2, 2)}, tmp_path / "m.sknnmfdiff")
    assert not list(tmp_path.iterdir())


# -------------------------------------------------------------------- tampering
def _members(path):
    with zipfile.ZipFile(path) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def _write(path, members, *, fix_digests=True):
    """Rewrite a model file; with ``fix_digests`` as a deliberate tamperer would."""
    members = dict(members)
    if fix_digests and "manifest.json" in members:
        manifest = json.loads(members["manifest.json"])
        for name in ("objects.skops", "weights.safetensors"):
            if name in members:
                manifest["sha256"][name] = hashlib.sha256(members[name]).hexdigest()
        members["manifest.json"] = json.dumps(manifest).encode()
    with zipfile.ZipFile(path, "w") as zf:
        for name, blob in members.items():
            zf.writestr(name, blob)
    return path


class _Payload:
    """Records, in a class attribute, whether loading ever ran its code."""

    ran = False

    def __setstate__(self, state):
        type(self).ran = True


def test_smuggled_pickle_entry_is_refused(saved, fitted, tmp_path):
    members = _members(saved)
    members["payload.pkl"] = pickle.dumps(fitted["baseline"])
    with pytest.raises(ModelFileError, match="unexpected entry 'payload.pkl'"):
        sknnmfdiff.load(_write(tmp_path / "t.sknnmfdiff", members))


def test_pickle_in_place_of_the_skops_part_is_refused(saved, fitted, tmp_path):
    members = _members(saved)
    members["objects.skops"] = pickle.dumps(_Payload())
    with pytest.raises(ModelFileError, match="objects.skops is not a readable skops archive"):
        sknnmfdiff.load(_write(tmp_path / "t.sknnmfdiff", members))
    assert not _Payload.ran


def test_smuggled_object_in_the_skops_part_is_refused_without_running_it(saved, tmp_path):
    members = _members(saved)
    members["objects.skops"] = skops.io.dumps({"model": _Payload(), "run": eval})
    with pytest.raises(UntrustedTypeError, match=r"builtins\.eval.*_Payload|_Payload.*eval"):
        sknnmfdiff.load(_write(tmp_path / "t.sknnmfdiff", members))
    assert not _Payload.ran


def _edit_tensors(saved, tmp_path, edit):
    members = _members(saved)
    tensors = safetensors.torch.load(members["weights.safetensors"])
    edit(tensors)
    members["weights.safetensors"] = safetensors.torch.save(tensors)
    return _write(tmp_path / "t.sknnmfdiff", members)


def test_wrong_tensor_shape_is_refused(saved, tmp_path):
    def edit(t):
        t["1/head.1.weight"] = torch.zeros(3, *t["1/head.1.weight"].shape[1:])

    with pytest.raises(ModelFileError,
                       match=r"SkorchCNNClassifier at steps/3/1: tensor 'head.1.weight' has "
                             r"shape \(3, .*\) in the file, but the estimator's parameters "
                             r"make \(2, "):
        sknnmfdiff.load(_edit_tensors(saved, tmp_path, edit))


def test_missing_and_extra_tensors_are_refused(saved, tmp_path):
    with pytest.raises(ModelFileError, match="tensor 'head.weight' is missing"):
        sknnmfdiff.load(_edit_tensors(saved, tmp_path, lambda t: t.pop("0/head.weight")))
    with pytest.raises(ModelFileError, match="holds tensor 'body.9.weight'"):
        sknnmfdiff.load(_edit_tensors(
            saved, tmp_path, lambda t: t.update({"0/body.9.weight": torch.zeros(2)})))
    with pytest.raises(ModelFileError, match="'7/x', which belongs to no estimator"):
        sknnmfdiff.load(_edit_tensors(saved, tmp_path, lambda t: t.update({"7/x": torch.ones(1)})))


def test_missing_entries_are_refused(saved, tmp_path):
    members = _members(saved)
    with pytest.raises(ModelFileError, match="entry 'weights.safetensors' is missing"):
        sknnmfdiff.load(_write(tmp_path / "a.sknnmfdiff",
                               {k: v for k, v in members.items() if k != "weights.safetensors"}))
    manifest = json.loads(members["manifest.json"])
    del manifest["torch_state"][1]  # the CNN's record
    members["manifest.json"] = json.dumps(manifest).encode()
    with pytest.raises(ModelFileError, match="fitted SkorchCNNClassifier at steps/3/1, but the "
                                             "file has no torch state for it"):
        sknnmfdiff.load(_write(tmp_path / "b.sknnmfdiff", members))


def test_an_entry_larger_than_its_cap_is_refused_before_it_is_read(saved, monkeypatch):
    """The declared size is checked against MAX_ENTRY_BYTES before anything inflates."""
    reads = []
    monkeypatch.setattr(zipfile.ZipFile, "read", lambda self, m: reads.append(m))
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda self, m, *a, **k: reads.append(m))
    monkeypatch.setitem(model_file.MAX_ENTRY_BYTES, "objects.skops", 100)
    with pytest.raises(ModelFileError, match=r"entry 'objects.skops' declares \d+ bytes, more "
                                             r"than the 100 .*MAX_ENTRY_BYTES"):
        sknnmfdiff.load(saved)
    assert reads == []


def test_a_forged_declared_size_bounds_what_is_inflated(saved, tmp_path):
    """An entry whose central directory declares fewer bytes than its data inflates to is
    refused as damaged without inflating the rest (ZipFile.read inflates it all first)."""
    import struct
    import tracemalloc

    with zipfile.ZipFile(saved) as zf:
        members = {m: zf.read(m) for m in zf.namelist()}
    bomb = tmp_path / "bomb.sknnmfdiff"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, blob in members.items():
            zf.writestr(name, bytes(64 << 20) if name == "objects.skops" else blob)
    data = bytearray(bomb.read_bytes())
    i = data.find(b"PK\x01\x02")
    while i >= 0:  # central directory headers: declare 1000 bytes for objects.skops
        n = struct.unpack_from("<H", data, i + 28)[0]
        if bytes(data[i + 46:i + 46 + n]) == b"objects.skops":
            struct.pack_into("<I", data, i + 24, 1000)
        i = data.find(b"PK\x01\x02", i + 4)
    bomb.write_bytes(bytes(data))
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError, match="damaged"):
            sknnmfdiff.load(bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20


@pytest.mark.parametrize("param, value, message", [
    ("width", 8, r"tensor 'features.0.weight' has shape \(128, 4\) .* in the file, but "
                 r"the estimator's parameters make \(8, 4\)"),
    ("optimizer", "evil", r"its torch state cannot be rebuilt from its parameters "
                          r"\(InvalidParameterError"),
])
def test_changed_parameters_are_refused(fitted, saved, tmp_path, param, value, message):
    members = _members(saved)
    stripped = model_file._strip(fitted["defended"], [], {}, [], {})
    setattr(stripped.steps[3][1], param, value)
    members["objects.skops"] = skops.io.dumps(stripped)
    with pytest.raises(ModelFileError, match="SkorchCNNClassifier at steps/3/1: " + message):
        sknnmfdiff.load(_write(tmp_path / "t.sknnmfdiff", members))


def test_changed_bytes_break_the_digest(saved, tmp_path):
    members = _members(saved)
    blob = bytearray(members["weights.safetensors"])
    blob[-1] ^= 0xFF  # a flipped bit in a weight: the shape is still right
    members["weights.safetensors"] = bytes(blob)
    with pytest.raises(ModelFileError, match="weights.safetensors does not match its SHA-256"):
        sknnmfdiff.load(_write(tmp_path / "t.sknnmfdiff", members, fix_digests=False))


def test_not_a_model_file(tmp_path, fitted):
    import joblib

    path = tmp_path / "m.joblib"
    joblib.dump(fitted["baseline"], path)
    with pytest.raises(ModelFileError, match="not a zip archive"):
        sknnmfdiff.load(path)
    assert not model_file.is_model_file(path)
    with pytest.raises(FileNotFoundError):
        sknnmfdiff.load(tmp_path / "nope.sknnmfdiff")


# --------------------------------------------------------------------- versions
def test_version_mismatch_warns_once_in_one_line(saved, data, tmp_path):
    members = _members(saved)
    manifest = json.loads(members["manifest.json"])
    manifest["versions"]["sklearn"] = "0.0.1"
    manifest["versions"]["torch"] = "1.0"
    members["manifest.json"] = json.dumps(manifest).encode()
    path = _write(tmp_path / "old.sknnmfdiff", members)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sknnmfdiff.load(path)
    assert len(caught) == 1 and caught[0].category is InconsistentVersionWarning
    message = str(caught[0].message)
    assert "\n" not in message
    assert caught[0].filename == __file__  # the user's call, not sknnmfdiff's code
    assert "sklearn 0.0.1 (now " in message and "torch 1.0 (now " in message
