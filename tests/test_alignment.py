"""Arrays whose memory is not aligned to their item size (a buffer deserialised by Dask
can start at any byte) give the same results as aligned ones, at every place where
numpy data enter torch."""

import numpy as np
import pytest
import torch

from sknnmfdiff import (
    DiffusionPurifier,
    SkorchCNNClassifier,
    make_baseline_pipeline,
    make_phantom_mri,
)
from sknnmfdiff.evaluation._common import _check_inputs, _to_tensor
from sknnmfdiff.nn import as_tensor

from _helpers import unaligned


def _aligned(t):
    return t.is_contiguous() and t.data_ptr() % t.element_size() == 0


@pytest.fixture(scope="module")
def features():
    rng = np.random.default_rng(0)
    X = rng.random((120, 6), dtype=np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    y = (X[:, 0] > X[:, 1]).astype(np.int64)
    return X, y


def test_as_tensor_copies_only_what_it_must():
    X = np.arange(12, dtype=np.float32).reshape(3, 4)
    shared = as_tensor(X)
    assert shared.data_ptr() == X.ctypes.data  # aligned and contiguous: no copy
    for odd in (unaligned(X), X.T, X[:, ::2]):
        t = as_tensor(odd)
        assert _aligned(t)
        np.testing.assert_array_equal(t.numpy(), odd)
    assert as_tensor([[1, 2]], dtype=np.float32).dtype == torch.float32


@pytest.mark.parametrize("convert", [
    lambda x: _to_tensor(x, "x"),
    lambda x: _check_inputs(x.reshape(len(x), 1, 1, -1), np.zeros(len(x), np.int64))[0],
])
def test_the_evaluator_takes_unaligned_input_as_aligned_tensors(features, convert):
    X = features[0]
    t = convert(unaligned(X))
    assert _aligned(t)
    np.testing.assert_array_equal(t.reshape(X.shape).numpy(), X)


def test_classifier_and_purifier_do_not_depend_on_alignment(features):
    X, y = features
    Xo = unaligned(X)
    kw = dict(max_epochs=5, random_state=0)
    a = SkorchCNNClassifier(**kw).fit(X, y)
    b = SkorchCNNClassifier(**kw).fit(Xo, y)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(Xo))
    pa = DiffusionPurifier(t=20, max_epochs=5, random_state=0)
    pb = DiffusionPurifier(t=20, max_epochs=5, random_state=0)
    np.testing.assert_array_equal(pa.fit_transform(X), pb.fit_transform(Xo))
    np.testing.assert_array_equal(pa.transform(X), pb.transform(Xo))


def test_pipeline_does_not_depend_on_alignment():
    data = make_phantom_mri(160, image_size=24, random_state=0)
    X, y = data.data, data.target
    kw = dict(n_components=6, k=4, random_state=0)
    a = make_baseline_pipeline(**kw).fit(X, y)
    b = make_baseline_pipeline(**kw).fit(unaligned(X), y)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(unaligned(X)))
