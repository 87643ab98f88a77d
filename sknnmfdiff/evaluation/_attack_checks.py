"""Sanity checks of the attack: perturbation bounds, random noise, the eps grid,
Square against white-box, attack-strength plateau and transfer (is the attack strong
enough for the figure it gives?)."""

from __future__ import annotations

import collections
import hashlib
import logging

import numpy as np
import torch

from ._attack import run_attack
from ._check_result import CheckResult
from ._common import _check_inputs, _module_device, _seed_int, _state_digest, _to_tensor
from ._scoring import _wilson, predict_proba_draws, score

_log = logging.getLogger(__name__)

#: Transfer results of recent calls (:func:`check_transfer`), most recent last.
_TRANSFER_CACHE = collections.OrderedDict()
_TRANSFER_CACHE_SIZE = 4


def _model_key(module):
    """Digest of a module's weights, buffers and structure (its repr holds the
    purifier's ``t``, ``n_eot`` and ``antithetic``)."""
    return hashlib.sha256((_state_digest(module) + repr(module)).encode()).hexdigest()


def _cached(key, compute):
    """``compute()``, or its result of an earlier call with the same ``key``."""
    if key in _TRANSFER_CACHE:
        _TRANSFER_CACHE.move_to_end(key)
        _log.debug("transfer check: reusing the result of an identical earlier call")
        return _TRANSFER_CACHE[key]
    value = compute()
    _TRANSFER_CACHE[key] = value
    while len(_TRANSFER_CACHE) > _TRANSFER_CACHE_SIZE:
        _TRANSFER_CACHE.popitem(last=False)
    return value


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
        deterministic model; missing or ``None``: not compared, the check then
        decides on the accuracies alone and says so in its ``rule``).
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
        ``eps_zero_equals_clean``; skipped only when 0 is not in the grid. For
        a randomized model it passes when either interval holds the other
        accuracy; for a deterministic one the accuracies must be equal and the
        inputs identical (when compared).
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
        same = zero[0].get("identical_inputs")
        ok = zero[0]["accuracy"] == clean and same is not False
        c0 = CheckResult("eps_zero_equals_clean", ok, zero[0]["accuracy"], {
            "clean": clean, "rule": "exact" if same is not None else
            "exact (accuracies only: the inputs were not compared)", "identical_inputs": same})
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


def check_attack_plateau(module, x, y, *, cfg, robust_accuracy, factor=2, still_correct=None,
                         max_samples=None, n_draws=1, batch_size=250, random_state=0,
                         device=None):
    """Checklist item 6: a stronger attack must not lower the figure much further.

    Attacks again with a stronger attack and another seed, and fails (the figure
    is still falling: raise the attack strength) when that lowers the robust
    accuracy by more than one sample (deterministic) or the half-width of the
    95 % Wilson interval of the main figure (randomized). Two forms:

    - full (``still_correct=None``): the whole attack again with ``factor`` times
      the iterations, restarts, Square queries and (randomized, adaptive) EOT
      draws, on every sample; costs about ``factor**3`` main attacks.
    - nested (``still_correct`` given; what :func:`evaluate_robustness` runs by
      default for a randomized model): one more APGD restart, with ``factor``
      times the main attack's iterations and EOT draws, on the samples the main
      attack left correct only, at most ``max_samples`` of them (drawn at random
      when there are more). A sample the main attack broke stays broken, so
      the combined attack (the main one plus that restart) is strictly stronger
      and its figure is the main one minus the samples the restart breaks; when
      only a draw of the remaining samples was attacked, the drop is estimated
      from it (the fraction broken times the samples left correct,
      ``extrapolated`` in the details). Square runs a single query there (its
      strength is checklist item 8, :func:`check_square_vs_whitebox`). The cost
      grows with the samples left correct, not with ``N``, and is nothing when the
      main attack broke every sample; the main attack spent ``n_restarts`` full
      restarts and Square on those same samples, so the restart costs a fraction
      of it (measured in ``benchmarks/bench_attack.py``).

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
        Multiplier (>= 1) of the attack settings above (nested form: of the
        iterations and EOT draws of the extra restart). EOT draws only take effect
        for the adaptive protocol on a randomized model.
    still_correct : array-like of shape (N,), bool, optional
        Which samples the main attack left correct (mean-probability rule of the
        main scores); selects the nested form.
    max_samples : int or None, default=None
        Nested form: most samples attacked again (>= 1); ``None`` attacks all
        that are left correct.
    n_draws : int, default=1
        Forward passes averaged when scoring the stronger attack's inputs
        (mean-probability rule).
    batch_size : int, default=250
        Samples attacked and scored together.
    random_state : int, default=0
        The stronger attack is seeded with ``SeedSequence([random_state,
        31337])`` (a seed other than the main attack's), the draw of samples with
        ``SeedSequence([random_state, 4241])``; scoring uses ``random_state``
        itself.
    device : str or torch.device, optional
        Defaults to the device of the module's parameters.

    Returns
    -------
    result : CheckResult
        ``attack_strength_plateau``: ``value`` is the stronger attack's robust
        accuracy (estimated when extrapolated), in [0, 1]; ``details`` holds the
        form, the drop, the tolerance, the settings and, nested, the counts
        (``n``, ``n_still_correct``, ``n_attacked``, ``n_broken``,
        ``extrapolated``).

    Raises
    ------
    KeyError
        If ``cfg`` lacks one of the keys listed above.
    ValueError
        If ``still_correct`` does not have one entry per sample or ``max_samples``
        is below 1; from :func:`run_attack`: malformed inputs, or ``factor``
        making a setting smaller than 1.
    TypeError
        From :func:`run_attack`: inputs of an unsupported type.

    References
    ----------
    N. Carlini, A. Athalye, N. Papernot, W. Brendel, J. Rauber, D. Tsipras,
    I. Goodfellow, A. Madry and A. Kurakin, "On evaluating adversarial
    robustness", arXiv:1902.06705, 2019.
    """
    if still_correct is None:
        strong = {
            "n_iter": cfg["apgd_n_iter"] * factor,
            "n_restarts": cfg["apgd_n_restarts"] * factor,
            "square_queries": cfg["square_queries"] * factor,
            "n_eot": cfg["n_eot"] * factor,
            "square_n_eot": cfg["square_n_eot"] * factor,
        }
    else:  # one more restart, longer and with more EOT draws; APGD only
        strong = {"n_iter": cfg["apgd_n_iter"] * factor, "n_restarts": 1,
                  "square_queries": 1, "n_eot": cfg["n_eot"] * factor, "square_n_eot": 1}
    # The full form keeps the main attack's schedule; the nested form is one restart.
    # (a config written before schedules existed ran the sequential cascade)
    schedule = cfg.get("schedule", "sequential") if still_correct is None else "sequential"
    kw = dict(eps=cfg["eps"], norm=cfg["norm"], protocol=cfg["protocol"], batch_size=batch_size,
              random_state=_seed_int(random_state, 31337), device=device, progress=False,
              schedule=schedule, **strong)
    xt, yt = _to_tensor(x, "x"), _to_tensor(y, "y")
    n = int(xt.shape[0])
    details = {"stronger_settings": strong, "factor": factor}
    if still_correct is None:
        xa = run_attack(module, xt, yt, **kw)
        s = score(module, xa, yt, n_draws=n_draws, batch_size=batch_size,
                  random_state=random_state, device=device)["rules"]["mean_probability"]
        stronger = s["accuracy"]
        details["form"] = "full"
    else:
        ok = np.asarray(_to_tensor(still_correct, "still_correct").cpu()).astype(bool).ravel()
        if ok.shape[0] != n:
            raise ValueError(f"still_correct has {ok.shape[0]} entries for {n} samples.")
        if max_samples is not None and int(max_samples) < 1:
            raise ValueError(f"max_samples must be >= 1 or None, got {max_samples!r}.")
        rest = np.flatnonzero(ok)
        pick = rest
        if max_samples is not None and rest.size > int(max_samples):
            rng = np.random.default_rng(_seed_int(random_state, 4241))
            pick = np.sort(rng.choice(rest, int(max_samples), replace=False))
        n_broken = 0
        if pick.size:
            idx = torch.from_numpy(pick)
            xa = run_attack(module, xt[idx], yt[idx], **kw)
            # the mean-probability rule, as score() applies it (no metrics of the subset)
            P = predict_proba_draws(module, xa, n_draws=n_draws, batch_size=batch_size,
                                    random_state=random_state, device=device)
            n_broken = int((P.mean(axis=0).argmax(axis=1) != yt[idx].cpu().numpy()).sum())
        drop_est = (n_broken / pick.size) * rest.size / n if pick.size else 0.0
        stronger = robust_accuracy - drop_est
        details.update({"form": "nested", "n": n, "n_still_correct": int(rest.size),
                        "n_attacked": int(pick.size), "n_broken": n_broken,
                        "extrapolated": bool(pick.size < rest.size),
                        "max_samples": None if max_samples is None else int(max_samples)})
    tol = 1.0 / n if n else 0.0
    if cfg["randomized"] and n:
        lo, hi = _wilson(round(robust_accuracy * n), n, 0.95)
        tol = max(tol, (hi - lo) / 2)
    drop = robust_accuracy - stronger
    details.update({"main_accuracy": robust_accuracy, "stronger_accuracy": stronger,
                    "drop": drop, "tolerance": tol})
    return CheckResult("attack_strength_plateau", bool(drop <= tol + 1e-12), stronger, details)


def check_transfer(module, bare, x, y, *, robust_accuracy, eps, norm="Linf", n_draws=100,
                   batch_size=250, random_state=0, device=None, confidence=0.95):
    """Checklist item 8: the white-box attack is at least as strong as transfer.

    Attacks the bare model (the defended pipeline without its purifier, a
    deterministic proxy) with the paper protocol, then scores the defended
    module on those inputs with ``n_draws`` fresh draws. Attacking a proxy and
    purifying afterwards is transfer, not white-box (Tramer et al. 2020); a
    white-box robust accuracy above the transfer one means the white-box attack
    is too weak.

    Both results (the transferred inputs and their scores) are kept for the
    process's last few calls, keyed by digests of the two modules' weights,
    buffers and structure, of the inputs and of every setting: a second
    evaluation of the same model on the same inputs (the study's paper and
    adaptive protocols in one threat model) reuses them instead of repeating
    identical, deterministic work.

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
    dev = _module_device(module, device)
    xt, yt = _check_inputs(x, y, device=dev)
    h = hashlib.sha256()
    h.update(xt.cpu().numpy().tobytes())
    h.update(yt.cpu().numpy().tobytes())
    setting = repr((tuple(xt.shape), float(eps), norm, int(batch_size), int(random_state),
                    str(dev)))
    attack_key = ("attack", _model_key(bare), h.hexdigest(), setting)
    x_tr = _cached(attack_key, lambda: run_attack(
        bare, xt, yt, eps=eps, norm=norm, protocol="paper", batch_size=batch_size,
        random_state=random_state, device=dev, progress=False))
    score_key = ("score", attack_key, _model_key(module), int(n_draws), float(confidence))
    m = _cached(score_key, lambda: score(
        module, x_tr, yt, n_draws=n_draws, batch_size=batch_size, random_state=random_state,
        device=dev, confidence=confidence)["rules"]["mean_probability"])
    lo, hi = m["accuracy_ci"]
    return CheckResult(
        "whitebox_at_least_as_strong_as_transfer", bool(robust_accuracy <= hi + 1e-12),
        float(m["accuracy"]),
        {"transfer_accuracy": float(m["accuracy"]), "transfer_ci": [float(lo), float(hi)],
         "whitebox_accuracy": float(robust_accuracy), "proxy": "pipeline without purifier",
         "transfer_attack": "paper protocol (APGD-CE + Square) on the proxy"},
    )
