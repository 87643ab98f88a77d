"""Shared plumbing of the evaluation: option names, input validation, devices, seeds,
and the guard that keeps AutoAttack from touching global state."""

from __future__ import annotations

import contextlib
import hashlib
import random
import sys
import time

import numpy as np
import torch

from ..nn import as_tensor

PROTOCOLS = ("paper", "adaptive")
NORMS = ("Linf", "L2")
SPACES = ("pixel", "feature")
SCORING_RULES = ("single_draw", "mean_probability", "majority_vote", "worst_case")
METRIC_NAMES = ("accuracy", "balanced_accuracy", "roc_auc", "mcc", "brier", "log_loss")


@contextlib.contextmanager
def _guard_global_state(device=None):
    """Restore torch/numpy/Python global RNG states and the trace function on exit."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    trace = sys.gettrace()
    devices = []
    dev = torch.device(device) if device is not None else torch.device("cpu")
    if dev.type == "cuda" and torch.cuda.is_available():
        devices = [dev.index if dev.index is not None else torch.cuda.current_device()]
    try:
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
        if sys.gettrace() is not trace:
            sys.settrace(trace)


@contextlib.contextmanager
def _small_ops(module):
    """One torch intra-op thread for the evaluator's own ops, when the module has workers.

    Applies only when the module runs its heavy passes on worker threads of its
    own (a positive ``n_workers`` attribute, as
    :class:`~sknnmfdiff.torch_adapter.CompiledPipeline` has): what is left to the
    evaluator and to AutoAttack (projections, losses, bookkeeping on the attacked
    batch) is small, and on a shared machine every op of several intra-op threads
    waits at a barrier for a thread the scheduler has put aside. Measured on the
    project's loaded 2-core machine: an APGD step on 2 feature vectors 3.5 ms with
    one thread against 90 ms with two; on 185 images 200 ms against 660 ms.
    Other modules keep torch's thread count. Process-global setting, restored on
    exit.
    """
    workers = getattr(module, "n_workers", None)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _seed_int(random_state, *keys):
    """A 31-bit integer seed derived from ``random_state`` and integer keys."""
    if random_state is None:
        raise ValueError("random_state must be an int (a reproducible seed), got None.")
    entropy = [int(random_state)] + [int(k) for k in keys]
    return int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint32)[0] >> 1)


def _reseed(module, seed):
    """Rewind the module's own noise generator when it has one."""
    fn = getattr(module, "manual_seed", None)
    if callable(fn):
        fn(int(seed))


def _to_tensor(x, name, *, device=None):
    if isinstance(x, torch.Tensor):
        t = x.detach()
    elif isinstance(x, (np.ndarray, list, tuple)):
        t = as_tensor(x)  # contiguous and aligned: a copy of an unaligned buffer
    else:
        raise TypeError(f"{name} must be a numpy.ndarray or torch.Tensor, got {type(x).__name__}.")
    return t.to(device) if device is not None else t


def _check_inputs(x, y, *, device=None):
    """Validate ``x`` (N, C, H, W) in [0, 1] and ``y`` (N,) class indices; float32/int64."""
    xt = _to_tensor(x, "x")
    if xt.ndim != 4:
        raise ValueError(
            f"x must be 4-D (n_samples, channels, height, width), got shape {tuple(xt.shape)}; "
            "reshape pixel rows to (N, 1, H, W) or features to (N, 1, 1, k)."
        )
    if not torch.is_floating_point(xt):
        raise TypeError(f"x must be floating point in [0, 1], got dtype {xt.dtype}.")
    xt = xt.to(torch.float32)
    if not torch.isfinite(xt).all():
        raise ValueError("x contains NaN or infinite values.")
    if xt.numel() and (xt.min() < 0 or xt.max() > 1):
        raise ValueError(
            f"x must lie in [0, 1], got range [{xt.min().item():.4g}, {xt.max().item():.4g}]."
        )
    yt = _to_tensor(y, "y")
    if yt.ndim != 1 or yt.shape[0] != xt.shape[0]:
        raise ValueError(f"y must have shape ({xt.shape[0]},), got {tuple(yt.shape)}.")
    if torch.is_floating_point(yt):
        if not torch.equal(yt, yt.round()):
            raise ValueError("y must hold integer class indices 0..n_classes-1.")
    yt = yt.to(torch.int64)
    if yt.numel() and yt.min() < 0:
        raise ValueError(f"y must hold class indices >= 0, got minimum {yt.min().item()}.")
    if device is not None:
        xt, yt = xt.to(device), yt.to(device)
    return xt, yt


def _module_device(module, device):
    if device is not None:
        return torch.device(device)
    for p in list(module.parameters()) + list(module.buffers()):
        return p.device
    return torch.device("cpu")


def _infer_n_classes(module, x):
    n = getattr(module, "n_classes", None)
    if n is not None:
        return int(n)
    with torch.no_grad():
        return int(module(x[:1]).shape[-1])


def _infer_randomized(module, x):
    flag = getattr(module, "randomized", None)
    if flag is not None:
        return bool(flag), "attribute"
    with torch.no_grad():
        a = module(x[: min(8, len(x))])
        b = module(x[: min(8, len(x))])
    return bool(not torch.equal(a, b)), "detected"


def _state_digest(module):
    """sha256 over the module's state dict (weights and buffers), names included."""
    h = hashlib.sha256()
    for name, t in module.state_dict().items():
        h.update(name.encode())
        if isinstance(t, torch.Tensor):
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
        else:
            h.update(repr(t).encode())
    return h.hexdigest()


@contextlib.contextmanager
def timed(timings, name):
    """Add the wall time of the block to ``timings[name]`` (seconds; 0 when new).

    ``timings`` None times nothing. Blocks under one name add up.
    """
    t0 = time.perf_counter()
    try:
        yield
    finally:
        if timings is not None:
            timings[name] = timings.get(name, 0.0) + time.perf_counter() - t0
