"""How the method's torch code runs: one intra-op thread, aligned input arrays.

- :class:`single_thread`: run a block of tiny tensor ops on one CPU thread.
- :func:`as_tensor`: a numpy array as a C-contiguous, aligned CPU tensor.

Imports torch and numpy only (no scikit-learn, no other module of the package).
"""

import numpy as np
import torch

__all__ = ["as_tensor", "single_thread"]


class single_thread:
    """Context manager: torch's intra-op thread count at 1 on CPU, restored after.

    The method's per-step tensors (NNLS systems of ``r x r``, mini-batches of a few
    features) are a few hundred kB; splitting them across threads costs more in
    synchronisation than it saves, badly so on a loaded machine (see
    ``sknnmfdiff.decomposition``). A process-global setting: not for concurrent use
    from several Python threads.

    Parameters
    ----------
    device : torch.device
        Only ``device.type == "cpu"`` changes the thread count; other devices leave it.
    """

    def __init__(self, device):
        self.active = torch.device(device).type == "cpu"

    def __enter__(self):
        if self.active:
            self.n = torch.get_num_threads()
            torch.set_num_threads(1)
        return self

    def __exit__(self, *exc):
        if self.active:
            torch.set_num_threads(self.n)


def as_tensor(X, dtype=None):
    """A numpy array as a CPU tensor over C-contiguous, aligned memory.

    ``torch.from_numpy`` shares the array's memory as it is. A buffer deserialised by
    Dask or read from a byte stream can start at any byte; torch and BLAS then take
    other code paths for it (or reject it), and results would depend on where an array
    came from. This copies only when the array is not C-contiguous, not aligned to its
    item size, not of ``dtype`` or read-only; otherwise the memory is shared.

    Parameters
    ----------
    X : array-like
        Any array numpy can convert (lists, numpy arrays, memory maps).
    dtype : numpy dtype or None, default=None
        Element type of the result; None keeps the array's own.

    Returns
    -------
    Tensor
        On the CPU, of the array's shape.
    """
    arr = np.require(np.asarray(X), dtype=dtype, requirements=["C", "A", "W"])
    return torch.from_numpy(arr)
