"""The sanity checks of the evaluation checklist run together on one evaluation, and
the baseline checks across two."""

from __future__ import annotations

import logging

import numpy as np
import torch

from ._attack import run_attack
from ._attack_checks import (
    check_attack_plateau,
    check_eps_grid,
    check_perturbation,
    check_random_noise,
    check_square_vs_whitebox,
)
from ._check_result import CheckResult, _safe_check
from ._common import _to_tensor, timed
from ._model_checks import check_batch_invariance, check_flags, check_gradients
from ._scoring import score

_log = logging.getLogger(__name__)


#: Attack settings at eps = 0 (at most): the attack cannot move the inputs, so a short
#: run checks the same thing (the inputs come back unchanged and score as clean).
_ZERO_BUDGET = {"n_restarts": 1, "n_iter": 10, "square_queries": 10}


def _attack_rest(module, x, y, x_adv, still_correct, eps, **kw):
    """Adversarial inputs at ``eps`` larger than the main budget: the main attack's
    ``x_adv`` where it already broke the sample (it lies in the larger ball too), a
    fresh attack of the remaining samples elsewhere."""
    xt, xa = _to_tensor(x, "x").float(), _to_tensor(x_adv, "x_adv").float().clone()
    rest = torch.from_numpy(np.flatnonzero(np.asarray(still_correct)))
    if rest.numel():
        yt = _to_tensor(y, "y")
        xr = run_attack(module, xt[rest], yt[rest], eps=eps, **kw)
        xa[rest] = _to_tensor(xr, "x").float().to(xa.device)
    return xa, int(rest.numel())


def _same_inputs(xa, x):
    """Whether the attacked inputs equal the clean ones (as float32), bit for bit."""
    return bool(np.array_equal(np.asarray(_to_tensor(xa, "x").float().cpu()),
                               np.asarray(_to_tensor(x, "x").float().cpu())))


def _eps_grid_checks(module, x, y, *, cfg, clean_scores, rob_m, eps_grid, grid_attack_kwargs,
                     n_draws, batch_size, random_state, device, x_adv=None, robust_correct=None):
    """Attack and score every grid eps (the main one reuses the main result); returns
    the three grid checks (items 2 and 3) and the grid rows.

    Budgets above the main ``eps`` build on the main attack when ``x_adv`` and
    ``robust_correct`` (per-sample correctness under the mean-probability rule) are
    given: only the samples it left correct are attacked again (see
    :func:`run_sanity_checks`)."""
    eps, norm = cfg["eps"], cfg["norm"]
    clean_m = clean_scores["rules"]["mean_probability"]
    grid = []
    attack_kwargs = {
        "n_eot": cfg["n_eot"], "n_restarts": cfg["apgd_n_restarts"], "n_iter": cfg["apgd_n_iter"],
        "square_queries": cfg["square_queries"], "square_n_eot": cfg["square_n_eot"],
        "eot_batch": cfg["eot_batch"],
        # a config written before schedules existed ran the sequential cascade
        "schedule": cfg.get("schedule", "sequential"),
    }
    attack_kwargs.update(grid_attack_kwargs or {})
    for e in sorted(set(float(v) for v in eps_grid) | {eps}):
        try:
            if e == eps:
                acc, ci, reused = rob_m["accuracy"], rob_m["accuracy_ci"], False
                # At eps = 0 the main attack itself must leave the inputs as they were.
                same = None if e != 0 or x_adv is None else _same_inputs(x_adv, x)
            else:
                kw = dict(norm=norm, protocol=cfg["protocol"], batch_size=batch_size,
                          random_state=random_state, device=device, progress=False,
                          **attack_kwargs)
                nested = e > eps and x_adv is not None and robust_correct is not None
                if nested:
                    xa, n_attacked = _attack_rest(module, x, y, x_adv, robust_correct, e, **kw)
                else:
                    if e == 0:  # nothing to search in a ball of radius 0: the path only
                        kw.update({k: v if kw.get(k) is None else min(int(kw[k]), v)
                                   for k, v in _ZERO_BUDGET.items()})
                    xa = run_attack(module, x, y, eps=e, **kw)
                same = _same_inputs(xa, x)
                reused = same and clean_scores.get("n_draws") == n_draws
                if reused:
                    # The attack left the inputs as they were: scoring them with the
                    # same draws gives the clean scores, bit for bit.
                    m = clean_m
                else:
                    m = score(module, xa, y, n_draws=n_draws, batch_size=batch_size,
                              random_state=random_state, device=device)["rules"]["mean_probability"]
                acc, ci = m["accuracy"], m["accuracy_ci"]
            row = {"eps": e, "accuracy": acc, "accuracy_ci": ci, "identical_inputs": same}
            if e != eps and nested:
                row["builds_on_main_attack"], row["n_attacked"] = True, n_attacked
            if reused:
                row["clean_scores_reused"] = True
            grid.append(row)
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
    return [c0, c1, c2], grid


#: Default cap on the samples the nested plateau check attacks again.
PLATEAU_MAX_SAMPLES = 32


def run_sanity_checks(module, x, y, x_adv, *, cfg, clean_scores, robust_scores, flags=None,
                      eps_grid=(), grid_attack_kwargs=None, n_draws=1, n_fd_samples=3,
                      attack_counts=None, plateau=False, plateau_max_samples=PLATEAU_MAX_SAMPLES,
                      batch_size=250, random_state=0, device=None, timings=None):
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
        :func:`score` output on ``x`` with these ``n_draws``, ``batch_size`` and
        ``random_state`` (as :func:`evaluate_robustness` computes it). A grid
        attack that leaves the inputs unchanged (eps = 0) reuses it instead of
        scoring the same inputs with the same draws again.
    robust_scores : dict
        :func:`score` output on ``x_adv``.
    flags : dict, optional
        From :func:`autoattack_flags`; ``None`` reports ``autoattack_flags`` as
        skipped.
    eps_grid : sequence of float, default=()
        Extra budgets in input units attacked for items 2 and 3; the main
        ``eps`` is always added and reuses the main result. Budgets above the
        main ``eps`` build on it: a sample the main attack broke (mean-probability
        rule of ``robust_scores``) keeps its ``x_adv``, which lies in the larger
        ball too, and only the others are attacked at the larger budget, so the
        large-eps check asks exactly whether the attack breaks what the main one
        left. Robust accuracy at those budgets is then at most the main figure
        by construction: the monotonicity check tests the budgets below the main
        one, and the larger budgets among themselves. Budgets below the main one
        attack every sample afresh; at eps = 0, where no input can move, with at
        most 1 restart, 10 iterations and 10 Square queries (the check asks only
        that the inputs come back unchanged and score as clean). Empty reports
        the three grid checks as skipped. An attack that raises at one eps marks
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
    plateau : {"auto", True, "full", False}, default=False
        Check that a stronger attack does not lower the figure further
        (:func:`check_attack_plateau`). ``True``: its nested form, one more APGD
        restart with twice the iterations and EOT draws on the samples the main
        attack left correct (mean-probability rule of ``robust_scores``), at most
        ``plateau_max_samples`` of them; ``"auto"``: the same for a randomized
        model (``cfg["randomized"]``), skipped for a deterministic one; ``"full"``:
        the whole attack twice as strong on every sample (about eight main
        attacks); ``False``: reported as skipped.
    plateau_max_samples : int or None, default=32
        Cap of the nested plateau check (``None``: no cap).
    batch_size : int, default=250
        Samples per attack batch and per forward pass.
    random_state : int, default=0
        Seed of the grid attacks (passed to :func:`run_attack` as is, as
        :func:`evaluate_robustness` does for the main attack), of the scoring
        draws and of every check's random draws.
    device : str or torch.device, optional
        Defaults to the device of the module's parameters.
    timings : dict, optional
        Receives the wall time in seconds of each part: ``"eps_grid"`` (the grid
        attacks and their scoring), ``"gradients"``, ``"random_noise"``,
        ``"plateau"`` and ``"batch_invariance"``.

    Returns
    -------
    checks : list of CheckResult
        One record per check, in the order above.
    grid : list of dict
        Per eps (ascending): ``"eps"``, ``"accuracy"`` and ``"accuracy_ci"``
        (mean-probability rule), ``"identical_inputs"`` (whether the attack
        left the inputs unchanged; ``None`` for a main eps other than 0) or
        ``"error"``;
        ``"clean_scores_reused": True`` where the clean scores stood in for
        scoring unchanged inputs; ``"builds_on_main_attack": True`` and
        ``"n_attacked"`` (samples attacked afresh) above the main eps.
        Empty when ``eps_grid`` is empty.

    Raises
    ------
    ValueError
        If ``plateau`` is not one of its values, or ``cfg``, ``clean_scores`` or
        ``robust_scores`` lack an entry this function reads itself (``cfg["eps"]``,
        ``cfg["norm"]``, ``cfg["randomized"]``, the ``"mean_probability"`` rule and
        its ``"accuracy"``, ``"accuracy_ci"`` and ``"n"``; with an ``eps_grid``
        also the attack settings of ``cfg``); the message names what is missing.
        Only the checks themselves are guarded.
    """
    _check_plateau_option(plateau)
    _check_sanity_inputs(cfg, clean_scores, robust_scores, grid=bool(eps_grid))
    checks = []
    eps, norm = cfg["eps"], cfg["norm"]
    checks.append(_safe_check("perturbation_bounds", check_perturbation, x, x_adv, eps, norm))
    clean_m = clean_scores["rules"]["mean_probability"]
    rob_m = robust_scores["rules"]["mean_probability"]
    grid = []
    if eps_grid:
        with timed(timings, "eps_grid"):
            grid_checks, grid = _eps_grid_checks(
                module, x, y, cfg=cfg, clean_scores=clean_scores, rob_m=rob_m, eps_grid=eps_grid,
                grid_attack_kwargs=grid_attack_kwargs, n_draws=n_draws, batch_size=batch_size,
                random_state=random_state, device=device, x_adv=x_adv,
                robust_correct=robust_scores.get("correct", {}).get("mean_probability"))
        checks.extend(grid_checks)
    else:
        for name in ("eps_zero_equals_clean", "robust_accuracy_non_increasing_in_eps",
                     "large_eps_drives_accuracy_to_zero"):
            checks.append(CheckResult(name, None, None, {"reason": "eps_grid empty"}))

    def _grads():
        return check_gradients(module, x, y, n_fd_samples=n_fd_samples, batch_size=batch_size,
                               random_state=random_state, device=device)

    try:
        with timed(timings, "gradients"):
            checks.extend(_grads())
    except Exception as exc:  # noqa: BLE001
        for name in ("gradient_nonzero", "gradient_finite_differences"):
            checks.append(CheckResult(name, False, None, {"error": f"{type(exc).__name__}: {exc}"}, "error"))
    with timed(timings, "random_noise"):
        checks.append(_safe_check(
            "random_noise_weaker_than_attack", check_random_noise, module, x, y, eps=eps, norm=norm,
            clean_accuracy=clean_m["accuracy"], robust_accuracy=rob_m["accuracy"], n_draws=n_draws,
            batch_size=batch_size, random_state=random_state, device=device))
    run_plateau = bool(cfg["randomized"]) if plateau == "auto" else plateau
    if run_plateau:
        nested = plateau != "full"

        def _plateau():
            return check_attack_plateau(
                module, x, y, cfg=cfg, robust_accuracy=rob_m["accuracy"],
                still_correct=_still_correct(robust_scores) if nested else None,
                max_samples=plateau_max_samples if nested else None, n_draws=n_draws,
                batch_size=batch_size, random_state=random_state, device=device)

        with timed(timings, "plateau"):
            checks.append(_safe_check("attack_strength_plateau", _plateau))
    else:
        reason = ("deterministic model: plateau='auto' runs it for randomized models only "
                  "(pass plateau=True to run it)" if plateau == "auto"
                  else "not requested (plateau=False)")
        checks.append(CheckResult("attack_strength_plateau", None, None, {"reason": reason}))
    if attack_counts is not None:
        checks.append(_safe_check("whitebox_at_least_as_strong_as_square", check_square_vs_whitebox,
                                  attack_counts, clean_m["n"]))
    if flags is not None:
        checks.append(_safe_check("autoattack_flags", check_flags, flags, cfg))
    else:
        checks.append(CheckResult("autoattack_flags", None, None, {"reason": "flags not computed"}))
    with timed(timings, "batch_invariance"):
        checks.append(_safe_check("batch_size_invariance", check_batch_invariance, module, x,
                                  random_state=random_state, device=device))
    for c in checks:
        if c.passed is False and c.status != "error":
            _log.warning("sanity check %s failed (value=%s)", c.name, c.value)
    return checks, grid


PLATEAU_OPTIONS = ("auto", True, "full", False)


def _check_plateau_option(plateau):
    if not any(plateau is v or (isinstance(v, str) and plateau == v) for v in PLATEAU_OPTIONS):
        raise ValueError(f"plateau must be one of {PLATEAU_OPTIONS}, got {plateau!r}.")


#: Entries of ``cfg`` that run_sanity_checks reads itself, and those the eps grid reads.
_CFG_KEYS = ("eps", "norm", "randomized")
_CFG_GRID_KEYS = ("protocol", "n_eot", "apgd_n_restarts", "apgd_n_iter", "square_queries",
                  "square_n_eot", "eot_batch")


def _check_sanity_inputs(cfg, clean_scores, robust_scores, *, grid):
    """Raise ValueError naming every entry of the inputs that run_sanity_checks reads
    itself and that is missing (instead of a bare KeyError deep inside)."""
    keys = _CFG_KEYS + (_CFG_GRID_KEYS if grid else ())
    missing = [f"cfg[{k!r}]" for k in keys if not isinstance(cfg, dict) or k not in cfg]
    for name, scores in (("clean_scores", clean_scores), ("robust_scores", robust_scores)):
        rules = scores.get("rules") if isinstance(scores, dict) else None
        m = rules.get("mean_probability") if isinstance(rules, dict) else None
        if not isinstance(m, dict):
            missing.append(f"{name}['rules']['mean_probability']")
            continue
        missing += [f"{name}['rules']['mean_probability'][{k!r}]"
                    for k in ("accuracy", "accuracy_ci", "n") if k not in m]
    if missing:
        raise ValueError("run_sanity_checks: malformed inputs, missing "
                         + ", ".join(missing)
                         + " (cfg comes from resolve_attack_config, the scores from score()).")


def _still_correct(robust_scores):
    """Per-sample correctness on ``x_adv`` under the mean-probability rule."""
    correct = robust_scores.get("correct", {}).get("mean_probability")
    if correct is None:
        raise ValueError("robust_scores has no per-sample 'correct' entry for the "
                         "'mean_probability' rule, which the nested plateau check needs "
                         "(score() gives it).")
    return correct


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
