"""Sanity checks of the model under attack: exact gradients, batch invariance, and
AutoAttack's own flags (checklist items on obfuscated gradients and randomness)."""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F

from ._check_result import CheckResult
from ._common import (
    _check_inputs,
    _guard_global_state,
    _module_device,
    _reseed,
    _seed_int,
    _small_ops,
    _to_tensor,
)


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
    with _guard_global_state(dev), _small_ops(module):
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
    with _guard_global_state(dev), torch.no_grad(), _small_ops(module):
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
