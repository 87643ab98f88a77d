"""Small shared helpers for the tests (not fixtures)."""

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=4)
def real_subset(data_dir, image_size=64, per_class=150, random_state=0):
    """A class-balanced subset of the shared MRI data (binary task), cached per process.

    Returns X (n, image_size**2) float32 in [0, 1] and y (n,) int64.
    """
    from sknnmfdiff.datasets import load_mri_folder

    bunch = load_mri_folder(
        data_dir,
        image_size=image_size,
        task="multiclass",
        max_per_class=per_class,
        random_state=random_state,
    )
    # Balance the binary task: as many no-tumour as tumour images.
    names = np.asarray(bunch.target_names)[bunch.target]
    y = (names != "notumor").astype(np.int64)
    rng = np.random.default_rng(random_state)
    idx0 = np.flatnonzero(y == 0)
    idx1 = rng.permutation(np.flatnonzero(y == 1))[: len(idx0)]
    idx = np.sort(np.concatenate([idx0, idx1]))
    return bunch.data[idx], y[idx]


def unaligned(X):
    """A writable copy of ``X`` whose data start one byte off its item alignment, as a
    buffer deserialised by Dask can be."""
    X = np.ascontiguousarray(X)
    buf = np.empty(X.nbytes + 160, dtype=np.uint8)
    start = (-buf.ctypes.data) % 64 + 63  # one byte short of a 64-byte boundary
    out = np.frombuffer(buf[start:start + X.nbytes].data, dtype=X.dtype).reshape(X.shape)
    out[...] = X
    assert not out.flags["ALIGNED"] and out.flags["WRITEABLE"]
    return out
