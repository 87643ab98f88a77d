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
    attacked batch, every scoring draw and every gradient evaluation, so scores do
    not depend on the batch size or the order of the batches, and a resumed run
    gives the result of an uninterrupted one. The attack's own draws are seeded per
    batch (``SeedSequence([random_state, batch_index])``): a different
    ``batch_size`` attacks with other noise and can find other adversarial inputs.
``features(x_pixels)`` : method
    For ``space="feature"``: maps pixels ``(N, 1, H, W)`` to the module's input
    ``(N, 1, 1, k)`` (provided by the torch adapter).
``forward_draws(x, n)`` : method
    Logits ``(n, N, n_classes)`` of ``n`` draws of the same input, with the noise
    sequence of ``n`` calls; :class:`MeanProbabilityLogits` (the EOT wrapper of
    the adaptive attack) uses it instead of ``n`` calls.
``forward_seeded_draws(x, seeds)`` : method
    Logits ``(len(seeds), N, n_classes)``, draw ``d`` as ``manual_seed(seeds[d])``
    then a call would give it; :func:`predict_proba_draws` scores all its draws
    of a batch with one call of it instead of one call per draw.
``n_workers`` : int
    The module runs its heavy passes on worker threads of its own; the
    evaluator then runs its own small tensor ops (those of a few attacked
    samples) on one torch intra-op thread, which on a shared machine avoids the
    stalls of intra-op thread barriers.

The torch adapter provides all of these; a module without them is evaluated the
same way, one call per draw.

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
    broken only when the mean probability over fresh draws misclassifies it with
    95 % confidence (a one-sided t bound on the per-draw margin; no lucky draw is
    accepted, given ``n_eot >= 2``: with one draw the rule is that draw's argmax, and
    a warning says so); Square queries the same mean-probability wrapper over
    ``square_n_eot`` draws. Every sample of a randomized model is attacked, also
    one the clean judgement calls wrong (that judgement is an estimate too), and a
    new point replaces the kept one when its loss is higher on the same draws.
    APGD runs more iterations and restarts than the paper protocol, keeps each
    sample's highest-loss point, and adds APGD-DLR (3+ classes) and targeted APGD
    (4+ classes, one run per target: the most probable classes other than the true
    one). Square and targeted APGD search every sample of the pool and hand the
    judge the point they found (AutoAttack's ``perturb`` skips a sample its own
    first forward pass misclassifies and returns the clean input unless its last
    pass misclassifies the point: single noisy passes, for a randomized model).
    For a deterministic model it is the same with ``n_eot = 1``.
    Its APGD runs follow the ``"screened"`` schedule by default: a short APGD-CE
    run (a tenth of the iterations) on every sample first, whose broken samples
    leave the pool; every other sample then gets all the restarts (the first one,
    then the others side by side as replicas in one call) and Square, as in
    AutoAttack's cascade (``schedule="sequential"``, restart after restart). Same
    attack per remaining sample, far fewer small calls (the replicas differ in
    their random starts and, for the purifier, share each step's noise draws); see
    :func:`resolve_attack_config`.

AutoAttack (``pyautoattack``) reseeds torch's global generator, keeps global
counters in its dynamic-defence check and switches off ``sys.settrace``; every call
into it here runs inside a guard that restores the caller's torch, numpy and Python
RNG states and trace function. Its log messages are forwarded to the logger
``sknnmfdiff.evaluation._autoattack`` (every module here logs under
``sknnmfdiff.evaluation``, so a level or handler set there applies to all of them).

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

Layout
------
One module per concern; each imports only those above it in this list.

- ``_common``: option names, input validation, devices, seeds, the global-state guard.
- ``_config``: the protocols' attack defaults and :func:`resolve_attack_config`.
- ``_wrappers``: what the attacks differentiate (:class:`MeanProbabilityLogits`).
- ``_autoattack``: every call into ``pyautoattack`` (one batch, :func:`autoattack_flags`).
- ``_checkpoint``: checkpoint files of finished attack batches.
- ``_attack``: :func:`run_attack` over a whole input set, resumable.
- ``_scoring``: :func:`predict_proba_draws`, :func:`classification_metrics`,
  :func:`score_draws`, :func:`score` (scoring rules and confidence intervals).
- ``_check_result``: :class:`CheckResult`.
- ``_model_checks``: checks of the model (gradients, batch invariance, AutoAttack flags).
- ``_attack_checks``: checks of the attack (bounds, noise, eps grid, Square, plateau,
  transfer).
- ``_sanity``: :func:`run_sanity_checks` and :func:`baseline_checks`.
- ``_certified``: certified accuracy of randomized smoothing against the radius
  (:func:`certified_accuracy`, :func:`certified_accuracy_table`,
  :func:`max_certified_eps`).
- ``_certified_checks``: :func:`check_certified_bound` (no attack beats the certificate).
- ``_report``: :class:`RobustnessReport`, :func:`describe_model` and :func:`paper_table`.
- ``_protocol``: :func:`evaluate_robustness`, the whole protocol on one model.
"""


from ._attack import run_attack
from ._attack_checks import (
    check_attack_plateau,
    check_eps_grid,
    check_perturbation,
    check_random_noise,
    check_square_vs_whitebox,
    check_transfer,
)
from ._autoattack import autoattack_flags
from ._certified import (
    certified_accuracy,
    certified_accuracy_table,
    format_certified_table,
    linf_to_l2_radius,
    max_certified_eps,
)
from ._certified_checks import check_certified_bound
from ._check_result import CheckResult
# Option names, importable here as before the split (not in __all__).
from ._common import METRIC_NAMES, NORMS, PROTOCOLS, SCORING_RULES, SPACES  # noqa: F401
from ._config import ADAPTIVE_DEFAULTS, PAPER_DEFAULTS, resolve_attack_config
from ._model_checks import check_batch_invariance, check_flags, check_gradients
from ._protocol import evaluate_robustness
from ._report import RobustnessReport, describe_model, paper_table
from ._sanity import PLATEAU_MAX_SAMPLES, baseline_checks, run_sanity_checks  # noqa: F401
from ._scoring import classification_metrics, predict_proba_draws, score, score_draws
from ._wrappers import MeanProbabilityLogits

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
    "certified_accuracy",
    "certified_accuracy_table",
    "check_batch_invariance",
    "check_certified_bound",
    "check_eps_grid",
    "check_flags",
    "check_gradients",
    "check_perturbation",
    "check_random_noise",
    "check_transfer",
    "check_square_vs_whitebox",
    "classification_metrics",
    "describe_model",
    "evaluate_robustness",
    "format_certified_table",
    "linf_to_l2_radius",
    "max_certified_eps",
    "paper_table",
    "predict_proba_draws",
    "resolve_attack_config",
    "run_attack",
    "run_sanity_checks",
    "score",
    "score_draws",
]
