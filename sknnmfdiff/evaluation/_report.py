"""The report of one evaluation (:class:`RobustnessReport`), its strict JSON, and the
paper's four-row table."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from .._jsonable import to_jsonable

#: Parameters left out of a step's record: caches, not settings of the model.
_NOT_SETTINGS = ("memory",)


def _qualname(obj):
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _setting(value):
    """A parameter as a JSON value: numbers, strings, booleans, None and lists or dicts
    of them as such, anything else (an estimator, a RandomState) as its ``repr``."""
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        value = value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_setting(v) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _setting(v) for k, v in value.items()}
    return repr(value)


def describe_model(model, module):
    """What an evaluation attacked, for its report.

    Parameters
    ----------
    model : sklearn Pipeline, estimator or torch.nn.Module
        What was passed to :func:`evaluate_robustness`.
    module : torch.nn.Module
        The module attacked (``model`` itself, or its compilation by
        :func:`~sknnmfdiff.torch_adapter.to_torch_module`).

    Returns
    -------
    description : dict
        ``"class"`` (of ``model``); for a pipeline ``"steps"``, a list of
        ``{"name", "class", "params"}`` with every parameter, defaults included
        (caches left out); ``"module"``, the module's class and its steps
        (``{"name", "class", "settings"}``, the settings as the module's
        ``extra_repr``); ``"purifier"``, the settings of every noise-drawing
        purification step (``t``, ``n_steps``, ``n_eot``, ``antithetic``; from the
        fitted purifier of a pipeline, else from the module), or ``None`` when
        there is none; ``"smoothing"``, the settings of a
        :class:`~sknnmfdiff.SmoothedClassifier` (``sigma``, and ``n0``, ``n``,
        ``alpha`` from a pipeline; ``denoiser_t``, the denoiser's step, None without
        one), or ``None``; ``"randomized"``, whether the module draws noise.
    """
    out = {"class": _qualname(model)}
    steps = getattr(model, "steps", None)
    if isinstance(steps, list):
        out["steps"] = [
            {"name": name, "class": _qualname(est),
             "params": {k: _setting(v) for k, v in sorted(est.get_params(deep=False).items())
                        if k not in _NOT_SETTINGS} if hasattr(est, "get_params") else {}}
            for name, est in steps
        ]
    out["module"] = {
        "class": _qualname(module),
        "steps": [{"name": name, "class": type(m).__name__, "settings": m.extra_repr()}
                  for name, m in module.named_modules()
                  if name and name.count(".") <= 1 and m.extra_repr()],
    }
    purifiers, smoothing = [], []
    for name, m in module.named_modules():
        if getattr(m, "smoothing_sigma", None) is not None:  # a SmoothedClassifier's noise
            smoothing.append({"name": name, "sigma": _setting(m.smoothing_sigma),
                              "denoiser_t": _setting(m.t) if getattr(
                                  m, "smoothing_denoised", True) else None})
        elif hasattr(m, "n_eot") and hasattr(m, "antithetic") and hasattr(m, "t"):
            purifiers.append({"name": name, "t": _setting(m.t),
                              "n_steps": _setting(getattr(m, "n_steps", None)),
                              "n_eot": _setting(m.n_eot), "antithetic": bool(m.antithetic)})
    for step in out.get("steps", []):  # the fitted estimator's own settings win
        p = step["params"]
        if {"sigma", "n0", "n", "alpha"} <= set(p):
            smoothing = [{"name": step["name"], **{k: p[k] for k in ("sigma", "n0", "n", "alpha")},
                          "denoiser_t": smoothing[0]["denoiser_t"] if smoothing else None}]
        elif {"t", "n_steps", "n_eot", "antithetic"} <= set(p):
            purifiers = [{"name": step["name"], **{k: p[k] for k in
                                                   ("t", "n_steps", "n_eot", "antithetic")}}]
    out["purifier"] = (purifiers[0] if len(purifiers) == 1 else purifiers) or None
    out["smoothing"] = smoothing[0] if smoothing else None
    out["randomized"] = bool(getattr(module, "randomized", bool(purifiers or smoothing)))
    return out


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
        ``robust_scoring``, ``checks``, ``total``), ``attack_batches``, the
        list of seconds per attacked batch, ``attack_stages``, the seconds of
        each stage of the main attack summed over the batches attacked (stage
        label -> seconds; e.g. ``"apgd-ce screen"``, ``"square"``), and
        ``checks_parts``, the seconds
        of each part of the checks (``autoattack_flags``, ``eps_grid``,
        ``gradients``, ``random_noise``, ``plateau``, ``batch_invariance``,
        ``transfer``; those that ran).
    per_sample : dict
        ``y`` (class indices, shape ``(N,)``), ``clean_correct`` and
        ``robust_correct`` (rule -> bools of shape ``(N,)``) and ``broken_by``
        (``"clean"``, the attack that broke the sample, or ``""``).
    model : dict, default={}
        The model attacked (:func:`describe_model`): its class, every step of a
        pipeline with its parameters, the torch module's steps and the purifier's
        settings (``t``, ``n_steps``, ``n_eot``, ``antithetic``). Empty in reports
        written before it was recorded.
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
    model: dict = dataclasses.field(default_factory=dict)
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
        return to_jsonable(dataclasses.asdict(self))

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
            :attr:`primary_rule`, the failed and the skipped checks, the purifier's
            settings (when the model has one), and a warning when the attack
            changed no input at all.
        """
        r = self.primary_rule
        tm = self.threat_model
        skipped = [c["name"] for c in self.checks if c.get("passed") is None]
        line = (f"{tm['protocol']} {tm['norm']} eps={tm['eps']} ({tm['space']} space): accuracy "
                f"{self.clean[r]['accuracy']:.4f} -> {self.robust[r]['accuracy']:.4f}; "
                f"failed checks: {self.failed_checks or 'none'}")
        if skipped:
            line += f"; skipped checks: {skipped}"
        model = _model_words(self.model)
        if model:
            line += f"; model: {model}"
        moved = [c for c in self.checks if c["name"] == "perturbation_bounds"]
        if moved and not moved[0].get("value") and float(tm.get("eps", 0) or 0) > 0:
            line += "; WARNING: the attack changed no input"
        return line


def _model_words(model):
    """The purifier's or the smoothing's settings in words (``""`` without either or a
    record)."""
    smooth = (model or {}).get("smoothing")
    if smooth:
        t = smooth.get("denoiser_t")
        return (f"randomized smoothing sigma={smooth.get('sigma')}, "
                + (f"denoiser at t={t}" if t is not None else "no denoiser")
                + ", one noise draw per call")
    pur = (model or {}).get("purifier")
    if not pur:
        return ""
    parts = []
    for p in pur if isinstance(pur, list) else [pur]:
        draws = "antithetic" if p.get("antithetic") else "independent"
        parts.append(f"purifier t={p.get('t')} of {p.get('n_steps')} steps, "
                     f"{p.get('n_eot')} {draws} EOT draws")
    return "; ".join(parts)


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
                 f"EOT draws {td['n_eot']}); scoring rule: {rule or defended.primary_rule}."
                 + (f" Defended model: {_model_words(defended.model)}."
                    if _model_words(defended.model) else ""))
    return rows, "\n".join(lines)
