"""The study's defences table: the undefended baseline, the paper's purifier, adversarial
training and randomized smoothing, side by side under the same adaptive attack.

:func:`~sknnmfdiff.study.run_paper_study` fits the extra defences of
``StudyConfig.defences`` (:func:`~sknnmfdiff.pipeline.make_defence_pipeline`), attacks
each with the adaptive protocol in every threat model of the study (the same eps, eps
grid, seeds and scoring draws as the baseline and the purifier), certifies the smoothed
pipeline on the test part (feature space, Cohen et al. 2019) and checks that no attack
beat its certificate (:func:`~sknnmfdiff.evaluation.check_certified_bound`). The rows
and the robust-accuracy-against-eps figures are built here; ``report.py`` renders them.
"""

import dataclasses
import json

import numpy as np

from . import _runs
from .pipeline import DEFENCES

__all__ = ["DEFENCE_LABELS", "defence_rows", "defences_figures", "evaluate_defences",
           "failed_note", "fit_defences", "main_eps_mark"]

#: How the report names each defence.
DEFENCE_LABELS = {
    "none": "undefended",
    "purifier": "paper's purifier",
    "adversarial": "adversarially trained (TRADES)",
    "smoothing": "randomized smoothing (denoised)",
}
#: Evaluation keys of the two pipelines the study fits anyway.
_STUDY_KEYS = {"none": "baseline", "purifier": "defended"}
_RADII = (0.0, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)


def _key(space, name):
    return f"{space}-adaptive-{_STUDY_KEYS.get(name, name)}"


def _randomized(pipe):
    """Whether a fitted defence pipeline draws noise at prediction (scored over draws)."""
    last = pipe.steps[-1][1]
    steps = last.fitted_steps() if hasattr(last, "fitted_steps") else pipe.steps
    return any(hasattr(est, "make_torch_purifier") and getattr(est, "t", 1) != 0
               for _, est in steps)


def fit_defences(cfg, Xtr, ytr, memory, log, timings, fit=None):
    """Fit the defences of ``cfg.defences`` the study does not fit anyway.

    ``fit(name, pipeline)``, when given, returns the fitted model (the study's store of
    fitted models, which reuses a saved one); by default the pipeline is fitted here.

    Returns
    -------
    models : dict of str to fitted Pipeline
    """
    from .pipeline import make_defence_pipeline

    common = dict(n_components=cfg.n_components, k=cfg.k, random_state=cfg.seed,
                  device=cfg.device, memory=memory, nmf__max_iter=cfg.nmf_max_iter)
    models = {}
    if "adaptive" not in cfg.protocols:  # the table is of adaptive evaluations
        return models
    for name in cfg.defences:
        if name in _STUDY_KEYS:
            continue
        params = dict((cfg.defence_params or {}).get(name, {}))
        pipe = make_defence_pipeline(name, **common, **params)
        if fit is not None:
            models[name] = fit(name, pipe)
            continue
        with _runs.Timer(timings, f"fit {name}", log):
            models[name] = pipe.fit(Xtr, ytr)
    return models


def _certify(cfg, pipe, Xte, yte, x_adv):
    """Certificates of the smoothed pipeline on the test part, and the check that the
    feature-space attack's inputs ``x_adv`` do not beat them (PREDICT, fresh draws)."""
    from .evaluation import (
        certified_accuracy_table,
        check_certified_bound,
        max_certified_eps,
    )

    smooth = pipe.steps[-1][1]
    Z = pipe[:-1].transform(Xte)
    k = Z.shape[1]
    pred, radii = smooth.certify(Z)
    correct = np.asarray(pred == yte)
    eps = sorted({float(e) for e in (*cfg.eps_grid, cfg.eps) if e > 0})
    attacked = smooth.predict(np.asarray(x_adv, dtype=np.float32).reshape(len(Z), k))
    check = check_certified_bound(yte, pred, radii, attacked, cfg.eps, n_features=k,
                                  abstain_label=smooth.abstain_label, alpha=2 * smooth.alpha)
    # The curve at every certified radius too, so that its figure is exact.
    r = np.asarray(radii, dtype=float)
    curve = np.unique(np.concatenate([_RADII, r[correct & np.isfinite(r)]]))
    return {
        "sigma": float(smooth.sigma), "n0": int(smooth.n0), "n": int(smooth.n),
        "alpha": float(smooth.alpha), "n_features": int(k),
        "table": certified_accuracy_table(radii, correct, _RADII, eps=eps, n_features=k),
        "curve": certified_accuracy_table(radii, correct, curve),
        "max_eps_at_50": float(max_certified_eps(radii, correct, k, level=0.5)),
        "abstained": int(np.isnan(radii).sum()),
        "check": dataclasses.asdict(check),
    }


def evaluate_defences(cfg, models, Xte, yte, evdir, checkpoints, log, timings, quiet):
    """Adaptive evaluations of the extra defences in every space; the certificate.

    Finished evaluations (and the certificate) are written to ``evdir`` at once and
    reused by a rerun with the same settings.

    Returns
    -------
    reports : dict of str to RobustnessReport
        Keyed ``"{space}-adaptive-{defence}"``.
    certificate : dict or None
        The smoothed pipeline's certified accuracy table, largest eps certified at
        50 %, and the check against the feature-space attack (None without smoothing).
    """
    from .evaluation import RobustnessReport, evaluate_robustness

    reports, certificate = {}, None
    cert_path = evdir / "certificate-smoothing.json"
    if cert_path.exists():
        certificate = json.loads(cert_path.read_text())
    for name, pipe in models.items():
        for space in cfg.spaces:
            key = _key(space, name)
            path = evdir / f"{key}.json"
            if path.exists():
                log(f"[{key}] reusing finished evaluation {path}")
                reports[key] = RobustnessReport.from_json(path)
                continue
            certify = name == "smoothing" and space == "feature"
            with _runs.Timer(timings, f"attack {key}", log):
                out = evaluate_robustness(
                    pipe, Xte, yte, eps=cfg.eps, protocol="adaptive", space=space,
                    n_draws=cfg.n_draws if _randomized(pipe) else None,
                    eps_grid=cfg.eps_grid, grid_attack_kwargs=dict(cfg.grid_attack),
                    random_state=cfg.seed, device=cfg.device, plateau=cfg.plateau,
                    checkpoint_dir=checkpoints / key, progress=not quiet,
                    return_adversarial=certify,
                    **{**cfg.attack, **(cfg.defence_attack or {}).get(name, {})})
            rep = out[0] if certify else out
            if certify:
                with _runs.Timer(timings, "certify smoothing", log):
                    certificate = _certify(cfg, pipe, Xte, yte, out[1])
                rep.checks.append(certificate["check"])
                _runs.write_json(cert_path, certificate)
            rep.to_json(path)
            reports[key] = rep
            log(f"[{key}] {rep.summary()}")
    return reports, certificate


def _point(rep, eps):
    """(accuracy, CI) of the primary rule at ``eps`` of one report, or (None, None)."""
    rule = rep.primary_rule
    if eps == 0:
        m = rep.clean[rule]
    elif abs(eps - rep.threat_model["eps"]) < 1e-12:
        m = rep.robust[rule]
    else:
        m = next((g for g in rep.eps_grid if abs(g["eps"] - eps) < 1e-12), None)
        if m is None:
            return None, None
    return m["accuracy"], m.get("accuracy_ci")


def defence_rows(cfg, reports, certificate):
    """One row per defence: clean and adaptive robust accuracy per space, certified.

    Parameters
    ----------
    cfg : StudyConfig
    reports : dict of str to RobustnessReport
        Every evaluation of the study (``"{space}-{protocol}-{name}"``).
    certificate : dict or None
        From :func:`evaluate_defences`.

    Returns
    -------
    rows : list of dict
        ``defence``, ``label``, ``clean`` (accuracy over the scoring draws, test part),
        ``robust_<space>`` and ``robust_<space>_ci``, ``certified`` and
        ``certified_ci`` at the L2 radius ``sqrt(k) eps`` (smoothing only),
        ``max_certified_eps`` (certified accuracy >= 50 %), ``failed_checks``.
    """
    rows = []
    for name in (d for d in DEFENCES if d in cfg.defences):
        row = {"defence": name, "label": DEFENCE_LABELS[name], "clean": None, "failed_checks": []}
        for space in cfg.spaces:
            rep = reports.get(_key(space, name))
            if rep is None:
                continue
            if row["clean"] is None:
                row["clean"] = _point(rep, 0.0)[0]
            acc, ci = _point(rep, cfg.eps)
            row[f"robust_{space}"], row[f"robust_{space}_ci"] = acc, ci
            row["failed_checks"] += [f"{space}: {c}" for c in rep.failed_checks]
        if name == "smoothing" and certificate:
            at = next((r for r in certificate["table"]
                       if r["eps_linf"] is not None and abs(r["eps_linf"] - cfg.eps) < 1e-12), None)
            if at is not None:
                row["certified"] = at["certified_accuracy"]
                row["certified_ci"] = [at["ci_low"], at["ci_high"]]
                row["certified_radius"] = at["radius"]
            row["max_certified_eps"] = certificate["max_eps_at_50"]
        rows.append(row)
    return rows


def failed_note(rep):
    """`` [n checks failed]`` for a curve's legend label when its evaluation failed sanity
    checks (its figures are then not to be trusted; the report names the checks)."""
    n = len(rep.failed_checks)
    return f" [{n} check{'s' if n > 1 else ''} failed]" if n else ""


def main_eps_mark(cfg):
    """The robustness curves' mark of the main eps, attacked with the tables' settings,
    when the other budgets are attacked with the lighter ``grid_attack``."""
    if dict(cfg.grid_attack or {}) == dict(cfg.attack or {}):
        return None
    return {f"eps {cfg.eps:g}: the tables' attack (others lighter)": float(cfg.eps)}


def defences_figures(cfg, reports, certificate, save):
    """Robust accuracy against eps, one curve per defence and space (adaptive attack),
    and the smoothed pipeline's certified accuracy against the radius.

    ``save(name, fig)`` stores a figure (the study's figure saver).
    """
    from . import plots

    for space in cfg.spaces:
        curves, cis, eps_axis = {}, {}, None
        for name in (d for d in DEFENCES if d in cfg.defences):
            rep = reports.get(_key(space, name))
            if rep is None:
                continue
            grid = sorted({0.0, float(rep.threat_model["eps"]),
                           *(float(g["eps"]) for g in rep.eps_grid)})
            pts = [(e, *_point(rep, e)) for e in grid]
            pts = [p for p in pts if p[1] is not None]
            if eps_axis is not None and [p[0] for p in pts] != list(eps_axis):
                continue  # a defence evaluated on another grid (an older run)
            eps_axis = np.array([p[0] for p in pts])
            label = DEFENCE_LABELS[name] + failed_note(rep)
            curves[label] = np.array([p[1] for p in pts])
            if all(p[2] for p in pts):
                cis[label] = (np.array([p[2][0] for p in pts]), np.array([p[2][1] for p in pts]))
        if curves:
            unit = "pixel intensity" if space == "pixel" else "feature value"
            save(f"defences_{space}", plots.plot_robustness_curve(
                eps_axis, curves, ci=cis or None, xlabel=f"eps (L-inf, {unit} units)",
                title=f"Defences under the adaptive attack, {space} space",
                eps_marks=main_eps_mark(cfg)))
    if certificate:
        rows = certificate.get("curve") or [r for r in certificate["table"]
                                            if r["eps_linf"] is None]
        radius = np.array([r["radius"] for r in rows])
        label = f"sigma = {certificate['sigma']:g}"
        k = certificate["n_features"]
        save("certified_accuracy", plots.plot_certified_accuracy(
            radius, {label: [r["certified_accuracy"] for r in rows]},
            ci={label: ([r["ci_low"] for r in rows], [r["ci_high"] for r in rows])},
            radius_marks={f"sqrt(k) eps = {np.sqrt(k) * cfg.eps:.3g} (L-inf eps {cfg.eps:g}, "
                          f"k = {k})": float(np.sqrt(k) * cfg.eps)},
            title="Randomized smoothing, feature space\ncertified accuracy at each L2 radius"))
