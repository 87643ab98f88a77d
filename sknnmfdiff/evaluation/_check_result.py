"""The record of one sanity check, and running a check so that it can never crash
an evaluation."""

from __future__ import annotations

import dataclasses
import logging

_log = logging.getLogger(__name__)


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
