"""How the method's torch code runs: one intra-op thread, aligned input arrays.

- :class:`single_thread`: run a block of tiny tensor ops on one CPU thread.
- :func:`as_tensor`: a numpy array as a C-contiguous, aligned CPU tensor.
- :func:`cpu_if_no_cuda`: where a *fitted* model runs when its device names CUDA
  and this machine has none (the CPU, with a warning).

Imports torch and numpy only (no scikit-learn, no other module of the package).
"""

import warnings

import numpy as np
import torch

__all__ = ["as_tensor", "check_device", "check_network_sizes", "cpu_if_no_cuda", "single_thread"]


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


def cpu_if_no_cuda(device, owner):
    """``device``, or ``"cpu"`` with a warning when it names CUDA and CUDA is missing.

    For the inference of a fitted model (``transform``, ``predict``): a model fitted
    on a GPU keeps ``device="cuda"`` among its parameters, and a machine without CUDA
    that loads it must still be able to use it. Everything a fitted model holds lives
    on the CPU or is mapped there on loading (NMF components are numpy arrays, the
    denoiser is kept on the CPU, skorch maps its net), so running on the CPU gives
    the same results up to float rounding. Fitting does not use this: a fit asked to
    run on a missing GPU raises.

    Parameters
    ----------
    device : str or torch.device
        The estimator's ``device`` parameter (``"auto"`` and invalid values are
        returned unchanged, for the estimator's own checks).
    owner : str
        Name of the estimator, for the warning.

    Returns
    -------
    device : str or torch.device
        ``device`` itself, or ``"cpu"``.

    Warns
    -----
    UserWarning
        When ``device`` names CUDA and ``torch.cuda.is_available()`` is False.
    """
    try:
        is_cuda = torch.device(device).type == "cuda"
    except (RuntimeError, TypeError, ValueError):
        return device  # "auto" or an invalid value: the caller resolves or rejects it
    if is_cuda and not torch.cuda.is_available():
        warnings.warn(
            f"{owner} has device={str(device)!r} (fitted on a GPU?), but CUDA is not "
            "available on this machine: it runs on the CPU. Set its device to 'cpu' to "
            "silence this warning.",
            UserWarning,
            stacklevel=3,
        )
        return "cpu"
    return device


def check_network_sizes(dropout, **sizes):
    """Check a network's sizes and dropout rate before it is built.

    Parameters
    ----------
    dropout : float
        Dropout probability, in [0, 1).
    **sizes : (int, int)
        ``name=(value, low)``: each value must be an integer >= ``low``.

    Raises
    ------
    ValueError
        Naming the first size that is not an integer >= its bound, or the dropout.
    """
    for name, (value, low) in sizes.items():
        if int(value) != value or value < low:
            raise ValueError(f"{name} must be an integer >= {low}; got {value!r}.")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1); got {dropout!r}.")


def check_device(device):
    """The torch device an estimator's ``device`` parameter names.

    Parameters
    ----------
    device : str or torch.device
        E.g. ``"cpu"``, ``"cuda"``, ``"cuda:1"``.

    Returns
    -------
    torch.device

    Raises
    ------
    ValueError
        If ``device`` is not a torch device string, or names CUDA on a machine without it.
    """
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device={device!r} is not a torch device string ({exc}).") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was requested but CUDA is not available.")
    return dev
