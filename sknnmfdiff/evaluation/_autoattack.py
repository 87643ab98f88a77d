"""Every call into AutoAttack (``pyautoattack``): its log, its self-checks, and one
attacked batch under either protocol."""

from __future__ import annotations

import contextlib
import logging
import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

from ._common import (
    _check_inputs,
    _guard_global_state,
    _module_device,
    _reseed,
    _seed_int,
    _small_ops,
)
from ._wrappers import MeanProbabilityLogits, _GradientSafe, confidently_misclassified

_log = logging.getLogger(__name__)


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
    _set_apgd_iterations(adversary.apgd, cfg["apgd_n_iter"])
    adversary.apgd.n_restarts = cfg["apgd_n_restarts"]
    adversary.apgd.eot_iter = cfg["eot_iter"]
    adversary.apgd.seed = seed
    at = adversary.apgd_targeted  # targets and restarts: see _targeted_replicas
    _set_apgd_iterations(at, cfg["apgd_n_iter"])
    at.eot_iter = cfg["eot_iter"]
    at.seed = seed
    sq = adversary.square
    sq.n_queries = cfg["square_queries"]
    sq.n_restarts = cfg["square_restarts"]
    sq.p_init = cfg["square_p_init"]
    sq.seed = seed
    if not paper:
        sq.predict = MeanProbabilityLogits(module, cfg["square_n_eot"])
    return adversary


class _Stage(NamedTuple):
    """One stage of a batch's cascade: ``attack`` run ``replicas`` times side by side.

    ``restart`` is the index of the first restart it runs (``-1``: the screening
    run of the ``"screened"`` schedule); ``n_iter`` the APGD iterations (0 for
    Square); ``label`` names it in progress output.
    """

    attack: str
    restart: int
    n_iter: int
    replicas: int
    label: str


def _attack_stages(cfg):
    """The stages of one batch's cascade in order, a list of :class:`_Stage`.

    ``"sequential"`` (AutoAttack's cascade, and the paper protocol): every APGD restart
    is a stage of its own. ``"screened"``: a short APGD-CE run
    (``cfg["apgd_screen_n_iter"]`` iterations) comes first; then the first restart;
    then the other restarts as one stage of replicas (see :func:`_attack_batch`).
    At ``eps = 0`` only the first stage (nothing can move the input).
    """
    paper = cfg["protocol"] == "paper"
    screened = cfg.get("schedule") == "screened"
    n_iter = cfg["apgd_n_iter"]
    stages = []
    for attack in cfg["attacks"]:
        if attack == "apgd-t":  # adaptive only
            # one replica per target class (see _run_group): side by side when
            # screened, one target after the other (AutoAttack's order) when sequential
            n_t = max(1, cfg["apgd_targeted_n_target_classes"])
            if screened and n_t > 1:
                stages.append(_Stage(attack, 0, n_iter, n_t, f"apgd-t targets 1-{n_t}"))
            else:
                stages += [_Stage(attack, j, n_iter, 1, f"apgd-t target {j + 1}")
                           for j in range(n_t)]
            continue
        if attack not in ("apgd-ce", "apgd-dlr"):
            stages.append(_Stage(attack, 0, 0 if attack == "square" else n_iter, 1, attack))
            continue
        restarts = 1 if paper else cfg["apgd_n_restarts"]
        if screened and attack == "apgd-ce" and cfg.get("apgd_screen_n_iter", 0) > 0:
            stages.append(_Stage(attack, -1, cfg["apgd_screen_n_iter"], 1, f"{attack} screen"))
        if screened and restarts > 1:
            stages.append(_Stage(attack, 0, n_iter, 1, f"{attack} restart 1"))
            stages.append(_Stage(attack, 1, n_iter, restarts - 1,
                                 f"{attack} restart 2" if restarts == 2
                                 else f"{attack} restarts 2-{restarts}"))
        else:
            stages += [_Stage(attack, r, n_iter, 1, f"{attack} restart {r + 1}")
                       for r in range(restarts)]
    if cfg["eps"] == 0:
        return stages[:1]  # nothing can move at eps = 0; the first stage runs the code path
    return stages


#: Seed key of the screening run (restarts use their index).
_SCREEN_KEY = 1_000_003


def _set_apgd_iterations(apgd, n_iter):
    """Set APGD's iteration count and the step-size schedule AutoAttack derives from it."""
    apgd.n_iter = apgd.n_iter_orig = int(n_iter)
    apgd.n_iter_2 = max(int(0.22 * n_iter), 1)
    apgd.n_iter_min = max(int(0.06 * n_iter), 1)
    apgd.size_decr = max(int(0.03 * n_iter), 1)


def _generators(module):
    """Every :class:`torch.Generator` held by the module or its submodules, by a stable key."""
    return {f"{name}:{attr}": g for name, m in module.named_modules()
            for attr, g in sorted(vars(m).items()) if isinstance(g, torch.Generator)}


def _rng_state(module, device):
    """The random states a stage of the cascade can draw from: torch's global generator
    (and the device's, on CUDA) and the module's own generators; dict of uint8 tensors."""
    state = {"torch": torch.get_rng_state()}
    dev = torch.device(device) if device is not None else torch.device("cpu")
    if dev.type == "cuda" and torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state(dev)
    state.update({f"module:{k}": g.get_state() for k, g in _generators(module).items()})
    return state


def _set_rng_state(module, device, state):
    """Restore :func:`_rng_state`; ValueError when the module's generators differ."""
    gens = _generators(module)
    keys = {k.partition(":")[2] for k in state if k.startswith("module:")}
    if keys != set(gens):
        raise ValueError(f"the checkpointed stage holds the states of generators {sorted(keys)}, "
                         f"the module has {sorted(gens)}.")
    torch.set_rng_state(state["torch"])
    if "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], torch.device(device))
    for k, g in gens.items():
        g.set_state(state[f"module:{k}"])


def _judged(judge, x, y, cfg):
    """The judge's logits and which samples it counts as misclassified.

    Deterministic models and the paper protocol: the argmax. A randomized model under
    the adaptive protocol (``cfg["attack_pool"] == "all"``): misclassified with 95 %
    confidence over the judge's draws (:func:`confidently_misclassified`), so that a
    point on the decision boundary is not counted as broken by the draws' luck.
    """
    if isinstance(judge, MeanProbabilityLogits) and cfg.get("attack_pool") == "all":
        logp = judge.draw_log_probabilities(x)
        logits = torch.logsumexp(logp, dim=0) - math.log(logp.shape[0])
        return logits, confidently_misclassified(logp, y)
    logits = judge(x)
    return logits, logits.argmax(1) != y


def _tile(x, k):
    """``k`` copies of ``x`` stacked along dim 0 (replica ``j`` of row ``i`` is row
    ``j * len(x) + i``); a copy of ``x`` for ``k = 1``."""
    return x.repeat(k, *([1] * (x.ndim - 1)))


def _targeted_replicas(apgd_t, xs, ys, clean_logits, stage, restart, k, cfg, seed):
    """APGD-T (DLR-targeted loss) on ``k`` replicas of the pool, replica ``j`` aimed at
    each sample's target ``restart + j + 1``: its ``(restart + j + 1)``-th most probable
    class other than the true one by ``clean_logits`` (the judge's logits of the clean
    input, computed once per batch, so that every stage and replica group ranks a
    sample's classes the same way and each target is attacked once; AutoAttack's order
    of targets for a correctly classified sample). Returns each row's highest-loss
    point.

    AutoAttack's ``perturb`` attacks only the samples its first forward pass classifies
    correctly and keeps a point only when a pass of the model misclassifies it; on a
    randomized model those passes are single noisy estimates. Here every pool sample
    is attacked and the judge decides on the highest-loss point (as for APGD-CE with
    ``best_loss=True``).
    """
    m = xs.shape[0]
    scores = clean_logits.detach().float().clone()
    scores[torch.arange(m, device=scores.device), ys] = -math.inf  # never the true class
    order = scores.argsort(dim=1, descending=True)
    targets = torch.cat([order[:, restart + j] for j in range(k)])
    _set_apgd_iterations(apgd_t, stage.n_iter)
    apgd_t.seed = seed
    xr, yr = _tile(xs, k).float(), _tile(ys, k)
    apgd_t.init_hyperparam(xr)
    apgd_t.y_target = targets
    torch.manual_seed(_seed_int(seed, restart, cfg["attacks"].index("apgd-t")))
    x_best = apgd_t.attack_single_run(xr, yr)[0]
    return x_best


def _run_group(adversary, judge, module, xs, ys, kept, stage, restart, k, cfg, seed, judge_key,
               clean_logits=None):
    """Run ``k`` replicas of one stage on a pool and judge them.

    ``xs``, ``ys``: the pool's clean inputs and labels; ``kept``: its points kept so
    far; ``clean_logits``: the judge's logits of ``xs`` from the start of the batch
    (needed by APGD-T: its targets). Returns, per pool sample, the chosen candidate ``adv``, whether the judge
    counts it as broken (``fooled``), its loss, and the kept point's loss on the same
    draws (``None`` for a deterministic judge). With ``k > 1`` the chosen candidate is
    the broken replica of highest loss, or else the replica that gains most on the
    kept point.
    """
    paper = cfg["protocol"] == "paper"
    attack, m = stage.attack, xs.shape[0]
    xr, yr = _tile(xs, k), _tile(ys, k)
    if attack in ("apgd-ce", "apgd-dlr"):
        apgd = adversary.apgd
        apgd.loss = "ce" if attack == "apgd-ce" else "dlr"
        apgd.seed = seed
        _set_apgd_iterations(apgd, stage.n_iter)
        if paper:
            adv = apgd.perturb(xr, yr)
        else:
            # one restart at a time (k replicas of it side by side), keeping each
            # sample's highest-loss point
            apgd.n_restarts = 1
            keys = (restart,) if restart >= 0 else (_SCREEN_KEY,)
            torch.manual_seed(_seed_int(seed, *keys, cfg["attacks"].index(attack)))
            adv = apgd.perturb(xr, yr, best_loss=True)
    elif attack == "apgd-t":  # adaptive protocol only (see resolve_attack_config)
        adv = _targeted_replicas(adversary.apgd_targeted, xs, ys, clean_logits, stage, restart,
                                 k, cfg, seed)
    elif attack == "square" and not paper:
        # AutoAttack's perturb() attacks only the samples its own first forward pass
        # classifies correctly and returns the clean input for every sample its last
        # pass does not misclassify. On a randomized model both passes are single
        # noisy estimates: the search itself is run on every sample of the pool, and
        # the judge decides on the point it found.
        sq = adversary.square
        sq.init_hyperparam(xr)
        torch.manual_seed(_seed_int(seed, restart, cfg["attacks"].index(attack)))
        adv = sq.attack_single_run(xr, yr)[1]
    elif attack == "square":
        adv = adversary.square.perturb(xr, yr)
    else:  # pragma: no cover - config is built internally
        raise ValueError(f"unknown attack {attack!r}")
    adv = adv.detach().to(xs.dtype)
    kept_loss = None
    with torch.no_grad():
        if not paper and cfg.get("randomized"):
            # Compare the candidates with the point kept so far on the same draws
            # (common random numbers): two independent noisy losses would often keep
            # the worse point. Both generators are rewound: a module without its own
            # generator draws from torch's global one.
            judge_seed = _seed_int(seed, 104729, *judge_key)
            torch.manual_seed(judge_seed)
            _reseed(module, judge_seed)
            out_k, _ = _judged(judge, _tile(kept, k), yr, cfg)
            kept_loss = F.cross_entropy(out_k.float(), yr, reduction="none")
            torch.manual_seed(judge_seed)
            _reseed(module, judge_seed)
        out, fooled = _judged(judge, adv, yr, cfg)
        loss = F.cross_entropy(out.float(), yr, reduction="none")
    if k == 1:
        return adv, fooled, loss, kept_loss
    fooled, loss = fooled.view(k, m), loss.view(k, m)
    gain = loss if kept_loss is None else loss - kept_loss.view(k, m)
    pick = torch.where(fooled.any(0),
                       torch.where(fooled, loss, torch.full_like(loss, -math.inf)).argmax(0),
                       gain.argmax(0))
    cols = torch.arange(m, device=pick.device)
    adv = adv.view(k, m, *adv.shape[1:])[pick, cols]
    if kept_loss is not None:
        kept_loss = kept_loss.view(k, m)[pick, cols]
    return adv, fooled[pick, cols], loss[pick, cols], kept_loss


def _attack_batch(module, xb, yb, cfg, seed, device, on_stage=None, *, resume=None,
                  on_stage_done=None):
    """Attack one batch; returns (x_adv, broken_by list, stage counts).

    ``on_stage(stage, n_left)`` is called before every stage (a :class:`_Stage`; progress).
    ``on_stage_done(state)`` is called after every stage that attacked something, with
    the batch's state: ``stage`` (stages done, see :func:`_attack_stages`), ``x_adv``,
    ``robust``, ``best_loss`` (tensors), ``broken_by``, ``counts`` and ``rng`` (the
    random states the later stages draw from). ``resume``, such a state, continues the
    batch after its stage with the result an uninterrupted run gives.
    Runs with one torch intra-op thread when the module has worker threads of its
    own (see ``_common._small_ops``).
    """
    paper = cfg["protocol"] == "paper"
    judge = module if paper else MeanProbabilityLogits(module, cfg["n_eot"])
    n = xb.shape[0]
    broken_by = [""] * n
    counts = {}
    with _guard_global_state(device), _autoattack_logging(), _small_ops(module):
        torch.manual_seed(seed)
        _reseed(module, seed)
        adversary = _make_adversary(module, cfg, seed, device)
        x_adv = xb.clone()
        with torch.no_grad():
            logits, fooled = _judged(judge, xb, yb, cfg)
            robust = ~fooled
            best_loss = F.cross_entropy(logits.float(), yb, reduction="none")
        for i in torch.nonzero(~robust).flatten().tolist():
            broken_by[i] = "clean"
        counts["clean"] = int((~robust).sum())
        if cfg.get("attack_pool") == "all":
            # A randomized model's clean judgement is a Monte Carlo estimate: a sample
            # near the boundary can be misjudged as broken, and it would then keep its
            # clean input and be scored correct by fresh draws. Attack every sample;
            # only an attack's output that the judge misclassifies leaves the pool.
            robust = torch.ones_like(robust)
        counts.update({attack: 0 for attack in cfg["attacks"]})
        first = 0
        if resume is not None:
            first = int(resume["stage"])
            x_adv = resume["x_adv"].to(device=xb.device, dtype=xb.dtype).clone()
            robust = resume["robust"].to(robust.device).clone()
            best_loss = resume["best_loss"].to(best_loss.device).clone()
            broken_by, counts = list(resume["broken_by"]), dict(resume["counts"])
            _set_rng_state(module, device, resume["rng"])
        for s, stage in enumerate(_attack_stages(cfg)):
            idx = torch.nonzero(robust).flatten()
            if s < first or idx.numel() == 0:
                continue
            if on_stage is not None:
                on_stage(stage, int(idx.numel()))
            done = 0
            while done < stage.replicas and idx.numel() > 0:
                # Replicas of the pool run side by side, at most batch_size rows at a time;
                # a later group attacks only what the earlier ones left.
                k = min(stage.replicas - done, max(1, cfg["batch_size"] // int(idx.numel())))
                adv, fooled, loss, kept_loss = _run_group(
                    adversary, judge, module, xb[idx], yb[idx], x_adv[idx], stage,
                    stage.restart + done, k, cfg, seed, judge_key=(s,) if done == 0 else (s, done),
                    clean_logits=logits[idx])
                if kept_loss is not None:
                    best_loss[idx] = kept_loss
                hit = idx[fooled]
                x_adv[hit] = adv[fooled]
                robust[hit] = False
                for i in hit.tolist():
                    if not broken_by[i]:  # a sample misjudged at clean keeps "clean"
                        broken_by[i] = stage.attack
                        counts[stage.attack] += 1
                if not paper:
                    better = (~fooled) & (loss > best_loss[idx])
                    x_adv[idx[better]] = adv[better]
                    best_loss[idx[better]] = loss[better]
                done += k
                idx = torch.nonzero(robust).flatten()
            if on_stage_done is not None:
                on_stage_done({"stage": s + 1, "x_adv": x_adv, "robust": robust,
                               "best_loss": best_loss, "broken_by": list(broken_by),
                               "counts": dict(counts), "rng": _rng_state(module, device)})
    return x_adv, broken_by, counts
