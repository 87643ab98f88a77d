"""The entry point: :func:`evaluate_robustness` runs the whole protocol on one model."""

from __future__ import annotations

import dataclasses
import logging
import math
import time

import numpy as np
import torch
from torch import nn

from ._attack import run_attack
from ._attack_checks import check_transfer
from ._autoattack import autoattack_flags
from ._check_result import _safe_check
from ._common import SPACES, _check_inputs, _module_device, _small_ops, _to_tensor, timed
from ._report import RobustnessReport, describe_model
from ._sanity import PLATEAU_MAX_SAMPLES, _check_plateau_option, run_sanity_checks
from ._scoring import score

_log = logging.getLogger(__name__)


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


_ATTACK_SETTINGS = {"n_eot", "n_restarts", "n_iter", "square_queries", "square_n_eot", "eot_batch",
                    "schedule"}


def _check_options(space, attack_kwargs, plateau):
    if space not in SPACES:
        raise ValueError(f"space must be one of {SPACES}, got {space!r}.")
    _check_plateau_option(plateau)
    unknown = set(attack_kwargs) - _ATTACK_SETTINGS
    if unknown:
        raise TypeError(f"unknown attack settings {sorted(unknown)}; allowed: {sorted(_ATTACK_SETTINGS)}.")


def _as_module(model, y, space, device):
    """The model as a torch module and ``y`` as its class indices.

    A fitted pipeline is compiled with :func:`~sknnmfdiff.torch_adapter.to_torch_module`
    and its ``classes_`` map ``y``; a module is used as is.
    """
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
    return module, y


def _sanity_checks(module, xt, yt, x_adv, *, cfg, clean_s, rob_s, details, eps, norm, eps_grid,
                   grid_attack_kwargs, n_draws, n_fd_samples, plateau, plateau_max_samples,
                   batch_size, random_state, device, parts):
    """AutoAttack's flags, the checklist's checks and, for a randomized model with a bare
    classifier, white-box against transfer; returns ``(flags, checks, eps_grid)``. The
    seconds of each part are added to ``parts``."""
    try:
        with timed(parts, "autoattack_flags"), _small_ops(module):
            flags = autoattack_flags(module, xt, yt, batch_size=batch_size,
                                     attacks=cfg["attacks"], device=device)
    except Exception as exc:  # noqa: BLE001
        _log.warning("AutoAttack flag checks raised %s", exc)
        flags = None
    check_list, grid = run_sanity_checks(
        module, xt, yt, x_adv, cfg=cfg, clean_scores=clean_s, robust_scores=rob_s, flags=flags,
        eps_grid=eps_grid, grid_attack_kwargs=grid_attack_kwargs, n_draws=n_draws,
        n_fd_samples=n_fd_samples, attack_counts=details["counts"], plateau=plateau,
        plateau_max_samples=plateau_max_samples, batch_size=batch_size,
        random_state=random_state, device=device, timings=parts)
    bare_fn = getattr(module, "without_purifier", None)
    if cfg.get("randomized") and bare_fn is not None:
        with timed(parts, "transfer"):
            check_list.append(_safe_check(
                "whitebox_at_least_as_strong_as_transfer", check_transfer, module, bare_fn(),
                xt, yt, robust_accuracy=rob_s["rules"]["mean_probability"]["accuracy"], eps=eps,
                norm=norm, n_draws=n_draws, batch_size=batch_size, random_state=random_state,
                device=device))
    return flags, check_list, grid


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
    plateau="auto",
    plateau_max_samples=PLATEAU_MAX_SAMPLES,
    n_fd_samples=3,
    batch_size=250,
    random_state=0,
    device=None,
    checkpoint_dir=None,
    progress=True,
    return_adversarial=False,
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
        Attack protocol (see :mod:`sknnmfdiff.evaluation`).
    space : {"pixel", "feature"}, default="pixel"
        Threat model: perturb pixels, or the selected features fed to the
        purifier.
    image_shape : tuple of int, optional
        ``(H, W)`` for 2-D pixel rows.
    n_draws : int, optional
        Scoring draws; default 1 (deterministic) or 100 (randomized).
    eps_grid : sequence of float, default=(0.0, 0.5)
        Extra budgets attacked for checks 2 and 3 (the main eps is reused; budgets
        above it attack only the samples the main attack left correct, see
        :func:`run_sanity_checks`). Empty to skip (the checks are then reported
        as skipped).
    grid_attack_kwargs : dict, optional
        Attack settings overriding the main ones for the grid (e.g. fewer
        restarts to save time).
    checks : bool, default=True
        Run the sanity checks.
    plateau : {"auto", True, "full", False}, default="auto"
        The attack-strength plateau check (checklist item 6): does a stronger
        attack lower the robust figure further? ``"auto"`` runs its nested form
        for a randomized model and reports it skipped for a deterministic one;
        ``True`` runs the nested form for any model: one more APGD restart with
        twice the iterations and EOT draws (and another seed) on the samples the
        main attack left correct, at most ``plateau_max_samples`` of them, so it
        costs nothing when the attack broke every sample; ``"full"`` runs the
        whole attack again with twice the iterations, restarts, Square queries
        and EOT draws on every sample (about eight main attacks); ``False`` skips
        it. See :func:`check_attack_plateau`.
    plateau_max_samples : int or None, default=32
        Most samples the nested plateau check attacks again (drawn at random when
        more were left correct; the drop is then extrapolated); ``None``: all.
    n_fd_samples : int, default=3
        Inputs used for the finite-difference gradient check.
    batch_size, random_state, device, checkpoint_dir, progress
        See :func:`run_attack`.
    return_adversarial : bool, default=False
        Also return the adversarial inputs of the main eps (e.g. to score them with
        another rule, such as a smoothed classifier's PREDICT against its certificate,
        :func:`check_certified_bound`).
    **attack_kwargs
        ``n_eot``, ``n_restarts``, ``n_iter``, ``square_queries``,
        ``square_n_eot``, ``eot_batch``, ``schedule`` (see :func:`run_attack`).

    Returns
    -------
    report : RobustnessReport
        The model attacked (every step and its parameters, the purifier's
        settings), threat model, clean and robust metrics per scoring rule,
        sanity checks, timings and per-sample outcomes.
    x_adv : ndarray of float32
        Only with ``return_adversarial=True``: the adversarial inputs, in the
        attacked space and shape ((N, 1, H, W) pixels, or (N, 1, 1, k) features).

    Raises
    ------
    ValueError, TypeError
        Malformed inputs, labels not in ``classes_`` or unknown options.
    """
    _check_options(space, attack_kwargs, plateau)
    t_start = time.perf_counter()
    timings = {}

    # 1. The model as one torch module; inputs and labels in its terms.
    module, y = _as_module(model, y, space, device)
    module.eval()
    dev = _module_device(module, device)
    x = _prepare_inputs(module, X, space, image_shape, dev)
    xt, yt = _check_inputs(x, y, device=dev)

    # 2. The attack, batch by batch (checkpointed).
    with timed(timings, "attack"):
        x_adv, details = run_attack(module, xt, yt, eps=eps, norm=norm, protocol=protocol,
                                    batch_size=batch_size, random_state=random_state, device=dev,
                                    checkpoint_dir=checkpoint_dir, progress=progress,
                                    return_details=True, **attack_kwargs)
    cfg = dict(details["config"], space=space)
    if n_draws is None:
        n_draws = 100 if cfg["randomized"] else 1
    cfg["scoring_draws"] = int(n_draws)

    # 3. Clean and adversarial inputs scored under the same draws.
    with timed(timings, "clean_scoring"):
        clean_s = score(module, xt, yt, n_draws=n_draws, batch_size=batch_size,
                        random_state=random_state, device=dev)
    with timed(timings, "robust_scoring"):
        rob_s = score(module, x_adv, yt, n_draws=n_draws, batch_size=batch_size,
                      random_state=random_state, device=dev)

    # 4. The sanity checks of the evaluation checklist.
    flags, check_list, grid = {}, [], []
    if checks:
        with timed(timings, "checks"):
            flags, check_list, grid = _sanity_checks(
                module, xt, yt, x_adv, cfg=cfg, clean_s=clean_s, rob_s=rob_s, details=details,
                eps=eps, norm=norm, eps_grid=eps_grid, grid_attack_kwargs=grid_attack_kwargs,
                n_draws=n_draws, n_fd_samples=n_fd_samples, plateau=plateau,
                plateau_max_samples=plateau_max_samples, batch_size=batch_size,
                random_state=random_state, device=dev,
                parts=timings.setdefault("checks_parts", {}))
    timings["total"] = time.perf_counter() - t_start
    timings["attack_batches"] = details["batch_seconds"]
    stage_seconds = {}
    for rec in details.get("stages", []):
        stage_seconds[rec["stage"]] = stage_seconds.get(rec["stage"], 0.0) + rec["seconds"]
    timings["attack_stages"] = stage_seconds

    # 5. The report, normalised through its strict-JSON form.
    report = RobustnessReport(
        model=describe_model(model, module),
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
    if return_adversarial:
        return report, np.asarray(x_adv.detach().cpu() if hasattr(x_adv, "detach") else x_adv,
                                  dtype=np.float32)
    return report
