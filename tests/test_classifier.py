"""Tests of sknnmfdiff.classifier.SkorchCNNClassifier, sknnmfdiff.nn.CNN1d and
sknnmfdiff.nn.FeatureMLP."""

import io
import logging
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.special import expit, softmax
from sklearn.datasets import make_blobs, make_classification
from sklearn.utils.class_weight import compute_class_weight

from sknnmfdiff.nn import FeatureMLP
from sknnmfdiff.nn._cnn import CNN1d, _n_parameters
from sknnmfdiff import classifier as classifier_module
from sknnmfdiff.classifier import NoValidationSplitWarning, SkorchCNNClassifier

FAST = dict(max_epochs=5, lr=0.05, random_state=0)


def _easy(n=600, n_features=10, n_classes=2, seed=0):
    X, y = make_classification(
        n_samples=n,
        n_features=n_features,
        n_informative=4,
        n_redundant=0,
        n_classes=n_classes,
        class_sep=2.0,
        random_state=seed,
    )
    return X, y


@pytest.fixture(scope="module")
def fitted_easy():
    X, y = _easy()
    clf = SkorchCNNClassifier(max_epochs=40, random_state=0).fit(X[:400], y[:400])
    return clf, X, y


# ----------------------------------------------------------------------- CNN1d
@pytest.mark.parametrize("k", [1, 2, 10, 40])
def test_cnn1d_shapes_and_gradients(k):
    torch.manual_seed(0)
    net = CNN1d(k, 3).eval()
    x = torch.randn(5, k, requires_grad=True)
    out = net(x)
    assert out.shape == (5, 3) and out.dtype == torch.float32
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_cnn1d_is_lightweight_and_validates():
    assert 500 < _n_parameters(CNN1d(10, 2)) < 5000
    assert _n_parameters(CNN1d(16384, 2)) < 5000  # pooled to 16 positions
    with pytest.raises(ValueError, match="n_classes must be an integer >= 2"):
        CNN1d(10, 1)
    with pytest.raises(ValueError, match="dropout must be in"):
        CNN1d(10, 2, dropout=1.0)
    with pytest.raises(ValueError, match=r"expects input of shape \(N, 10\)"):
        CNN1d(10, 2)(torch.zeros(3, 9))


def test_cnn1d_sees_feature_positions():
    # Short inputs are not globally pooled: swapping two features changes the logits.
    torch.manual_seed(0)
    net = CNN1d(6, 2).eval()
    x = torch.randn(4, 6)
    assert not torch.allclose(net(x), net(x[:, [1, 0, 2, 3, 4, 5]]))


# ------------------------------------------------------------------ FeatureMLP
@pytest.mark.parametrize("k", [1, 10])
def test_feature_mlp_shapes_gradients_and_standardisation(k):
    torch.manual_seed(0)
    mean, scale = torch.rand(k), torch.rand(k) + 0.5
    net = FeatureMLP(k, 3, width=8, mean=mean, scale=scale).eval()
    x = torch.randn(5, k, requires_grad=True)
    out = net(x)
    assert out.shape == (5, 3) and out.dtype == torch.float32
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    # The standardisation is the first thing the network does: a plain network fed
    # standardised inputs gives the same logits.
    plain = FeatureMLP(k, 3, width=8).eval()
    plain.load_state_dict({**net.state_dict(), "mean": torch.zeros(k), "scale": torch.ones(k)})
    with torch.no_grad():
        torch.testing.assert_close(net(x), plain((x - mean) / scale))
    assert {n for n, _ in net.named_buffers()} == {"mean", "scale"}
    assert not any(n in {"mean", "scale"} for n, _ in net.named_parameters())


def test_feature_mlp_size_and_validation():
    assert _n_parameters(FeatureMLP(10, 2)) == 18178
    assert _n_parameters(FeatureMLP(10, 2, width=4, n_layers=1)) == 10 * 4 + 4 + 4 * 2 + 2
    with pytest.raises(ValueError, match="n_layers must be an integer >= 1"):
        FeatureMLP(10, 2, n_layers=0)
    with pytest.raises(ValueError, match="dropout must be in"):
        FeatureMLP(10, 2, dropout=-0.1)
    with pytest.raises(ValueError, match="mean must hold 10 finite values"):
        FeatureMLP(10, 2, mean=np.zeros(9))
    with pytest.raises(ValueError, match="scale must hold 10 finite values"):
        FeatureMLP(10, 2, scale=np.full(10, np.nan))
    with pytest.raises(ValueError, match="scale must be > 0"):
        FeatureMLP(10, 2, scale=np.zeros(10))
    with pytest.raises(ValueError, match=r"expects input of shape \(N, 10\)"):
        FeatureMLP(10, 2)(torch.zeros(3, 9))


# --------------------------------------------------------------- architectures
def test_default_is_a_standardising_mlp_that_learns_small_features():
    # The pipeline's features are small (L2-normalised coefficients): the default
    # standardises them inside the module and trains to good accuracy on all samples.
    X, y = _easy(n=600)
    X = 0.02 * X + 0.1
    clf = SkorchCNNClassifier(random_state=0).fit(X[:400], y[:400])
    assert clf.score(X[400:], y[400:]) > 0.9
    module = clf.net_.module_
    assert isinstance(module, FeatureMLP)
    np.testing.assert_allclose(module.mean.numpy(), X[:400].mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(module.scale.numpy(), X[:400].std(axis=0), rtol=1e-5)
    # The documented defaults: 50 epochs on all samples, Adam at 1e-3, 128 units.
    assert clf.n_epochs_ == 50 and clf.net_.train_split is None
    assert clf.net_.lr == 1e-3 and module.features[0].out_features == 128
    assert clf.get_params()["architecture"] == "mlp"


def test_constant_feature_keeps_unit_scale():
    X, y = _easy(n=200)
    X[:, 2] = 0.7
    clf = SkorchCNNClassifier(**FAST).fit(X, y)
    assert clf.net_.module_.scale[2].item() == 1.0
    assert np.isfinite(clf.predict_proba(X)).all()


def test_paper_architecture_is_the_previous_classifier():
    X, y = _easy(n=300)
    paper = SkorchCNNClassifier(architecture="paper", random_state=0).fit(X, y)
    module = paper.net_.module_
    assert type(module) is CNN1d and module.features[0].out_channels == 16
    assert paper.net_.lr == 1e-2 and paper.net_.max_epochs == 100
    assert paper.net_.train_split is not None  # early stopping on by default
    # "auto" resolves to exactly the previous defaults: same weights as spelt out.
    old = SkorchCNNClassifier(architecture="paper", width=16, lr=1e-2, max_epochs=100,
                              early_stopping=True, random_state=0).fit(X, y)
    np.testing.assert_array_equal(paper.predict_proba(X), old.predict_proba(X))
    # Explicit values override "auto" for either architecture.
    wide = SkorchCNNClassifier(architecture="paper", width=4, max_epochs=2,
                               early_stopping=False, random_state=0).fit(X, y)
    assert wide.net_.module_.features[0].out_channels == 4 and wide.n_epochs_ == 2


# ----------------------------------------------------------------- classifier
def test_learns_easy_problem(fitted_easy):
    clf, X, y = fitted_easy
    acc = clf.score(X[400:], y[400:])
    assert acc > 0.9, acc
    assert clf.n_features_in_ == X.shape[1]
    assert 1 <= clf.n_epochs_ <= 40 and clf.n_epochs_ == len(clf.history_)


def test_multiclass():
    X, y = make_blobs(n_samples=450, centers=3, n_features=6, random_state=0)
    clf = SkorchCNNClassifier(max_epochs=30, random_state=0).fit(X[:300], y[:300])
    assert clf.score(X[300:], y[300:]) > 0.9
    proba = clf.predict_proba(X[300:])
    assert proba.shape == (150, 3)
    np.testing.assert_allclose(proba, softmax(clf.decision_function(X[300:]), axis=1))


def test_probabilities_are_softmax_of_module_logits(fitted_easy):
    clf, X, _ = fitted_easy
    proba = clf.predict_proba(X[400:])
    assert proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert (proba >= 0).all() and (proba <= 1).all()
    # The downstream contract: net_.module_ maps float32 (N, k) to logits.
    module = clf.net_.module_
    assert not module.training
    with torch.no_grad():
        logits = module(torch.as_tensor(X[400:], dtype=torch.float32)).double().numpy()
    np.testing.assert_allclose(proba, softmax(logits, axis=1), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(expit(clf.decision_function(X[400:])), proba[:, 1], rtol=1e-12)
    np.testing.assert_array_equal(clf.predict(X[400:]), clf.classes_[proba.argmax(axis=1)])
    # skorch's own predict_proba applies the softmax too (CrossEntropyLoss -> "auto").
    np.testing.assert_allclose(
        clf.net_.predict_proba(X[400:].astype(np.float32)), proba, rtol=1e-4, atol=1e-6
    )


@pytest.mark.parametrize(
    "labels",
    [np.array([0, 1]), np.array([-1, 1]), np.array(["notumor", "tumor"]), np.array([3.0, 7.0])],
    ids=["01", "pm1", "str", "float"],
)
def test_any_labels_through_classes(labels):
    X, y01 = _easy(n=200)
    y = labels[y01]
    ref = SkorchCNNClassifier(**FAST).fit(X, y01)
    clf = SkorchCNNClassifier(**FAST).fit(X, y)
    np.testing.assert_array_equal(clf.classes_, labels)
    pred = clf.predict(X)
    assert pred.dtype == labels.dtype and set(pred) <= set(labels)
    # Same order of classes -> the very same net and probabilities.
    np.testing.assert_array_equal(clf.predict_proba(X), ref.predict_proba(X))


def test_float64_cast_to_float32():
    X, y = _easy(n=200)
    a = SkorchCNNClassifier(**FAST).fit(X, y)
    b = SkorchCNNClassifier(**FAST).fit(X.astype(np.float32), y)
    assert next(a.net_.module_.parameters()).dtype == torch.float32
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X.astype(np.float32)))
    np.testing.assert_array_equal(a.predict_proba(X), a.predict_proba(X.astype(np.float32)))


def test_same_seed_identical_other_seed_different():
    X, y = _easy(n=300)
    p1 = SkorchCNNClassifier(**FAST).fit(X, y).predict_proba(X)
    p2 = SkorchCNNClassifier(**FAST).fit(X, y).predict_proba(X)
    assert np.array_equal(p1, p2)
    p3 = SkorchCNNClassifier(**{**FAST, "random_state": 1}).fit(X, y).predict_proba(X)
    assert not np.array_equal(p1, p3)
    rs = np.random.RandomState(0)
    a = SkorchCNNClassifier(**{**FAST, "random_state": rs}).fit(X, y).predict_proba(X)
    b = SkorchCNNClassifier(**{**FAST, "random_state": rs}).fit(X, y).predict_proba(X)
    assert not np.array_equal(a, b)  # a RandomState instance is advanced by each fit


@pytest.mark.parametrize("random_state", [0, None])
def test_global_rng_and_threads_untouched(random_state):
    X, y = _easy(n=200)
    torch.manual_seed(123)
    np.random.seed(123)
    torch_state = torch.get_rng_state()
    np_state = np.random.get_state()
    threads = torch.get_num_threads()
    clf = SkorchCNNClassifier(**{**FAST, "random_state": random_state, "dropout": 0.5})
    clf.fit(X, y).predict_proba(X)
    assert torch.equal(torch.get_rng_state(), torch_state)
    after = np.random.get_state()
    assert np.array_equal(after[1], np_state[1]) and after[2] == np_state[2]
    assert torch.get_num_threads() == threads


def test_class_weight_balanced_raises_minority_recall():
    X, y = make_classification(
        n_samples=600,
        n_features=8,
        n_informative=3,
        n_redundant=0,
        weights=[0.9, 0.1],
        class_sep=0.6,
        flip_y=0.0,
        random_state=3,
    )
    params = dict(max_epochs=20, early_stopping=False, random_state=0)
    plain = SkorchCNNClassifier(**params).fit(X, y)
    balanced = SkorchCNNClassifier(**params, class_weight="balanced").fit(X, y)
    assert plain.class_weight_ is None
    np.testing.assert_allclose(
        balanced.class_weight_, compute_class_weight("balanced", classes=np.array([0, 1]), y=y)
    )
    w = balanced.net_.criterion_.weight.cpu().numpy()
    np.testing.assert_allclose(w, balanced.class_weight_, rtol=1e-6)
    recall = [((c.predict(X) == 1) & (y == 1)).sum() / (y == 1).sum() for c in (plain, balanced)]
    assert recall[1] > recall[0]
    assert (balanced.predict(X) == 1).sum() > (plain.predict(X) == 1).sum()


def test_class_weight_dict():
    X, y = _easy(n=200)
    ys = np.array(["a", "b"])[y]
    clf = SkorchCNNClassifier(**FAST, class_weight={"b": 3.0}).fit(X, ys)
    np.testing.assert_array_equal(clf.class_weight_, [1.0, 3.0])
    with pytest.raises(ValueError, match="class_weight has labels \\['c'\\]"):
        SkorchCNNClassifier(**FAST, class_weight={"c": 2.0}).fit(X, ys)
    for bad in (-1.0, float("nan"), True, "2"):
        with pytest.raises(ValueError, match="class_weight must map labels to finite numbers"):
            SkorchCNNClassifier(**FAST, class_weight={"b": bad}).fit(X, ys)


def test_early_stopping_restores_best_epoch():
    X, y = _easy(n=300, seed=1)
    clf = SkorchCNNClassifier(max_epochs=200, patience=3, lr=0.05, early_stopping=True,
                              random_state=0).fit(X, y)
    hist = clf.history_
    assert clf.n_epochs_ < 200
    valid = np.array(hist[:, "valid_loss"])
    best = int(np.flatnonzero(hist[:, "valid_loss_best"])[-1])
    assert clf.n_epochs_ - 1 - best == 3
    # The kept weights are the best epoch's: re-scoring the validation split that
    # skorch used reproduces the best validation loss, not the last one.
    valid_ds = clf.net_.train_split.keywords["valid_ds"]  # skorch's predefined_split
    X_va, y_va = valid_ds.X, valid_ds.y
    loss = clf.net_.get_loss(
        clf.net_.infer(torch.as_tensor(X_va)), torch.as_tensor(y_va), training=False
    ).item()
    assert loss == pytest.approx(valid[best], rel=1e-5)
    assert y_va.shape[0] == 30 and set(np.bincount(y_va)) == {15}  # stratified 10 %


def test_validation_split_is_stratified_and_seeded():
    X, y = _easy(n=200)
    y = np.where(np.arange(200) < 40, 1, 0)  # 20 % positives
    a = SkorchCNNClassifier(**FAST, early_stopping=True).fit(X, y)
    b = SkorchCNNClassifier(**FAST, early_stopping=True).fit(X, y)
    va, vb = (c.net_.train_split.keywords["valid_ds"] for c in (a, b))
    assert np.bincount(va.y).tolist() == [16, 4]
    np.testing.assert_array_equal(va.X, vb.X)


def test_tiny_data_falls_back_to_no_validation():
    X = np.array([[0.0, 1.0], [1.0, 0.0], [0.1, 0.9]])
    y = np.array(["x", "y", "x"])
    with pytest.warns(NoValidationSplitWarning, match="too few for a stratified"):
        clf = SkorchCNNClassifier(max_epochs=3, early_stopping=True, random_state=0).fit(X, y)
    assert clf.net_.train_split is None and clf.n_epochs_ == 3
    assert clf.predict_proba(X).shape == (3, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SkorchCNNClassifier(max_epochs=3, early_stopping=False, random_state=0).fit(X, y)


def test_last_batch_of_one_sample_is_dropped():
    # 65 samples, batch 64, one feature: a final batch of one sample would make the
    # paper CNN's BatchNorm raise in training mode.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(65, 1))
    y = (X[:, 0] > 0).astype(int)
    clf = SkorchCNNClassifier(architecture="paper", max_epochs=2, early_stopping=False,
                              random_state=0).fit(X, y)
    assert clf.predict(X).shape == (65,)


def test_single_class_raises():
    with pytest.raises(ValueError, match="at least 2 classes"):
        SkorchCNNClassifier(**FAST).fit(np.zeros((5, 3)), np.ones(5))


def test_devices():
    X, y = _easy(n=100)
    clf = SkorchCNNClassifier(**{**FAST, "max_epochs": 1}, device="auto").fit(X, y)
    assert clf.device_ == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device='cuda' but torch finds no CUDA"):
            SkorchCNNClassifier(device="cuda").fit(X, y)


def test_pickle_round_trip(fitted_easy):
    clf, X, _ = fitted_easy
    buf = io.BytesIO()
    pickle.dump(clf, buf)
    buf.seek(0)
    loaded = pickle.load(buf)
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(loaded.classes_, clf.classes_)


_LOAD_ON_CPU = """
import pickle, sys, numpy as np, torch
assert not torch.cuda.is_available()
clf = pickle.load(open(sys.argv[1], "rb"))
X = np.load(sys.argv[2])
np.save(sys.argv[3], clf.predict_proba(X))
print(clf.net_.device)
"""


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_model_loads_on_cpu_only_machine(tmp_path):
    X, y = _easy(n=200)
    clf = SkorchCNNClassifier(**FAST, device="cuda").fit(X, y)
    expected = clf.predict_proba(X)
    with open(tmp_path / "m.pkl", "wb") as f:
        pickle.dump(clf, f)
    np.save(tmp_path / "X.npy", X)
    root = str(Path(__file__).resolve().parents[1])
    env = {"CUDA_VISIBLE_DEVICES": "", "PATH": "/usr/bin:/bin", "PYTHONPATH": root}
    out = subprocess.run(
        [sys.executable, "-c", _LOAD_ON_CPU]
        + [str(tmp_path / name) for name in ("m.pkl", "X.npy", "p.npy")],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "cpu"
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), expected, rtol=1e-4, atol=1e-6)



@pytest.mark.parametrize("verbose, level", [(0, logging.DEBUG), (1, logging.INFO)])
def test_epoch_table_goes_to_logger_not_stdout(verbose, level, caplog, capsys):
    X, y = _easy(n=100)
    with caplog.at_level(logging.DEBUG, logger="sknnmfdiff.classifier"):
        SkorchCNNClassifier(**{**FAST, "max_epochs": 2}, verbose=verbose).fit(X, y)
    msgs = [(r.getMessage(), r.levelno) for r in caplog.records]
    table = [lv for m, lv in msgs if "train_loss" in m and "epoch" in m]
    assert table == [level]
    assert not any("\x1b[" in m for m, _ in msgs)
    assert capsys.readouterr().out == ""


# ------------------------------------------------------------ threads and batches
def _record_threads(monkeypatch, fail_after=None):
    """Patch both networks' forward to record torch's thread count (and to raise on
    call n)."""
    seen = []
    for cls in (CNN1d, FeatureMLP):
        def spy(self, x, forward=cls.forward):
            seen.append(torch.get_num_threads())
            if fail_after is not None and len(seen) > fail_after:
                raise RuntimeError("injected failure")
            return forward(self, x)

        monkeypatch.setattr(cls, "forward", spy)
    return seen


def test_one_thread_inside_fit_and_predict_restored_after(two_threads, monkeypatch):
    X, y = _easy(n=200)
    seen = _record_threads(monkeypatch)
    clf = SkorchCNNClassifier(**FAST).fit(X, y)
    assert seen and set(seen) == {1}
    assert torch.get_num_threads() == two_threads
    seen.clear()
    clf.predict_proba(X)
    clf.decision_function(X)
    clf.predict(X)
    assert len(seen) >= 3 and set(seen) == {1}
    assert torch.get_num_threads() == two_threads


def test_thread_count_restored_after_an_exception(two_threads, monkeypatch):
    X, y = _easy(n=200)
    clf = SkorchCNNClassifier(**FAST).fit(X, y)
    _record_threads(monkeypatch, fail_after=2)
    with pytest.raises(RuntimeError, match="injected failure"):
        SkorchCNNClassifier(**FAST).fit(X, y)
    assert torch.get_num_threads() == two_threads
    _record_threads(monkeypatch, fail_after=0)
    with pytest.raises(RuntimeError, match="injected failure"):
        clf.predict_proba(X)
    assert torch.get_num_threads() == two_threads


def test_weights_do_not_depend_on_the_callers_thread_count():
    # Batches large enough for torch to split the kernels across threads.
    X, y = _easy(n=600)
    params = {**FAST, "batch_size": 256}
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = SkorchCNNClassifier(**params).fit(X, y).predict_proba(X)
        torch.set_num_threads(2)
        two = SkorchCNNClassifier(**params).fit(X, y).predict_proba(X)
    finally:
        torch.set_num_threads(before)
    np.testing.assert_array_equal(one, two)


@pytest.mark.parametrize(
    "params",
    [
        {"early_stopping": True},
        {"early_stopping": False, "batch_size": 50},
        {"dropout": 0.5, "class_weight": "balanced"},
        {"architecture": "paper"},
    ],
    ids=["early-stopping", "drop-last", "dropout", "paper"],
)
def test_batch_loader_trains_exactly_as_torchs_default_loader(params, monkeypatch):
    # 301 samples: with batch_size=50 the last batch (1 sample) is dropped.
    X, y = _easy(n=301)
    params = {**FAST, "max_epochs": 8, **params}
    fast = SkorchCNNClassifier(**params).fit(X, y)
    assert fast.net_.iterator_train is classifier_module._batch_loader
    monkeypatch.setattr(classifier_module, "_batch_loader", torch.utils.data.DataLoader)
    default = SkorchCNNClassifier(**params).fit(X, y)
    assert default.net_.iterator_train is torch.utils.data.DataLoader
    np.testing.assert_array_equal(fast.predict_proba(X), default.predict_proba(X))
    np.testing.assert_array_equal(
        np.array(fast.history_[:, "train_loss"]), np.array(default.history_[:, "train_loss"])
    )


def test_batch_loader_batches_and_fallback():
    from skorch.dataset import Dataset

    X = np.arange(20, dtype=np.float32).reshape(10, 2)
    y = np.arange(10)
    batches = list(classifier_module._batch_loader(Dataset(X, y), batch_size=4))
    assert [b[0].shape[0] for b in batches] == [4, 4, 2]
    np.testing.assert_array_equal(torch.cat([b[0] for b in batches]).numpy(), X)
    np.testing.assert_array_equal(torch.cat([b[1] for b in batches]).numpy(), y)
    torch.manual_seed(0)
    loader = classifier_module._batch_loader(Dataset(X, y), 4, shuffle=True, drop_last=True)
    shuffled = list(loader)
    assert [b[0].shape[0] for b in shuffled] == [4, 4]
    rows = torch.cat([b[1] for b in shuffled]).numpy()
    np.testing.assert_array_equal(torch.cat([b[0] for b in shuffled]).numpy(), X[rows])
    (Xb, _), = classifier_module._batch_loader(Dataset(X, None), batch_size=10)
    np.testing.assert_array_equal(Xb.numpy(), X)
    X.setflags(write=False)  # not a plain writable array: torch's default loader
    loader = classifier_module._batch_loader(Dataset(X, y), batch_size=4)
    assert loader.batch_size == 4


def test_epoch_table_not_built_when_nobody_logs_it():
    X, y = _easy(n=100)
    log = logging.getLogger("sknnmfdiff.classifier")
    level = log.level
    log.setLevel(logging.INFO)
    try:
        quiet = SkorchCNNClassifier(**FAST).fit(X, y)
    finally:
        log.setLevel(level)
    assert "print_log" not in dict(quiet.net_.callbacks_)
    loud = SkorchCNNClassifier(**FAST, verbose=1).fit(X, y)
    assert "print_log" in dict(loud.net_.callbacks_)
    np.testing.assert_array_equal(quiet.predict_proba(X), loud.predict_proba(X))
