"""Attack configuration: the two protocols' defaults and their resolution for one model."""

from __future__ import annotations

import logging
import math

from ._common import NORMS, PROTOCOLS, SPACES, _infer_n_classes, _infer_randomized

_log = logging.getLogger(__name__)


#: Orders of the APGD runs (see :func:`resolve_attack_config`).
SCHEDULES = ("screened", "sequential")

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
    schedule=None,
    batch_size=250,
    random_state=0,
    space=None,
):
    """Resolve the full attack configuration (the threat model) for a module.

    Parameters
    ----------
    module : torch.nn.Module
        Classifier (see :mod:`sknnmfdiff.evaluation` for the attributes used).
    x : torch.Tensor of shape (N, C, H, W), float32 in [0, 1]
        Inputs; only used to infer ``n_classes``/``randomized`` when the module
        lacks those attributes.
    eps : float, default=0.10
        Perturbation budget (>= 0) in input units (pixel units for pixel space).
    norm : {"Linf", "L2"}, default="Linf"
        Norm of the perturbation ball.
    protocol : {"paper", "adaptive"}, default="paper"
        Attack protocol (see :mod:`sknnmfdiff.evaluation`).
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
    schedule : {"screened", "sequential"} or None
        Order of the APGD runs of the adaptive protocol; ``None`` takes
        ``"screened"`` for the adaptive protocol and ``"sequential"`` for the paper
        protocol (which only runs ``"sequential"``). ``"sequential"`` is AutoAttack's
        cascade: restart after restart, each on the samples the earlier ones left.
        ``"screened"`` runs first a short APGD-CE run of ``max(1, n_iter // 10)``
        iterations on every sample; the samples it breaks (by the adaptive success
        rule) leave the pool. Every other sample gets the whole attack: the first
        restart, then the other ``n_restarts - 1`` restarts as replicas of it side by
        side in one APGD call per group of at most ``batch_size`` rows (a sample is
        broken when one of its replicas is; otherwise it keeps its highest-loss
        point), then Square. Same attack per sample, fewer small calls: see
        ``benchmarks/bench_attack.py``. The replicas differ in their random starts;
        a module that draws one noise set per call for all rows (the purifier does)
        gives the replicas of a call the same draws at each step, where sequential
        restarts draw their own. A checkpoint is written after each stage, the
        replicated restarts counting as one.
    batch_size : int, default=250
        Samples attacked together (>= 1); recorded in the config. Also bounds the
        rows of one replicated APGD call of the ``"screened"`` schedule.
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
        For an unknown protocol/norm/space/schedule, the ``"screened"`` schedule
        with the paper protocol, or out-of-range numbers.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}.")
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}.")
    if schedule is None:
        schedule = "sequential" if protocol == "paper" else "screened"
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}.")
    if protocol == "paper" and schedule != "sequential":
        raise ValueError("the paper protocol runs AutoAttack's cascade only: schedule must be "
                         f"'sequential' (or None), got {schedule!r}.")
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
        if n_eot == 1:
            _log.warning("n_eot=1 on a randomized model: the adaptive attack then judges "
                         "success on single draws, so a lucky draw counts as a break; use "
                         "n_eot >= 2 for the confidence rule.")
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
        "schedule": schedule,
        "apgd_screen_n_iter": max(1, n_iter // 10) if schedule == "screened" else 0,
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
            + (" with 95 % confidence (one-sided t bound on the per-draw margin)"
               if randomized and n_eot > 1 else "")
        ),
        "attack_pool": "all" if (protocol == "adaptive" and randomized) else "clean correct",
        "batch_size": int(batch_size),
        "random_state": int(random_state),
        "batch_seeds": "SeedSequence([random_state, batch_index]); module.manual_seed per batch",
        "library": f"pyautoattack {pyautoattack.__version__}",
    }
