"""Robustness evaluation of a torch classifier: AutoAttack protocols, scoring, sanity checks.

The evaluator works on any ``torch.nn.Module`` that maps float32 inputs
``x`` of shape ``(N, C, H, W)`` with values in ``[0, 1]`` to logits of shape
``(N, n_classes)``. A fitted sknnmfdiff pipeline is compiled into such a module by
:func:`sknnmfdiff.torch_adapter.to_torch_module`; :func:`evaluate_robustness` does
that for you.

Optional module attributes the evaluator uses when present:

``randomized`` : bool
    The forward pass draws noise (diffusion purification). Detected with two
    forward passes when absent.
``n_classes`` : int
    Number of classes. Inferred from one forward pass when absent.
``manual_seed(seed)`` : method
    Rewinds the module's own noise generator. The evaluator calls it before every
    attacked batch, every scoring draw and every gradient evaluation, so results do
    not depend on the batch size, on the order of the batches or on a resumed run.
``features(x_pixels)`` : method
    For ``space="feature"``: maps pixels ``(N, 1, H, W)`` to the module's input
    ``(N, 1, 1, k)`` (provided by the torch adapter).

Two attack protocols are offered:

``"paper"``
    What the paper ran: AutoAttack (Croce & Hein 2020) with
    ``version='custom', attacks=['apgd-ce', 'square']`` and the library's defaults
    for those two attacks (APGD-CE: 100 iterations, 5 restarts, no EOT; Square:
    5000 queries, one restart, ``p_init=0.8``). The cascade mirrors
    ``AutoAttack.run_standard_evaluation``: a sample counts as broken as soon as a
    single forward pass misclassifies it.
``"adaptive"``
    An attack aware of a randomized defence (Athalye et al. 2018; Tramer et al.
    2020; Lee & Kim 2023): the attacked "logits" are the log of the mean class
    probability over ``n_eot`` noise draws (:class:`MeanProbabilityLogits`), so
    APGD's gradient is an expectation over transformation and a sample counts as
    broken only when the mean probability over fresh draws misclassifies it (no
    lucky draw is accepted); Square queries the same mean-probability wrapper over
    ``square_n_eot`` draws. APGD runs more iterations and restarts than the paper
    protocol, keeps each sample's highest-loss point, and adds APGD-DLR (3+
    classes) and targeted APGD (4+ classes). For a deterministic model it is the
    same with ``n_eot = 1``.

AutoAttack (``pyautoattack``) reseeds torch's global generator, keeps global
counters in its dynamic-defence check and switches off ``sys.settrace``; every call
into it here runs inside a guard that restores the caller's torch, numpy and Python
RNG states and trace function. Its log messages are forwarded to this module's
logger.

References
----------
F. Croce and M. Hein, "Reliable evaluation of adversarial robustness with an
ensemble of diverse parameter-free attacks", ICML 2020.
A. Athalye, N. Carlini and D. Wagner, "Obfuscated gradients give a false sense of
security", ICML 2018.
F. Tramer, N. Carlini, W. Brendel and A. Madry, "On adaptive attacks to adversarial
example defenses", NeurIPS 2020.
M. Lee and D. Kim, "Robust evaluation of diffusion-based adversarial purification",
ICCV 2023.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import json
import logging
import math
import os
import random
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ADAPTIVE_DEFAULTS",
    "PAPER_DEFAULTS",
    "SCORING_RULES",
    "CheckResult",
    "MeanProbabilityLogits",
    "RobustnessReport",
    "autoattack_flags",
    "baseline_checks",
    "check_attack_plateau",
    "check_batch_invariance",
    "check_eps_grid",
    "check_flags",
    "check_gradients",
    "check_perturbation",
    "check_random_noise",
    "check_transfer",
    "check_square_vs_whitebox",
    "classification_metrics",
    "evaluate_robustness",
    "paper_table",
    "predict_proba_draws",
    "resolve_attack_config",
    "run_attack",
    "run_sanity_checks",
    "score",
    "score_draws",
]

_log = logging.getLogger(__name__)

PROTOCOLS = ("paper", "adaptive")
NORMS = ("Linf", "L2")
SPACES = ("pixel", "feature")
SCORING_RULES = ("single_draw", "mean_probability", "majority_vote", "worst_case")
METRIC_NAMES = ("accuracy", "balanced_accuracy", "roc_auc", "mcc", "brier", "log_loss")

#: AutoAttack's defaults for ``version='custom'`` with ``attacks=['apgd-ce', 'square']``.
PAPER_DEFAULTS = {
    "n_iter": 100,
    "n_restarts": 5,
    "n_eot": 1,
    "square_queries": 5000,
    "square_restarts": 1,
    "square_p_init": 0.8,
    "square_n_eot": 1,
}
#: Our adaptive defaults (``n_eot``/``square_n_eot`` apply to randomized models only).
ADAPTIVE_DEFAULTS = {
    "n_iter": 200,
    "n_restarts": 8,
    "n_eot": 20,
    "square_queries": 5000,
    "square_restarts": 1,
    "square_p_init": 0.8,
    "square_n_eot": 8,
}

_CHECKPOINT_FORMAT = 1


# ----------------------------------------------------------------------------- helpers


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


class _ForwardHandler(logging.Handler):
    """Collects AutoAttack's log records and forwards them to our logger."""

    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.messages = []

    def emit(self, record):
        msg = record.getMessage()
        self.messages.append((record.levelname, msg))
        _log.log(record.levelno, "AutoAttack: %s", msg)


@contextlib.contextmanager
def _autoattack_logging():
    """Route the ``auto-attack`` logger into ours for the duration of a call."""
    aa_logger = logging.getLogger("auto-attack")
    handler = _ForwardHandler()
    old = (aa_logger.propagate, aa_logger.level)
    aa_logger.addHandler(handler)
    aa_logger.propagate = False
    aa_logger.setLevel(logging.DEBUG)
    try:
        yield handler.messages
    finally:
        aa_logger.removeHandler(handler)
        aa_logger.propagate, level = old
        aa_logger.setLevel(level)


class _Collector:
    """Stand-in logger for ``pyautoattack.checks``: keeps its warnings."""

    def __init__(self):
        self.messages = []

    def warning(self, msg, *args):
        self.messages.append(str(msg) % args if args else str(msg))

    info = debug = warning


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
    elif isinstance(x, np.ndarray):
        t = torch.from_numpy(np.ascontiguousarray(x))
    elif isinstance(x, (list, tuple)):
        t = torch.from_numpy(np.asarray(x))
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


def _json_default(obj):
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serialisable")


def _finite_or_none(obj):
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite_or_none(v) for v in obj]
    return obj


def _to_jsonable(obj):
    """Recursively turn numpy/torch values into strict-JSON Python objects.

    NaN and infinite floats (e.g. ROC-AUC of a one-class part) become ``None``
    (JSON ``null``), so any JSON parser reads the output.
    """
    return _finite_or_none(json.loads(json.dumps(obj, default=_json_default, allow_nan=True)))


# ----------------------------------------------------------------------------- the EOT wrapper


class MeanProbabilityLogits(nn.Module):
    """Log of the mean class probability over ``n_draws`` forward passes.

    ``forward(x) = log(mean_k softmax(module(x)))``, computed stably as
    ``logsumexp_k log_softmax(module(x)) - log(n_draws)``. It is a valid set of
    logits (its softmax is the mean probability), so cross-entropy on it is the
    loss of the averaged prediction, its gradient is the expectation-over-
    transformation gradient (Athalye et al. 2018), and its argmax is the
    mean-probability decision of a randomized defence.

    Parameters
    ----------
    module : torch.nn.Module
        Classifier returning logits of shape ``(N, n_classes)``. If it has a method
        ``forward_draws(x, n)`` returning ``(n, N, n_classes)`` logits of ``n``
        draws (as :class:`~sknnmfdiff.torch_adapter.CompiledPipeline` has), that
        is used instead of ``n`` calls.
    n_draws : int, default=1
        Forward passes averaged per call (each draws fresh noise from the module's
        own generator). With 1 the output is ``log_softmax(module(x))``.

    Raises
    ------
    ValueError
        If ``n_draws < 1``.
    """

    def __init__(self, module, n_draws=1):
        super().__init__()
        if int(n_draws) < 1:
            raise ValueError(f"n_draws must be >= 1, got {n_draws}.")
        self.module = module
        self.n_draws = int(n_draws)

    def forward(self, x):
        """Return mean-probability log-probabilities, float32 of shape (N, n_classes)."""
        if self.n_draws == 1:
            return F.log_softmax(self.module(x).float(), dim=1)
        draws = getattr(self.module, "forward_draws", None)
        if draws is not None:
            # One pass through the deterministic front (e.g. the NNLS projection),
            # n_draws through the randomized head: the same noise sequence as
            # n_draws separate calls, at a fraction of the cost.
            logits = draws(x, self.n_draws)
        else:
            logits = torch.stack([self.module(x) for _ in range(self.n_draws)])
        logp = F.log_softmax(logits.float(), dim=2)
        return torch.logsumexp(logp, dim=0) - math.log(self.n_draws)


class _GradientSafe(nn.Module):
    """Pass-through that keeps a graph when the module cut it (``detach``, numpy, argmax).

    Such a module has no input gradient; instead of letting APGD crash on
    ``backward`` this returns the same values with an identically zero gradient,
    so the attack runs and the gradient check reports the cut (obfuscated
    gradients are reported, not hidden).
    """

    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, x):
        out = self.module(x)
        if torch.is_grad_enabled() and x.requires_grad and not out.requires_grad:
            out = out + 0.0 * x.reshape(x.shape[0], -1).sum(1, keepdim=True)
        return out


# ----------------------------------------------------------------------------- configuration


def resolve_attack_config(
    module,
    x,
    *,
    eps=0.10,
    norm="Linf",
    protocol="paper",
    n_eot=None,
    n_restarts=None,
    n_iter=None,
    square_queries=None,
    square_n_eot=None,
    eot_batch=None,
    batch_size=250,
    random_state=0,
    space=None,
):
    """Resolve the full attack configuration (the threat model) for a module.

    Parameters
    ----------
    module : torch.nn.Module
        Classifier (see the module docstring for the attributes used).
    x : torch.Tensor of shape (N, C, H, W), float32 in [0, 1]
        Inputs; only used to infer ``n_classes``/``randomized`` when the module
        lacks those attributes.
    eps : float, default=0.10
        Perturbation budget (>= 0) in input units (pixel units for pixel space).
    norm : {"Linf", "L2"}, default="Linf"
        Norm of the perturbation ball.
    protocol : {"paper", "adaptive"}, default="paper"
        Attack protocol (see the module docstring).
    n_eot : int or None
        Noise draws averaged per APGD gradient (adaptive, randomized models);
        ignored (1) for the paper protocol and deterministic models.
    n_restarts, n_iter : int or None
        APGD restarts and iterations; ``None`` takes the protocol's default.
    square_queries : int or None
        Square attack queries per restart.
    square_n_eot : int or None
        Draws averaged by each Square query (adaptive, randomized models).
    eot_batch : int or None
        Draws per wrapper forward; APGD's ``eot_iter = ceil(n_eot / eot_batch)``.
        Lower it to save memory. ``None`` means all draws in one forward.
    batch_size : int, default=250
        Samples attacked together (>= 1); recorded in the config.
    random_state : int, default=0
        Seed recorded in the config; each batch's seed derives from it.
    space : {"pixel", "feature"} or None
        Threat-model label; taken from ``module.space`` when ``None``.

    Returns
    -------
    config : dict
        JSON-serialisable threat model and attack settings.

    Raises
    ------
    ValueError
        For an unknown protocol/norm/space or out-of-range numbers.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}.")
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}.")
    if not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps >= 0):
        raise ValueError(f"eps must be a finite number >= 0, got {eps!r}.")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    if random_state is None:
        raise ValueError("random_state must be an int, got None.")
    space = space if space is not None else getattr(module, "space", "pixel")
    if space not in SPACES:
        raise ValueError(f"space must be one of {SPACES}, got {space!r}.")
    n_classes = _infer_n_classes(module, x)
    if n_classes < 2:
        raise ValueError(f"the module must output at least 2 classes, got {n_classes}.")
    randomized, randomized_source = _infer_randomized(module, x)
    defaults = PAPER_DEFAULTS if protocol == "paper" else ADAPTIVE_DEFAULTS

    def pick(value, key):
        v = defaults[key] if value is None else value
        if int(v) < 1:
            raise ValueError(f"{key} must be >= 1, got {v}.")
        return int(v)

    n_iter = pick(n_iter, "n_iter")
    n_restarts = pick(n_restarts, "n_restarts")
    square_queries = pick(square_queries, "square_queries")
    if protocol == "adaptive" and randomized:
        n_eot = pick(n_eot, "n_eot")
        square_n_eot = pick(square_n_eot, "square_n_eot")
    else:
        n_eot, square_n_eot = 1, 1
    eot_batch = n_eot if eot_batch is None else max(1, min(int(eot_batch), n_eot))
    eot_iter = math.ceil(n_eot / eot_batch)
    attacks = ["apgd-ce"]
    if protocol == "adaptive" and n_classes >= 3:
        attacks.append("apgd-dlr")
    if protocol == "adaptive" and n_classes >= 4:
        attacks.append("apgd-t")
    h, w = (int(x.shape[2]), int(x.shape[3])) if x.ndim == 4 else (0, 0)
    square_note = ""
    if norm == "L2" and min(h, w) < 5:
        # pyautoattack's L2 Square initialises with squares of side H // 5
        square_note = f"Square skipped: its L2 version needs H, W >= 5, input is {h} x {w}"
        _log.warning(square_note)
    else:
        attacks.append("square")
    import pyautoattack

    return {
        "space": space,
        "norm": norm,
        "eps": float(eps),
        "box": [0.0, 1.0],
        "protocol": protocol,
        "attacks": attacks,
        "n_classes": n_classes,
        "input_shape": [int(s) for s in x.shape[1:]],
        "randomized": randomized,
        "randomized_source": randomized_source,
        "apgd_n_iter": n_iter,
        "apgd_n_restarts": n_restarts,
        "apgd_loss": "ce on logits" if protocol == "paper" else "ce on log mean probability",
        "apgd_keeps": "first misclassified point" if protocol == "paper" else "highest-loss point",
        "apgd_targeted_n_target_classes": min(9, n_classes - 1) if "apgd-t" in attacks else 0,
        "n_eot": n_eot,
        "eot_batch": eot_batch,
        "eot_iter": eot_iter,
        "eot_draws_per_gradient": eot_batch * eot_iter,
        "square_queries": square_queries,
        "square_restarts": PAPER_DEFAULTS["square_restarts"],
        "square_p_init": PAPER_DEFAULTS["square_p_init"],
        "square_n_eot": square_n_eot,
        "square_note": square_note,
        "success_rule": (
            "single forward pass misclassifies"
            if protocol == "paper"
            else f"mean probability over {n_eot} fresh draws misclassifies"
        ),
        "batch_size": int(batch_size),
        "random_state": int(random_state),
        "batch_seeds": "SeedSequence([random_state, batch_index]); module.manual_seed per batch",
        "library": f"pyautoattack {pyautoattack.__version__}",
    }


# ----------------------------------------------------------------------------- AutoAttack flags


def autoattack_flags(module, x, y, *, batch_size=250, attacks=("apgd-ce", "square"), device=None):
    """Run AutoAttack's own model checks once and capture their verdicts.

    Calls ``pyautoattack.checks.check_randomized``, ``check_range_output``,
    ``check_dynamic`` and ``check_n_classes`` on the first batch, with their global
    call counters reset first and the caller's RNG states and trace function
    restored afterwards.

    Parameters
    ----------
    module : torch.nn.Module
        Classifier returning logits of shape ``(N, n_classes)``.
    x : array-like of shape (N, C, H, W), float32 in [0, 1]
        Inputs; only the first ``batch_size`` are used.
    y : array-like of shape (N,), int class indices
        True class indices of ``x``.
    batch_size : int, default=250
        Samples handed to the checks.
    attacks : sequence of str, default=("apgd-ce", "square")
        Attack names passed to ``check_n_classes``.
    device : str or torch.device, optional
        Defaults to the device of the module's parameters.

    Returns
    -------
    flags : dict
        ``randomized``, ``probability_output``, ``dynamic`` (bools),
        ``n_classes_ok`` (bool), ``n_classes_detected`` (int) and ``messages``
        (list of str, AutoAttack's warnings).

    Raises
    ------
    ValueError, TypeError
        If ``x`` or ``y`` is malformed (see :func:`run_attack`).

    References
    ----------
    F. Croce and M. Hein, "Reliable evaluation of adversarial robustness with an
    ensemble of diverse parameter-free attacks", ICML 2020.
    """
    from pyautoattack import checks

    dev = _module_device(module, device)
    xt, yt = _check_inputs(x, y, device=dev)
    xb, yb = xt[:batch_size], yt[:batch_size]
    cols = {k: _Collector() for k in ("randomized", "range", "dynamic", "n_classes")}
    with _guard_global_state(dev):
        for k in checks.funcs:
            checks.funcs[k] = 0
        checks.check_randomized(module, xb, yb, bs=batch_size, logger=cols["randomized"])
        n_cls = checks.check_range_output(module, xb, logger=cols["range"])
        checks.check_dynamic(module, xb, False, logger=cols["dynamic"])
        n_target = min(9, max(1, n_cls - 1))
        checks.check_n_classes(n_cls, list(attacks), n_target, n_target, logger=cols["n_classes"])
        for k in checks.funcs:
            checks.funcs[k] = 0
    messages = [m for c in cols.values() for m in c.messages]
    for m in messages:
        _log.info("AutoAttack check: %s", m)
    return {
        "randomized": bool(cols["randomized"].messages),
        "probability_output": bool(cols["range"].messages),
        "dynamic": bool(cols["dynamic"].messages),
        "n_classes_ok": not cols["n_classes"].messages,
        "n_classes_detected": int(n_cls),
        "messages": messages,
    }


# ----------------------------------------------------------------------------- the attack


def _make_adversary(module, cfg, seed, device):
    """An AutoAttack object holding attack objects configured as ``cfg`` says."""
    from pyautoattack import AutoAttack

    paper = cfg["protocol"] == "paper"
    target = _GradientSafe(module if paper else MeanProbabilityLogits(module, cfg["eot_batch"]))
    adversary = AutoAttack(
        target,
        norm=cfg["norm"],
        eps=cfg["eps"],
        version="custom",
        attacks=list(cfg["attacks"]),
        device=device,
        seed=seed,
    )
    adversary.verbose = False
    adversary.apgd.n_iter = cfg["apgd_n_iter"]
    adversary.apgd.n_iter_orig = cfg["apgd_n_iter"]
    adversary.apgd.n_iter_2 = max(int(0.22 * cfg["apgd_n_iter"]), 1)
    adversary.apgd.n_iter_min = max(int(0.06 * cfg["apgd_n_iter"]), 1)
    adversary.apgd.size_decr = max(int(0.03 * cfg["apgd_n_iter"]), 1)
    adversary.apgd.n_restarts = cfg["apgd_n_restarts"]
    adversary.apgd.eot_iter = cfg["eot_iter"]
    adversary.apgd.seed = seed
    at = adversary.apgd_targeted
    at.n_iter = at.n_iter_orig = cfg["apgd_n_iter"]
    at.n_iter_2 = adversary.apgd.n_iter_2
    at.n_iter_min = adversary.apgd.n_iter_min
    at.size_decr = adversary.apgd.size_decr
    at.n_restarts = 1
    at.eot_iter = cfg["eot_iter"]
    at.n_target_classes = max(1, cfg["apgd_targeted_n_target_classes"])
    at.seed = seed
    sq = adversary.square
    sq.n_queries = cfg["square_queries"]
    sq.n_restarts = cfg["square_restarts"]
    sq.p_init = cfg["square_p_init"]
    sq.seed = seed
    if not paper:
        sq.predict = MeanProbabilityLogits(module, cfg["square_n_eot"])
    return adversary


def _attack_batch(module, xb, yb, cfg, seed, device, on_stage=None):
    """Attack one batch; returns (x_adv, broken_by list, stage counts).

    ``on_stage(attack, restart, n_left)`` is called before every stage (progress).
    """
    paper = cfg["protocol"] == "paper"
    judge = module if paper else MeanProbabilityLogits(module, cfg["n_eot"])
    n = xb.shape[0]
    broken_by = [""] * n
    counts = {}
    with _guard_global_state(device), _autoattack_logging():
        torch.manual_seed(seed)
        _reseed(module, seed)
        adversary = _make_adversary(module, cfg, seed, device)
        x_adv = xb.clone()
        with torch.no_grad():
            logits = judge(xb)
            robust = logits.argmax(1) == yb
            best_loss = F.cross_entropy(logits.float(), yb, reduction="none")
        for i in torch.nonzero(~robust).flatten().tolist():
            broken_by[i] = "clean"
        counts["clean"] = int((~robust).sum())
        for attack in cfg["attacks"]:
            counts[attack] = 0
            if cfg["eps"] == 0 and attack != cfg["attacks"][0]:
                continue  # nothing can move at eps = 0; the first attack still runs the code path
            restarts = cfg["apgd_n_restarts"] if (not paper and attack in ("apgd-ce", "apgd-dlr")) else 1
            for r in range(restarts):
                idx = torch.nonzero(robust).flatten()
                if idx.numel() == 0:
                    break
                xs, ys = xb[idx].clone(), yb[idx].clone()
                if on_stage is not None:
                    on_stage(attack, r, int(idx.numel()))
                if attack in ("apgd-ce", "apgd-dlr"):
                    adversary.apgd.loss = "ce" if attack == "apgd-ce" else "dlr"
                    adversary.apgd.seed = seed
                    if paper:
                        adv = adversary.apgd.perturb(xs, ys)
                    else:
                        # one restart at a time, keeping each sample's highest-loss point
                        adversary.apgd.n_restarts = 1
                        torch.manual_seed(_seed_int(seed, r, cfg["attacks"].index(attack)))
                        adv = adversary.apgd.perturb(xs, ys, best_loss=True)
                elif attack == "apgd-t":
                    adv = adversary.apgd_targeted.perturb(xs, ys)
                elif attack == "square":
                    adv = adversary.square.perturb(xs, ys)
                else:  # pragma: no cover - config is built internally
                    raise ValueError(f"unknown attack {attack!r}")
                adv = adv.detach().to(xb.dtype)
                with torch.no_grad():
                    out = judge(adv)
                    fooled = out.argmax(1) != ys
                    loss = F.cross_entropy(out.float(), ys, reduction="none")
                hit = idx[fooled]
                x_adv[hit] = adv[fooled]
                robust[hit] = False
                for i in hit.tolist():
                    broken_by[i] = attack
                counts[attack] += int(fooled.sum())
                if not paper:
                    better = (~fooled) & (loss > best_loss[idx])
                    x_adv[idx[better]] = adv[better]
                    best_loss[idx[better]] = loss[better]
    return x_adv, broken_by, counts


def _data_digest(xt, yt):
    h = hashlib.sha256()
    h.update(xt.detach().cpu().contiguous().numpy().tobytes())
    h.update(yt.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _open_checkpoint(checkpoint_dir, manifest):
    """Create or validate a checkpoint directory; returns its Path."""
    path = Path(checkpoint_dir)
    path.mkdir(parents=True, exist_ok=True)
    mpath = path / "manifest.json"
    if mpath.exists():
        with open(mpath) as fh:
            old = json.load(fh)
        if old.get("config_hash") != manifest["config_hash"]:
            raise ValueError(
                f"checkpoint_dir {str(path)!r} holds batches of a different attack "
                f"(config hash {old.get('config_hash', '?')[:12]} != "
                f"{manifest['config_hash'][:12]}: configuration, model weights or data "
                "differ). Use a fresh directory or delete this one."
            )
        return path
    tmp = mpath.with_suffix(".tmp")
    with open(tmp, "w") as fh:
        json.dump(_to_jsonable(manifest), fh, indent=2, sort_keys=True)
    os.replace(tmp, mpath)
    return path


def _batch_file(path, b):
    return path / f"batch_{b:05d}.npz"


def _save_batch(path, b, x_adv, broken_by, counts, seconds):
    target = _batch_file(path, b)
    tmp = path / f".batch_{b:05d}.tmp.npz"
    np.savez(
        tmp,
        x_adv=x_adv.detach().cpu().numpy().astype(np.float32),
        broken_by=np.asarray(broken_by, dtype="U16"),
        info=np.asarray(json.dumps({"counts": counts, "seconds": seconds})),
    )
    os.replace(tmp, target)


def _load_batch(path, b):
    with np.load(_batch_file(path, b), allow_pickle=False) as z:
        info = json.loads(str(z["info"]))
        return torch.from_numpy(z["x_adv"]), [str(s) for s in z["broken_by"]], info


def run_attack(
    module,
    x,
    y,
    *,
    eps=0.10,
    norm="Linf",
    protocol="paper",
    n_eot=None,
    n_restarts=None,
    n_iter=None,
    square_queries=None,
    square_n_eot=None,
    eot_batch=None,
    batch_size=250,
    random_state=0,
    device=None,
    checkpoint_dir=None,
    progress=True,
    return_details=False,
):
    """Attack a classifier with AutoAttack's APGD and Square under a chosen protocol.

    Batches are attacked independently, each with its own seed derived from
    ``random_state`` and the batch index (the module's generator is rewound with
    ``module.manual_seed`` when present), so a resumed run gives the same result as
    an uninterrupted one. The caller's global RNG states are left untouched.

    Parameters
    ----------
    module : torch.nn.Module
        Classifier in eval mode returning logits ``(N, n_classes)`` for float32
        input in [0, 1].
    x : ndarray or Tensor of shape (N, C, H, W), float in [0, 1]
        Clean inputs (pixels ``(N, 1, H, W)``; features ``(N, 1, 1, k)``).
    y : ndarray or Tensor of shape (N,), int
        True class indices ``0 .. n_classes - 1``.
    eps : float, default=0.10
        Budget in input units (L-inf: per coordinate; L2: Euclidean norm).
    norm : {"Linf", "L2"}, default="Linf"
        Norm of the perturbation ball.
    protocol : {"paper", "adaptive"}, default="paper"
        See the module docstring.
    n_eot, n_restarts, n_iter, square_queries, square_n_eot, eot_batch : int or None
        Attack strength; ``None`` takes the protocol default
        (:data:`PAPER_DEFAULTS`, :data:`ADAPTIVE_DEFAULTS`). EOT settings apply
        to the adaptive protocol on randomized models only.
    batch_size : int, default=250
        Samples attacked together; also the checkpoint granularity.
    random_state : int, default=0
        Seed of every random choice of the attack.
    device : str or torch.device, optional
        Defaults to the module's device.
    checkpoint_dir : str or Path, optional
        Directory receiving ``manifest.json`` (config hash over settings, model
        weights and data) and one ``batch_#####.npz`` per finished batch. On a rerun
        with the same configuration finished batches are loaded, not redone; a
        different configuration raises ``ValueError``.
    progress : bool, default=True
        Show a tqdm progress bar over batches.
    return_details : bool, default=False
        Also return a dict with the config, per-sample ``broken_by``
        (``"clean"``, an attack name or ``""``), per-attack counts, per-batch
        seconds and how many batches were loaded from the checkpoint.

    Returns
    -------
    x_adv : same type as ``x``, float32 of shape (N, C, H, W)
        Adversarial inputs within ``eps`` of ``x`` and inside [0, 1]. Samples no
        attack broke hold the clean input (paper) or their highest-loss point
        (adaptive).
    details : dict
        Only when ``return_details=True``.

    Raises
    ------
    ValueError, TypeError
        Malformed inputs or settings; a checkpoint of another configuration.
    """
    from tqdm.auto import tqdm

    dev = _module_device(module, device)
    xt, yt = _check_inputs(x, y, device=dev)
    if module.training:
        _log.warning("module is in training mode; evaluating it as it is (call .eval()).")
    cfg = resolve_attack_config(
        module, xt, eps=eps, norm=norm, protocol=protocol, n_eot=n_eot,
        n_restarts=n_restarts, n_iter=n_iter, square_queries=square_queries,
        square_n_eot=square_n_eot, eot_batch=eot_batch, batch_size=batch_size,
        random_state=random_state,
    )
    if int(yt.max()) >= cfg["n_classes"]:
        raise ValueError(f"y holds class {int(yt.max())} but the module has {cfg['n_classes']} classes.")
    n = xt.shape[0]
    n_batches = math.ceil(n / batch_size)
    path = None
    if checkpoint_dir is not None:
        digest = hashlib.sha256(
            json.dumps(cfg, sort_keys=True).encode()
            + _state_digest(module).encode()
            + _data_digest(xt, yt).encode()
        ).hexdigest()
        manifest = {
            "format": _CHECKPOINT_FORMAT,
            "config_hash": digest,
            "config": cfg,
            "n_samples": n,
            "n_batches": n_batches,
        }
        path = _open_checkpoint(checkpoint_dir, manifest)

    x_adv = torch.empty_like(xt)
    broken_by = [""] * n
    counts = {a: 0 for a in ["clean"] + cfg["attacks"]}
    seconds = []
    n_loaded = 0
    bar = tqdm(range(n_batches), desc=f"{protocol} attack", unit="batch", disable=not progress)
    for b in bar:
        lo, hi = b * batch_size, min((b + 1) * batch_size, n)
        if path is not None and _batch_file(path, b).exists():
            xa, bb, info = _load_batch(path, b)
            if tuple(xa.shape) != tuple(xt[lo:hi].shape):
                raise ValueError(f"checkpoint batch {b} in {str(path)!r} has shape {tuple(xa.shape)}.")
            x_adv[lo:hi] = xa.to(dev)
            n_loaded += 1
            sec = info["seconds"]
            bcounts = info["counts"]
        else:
            t0 = time.perf_counter()
            seed = _seed_int(random_state, b)

            def on_stage(attack, r, n_left, b=b):
                bar.set_postfix_str(f"batch {b + 1}: {attack} restart {r + 1}, {n_left} left")
                _log.debug("batch %d: %s restart %d on %d samples", b + 1, attack, r + 1, n_left)

            xa, bb, bcounts = _attack_batch(module, xt[lo:hi], yt[lo:hi], cfg, seed, dev, on_stage)
            sec = time.perf_counter() - t0
            x_adv[lo:hi] = xa
            if path is not None:
                _save_batch(path, b, xa, bb, bcounts, sec)
            _log.info("batch %d/%d attacked in %.1f s: %s", b + 1, n_batches, sec, bcounts)
        broken_by[lo:hi] = bb
        seconds.append(sec)
        for k, v in bcounts.items():
            counts[k] = counts.get(k, 0) + int(v)
        bar.set_postfix(broken=sum(1 for s in broken_by[:hi] if s))
    bar.close()
    out = x_adv.detach().cpu() if isinstance(x, np.ndarray) else x_adv.detach()
    if isinstance(x, np.ndarray):
        out = out.numpy()
    if not return_details:
        return out
    return out, {
        "config": cfg,
        "broken_by": broken_by,
        "counts": counts,
        "batch_seconds": seconds,
        "n_batches_loaded": n_loaded,
    }


# ----------------------------------------------------------------------------- scoring


def predict_proba_draws(module, x, *, n_draws=1, batch_size=250, random_state=0, device=None):
    """Class probabilities of ``n_draws`` independent forward passes.

    Before every batch of draw ``d`` the module's generator is rewound to the
    draw's seed (``SeedSequence([random_state, d])``), so every batch of one draw
    sees the same noise and the result does not depend on ``batch_size``.

    Parameters
    ----------
    module : torch.nn.Module
        Classifier returning logits of shape ``(N, n_classes)``.
    x : ndarray or Tensor of shape (N, C, H, W), float in [0, 1]
        Inputs (converted to float32; not validated).
    n_draws : int, default=1
        Independent forward passes (>= 1).
    batch_size : int, default=250
        Samples per forward pass.
    random_state : int, default=0
        Seed of the draws (``SeedSequence([random_state, 7919, d])`` for draw
        ``d``).
    device : str or torch.device, optional
        Defaults to the device of the module's parameters.

    Returns
    -------
    proba : ndarray of shape (n_draws, N, n_classes), float64
        Softmax of the logits; rows sum to 1.

    Raises
    ------
    ValueError
        If ``n_draws < 1``.
    TypeError
        If ``x`` is not a numpy array, torch tensor, list or tuple.
    """
    if int(n_draws) < 1:
        raise ValueError(f"n_draws must be >= 1, got {n_draws}.")
    dev = _module_device(module, device)
    xt = _to_tensor(x, "x", device=dev).to(torch.float32)
    out = []
    with _guard_global_state(dev), torch.no_grad():
        for d in range(int(n_draws)):
            seed = _seed_int(random_state, 7919, d)
            parts = []
            for lo in range(0, xt.shape[0], batch_size):
                _reseed(module, seed)
                logits = module(xt[lo : lo + batch_size]).double()
                parts.append(torch.softmax(logits, dim=1).cpu().numpy())
            out.append(np.concatenate(parts, axis=0))
    return np.stack(out)


def classification_metrics(y_true, proba, y_pred=None, *, n_classes=None):
    """Accuracy, balanced accuracy, ROC-AUC, MCC, Brier score and log-loss.

    Parameters
    ----------
    y_true : array-like of shape (N,), int in 0..n_classes-1
        True class indices.
    proba : array-like of shape (N, n_classes)
        Class probabilities (renormalised to sum to 1).
    y_pred : array-like of shape (N,), optional
        Predicted labels; defaults to ``argmax(proba)``.
    n_classes : int, optional
        Defaults to ``proba.shape[1]``.

    Returns
    -------
    metrics : dict of str to float
        Binary: ROC-AUC and Brier on P(class 1). Multiclass: one-vs-rest macro
        ROC-AUC and the mean multi-class Brier score (sum over classes). A metric
        undefined on the data (e.g. ROC-AUC with one class present) is NaN.
    """
    from sklearn import metrics as skm

    y_true = np.asarray(y_true).astype(int)
    proba = np.clip(np.asarray(proba, dtype=np.float64), 0.0, None)
    proba = proba / np.maximum(proba.sum(axis=1, keepdims=True), 1e-300)
    n_classes = proba.shape[1] if n_classes is None else int(n_classes)
    labels = list(range(n_classes))
    y_pred = proba.argmax(axis=1) if y_pred is None else np.asarray(y_pred).astype(int)
    out = {
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float("nan"),
        "roc_auc": float("nan"),
        "mcc": float(skm.matthews_corrcoef(y_true, y_pred)),
        "brier": float("nan"),
        "log_loss": float(skm.log_loss(y_true, proba, labels=labels)),
    }
    with warnings.catch_warnings():
        # "y_pred contains classes not in y_true": expected on small attacked sets
        warnings.simplefilter("ignore", UserWarning)
        out["balanced_accuracy"] = float(skm.balanced_accuracy_score(y_true, y_pred))
    try:
        if n_classes == 2:
            out["roc_auc"] = float(skm.roc_auc_score(y_true, proba[:, 1]))
        else:
            out["roc_auc"] = float(
                skm.roc_auc_score(y_true, proba, multi_class="ovr", average="macro", labels=labels)
            )
    except ValueError as exc:
        _log.debug("ROC-AUC undefined: %s", exc)
    if n_classes == 2:
        out["brier"] = float(skm.brier_score_loss(y_true, proba[:, 1], labels=labels))
    else:
        out["brier"] = float(skm.brier_score_loss(y_true, proba, labels=labels))
    return out


def _wilson(k, n, confidence):
    from scipy.stats import binomtest

    if n == 0:
        return [float("nan"), float("nan")]
    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return [float(ci.low), float(ci.high)]


def score_draws(y, proba_draws, *, confidence=0.95):
    """Score per-draw probabilities under four rules.

    Parameters
    ----------
    y : array-like of shape (N,), int
        True class indices ``0 .. n_classes - 1``.
    proba_draws : ndarray of shape (n_draws, N, n_classes)
        Class probabilities of each draw (:func:`predict_proba_draws`).
    confidence : float, default=0.95
        Level in (0, 1) of the Wilson intervals on the accuracies.

    Returns
    -------
    scores : dict
        ``{"n_draws", "rules": {rule: metrics}, "correct": {rule: bool ndarray (N,)}}``
        with rules

        - ``single_draw``: the first draw alone;
        - ``mean_probability``: the mean probability over draws;
        - ``majority_vote``: the most voted class (ties to the lowest index), its
          probability the vote fractions;
        - ``worst_case``: correct only if every draw is correct; the probability
          is the draw least favourable to the true class (among wrong draws when
          there are any), the prediction its argmax.

        Each metrics dict holds the :func:`classification_metrics` entries plus
        ``accuracy_ci`` ``[low, high]`` and ``n``.

    Raises
    ------
    ValueError
        If ``proba_draws`` is not 3-D.
    """
    P = np.asarray(proba_draws, dtype=np.float64)
    if P.ndim != 3:
        raise ValueError(f"proba_draws must be 3-D (n_draws, N, n_classes), got shape {P.shape}.")
    y = np.asarray(y).astype(int)
    n_draws, n, c = P.shape
    rows = np.arange(n)
    preds = P.argmax(axis=2)  # (D, N)
    votes = np.stack([(preds == k).sum(axis=0) for k in range(c)], axis=1) / n_draws
    p_true = P[:, rows, y]  # (D, N)
    wrong = preds != y[None, :]
    key = np.where(wrong, p_true - 2.0, p_true)  # prefer wrong draws, then lowest p_true
    worst = key.argmin(axis=0)
    rules_proba = {
        "single_draw": P[0],
        "mean_probability": P.mean(axis=0),
        "majority_vote": votes,
        "worst_case": P[worst, rows],
    }
    preds_rule = {
        "single_draw": preds[0],
        "mean_probability": P.mean(axis=0).argmax(axis=1),
        "majority_vote": votes.argmax(axis=1),
        "worst_case": preds[worst, rows],
    }
    out = {"n_draws": int(n_draws), "rules": {}, "correct": {}}
    for rule in SCORING_RULES:
        m = classification_metrics(y, rules_proba[rule], preds_rule[rule], n_classes=c)
        correct = preds_rule[rule] == y
        m["accuracy_ci"] = _wilson(correct.sum(), n, confidence)
        m["n"] = int(n)
        out["rules"][rule] = m
        out["correct"][rule] = correct
    return out


def score(module, x, y, *, n_draws=None, batch_size=250, random_state=0, device=None, confidence=0.95):
    """Score a module on inputs under the four scoring rules.

    Parameters
    ----------
    module : torch.nn.Module
        Classifier returning logits of shape ``(N, n_classes)``.
    x : ndarray or Tensor of shape (N, C, H, W), float in [0, 1]
        Inputs to score.
    y : array-like of shape (N,), int
        True class indices ``0 .. n_classes - 1``.
    n_draws : int or None, default=None
        Forward passes; ``None`` means 1 for a deterministic module and 100 for a
        randomized one.
    batch_size : int, default=250
        Samples per forward pass.
    random_state : int, default=0
        Seed of the draws (see :func:`predict_proba_draws`).
    device : str or torch.device, optional
        Defaults to the device of the module's parameters.
    confidence : float, default=0.95
        Level of the Wilson intervals (see :func:`score_draws`).

    Returns
    -------
    scores : dict
        See :func:`score_draws`.

    Raises
    ------
    ValueError
        If ``n_draws < 1``.
    TypeError
        If ``x`` or ``y`` is not a numpy array, torch tensor, list or tuple.
    """
    xt = _to_tensor(x, "x")
    if n_draws is None:
        randomized, _ = _infer_randomized(module, xt.to(_module_device(module, device)).float())
        n_draws = 100 if randomized else 1
    P = predict_proba_draws(module, xt, n_draws=n_draws, batch_size=batch_size,
                            random_state=random_state, device=device)
    return score_draws(np.asarray(_to_tensor(y, "y").cpu()), P, confidence=confidence)


# ----------------------------------------------------------------------------- sanity checks


@dataclasses.dataclass
class CheckResult:
    """Outcome of one sanity check of the evaluation checklist.

    A plain dataclass: every parameter below is stored as the attribute of the
    same name. :func:`run_sanity_checks` returns a list of these, and
    :class:`RobustnessReport` keeps them as dicts (``dataclasses.asdict``).

    Parameters
    ----------
    name : str
        Identifier of the check, e.g. ``"perturbation_bounds"`` or
        ``"gradient_finite_differences"``.
    passed : bool or None
        ``True`` when the check passed, ``False`` when it failed or raised,
        ``None`` when it was skipped (not requested, or nothing to check).
    value : float or None, default=None
        The headline number of the check (its unit depends on the check: an
        accuracy in [0, 1], a perturbation norm in input units, a count, a
        fraction); ``None`` when the check has none.
    details : dict, default={}
        Everything else: thresholds, per-case numbers, the text of an error. A
        fresh dict per instance.
    status : {"", "passed", "failed", "skipped", "error"}, default=""
        ``""`` derives it from ``passed`` (``True`` -> ``"passed"``, ``False`` ->
        ``"failed"``, ``None`` -> ``"skipped"``); ``"error"`` is set explicitly
        when the check raised instead of returning.

    Raises
    ------
    KeyError
        If ``status`` is empty and ``passed`` is not ``True``, ``False`` or
        ``None`` (or a value equal to one of them, such as ``numpy.bool_``).

    See Also
    --------
    run_sanity_checks : Runs every check and returns these records.
    """

    name: str
    passed: bool | None
    value: float | None = None
    details: dict = dataclasses.field(default_factory=dict)
    status: str = ""

    def __post_init__(self):
        if not self.status:
            self.status = {True: "passed", False: "failed", None: "skipped"}[self.passed]


def _safe_check(name, fn, *args, **kwargs):
    """Run a check; an exception becomes a failed record, never a crash."""
    try:
        res = fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - a check must never stop the evaluation
        _log.warning("sanity check %s raised %s: %s", name, type(exc).__name__, exc)
        return CheckResult(name, False, None, {"error": f"{type(exc).__name__}: {exc}"}, "error")
    if res.passed is False:
        _log.warning("sanity check %s FAILED: value=%s details=%s", name, res.value, res.details)
    return res


def check_perturbation(x, x_adv, eps, norm="Linf", tol=1e-6):
    """Checklist item 1: x_adv within eps, inside [0, 1], no NaN, float32.

    Parameters
    ----------
    x, x_adv : ndarray or Tensor of shape (N, C, H, W)
        Clean and adversarial inputs.
    eps : float
        Budget in input units.
    norm : {"Linf", "L2"}, default="Linf"
        Norm of the budget; any value other than ``"Linf"`` measures L2.
    tol : float, default=1e-6
        Slack on the norm (L2: at least ``1e-5 * max(eps, 1)``).

    Returns
    -------
    result : CheckResult
        ``perturbation_bounds``: ``value`` is the largest perturbation norm
        found, in input units.

    Raises
    ------
    TypeError
        If ``x`` or ``x_adv`` is not a numpy array, torch tensor, list or tuple.
    RuntimeError
        If the shapes of ``x`` and ``x_adv`` cannot be broadcast together.
    """
    xa = _to_tensor(x_adv, "x_adv")
    xc = _to_tensor(x, "x").to(xa.device)
    finite = bool(torch.isfinite(xa).all())
    is_f32 = xa.dtype == torch.float32
    delta = (xa.double() - xc.double()).reshape(xa.shape[0], -1)
    size = delta.abs().max(1)[0] if norm == "Linf" else delta.norm(dim=1)
    max_size = float(size.max()) if size.numel() else 0.0
    tol_n = tol if norm == "Linf" else max(tol, 1e-5 * max(eps, 1.0))
    lo, hi = float(xa.min()), float(xa.max())
    ok = finite and is_f32 and max_size <= eps + tol_n and lo >= 0.0 and hi <= 1.0
    return CheckResult("perturbation_bounds", ok, max_size, {
        "norm": norm, "eps": eps, "tolerance": tol_n, "min": lo, "max": hi,
        "finite": finite, "dtype": str(xa.dtype), "shape_matches": tuple(xa.shape) == tuple(xc.shape),
    })


def _input_grad(loss, x):
    """d loss / d x; zeros when the graph does not reach x (a cut gradient)."""
    if not loss.requires_grad:
        return torch.zeros_like(x)
    (g,) = torch.autograd.grad(loss, x, allow_unused=True)
    return torch.zeros_like(x) if g is None else g


def check_gradients(module, x, y, *, n_fd_samples=3, n_directions=4, h=1e-3, batch_size=250,
                    random_state=0, device=None, min_fraction=0.99, rtol=0.05):
    """Checklist item 7: non-zero input gradients and agreement with finite differences.

    Detects obfuscated gradients (Athalye et al. 2018): a step that leaves the
    autograd graph (``detach``, numpy, argmax, a solver without backward) gives a
    zero input gradient, and an unrolled solver can give a wrong one. The loss is
    the cross-entropy of the module's logits for one noise draw;
    ``module.manual_seed(s)`` is called before every evaluation so the noise is held
    fixed. The finite difference is central, ``(L(x + h v) - L(x - h v)) / 2h``,
    along the normalised gradient (a large, sharp test of the magnitude) and
    ``n_directions - 1`` random unit directions. Where the module runs in float64,
    the finite differences and their analytic counterparts are computed on a
    float64 copy of it with a step of at most 1e-6 (a piecewise-linear network's
    kinks then rarely fall inside the step); otherwise in float32 with step ``h``.
    They match when
    ``|fd - g.v| <= rtol * max(|fd|, |g.v|) + atol``, where
    ``atol = 10 * eps_dtype * max(1, |logits|) / h`` is the rounding floor
    of the difference quotient.

    Parameters
    ----------
    module : torch.nn.Module
        Classifier returning logits of shape ``(N, n_classes)`` for float32 input
        in [0, 1]; its ``manual_seed`` (when present) holds the noise fixed.
    x : ndarray or Tensor of shape (N, C, H, W), float in [0, 1]
        Inputs at which the gradients are taken (converted to float32).
    y : array-like of shape (N,), int
        True class indices ``0 .. n_classes - 1``.
    n_fd_samples : int, default=3
        Leading samples of ``x`` checked against finite differences (all ``N``
        samples enter the non-zero check).
    n_directions : int, default=4
        Directions per sample for the finite differences: the normalised
        gradient (when non-zero) plus random unit-L2-norm directions up to this
        number.
    h : float, default=1e-3
        Step of the central difference in input units along a unit direction;
        capped at 1e-6 when the float64 copy of the module is used.
    batch_size : int, default=250
        Samples per forward/backward pass of the non-zero check.
    random_state : int, default=0
        Seed of the held noise (``SeedSequence([random_state, 104729])``; sample
        ``i`` of the finite differences uses that seed plus ``i``) and of the
        ``torch.Generator`` drawing the random directions.
    device : str or torch.device, optional
        Defaults to the device of the module's parameters (CPU if it has none).
    min_fraction : float, default=0.99
        Fraction in [0, 1] of samples that must have a non-zero, finite gradient
        for ``gradient_nonzero`` to pass.
    rtol : float, default=0.05
        Relative tolerance between the finite difference and ``g.v``.

    Returns
    -------
    nonzero : CheckResult
        ``gradient_nonzero``: ``value`` is the fraction of samples whose input
        gradient has a non-zero L1 norm; passes when that is at least
        ``min_fraction`` and every gradient is finite.
    fd : CheckResult
        ``gradient_finite_differences``: ``value`` is the fraction of
        (sample, direction) cases that match; passes only when all match. The
        cases, the step and the dtype used are in ``details``.

    Raises
    ------
    ValueError
        If ``x`` is not 4-D, not finite or outside [0, 1], or ``y`` does not have
        shape ``(N,)`` or holds negative or non-integer labels.
    TypeError
        If ``x`` or ``y`` is not a numpy array, torch tensor, list or tuple, or
        ``x`` is not floating point.

    References
    ----------
    A. Athalye, N. Carlini and D. Wagner, "Obfuscated gradients give a false sense
    of security", ICML 2018.
    """
    dev = _module_device(module, device)
    xt, yt = _check_inputs(x, y, device=dev)
    seed = _seed_int(random_state, 104729)
    norms = []
    with _guard_global_state(dev):
        for lo in range(0, xt.shape[0], batch_size):
            xb = xt[lo : lo + batch_size].clone().requires_grad_(True)
            _reseed(module, seed)
            with torch.enable_grad():
                loss = F.cross_entropy(module(xb).float(), yt[lo : lo + batch_size], reduction="sum")
                g = _input_grad(loss, xb)
            norms.append(g.reshape(g.shape[0], -1).abs().sum(1).detach().cpu())
        gn = torch.cat(norms).numpy()
        finite = bool(np.isfinite(gn).all())
        frac = float(np.mean(gn > 0)) if gn.size else float("nan")
        nonzero = CheckResult("gradient_nonzero", finite and frac >= min_fraction, frac, {
            "min_fraction": min_fraction, "n_zero": int(np.sum(gn == 0)),
            "finite": finite, "median_l1_norm": float(np.median(gn)) if gn.size else None,
        })

        gen = torch.Generator().manual_seed(seed)
        cases = []
        # Finite differences in float64 on a copy of the module where it allows it:
        # a step of 1e-6 rarely crosses a ReLU kink or an active-set change, and
        # float32 rounding does not swamp the difference quotient.
        fd_module, fd_dtype, h_used = module, torch.float32, h
        try:
            cand = copy.deepcopy(module).double()
            with torch.no_grad():
                cand(xt[:1].double())
            fd_module, fd_dtype, h_used = cand, torch.float64, min(h, 1e-6)
        except Exception:  # noqa: BLE001 - any module that cannot run in float64
            pass
        f_eps = float(torch.finfo(fd_dtype).eps)
        for i in range(min(n_fd_samples, xt.shape[0])):
            xi, yi = xt[i : i + 1].to(fd_dtype), yt[i : i + 1]

            def loss_at(z, i=i, yi=yi):
                _reseed(fd_module, seed + i)
                logits = fd_module(z)
                return F.cross_entropy(logits.double(), yi), float(logits.detach().abs().max())

            xg = xi.clone().requires_grad_(True)
            with torch.enable_grad():
                loss0, scale = loss_at(xg)
                g = _input_grad(loss0, xg)
            g = g.detach()
            atol = 10 * f_eps * max(1.0, scale) / h_used
            dirs = []
            if float(g.norm()) > 0:
                dirs.append(("gradient", g / g.norm()))
            while len(dirs) < n_directions:
                v = torch.randn(xi.shape, generator=gen).to(dev, fd_dtype)
                dirs.append(("random", v / v.norm()))
            for kind, v in dirs:
                with torch.no_grad():
                    fd = float((loss_at(xi + h_used * v)[0] - loss_at(xi - h_used * v)[0]) / (2 * h_used))
                an = float((g.double() * v.double()).sum())
                err = abs(fd - an)
                cases.append({"sample": i, "direction": kind, "fd": fd, "analytic": an,
                              "abs_err": err, "atol": atol,
                              "ok": bool(err <= rtol * max(abs(fd), abs(an)) + atol)})
    ok_frac = float(np.mean([c["ok"] for c in cases])) if cases else float("nan")
    fd_res = CheckResult("gradient_finite_differences", bool(cases) and ok_frac == 1.0, ok_frac, {
        "h": h_used, "dtype": str(fd_dtype).replace("torch.", ""), "rtol": rtol, "noise_held_fixed": True, "cases": cases,
        "max_abs_err": max((c["abs_err"] for c in cases), default=None),
    })
    return nonzero, fd_res


def check_batch_invariance(module, x, *, batch_sizes=(1, 7, 250), n_samples=30, random_state=0,
                           device=None, atol=1e-5):
    """Checklist item 11: identical outputs for several batch sizes; module in eval mode.

    The module's generator is rewound to the same seed before every call.

    Parameters
    ----------
    module : torch.nn.Module
        Classifier returning logits of shape ``(N, n_classes)``.
    x : ndarray or Tensor of shape (N, C, H, W)
        Inputs, float in [0, 1].
    batch_sizes : tuple of int, default=(1, 7, 250)
        Batch sizes compared; the first one is the reference.
    n_samples : int, default=30
        Leading samples compared.
    random_state : int, default=0
        Seed the module's generator is rewound to before every call.
    device : str or torch.device, optional
        Defaults to the device of the module's parameters.
    atol : float, default=1e-5
        Tolerance relative to ``max(1, max |logit|)`` (BLAS kernels may round
        differently for different batch shapes).

    Returns
    -------
    result : CheckResult
        ``batch_size_invariance``: ``value`` is the largest absolute logit
        difference; fails as well when any submodule is in training mode.

    Raises
    ------
    TypeError
        If ``x`` is not a numpy array, torch tensor, list or tuple.
    """
    dev = _module_device(module, device)
    xt = _to_tensor(x, "x", device=dev).to(torch.float32)[:n_samples]
    seed = _seed_int(random_state, 15485863)
    outs = {}
    with _guard_global_state(dev), torch.no_grad():
        for bs in batch_sizes:
            parts = []
            for lo in range(0, xt.shape[0], bs):
                _reseed(module, seed)
                parts.append(module(xt[lo : lo + bs]).float().cpu())
            outs[bs] = torch.cat(parts)
    ref = outs[batch_sizes[0]]
    diffs = {str(bs): float((o - ref).abs().max()) for bs, o in outs.items()}
    scale = max(1.0, float(ref.abs().max()))
    max_diff = max(diffs.values())
    eval_mode = not any(m.training for m in module.modules())
    ok = max_diff <= atol * scale and eval_mode
    return CheckResult("batch_size_invariance", ok, max_diff, {
        "batch_sizes": list(batch_sizes), "max_abs_diff": diffs, "atol": atol * scale,
        "eval_mode": eval_mode, "n_samples": int(xt.shape[0]), "reseeded_each_call": True,
    })


def check_random_noise(module, x, y, *, eps, norm, clean_accuracy, robust_accuracy, n_draws=1,
                       batch_size=250, random_state=0, device=None, ratio=0.5):
    """Checklist item 9: random sign noise of size eps hurts far less than the attack.

    Passes when ``clean - noise_acc <= ratio * (clean - robust) + 1 / N``. Noise is
    ``eps * sign(u)`` (L-inf) or a random direction of L2 norm ``eps``, clipped to
    [0, 1], drawn from a numpy Generator seeded from ``random_state``.

    A classic sign of masked gradients: when random noise of the same size is
    nearly as damaging as the attack, the attack found little more than noise.

    Parameters
    ----------
    module : torch.nn.Module
        Classifier returning logits of shape ``(N, n_classes)`` for float32 input
        in [0, 1].
    x : ndarray or Tensor of shape (N, C, H, W), float in [0, 1]
        Clean inputs.
    y : array-like of shape (N,), int
        True class indices ``0 .. n_classes - 1``.
    eps : float
        Size of the noise in input units (the attack's budget): every coordinate
        moves by ``+-eps`` (L-inf) or each sample by an L2 norm of ``eps``, before
        clipping to [0, 1].
    norm : {"Linf", "L2"}
        Norm of the noise; any value other than ``"Linf"`` draws L2 noise.
    clean_accuracy : float
        Mean-probability accuracy in [0, 1] on the clean inputs.
    robust_accuracy : float
        Mean-probability accuracy in [0, 1] on the adversarial inputs.
    n_draws : int, default=1
        Forward passes averaged when scoring the noisy inputs
        (mean-probability rule).
    batch_size : int, default=250
        Samples per forward pass.
    random_state : int, default=0
        Seeds the numpy Generator drawing the noise
        (``SeedSequence([random_state, 2357])``) and the scoring draws
        (see :func:`predict_proba_draws`).
    device : str or torch.device, optional
        Defaults to the device of the module's parameters.
    ratio : float, default=0.5
        Largest allowed accuracy drop under noise, as a fraction of the drop
        under the attack (plus one sample, ``1 / N``).

    Returns
    -------
    result : CheckResult
        ``random_noise_weaker_than_attack``: ``value`` is the mean-probability
        accuracy under random noise; ``details`` holds both drops and ``ratio``.

    Raises
    ------
    TypeError
        If ``x`` or ``y`` is not a numpy array, torch tensor, list or tuple.
    ValueError
        If ``n_draws < 1``.

    References
    ----------
    N. Carlini, A. Athalye, N. Papernot, W. Brendel, J. Rauber, D. Tsipras,
    I. Goodfellow, A. Madry and A. Kurakin, "On evaluating adversarial
    robustness", arXiv:1902.06705, 2019.
    """
    xt = _to_tensor(x, "x").to(torch.float32).cpu()
    rng = np.random.default_rng(_seed_int(random_state, 2357))
    if norm == "Linf":
        d = eps * rng.choice([-1.0, 1.0], size=tuple(xt.shape))
    else:
        d = rng.standard_normal(size=tuple(xt.shape))
        d = eps * d / np.linalg.norm(d.reshape(len(d), -1), axis=1).reshape(-1, *[1] * (d.ndim - 1))
    xn = torch.clamp(xt + torch.from_numpy(d.astype(np.float32)), 0.0, 1.0)
    s = score(module, xn, y, n_draws=n_draws, batch_size=batch_size, random_state=random_state, device=device)
    acc = s["rules"]["mean_probability"]["accuracy"]
    n = xt.shape[0]
    drop_noise = clean_accuracy - acc
    drop_attack = clean_accuracy - robust_accuracy
    ok = drop_noise <= ratio * drop_attack + 1.0 / n
    return CheckResult("random_noise_weaker_than_attack", ok, acc, {
        "clean_accuracy": clean_accuracy, "noise_accuracy": acc, "robust_accuracy": robust_accuracy,
        "drop_noise": drop_noise, "drop_attack": drop_attack, "ratio": ratio,
    })


def check_eps_grid(grid, *, clean, clean_ci, randomized, n, large_eps=0.5, near_zero=0.05):
    """Checklist items 2 and 3 from an eps grid of robust accuracies.

    Item 2: the attack at ``eps = 0`` reproduces the clean figure (exactly for a
    deterministic model, within a confidence interval for a randomized one).
    Item 3: robust accuracy does not increase with eps, and a large eps drives it
    to about 0 (an attack that cannot break a model with an unbounded budget is
    not working; Carlini et al. 2019).

    Parameters
    ----------
    grid : list of dict
        One entry per eps (any order; sorted here): ``"eps"`` (float, input
        units), ``"accuracy"`` (float in [0, 1], mean-probability rule),
        ``"accuracy_ci"`` (``[low, high]``, the Wilson interval; read for a
        randomized model) and optionally ``"identical_inputs"`` (bool: the
        attacked inputs equal the clean ones; read at eps = 0 for a
        deterministic model; ``None`` there marks the check skipped when the
        accuracies agree).
    clean : float
        Clean accuracy in [0, 1] (same rule).
    clean_ci : sequence of two floats
        ``[low, high]`` confidence interval of ``clean``.
    randomized : bool
        Whether the model draws noise in its forward pass; selects the
        interval-based tolerances instead of exact comparisons.
    n : int
        Number of samples (>= 1) behind each accuracy; one sample, ``1 / n``, is
        the smallest tolerance of the monotonicity check.
    large_eps : float, default=0.5
        Budget in input units from which eps counts as large; the largest grid
        eps at or above it is tested.
    near_zero : float, default=0.05
        Highest robust accuracy in [0, 1] accepted at the large eps.

    Returns
    -------
    eps_zero : CheckResult
        ``eps_zero_equals_clean``; skipped when 0 is not in the grid. For a
        randomized model it passes when either interval holds the other
        accuracy; for a deterministic one the accuracies must be equal (and the
        inputs identical, when recorded).
    monotone : CheckResult
        ``robust_accuracy_non_increasing_in_eps``; ``value`` is the number of
        consecutive pairs whose accuracy rises by more than ``1 / n``
        (randomized: the larger of that and the half-width of the higher eps's
        interval).
    large : CheckResult
        ``large_eps_drives_accuracy_to_zero``; ``value`` is the accuracy at the
        largest eps >= ``large_eps``; skipped when there is none.

    Raises
    ------
    KeyError
        If a grid entry lacks ``"eps"`` or ``"accuracy"``, or ``"accuracy_ci"``
        where it is read.
    ZeroDivisionError
        If ``n`` is 0 and the grid holds two or more entries.

    References
    ----------
    N. Carlini, A. Athalye, N. Papernot, W. Brendel, J. Rauber, D. Tsipras,
    I. Goodfellow, A. Madry and A. Kurakin, "On evaluating adversarial
    robustness", arXiv:1902.06705, 2019.
    """
    g = sorted(grid, key=lambda r: r["eps"])
    zero = [r for r in g if r["eps"] == 0]
    if not zero:
        c0 = CheckResult("eps_zero_equals_clean", None, None, {"reason": "0 not in eps grid"})
    elif randomized:
        lo, hi = zero[0]["accuracy_ci"]
        ok = (lo <= clean <= hi) or (clean_ci[0] <= zero[0]["accuracy"] <= clean_ci[1])
        c0 = CheckResult("eps_zero_equals_clean", ok, zero[0]["accuracy"], {
            "clean": clean, "clean_ci": clean_ci, "eps0_ci": [lo, hi], "rule": "within 95 % CI"})
    else:
        ok = zero[0]["accuracy"] == clean and zero[0].get("identical_inputs", True)
        c0 = CheckResult("eps_zero_equals_clean", ok, zero[0]["accuracy"], {
            "clean": clean, "rule": "exact", "identical_inputs": zero[0].get("identical_inputs")})
    violations = []
    for a, b in zip(g[:-1], g[1:]):
        tol = 1.0 / n if not randomized else max(1.0 / n, (b["accuracy_ci"][1] - b["accuracy_ci"][0]) / 2)
        if b["accuracy"] > a["accuracy"] + tol + 1e-12:
            violations.append({"eps_low": a["eps"], "eps_high": b["eps"],
                               "acc_low": a["accuracy"], "acc_high": b["accuracy"], "tolerance": tol})
    c1 = CheckResult("robust_accuracy_non_increasing_in_eps", not violations,
                     float(len(violations)), {"grid": g, "violations": violations})
    big = [r for r in g if r["eps"] >= large_eps]
    if not big:
        c2 = CheckResult("large_eps_drives_accuracy_to_zero", None, None,
                         {"reason": f"no eps >= {large_eps} in grid"})
    else:
        acc = big[-1]["accuracy"]
        c2 = CheckResult("large_eps_drives_accuracy_to_zero", acc <= near_zero, acc,
                         {"eps": big[-1]["eps"], "threshold": near_zero})
    return c0, c1, c2


def check_square_vs_whitebox(counts, n, *, max_fraction=0.02):
    """Checklist item 8 (in part): Square, run after APGD, should find (almost) nothing.

    Square is black-box; when it breaks many samples the white-box attack missed,
    the gradients are likely masked (AutoAttack's own ``check_square_sr`` rule).
    Passes when Square broke at most ``max(1, max_fraction * n)`` samples. The
    transfer comparison of item 8 (attacking the bare CNN) is not part of it.

    Parameters
    ----------
    counts : mapping of str to int
        Samples broken by each stage of the attack cascade, as in the
        ``"counts"`` entry of :func:`run_attack`'s details: keys ``"clean"``,
        ``"apgd-ce"``, ``"apgd-dlr"``, ``"apgd-t"``, ``"square"`` (missing keys
        count as 0; only ``"square"`` and the ``"apgd*"`` keys are read).
    n : int
        Number of attacked samples.
    max_fraction : float, default=0.02
        Largest fraction of ``n`` (in [0, 1]) that Square may break after APGD;
        at least one sample is always allowed.

    Returns
    -------
    result : CheckResult
        ``whitebox_at_least_as_strong_as_square``: ``value`` is the number of
        samples Square broke after the APGD stages; ``details`` holds the
        APGD counts.

    Raises
    ------
    AttributeError
        If ``counts`` has no ``get`` and ``items`` (is not a mapping).

    References
    ----------
    F. Croce and M. Hein, "Reliable evaluation of adversarial robustness with an
    ensemble of diverse parameter-free attacks", ICML 2020.
    """
    k = int(counts.get("square", 0))
    white = {a: int(v) for a, v in counts.items() if a.startswith("apgd")}
    return CheckResult("whitebox_at_least_as_strong_as_square", k <= max(1.0, max_fraction * n),
                       float(k), {"square_after_apgd": k, "apgd": white, "n": int(n),
                                  "max_fraction": max_fraction})


def check_attack_plateau(module, x, y, *, cfg, robust_accuracy, factor=2, n_draws=1,
                         batch_size=250, random_state=0, device=None):
    """Checklist item 6: a stronger attack must not lower the figure much further.

    Reruns the attack with ``factor`` times the iterations, restarts, Square
    queries and (randomized, adaptive) EOT draws, and with another seed. Fails
    (the figure is still falling: raise the attack strength) when the stronger
    attack's robust accuracy is lower by more than one sample (deterministic) or
    the half-width of the 95 % interval (randomized).

    Parameters
    ----------
    module : torch.nn.Module
        Classifier in eval mode returning logits of shape ``(N, n_classes)`` for
        float32 input in [0, 1].
    x : ndarray or Tensor of shape (N, C, H, W), float in [0, 1]
        Clean inputs (the same as for the main attack).
    y : ndarray or Tensor of shape (N,), int
        True class indices ``0 .. n_classes - 1``.
    cfg : dict
        Config of the main attack (:func:`resolve_attack_config`); its ``eps``
        (input units), ``norm``, ``protocol``, ``randomized``, ``apgd_n_iter``,
        ``apgd_n_restarts``, ``square_queries``, ``n_eot`` and ``square_n_eot``
        are read.
    robust_accuracy : float
        Main attack's mean-probability robust accuracy, in [0, 1].
    factor : int, default=2
        Multiplier (>= 1) of the attack settings above. EOT draws only take
        effect for the adaptive protocol on a randomized model.
    n_draws : int, default=1
        Forward passes averaged when scoring the stronger attack's inputs
        (mean-probability rule).
    batch_size : int, default=250
        Samples attacked and scored together.
    random_state : int, default=0
        The stronger attack is seeded with ``SeedSequence([random_state,
        31337])`` (a seed other than the main attack's); scoring uses
        ``random_state`` itself.
    device : str or torch.device, optional
        Defaults to the device of the module's parameters.

    Returns
    -------
    result : CheckResult
        ``attack_strength_plateau``: ``value`` is the stronger attack's robust
        accuracy; ``details`` holds the drop, the tolerance and the settings.

    Raises
    ------
    KeyError
        If ``cfg`` lacks one of the keys listed above.
    ValueError, TypeError
        From :func:`run_attack`: malformed inputs, or ``factor`` making a setting
        smaller than 1.

    References
    ----------
    N. Carlini, A. Athalye, N. Papernot, W. Brendel, J. Rauber, D. Tsipras,
    I. Goodfellow, A. Madry and A. Kurakin, "On evaluating adversarial
    robustness", arXiv:1902.06705, 2019.
    """
    strong = {
        "n_iter": cfg["apgd_n_iter"] * factor,
        "n_restarts": cfg["apgd_n_restarts"] * factor,
        "square_queries": cfg["square_queries"] * factor,
        "n_eot": cfg["n_eot"] * factor,
        "square_n_eot": cfg["square_n_eot"] * factor,
    }
    xa = run_attack(module, x, y, eps=cfg["eps"], norm=cfg["norm"], protocol=cfg["protocol"],
                    batch_size=batch_size, random_state=_seed_int(random_state, 31337),
                    device=device, progress=False, **strong)
    s = score(module, xa, y, n_draws=n_draws, batch_size=batch_size, random_state=random_state,
              device=device)["rules"]["mean_probability"]
    n = s["n"]
    tol = 1.0 / n
    if cfg["randomized"]:
        tol = max(tol, (s["accuracy_ci"][1] - s["accuracy_ci"][0]) / 2)
    drop = robust_accuracy - s["accuracy"]
    return CheckResult("attack_strength_plateau", drop <= tol + 1e-12, s["accuracy"], {
        "main_accuracy": robust_accuracy, "stronger_accuracy": s["accuracy"], "drop": drop,
        "tolerance": tol, "stronger_settings": strong, "factor": factor,
    })


def check_flags(flags, cfg):
    """Checklist item 10: AutoAttack's flags agree with what the evaluation assumed.

    Parameters
    ----------
    flags : dict
        From :func:`autoattack_flags`.
    cfg : dict
        From :func:`resolve_attack_config`.

    Returns
    -------
    result : CheckResult
        Passes when AutoAttack's randomness verdict matches the module's, the
        output is logits (not probabilities) and the class count suits the attacks.
    """
    consistent = flags["randomized"] == cfg["randomized"]
    ok = consistent and not flags["probability_output"] and flags["n_classes_ok"]
    return CheckResult("autoattack_flags", ok, None, {
        **{k: v for k, v in flags.items()},
        "declared_randomized": cfg["randomized"],
        "randomized_flag_consistent": consistent,
        "note": ("a randomized model needs the adaptive protocol (EOT)"
                 if cfg["randomized"] and cfg["protocol"] == "paper" else ""),
    })


def check_transfer(module, bare, x, y, *, robust_accuracy, eps, norm="Linf", n_draws=100,
                   batch_size=250, random_state=0, device=None, confidence=0.95):
    """Checklist item 8: the white-box attack is at least as strong as transfer.

    Attacks the bare model (the defended pipeline without its purifier, a
    deterministic proxy) with the paper protocol, then scores the defended
    module on those inputs with ``n_draws`` fresh draws. Attacking a proxy and
    purifying afterwards is transfer, not white-box (Tramer et al. 2020); a
    white-box robust accuracy above the transfer one means the white-box attack
    is too weak.

    Parameters
    ----------
    module : torch.nn.Module
        The evaluated (defended) module, logits of shape (N, n_classes).
    bare : torch.nn.Module
        The proxy: the same module without its purifier.
    x : Tensor of shape (N, ...), float32 in [0, 1]
        Clean inputs in the module's input space.
    y : Tensor of shape (N,), int64
        Class indices.
    robust_accuracy : float in [0, 1]
        White-box robust accuracy (mean-probability rule) to compare.
    eps : float
        Budget of the transfer attack, in input units.
    norm : {"Linf", "L2"}, default="Linf"
    n_draws : int, default=100
        Draws used to score the defended module on the transferred inputs.
    batch_size : int, default=250
    random_state : int, default=0
        Seeds the transfer attack and the scoring draws.
    device : str, torch.device or None, default=None
    confidence : float, default=0.95
        Level of the Wilson interval of the transfer accuracy; the check passes
        when the white-box figure is at most its upper end.

    Returns
    -------
    result : CheckResult
        ``whitebox_at_least_as_strong_as_transfer``, value = transfer accuracy.

    Raises
    ------
    ValueError
        If the inputs are malformed (from :func:`run_attack`).
    """
    x_tr = run_attack(bare, x, y, eps=eps, norm=norm, protocol="paper", batch_size=batch_size,
                      random_state=random_state, device=device, progress=False)
    s = score(module, x_tr, y, n_draws=n_draws, batch_size=batch_size,
              random_state=random_state, device=device, confidence=confidence)
    m = s["rules"]["mean_probability"]
    lo, hi = m["accuracy_ci"]
    return CheckResult(
        "whitebox_at_least_as_strong_as_transfer", bool(robust_accuracy <= hi + 1e-12),
        float(m["accuracy"]),
        {"transfer_accuracy": float(m["accuracy"]), "transfer_ci": [float(lo), float(hi)],
         "whitebox_accuracy": float(robust_accuracy), "proxy": "pipeline without purifier",
         "transfer_attack": "paper protocol (APGD-CE + Square) on the proxy"},
    )


def run_sanity_checks(module, x, y, x_adv, *, cfg, clean_scores, robust_scores, flags=None,
                      eps_grid=(), grid_attack_kwargs=None, n_draws=1, n_fd_samples=3,
                      attack_counts=None, plateau=False, batch_size=250, random_state=0,
                      device=None):
    """Run the checklist's checks; every failure or error is a record, never an exception.

    The checks, in the order returned (item numbers of the project's evaluation
    checklist): ``perturbation_bounds`` (1, :func:`check_perturbation`),
    ``eps_zero_equals_clean``, ``robust_accuracy_non_increasing_in_eps`` and
    ``large_eps_drives_accuracy_to_zero`` (2 and 3, :func:`check_eps_grid`),
    ``gradient_nonzero`` and ``gradient_finite_differences`` (7,
    :func:`check_gradients`), ``random_noise_weaker_than_attack`` (9,
    :func:`check_random_noise`), ``attack_strength_plateau`` (6,
    :func:`check_attack_plateau`), ``whitebox_at_least_as_strong_as_square``
    (8, :func:`check_square_vs_whitebox`; only when ``attack_counts`` is given),
    ``autoattack_flags`` (10, :func:`check_flags`) and ``batch_size_invariance``
    (11, :func:`check_batch_invariance`). Item 4 needs two reports
    (:func:`baseline_checks`); item 5 is a test of the evaluator itself. All
    figures use the mean-probability scoring rule.

    Parameters
    ----------
    module : torch.nn.Module
        The attacked classifier, in eval mode, returning logits of shape
        ``(N, n_classes)`` for float32 input in [0, 1].
    x : ndarray or Tensor of shape (N, C, H, W), float in [0, 1]
        Clean inputs.
    y : ndarray or Tensor of shape (N,), int
        True class indices ``0 .. n_classes - 1``.
    x_adv : ndarray or Tensor of shape (N, C, H, W), float32 in [0, 1]
        Adversarial inputs of the main attack (:func:`run_attack`).
    cfg : dict
        Config from :func:`resolve_attack_config` (the main attack); its
        ``eps`` (input units) and ``norm`` set the threat model of every check.
    clean_scores : dict
        :func:`score` output on ``x``.
    robust_scores : dict
        :func:`score` output on ``x_adv``.
    flags : dict, optional
        From :func:`autoattack_flags`; ``None`` reports ``autoattack_flags`` as
        skipped.
    eps_grid : sequence of float, default=()
        Extra budgets in input units attacked for items 2 and 3; the main
        ``eps`` is always added and reuses the main result. Empty reports the
        three grid checks as skipped. An attack that raises at one eps marks
        the monotonicity check as an error.
    grid_attack_kwargs : dict, optional
        Attack settings (``n_eot``, ``n_restarts``, ``n_iter``,
        ``square_queries``, ``square_n_eot``, ``eot_batch``) overriding the main
        attack's for the grid, e.g. fewer restarts to save time.
    n_draws : int, default=1
        Forward passes averaged when scoring grid, noise and plateau inputs.
    n_fd_samples : int, default=3
        Samples checked against finite differences (:func:`check_gradients`).
    attack_counts : dict, optional
        Samples broken per attack stage (from :func:`run_attack` details) for
        the Square-versus-white-box check; ``None`` leaves that check out.
    plateau : bool, default=False
        Also rerun the attack twice as strong (:func:`check_attack_plateau`;
        costs about four main attacks); otherwise reported as skipped.
    batch_size : int, default=250
        Samples per attack batch and per forward pass.
    random_state : int, default=0
        Seed of the grid attacks (passed to :func:`run_attack` as is, as
        :func:`evaluate_robustness` does for the main attack), of the scoring
        draws and of every check's random draws.
    device : str or torch.device, optional
        Defaults to the device of the module's parameters.

    Returns
    -------
    checks : list of CheckResult
        One record per check, in the order above.
    grid : list of dict
        Per eps (ascending): ``"eps"``, ``"accuracy"`` and ``"accuracy_ci"``
        (mean-probability rule), ``"identical_inputs"`` (whether the attack
        left the inputs unchanged; ``None`` for the main eps) or ``"error"``.
        Empty when ``eps_grid`` is empty.

    Raises
    ------
    KeyError
        If ``cfg``, ``clean_scores`` or ``robust_scores`` lack an entry this
        function reads itself (e.g. ``cfg["eps"]``, ``cfg["randomized"]``, the
        ``"mean_probability"`` rule); only the checks are guarded.
    """
    checks = []
    eps, norm = cfg["eps"], cfg["norm"]
    checks.append(_safe_check("perturbation_bounds", check_perturbation, x, x_adv, eps, norm))
    clean_m = clean_scores["rules"]["mean_probability"]
    rob_m = robust_scores["rules"]["mean_probability"]
    grid = []
    if eps_grid:
        attack_kwargs = {
            "n_eot": cfg["n_eot"], "n_restarts": cfg["apgd_n_restarts"], "n_iter": cfg["apgd_n_iter"],
            "square_queries": cfg["square_queries"], "square_n_eot": cfg["square_n_eot"],
            "eot_batch": cfg["eot_batch"],
        }
        attack_kwargs.update(grid_attack_kwargs or {})
        for e in sorted(set(float(v) for v in eps_grid) | {eps}):
            try:
                if e == eps:
                    acc, ci, same = rob_m["accuracy"], rob_m["accuracy_ci"], None
                else:
                    xa = run_attack(module, x, y, eps=e, norm=norm, protocol=cfg["protocol"],
                                    batch_size=batch_size, random_state=random_state, device=device,
                                    progress=False, **attack_kwargs)
                    s = score(module, xa, y, n_draws=n_draws, batch_size=batch_size,
                              random_state=random_state, device=device)
                    acc = s["rules"]["mean_probability"]["accuracy"]
                    ci = s["rules"]["mean_probability"]["accuracy_ci"]
                    same = bool(np.array_equal(np.asarray(_to_tensor(xa, "x").cpu()),
                                               np.asarray(_to_tensor(x, "x").float().cpu())))
                grid.append({"eps": e, "accuracy": acc, "accuracy_ci": ci, "identical_inputs": same})
            except Exception as exc:  # noqa: BLE001
                _log.warning("eps-grid attack at eps=%s failed: %s", e, exc)
                grid.append({"eps": e, "accuracy": float("nan"), "accuracy_ci": [float("nan")] * 2,
                             "error": f"{type(exc).__name__}: {exc}"})
        ok_grid = [r for r in grid if "error" not in r]
        errors = [r for r in grid if "error" in r]
        c0, c1, c2 = check_eps_grid(ok_grid, clean=clean_m["accuracy"], clean_ci=clean_m["accuracy_ci"],
                                    randomized=cfg["randomized"], n=clean_m["n"])
        if errors:
            c1.passed, c1.status = False, "error"
            c1.details["errors"] = errors
        checks.extend([c0, c1, c2])
    else:
        for name in ("eps_zero_equals_clean", "robust_accuracy_non_increasing_in_eps",
                     "large_eps_drives_accuracy_to_zero"):
            checks.append(CheckResult(name, None, None, {"reason": "eps_grid empty"}))

    def _grads():
        return check_gradients(module, x, y, n_fd_samples=n_fd_samples, batch_size=batch_size,
                               random_state=random_state, device=device)

    try:
        checks.extend(_grads())
    except Exception as exc:  # noqa: BLE001
        for name in ("gradient_nonzero", "gradient_finite_differences"):
            checks.append(CheckResult(name, False, None, {"error": f"{type(exc).__name__}: {exc}"}, "error"))
    checks.append(_safe_check(
        "random_noise_weaker_than_attack", check_random_noise, module, x, y, eps=eps, norm=norm,
        clean_accuracy=clean_m["accuracy"], robust_accuracy=rob_m["accuracy"], n_draws=n_draws,
        batch_size=batch_size, random_state=random_state, device=device))
    if plateau:
        checks.append(_safe_check(
            "attack_strength_plateau", check_attack_plateau, module, x, y, cfg=cfg,
            robust_accuracy=rob_m["accuracy"], n_draws=n_draws, batch_size=batch_size,
            random_state=random_state, device=device))
    else:
        checks.append(CheckResult("attack_strength_plateau", None, None,
                                  {"reason": "not requested (plateau=False)"}))
    if attack_counts is not None:
        checks.append(_safe_check("whitebox_at_least_as_strong_as_square", check_square_vs_whitebox,
                                  attack_counts, clean_m["n"]))
    if flags is not None:
        checks.append(_safe_check("autoattack_flags", check_flags, flags, cfg))
    else:
        checks.append(CheckResult("autoattack_flags", None, None, {"reason": "flags not computed"}))
    checks.append(_safe_check("batch_size_invariance", check_batch_invariance, module, x,
                              random_state=random_state, device=device))
    for c in checks:
        if c.passed is False and c.status != "error":
            _log.warning("sanity check %s failed (value=%s)", c.name, c.value)
    return checks, grid


# ----------------------------------------------------------------------------- the report


@dataclasses.dataclass
class RobustnessReport:
    """Everything one robustness evaluation found.

    A plain dataclass built by :func:`evaluate_robustness`: every parameter below
    is stored as the attribute of the same name. :meth:`to_dict`/:meth:`to_json`
    and :meth:`from_dict`/:meth:`from_json` round-trip it through strict JSON
    (numpy arrays become lists, NaN becomes ``None``).

    Parameters
    ----------
    threat_model : dict
        Space, norm, eps (input units), box, protocol, attacks, restarts,
        iterations, EOT draws and seeds (see :func:`resolve_attack_config`),
        plus ``scoring_draws``, the forward passes per scored input.
    clean : dict of str to dict
        Metrics per scoring rule (:data:`SCORING_RULES`) on the clean inputs:
        the :func:`classification_metrics` entries (accuracy and the others in
        their usual ranges) plus ``accuracy_ci`` and ``n``.
    robust : dict of str to dict
        The same on the adversarial inputs.
    checks : list of dict
        :class:`CheckResult` records as dicts (``name``, ``passed``, ``value``,
        ``details``, ``status``), in the order of :func:`run_sanity_checks`.
    timings : dict
        Wall-clock seconds per phase (``attack``, ``clean_scoring``,
        ``robust_scoring``, ``checks``, ``total``) and ``attack_batches``, the
        list of seconds per attacked batch.
    per_sample : dict
        ``y`` (class indices, shape ``(N,)``), ``clean_correct`` and
        ``robust_correct`` (rule -> bools of shape ``(N,)``) and ``broken_by``
        (``"clean"``, the attack that broke the sample, or ``""``).
    autoattack_flags : dict, default={}
        AutoAttack's own model checks (:func:`autoattack_flags`); empty when
        they were not run or raised.
    eps_grid : list of dict, default=[]
        Robust accuracy per eps (see :func:`run_sanity_checks`).
    attack_counts : dict of str to int, default={}
        Samples broken by each stage of the cascade (``"clean"`` and each
        attack).
    primary_rule : str, default="mean_probability"
        Scoring rule, one of :data:`SCORING_RULES`, used by :meth:`summary` and
        by :func:`paper_table` unless told otherwise.

    Attributes
    ----------
    failed_checks : list of str
        Names of the checks that failed or raised.
    """

    threat_model: dict
    clean: dict
    robust: dict
    checks: list
    timings: dict
    per_sample: dict
    autoattack_flags: dict = dataclasses.field(default_factory=dict)
    eps_grid: list = dataclasses.field(default_factory=list)
    attack_counts: dict = dataclasses.field(default_factory=dict)
    primary_rule: str = "mean_probability"

    @property
    def failed_checks(self):
        """Names of the checks that failed or raised."""
        return [c["name"] for c in self.checks if c["passed"] is False]

    def to_dict(self):
        """Return the report as a plain-Python, strict-JSON-compatible dict.

        Returns
        -------
        d : dict
            One key per field; numpy arrays and tensors become lists, numpy
            scalars Python numbers, NaN and infinite floats ``None``.
        """
        return _to_jsonable(dataclasses.asdict(self))

    def to_json(self, path=None, *, indent=2):
        """Serialise the report to strict JSON.

        Parameters
        ----------
        path : str or pathlib.Path, optional
            File the text is written to (overwritten); nothing is written when
            ``None``.
        indent : int, default=2
            Indentation passed to :func:`json.dumps`.

        Returns
        -------
        text : str
            The JSON text of :meth:`to_dict`.

        Raises
        ------
        OSError
            If ``path`` cannot be written.
        """
        text = json.dumps(self.to_dict(), indent=indent, allow_nan=False)
        if path is not None:
            Path(path).write_text(text)
        return text

    @classmethod
    def from_dict(cls, d):
        """Rebuild a report from :meth:`to_dict` output.

        Parameters
        ----------
        d : dict
            Field name to value; the fields without a default must be present.

        Returns
        -------
        report : RobustnessReport

        Raises
        ------
        ValueError
            If ``d`` holds a key that is not a field.
        TypeError
            If a field without a default is missing.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown RobustnessReport fields: {sorted(unknown)}")
        return cls(**d)

    @classmethod
    def from_json(cls, path_or_text):
        """Load a report from a JSON file path or a JSON string.

        Parameters
        ----------
        path_or_text : str or pathlib.Path
            JSON text (recognised by its leading ``{``) or the path of a file
            holding it, e.g. written by :meth:`to_json`.

        Returns
        -------
        report : RobustnessReport

        Raises
        ------
        OSError
            If the file cannot be read.
        json.JSONDecodeError
            If the text is not valid JSON.
        ValueError, TypeError
            As :meth:`from_dict`.
        """
        s = str(path_or_text)
        text = s if s.lstrip().startswith("{") else Path(s).read_text()
        return cls.from_dict(json.loads(text))

    def summary(self):
        """One-line human summary.

        Returns
        -------
        line : str
            Protocol, norm, eps and space, the clean and robust accuracies under
            :attr:`primary_rule`, the failed and the skipped checks, and a warning
            when the attack changed no input at all.
        """
        r = self.primary_rule
        tm = self.threat_model
        skipped = [c["name"] for c in self.checks if c.get("passed") is None]
        line = (f"{tm['protocol']} {tm['norm']} eps={tm['eps']} ({tm['space']} space): accuracy "
                f"{self.clean[r]['accuracy']:.4f} -> {self.robust[r]['accuracy']:.4f}; "
                f"failed checks: {self.failed_checks or 'none'}")
        if skipped:
            line += f"; skipped checks: {skipped}"
        moved = [c for c in self.checks if c["name"] == "perturbation_bounds"]
        if moved and not moved[0].get("value") and float(tm.get("eps", 0) or 0) > 0:
            line += "; WARNING: the attack changed no input"
        return line


_TABLE_COLUMNS = (("accuracy", "Accuracy"), ("balanced_accuracy", "Balanced acc."),
                  ("roc_auc", "ROC-AUC"), ("mcc", "MCC"), ("brier", "Brier"), ("log_loss", "Log-loss"))


def paper_table(baseline, defended, *, rule=None, digits=4):
    """The paper's four-row table from a baseline and a defended report.

    Parameters
    ----------
    baseline, defended : RobustnessReport
        Evaluations of the undefended and defended models under the same threat
        model (space, norm, eps).
    rule : str, optional
        Scoring rule; defaults to each report's ``primary_rule``.
    digits : int, default=4
        Decimal places in the Markdown table (``rows`` keep full precision).

    Returns
    -------
    rows : list of dict
        ``{"setting", "accuracy", "balanced_accuracy", "roc_auc", "mcc", "brier",
        "log_loss"}`` for clean baseline, clean defended, robust baseline, robust
        defended.
    markdown : str
        The same as a Markdown table, with the threat model written under it.

    Raises
    ------
    ValueError
        If the reports' threat models differ in space, norm or eps.
    """
    tb, td = baseline.threat_model, defended.threat_model
    for key in ("space", "norm", "eps"):
        if tb.get(key) != td.get(key):
            raise ValueError(f"the reports differ in {key} ({tb.get(key)!r} vs {td.get(key)!r}); "
                             "a table never mixes threat models.")
    rows = []
    for label, rep, part in (("Clean baseline", baseline, "clean"), ("Clean defended", defended, "clean"),
                             ("Robust baseline", baseline, "robust"), ("Robust defended", defended, "robust")):
        m = getattr(rep, part)[rule or rep.primary_rule]
        rows.append({"setting": label, **{k: float(m[k]) for k, _ in _TABLE_COLUMNS}})
    head = "| Setting | " + " | ".join(t for _, t in _TABLE_COLUMNS) + " |"
    sep = "|---|" + "---:|" * len(_TABLE_COLUMNS)
    lines = [head, sep]
    for r in rows:
        lines.append(f"| {r['setting']} | " + " | ".join(f"{r[k]:.{digits}f}" for k, _ in _TABLE_COLUMNS) + " |")
    lines.append("")
    lines.append(f"Threat model: {td['space']} space, {td['norm']} eps = {td['eps']}, box [0, 1]; "
                 f"baseline: {tb['protocol']} protocol ({', '.join(tb['attacks'])}); "
                 f"defended: {td['protocol']} protocol ({', '.join(td['attacks'])}, "
                 f"EOT draws {td['n_eot']}); scoring rule: {rule or defended.primary_rule}.")
    return rows, "\n".join(lines)


def baseline_checks(baseline, defended, *, near_zero=0.05):
    """Checklist item 4 (and same-threat-model) checks across two reports.

    The undefended baseline must be (nearly) fully broken by the same attack at
    the same budget; otherwise the attack, not the defence, is the weak part.
    Both reports must also share the threat model and attack strength, so their
    figures can stand in one table (see :func:`paper_table`).

    Parameters
    ----------
    baseline : RobustnessReport
        Evaluation of the undefended model.
    defended : RobustnessReport
        Evaluation of the defended model.
    near_zero : float, default=0.05
        Highest baseline robust accuracy in [0, 1] (under the baseline's
        ``primary_rule``) that passes.

    Returns
    -------
    checks : list of CheckResult
        ``baseline_near_zero`` (``value``: the baseline's robust accuracy;
        passes at or below ``near_zero``) and ``same_threat_model`` (``value``:
        the number of differing keys among ``space``, ``norm``, ``eps``,
        ``attacks``, ``apgd_n_iter``, ``apgd_n_restarts`` and
        ``square_queries``; passes at 0).

    Raises
    ------
    KeyError
        If the baseline's robust metrics lack its ``primary_rule`` or an
        accuracy.
    """
    acc = baseline.robust[baseline.primary_rule]["accuracy"]
    keys = ("space", "norm", "eps", "attacks", "apgd_n_iter", "apgd_n_restarts", "square_queries")
    diff = {k: [baseline.threat_model.get(k), defended.threat_model.get(k)] for k in keys
            if baseline.threat_model.get(k) != defended.threat_model.get(k)}
    return [CheckResult("baseline_near_zero", acc <= near_zero, acc, {"threshold": near_zero}),
            CheckResult("same_threat_model", not diff, float(len(diff)), {"differences": diff})]


# ----------------------------------------------------------------------------- the entry point


def _prepare_inputs(module, X, space, image_shape, device):
    """Turn X into the module's 4-D input for the chosen space."""
    xt = _to_tensor(X, "X").to(torch.float32)
    if xt.ndim == 2:
        if space == "pixel" or hasattr(module, "features"):
            if image_shape is None:
                side = int(round(math.sqrt(xt.shape[1])))
                if side * side != xt.shape[1]:
                    raise ValueError(f"X has {xt.shape[1]} columns, not a square image; pass image_shape=(H, W).")
                image_shape = (side, side)
            xt = xt.reshape(xt.shape[0], 1, *image_shape)
        else:
            xt = xt.reshape(xt.shape[0], 1, 1, xt.shape[1])
    elif xt.ndim == 3:
        xt = xt.unsqueeze(1)
    if xt.ndim != 4:
        raise ValueError(f"X must be 2-D (N, H*W), 3-D (N, H, W) or 4-D, got shape {tuple(X.shape)}.")
    if space == "feature" and hasattr(module, "features") and xt.shape[2] != 1:
        with torch.no_grad():
            xt = module.features(xt.to(_module_device(module, device))).detach().to(torch.float32)
        if xt.ndim == 2:
            xt = xt.reshape(xt.shape[0], 1, 1, xt.shape[1])
    return xt


def evaluate_robustness(
    model,
    X,
    y,
    *,
    eps=0.10,
    norm="Linf",
    protocol="paper",
    space="pixel",
    image_shape=None,
    n_draws=None,
    eps_grid=(0.0, 0.5),
    grid_attack_kwargs=None,
    checks=True,
    plateau=False,
    n_fd_samples=3,
    batch_size=250,
    random_state=0,
    device=None,
    checkpoint_dir=None,
    progress=True,
    **attack_kwargs,
):
    """Attack, score and sanity-check a classifier; return a :class:`RobustnessReport`.

    Parameters
    ----------
    model : sklearn Pipeline or torch.nn.Module
        A fitted sknnmfdiff pipeline is compiled with
        ``sknnmfdiff.torch_adapter.to_torch_module(model, device=device,
        space=space)``; its ``classes_`` map ``y`` to indices. A module is used
        as is (``y`` must then be class indices).
    X : array-like
        Pixel space: ``(N, H*W)`` rows (square images unless ``image_shape``), or
        ``(N, 1, H, W)``, in [0, 1]. Feature space: pixels when the module has
        ``features(x_pixels) -> (N, 1, 1, k)`` (the torch adapter provides it),
        otherwise the features themselves, ``(N, k)`` or ``(N, 1, 1, k)`` in [0, 1].
    y : array-like of shape (N,)
        Labels: values of the pipeline's ``classes_``, or class indices for a
        module.
    eps : float, default=0.10
        Budget in input units (pixel units in pixel space).
    norm : {"Linf", "L2"}, default="Linf"
        Norm of the perturbation ball.
    protocol : {"paper", "adaptive"}, default="paper"
        Attack protocol (see the module docstring).
    space : {"pixel", "feature"}, default="pixel"
        Threat model: perturb pixels, or the selected features fed to the
        purifier.
    image_shape : tuple of int, optional
        ``(H, W)`` for 2-D pixel rows.
    n_draws : int, optional
        Scoring draws; default 1 (deterministic) or 100 (randomized).
    eps_grid : sequence of float, default=(0.0, 0.5)
        Extra budgets attacked for checks 2 and 3 (the main eps is reused). Empty
        to skip (the checks are then reported as skipped).
    grid_attack_kwargs : dict, optional
        Attack settings overriding the main ones for the grid (e.g. fewer
        restarts to save time).
    checks : bool, default=True
        Run the sanity checks.
    plateau : bool, default=False
        Also run the attack-strength plateau check (checklist item 6), which
        reruns the attack with twice the iterations, restarts, queries and EOT
        draws.
    n_fd_samples : int, default=3
        Inputs used for the finite-difference gradient check.
    batch_size, random_state, device, checkpoint_dir, progress
        See :func:`run_attack`.
    **attack_kwargs
        ``n_eot``, ``n_restarts``, ``n_iter``, ``square_queries``,
        ``square_n_eot``, ``eot_batch`` (see :func:`run_attack`).

    Returns
    -------
    report : RobustnessReport
        Threat model, clean and robust metrics per scoring rule, sanity
        checks, timings and per-sample outcomes.

    Raises
    ------
    ValueError, TypeError
        Malformed inputs, labels not in ``classes_`` or unknown options.
    """
    if space not in SPACES:
        raise ValueError(f"space must be one of {SPACES}, got {space!r}.")
    allowed = {"n_eot", "n_restarts", "n_iter", "square_queries", "square_n_eot", "eot_batch"}
    unknown = set(attack_kwargs) - allowed
    if unknown:
        raise TypeError(f"unknown attack settings {sorted(unknown)}; allowed: {sorted(allowed)}.")
    t_start = time.perf_counter()
    timings = {}
    y = np.asarray(y)
    if isinstance(model, nn.Module):
        module = model
    else:
        from sknnmfdiff.torch_adapter import to_torch_module

        module = to_torch_module(model, device=device, space=space)
        classes = getattr(model, "classes_", None)
        if classes is not None:
            classes = np.asarray(classes)
            missing = np.setdiff1d(np.unique(y), classes)
            if missing.size:
                raise ValueError(f"y holds labels {missing.tolist()} not in the pipeline's classes_ {classes.tolist()}.")
            y = np.searchsorted(classes, y) if np.all(classes[:-1] <= classes[1:]) else \
                np.array([int(np.flatnonzero(classes == v)[0]) for v in y])
    mod_space = getattr(module, "space", space)
    if mod_space != space:
        raise ValueError(f"space={space!r} but the module attacks {mod_space!r} inputs; "
                         f"compile it with to_torch_module(..., space={space!r}).")
    module.eval()
    dev = _module_device(module, device)
    x = _prepare_inputs(module, X, space, image_shape, dev)
    xt, yt = _check_inputs(x, y, device=dev)

    t0 = time.perf_counter()
    x_adv, details = run_attack(module, xt, yt, eps=eps, norm=norm, protocol=protocol,
                                batch_size=batch_size, random_state=random_state, device=dev,
                                checkpoint_dir=checkpoint_dir, progress=progress,
                                return_details=True, **attack_kwargs)
    timings["attack"] = time.perf_counter() - t0
    cfg = dict(details["config"], space=space)
    if n_draws is None:
        n_draws = 100 if cfg["randomized"] else 1
    cfg["scoring_draws"] = int(n_draws)

    t0 = time.perf_counter()
    clean_s = score(module, xt, yt, n_draws=n_draws, batch_size=batch_size, random_state=random_state, device=dev)
    timings["clean_scoring"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    rob_s = score(module, x_adv, yt, n_draws=n_draws, batch_size=batch_size, random_state=random_state, device=dev)
    timings["robust_scoring"] = time.perf_counter() - t0

    flags, check_list, grid = {}, [], []
    if checks:
        t0 = time.perf_counter()
        try:
            flags = autoattack_flags(module, xt, yt, batch_size=batch_size, attacks=cfg["attacks"], device=dev)
        except Exception as exc:  # noqa: BLE001
            _log.warning("AutoAttack flag checks raised %s", exc)
            flags = None
        check_list, grid = run_sanity_checks(
            module, xt, yt, x_adv, cfg=cfg, clean_scores=clean_s, robust_scores=rob_s, flags=flags,
            eps_grid=eps_grid, grid_attack_kwargs=grid_attack_kwargs, n_draws=n_draws,
            n_fd_samples=n_fd_samples, attack_counts=details["counts"], plateau=plateau,
            batch_size=batch_size,
            random_state=random_state, device=dev)
        bare_fn = getattr(module, "without_purifier", None)
        if cfg.get("randomized") and bare_fn is not None:
            check_list.append(_safe_check(
                "whitebox_at_least_as_strong_as_transfer", check_transfer, module, bare_fn(),
                xt, yt, robust_accuracy=rob_s["rules"]["mean_probability"]["accuracy"], eps=eps,
                norm=norm, n_draws=n_draws, batch_size=batch_size, random_state=random_state,
                device=dev))
        timings["checks"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_start
    timings["attack_batches"] = details["batch_seconds"]

    report = RobustnessReport(
        threat_model=cfg,
        clean=clean_s["rules"],
        robust=rob_s["rules"],
        checks=[dataclasses.asdict(c) for c in check_list],
        timings=timings,
        per_sample={
            "y": yt.cpu().numpy(),
            "clean_correct": clean_s["correct"],
            "robust_correct": rob_s["correct"],
            "broken_by": details["broken_by"],
        },
        autoattack_flags=flags or {},
        eps_grid=grid,
        attack_counts=details["counts"],
    )
    report = RobustnessReport.from_dict(report.to_dict())
    _log.info("%s", report.summary())
    return report
