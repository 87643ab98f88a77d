"""Markdown report of a study (``report.md``), written from ``results.json``."""

from pathlib import Path

from .paper import PAPER_TABLE

__all__ = ["write_report", "render_report"]

_METRICS = (
    ("accuracy", "Accuracy", "{:.2%}"),
    ("balanced_accuracy", "Bal. acc.", "{:.2%}"),
    ("roc_auc", "ROC-AUC", "{:.4f}"),
    ("mcc", "MCC", "{:.4f}"),
    ("brier", "Brier", "{:.4f}"),
    ("log_loss", "Log-loss", "{:.4f}"),
)
_ROWS = ("clean baseline", "clean defended", "robust baseline", "robust defended")


def _fmt(value, fmt):
    if value is None:
        return "–"
    try:
        if value != value:  # NaN
            return "n/a"
        return fmt.format(value)
    except (TypeError, ValueError):
        return str(value)


def _space_label(space):
    return {
        "feature": "feature space (selected L2-normalised NMF features in [0, 1]; eps in feature units)",
        "pixel": "pixel space (images in [0, 1] through the whole pipeline; eps in pixel-intensity units)",
    }.get(space, space)


#: What the ``value`` of each sanity check is, with its unit, and when the check passes
#: (from the checks in :mod:`sknnmfdiff.evaluation`; details of each in ``results.json``).
CHECK_VALUES = {
    "perturbation_bounds": (
        "largest perturbation norm found (the threat model's norm), input units",
        "<= eps (up to float rounding), adversarial inputs finite float32 in [0, 1]"),
    "eps_zero_equals_clean": (
        "robust accuracy at eps = 0 (fraction of the test part)",
        "equals the clean accuracy (within its 95 % interval for a randomized model)"),
    "robust_accuracy_non_increasing_in_eps": (
        "number of steps of the eps grid where robust accuracy rose (count)",
        "0 (beyond a tolerance of one sample, or half the interval when randomized)"),
    "large_eps_drives_accuracy_to_zero": (
        "robust accuracy at the largest eps of the grid (fraction)",
        "near 0 (threshold in results.json)"),
    "gradient_nonzero": (
        "fraction of test inputs with a non-zero input gradient",
        "at least the threshold in results.json, all gradients finite"),
    "gradient_finite_differences": (
        "fraction of finite-difference probes that agree with the analytic gradient",
        "1 (all agree)"),
    "random_noise_weaker_than_attack": (
        "accuracy under random noise of size eps (fraction)",
        "its drop from clean is at most half the attack's drop (plus one sample)"),
    "attack_strength_plateau": (
        "robust accuracy under a stronger attack (more iterations, restarts, queries, "
        "draws; another seed) (fraction)",
        "not below the reported figure by more than the tolerance in results.json"),
    "whitebox_at_least_as_strong_as_square": (
        "samples Square broke after APGD (count)",
        "at most max(1, 2 % of the test part)"),
    "whitebox_at_least_as_strong_as_transfer": (
        "accuracy under a transfer attack from the pipeline without purifier (fraction)",
        "the white-box robust accuracy is not above its 95 % interval"),
    "autoattack_flags": (
        "none (AutoAttack's own flags, in results.json)",
        "AutoAttack's randomness verdict matches the model, outputs are logits, and the "
        "class count suits the attacks"),
    "batch_size_invariance": (
        "largest absolute difference of the logits between batch sizes (logit units)",
        "within a small tolerance (float rounding), model in eval mode"),
    "baseline_near_zero": (
        "robust accuracy of the undefended baseline (fraction)",
        "near 0 (threshold in results.json)"),
    "same_threat_model": (
        "number of threat-model settings that differ between baseline and defended (count)",
        "0"),
    "certified_bound": (
        "smallest margin, over eps, of the attacked non-error rate above the certified "
        "accuracy (fraction)",
        "at every eps the attacked non-error rate is at least the lower end of the "
        "certified accuracy's interval, and certified inputs the attack broke are not "
        "significantly many"),
}


def _paper_table_note(synthetic):
    if synthetic:
        return ("The paper's published figures (real MRI) are left out of these tables: "
                "phantom results are not comparable with them.")
    return ("Columns marked *paper* are the published figures of arXiv 2603.13182 (its MRI "
            "images and split, the robust rows under its AutoAttack), not computed here.")


def _table_with_paper(rows, paper):
    head = "| Setting | " + " | ".join(f"{label} (ours)" for _, label, _ in _METRICS)
    head += " | Accuracy (*paper*) | ROC-AUC (*paper*) | MCC (*paper*) |"
    sep = "|" + "---|" * (1 + len(_METRICS) + 3)
    lines = [head, sep]
    for row in rows:
        setting = row["setting"]
        p = paper.get(setting.lower(), {})
        cells = [_fmt(row.get(key), fmt) for key, _, fmt in _METRICS]
        cells += [
            _fmt(p.get("accuracy"), "{:.2%}"),
            _fmt(p.get("roc_auc"), "{:.4f}"),
            _fmt(p.get("mcc"), "{:.4f}"),
        ]
        lines.append(f"| {setting} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _table(rows):
    head = "| Setting | " + " | ".join(label for _, label, _ in _METRICS) + " |"
    sep = "|" + "---|" * (1 + len(_METRICS))
    lines = [head, sep]
    for row in rows:
        cells = [_fmt(row.get(key), fmt) for key, _, fmt in _METRICS]
        lines.append(f"| {row['setting']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _threat(ev):
    tm = ev["threat_model"]
    keys = ("space", "norm", "eps", "protocol", "attacks", "schedule", "apgd_n_restarts",
            "apgd_n_iter", "apgd_screen_n_iter", "apgd_loss", "n_eot", "square_queries",
            "square_n_eot", "success_rule", "scoring_draws", "random_state")
    return ", ".join(f"{k}={tm[k]}" for k in keys
                     if k in tm and not (k == "apgd_screen_n_iter" and not tm[k]))


def _robust_rules(ev):
    """Robust accuracy under each scoring rule with its confidence interval."""
    parts = []
    for rule, m in ev["robust"].items():
        acc = m.get("accuracy")
        ci = m.get("accuracy_ci")
        s = f"{rule}: {_fmt(acc, '{:.2%}')}"
        if ci:
            s += f" [{_fmt(ci[0], '{:.1%}')}, {_fmt(ci[1], '{:.1%}')}]"
        parts.append(s)
    return "; ".join(parts)


def _purifier_note(results):
    """How the purifier draws its noise and what the classifier trained on, if recorded."""
    for name, _, params in results.get("model_params", {}).get("defended", []):
        if name == "purify":
            # Booleans; as "True"/"False" strings in results.json files of earlier versions.
            draws = "antithetic" if params.get("antithetic") in (True, "True") else "independent"
            train = ("purified features" if params.get("train_on_purified") in (True, "True")
                     else "clean features, as in the paper")
            return f" ({draws} noise draws; classifier trained on {train})"
    return ""


def _pct(value, ci=None):
    if value is None:
        return "—"
    text = f"{100 * value:.2f} %"
    if ci:
        text += f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"
    return text


def _defences_section(results):
    """The defences table: clean, adaptive robust per space, certified (feature space)."""
    block = results.get("defences")
    if not block or not block.get("rows"):
        return []
    cfg = results["config"]
    spaces = list(cfg.get("spaces", ()))
    cert = block.get("certificate") or {}
    head = ("| Defence | Clean | " + " | ".join(f"Adaptive robust, {s} space" for s in spaces)
            + " | Certified, feature space | Failed checks |")
    out = [
        "## Defences under the adaptive attack",
        "",
        f"Test part, L-inf eps = {cfg['eps']} in each space's units, the adaptive protocol for "
        "every defence (the same attack settings, seeds and scoring draws); accuracies as "
        "fractions of the test part (balanced: equal classes), 95 % Wilson intervals. "
        "Certified: the smoothed classifier's certified accuracy at the L2 radius "
        f"sqrt(k) eps that contains the L-inf ball (k = {cert.get('n_features', cfg['k'])}), "
        "exact 95 % interval; no other defence has a certificate. Robust accuracy of the "
        "smoothed pipeline is that of its soft version (mean probability over noise draws, "
        "the function the attack differentiates).",
        "",
        head,
        "|" + "---|" * (len(spaces) + 4),
    ]
    for row in block["rows"]:
        certified = "not certifiable"
        if "certified" in row:
            certified = (f"{_pct(row['certified'], row.get('certified_ci'))}; 50 % up to eps "
                         f"{_fmt(row.get('max_certified_eps'), '{:.3f}')}")
        cells = [_pct(row.get(f"robust_{s}"), row.get(f"robust_{s}_ci")) for s in spaces]
        out.append(f"| {row['label']} | {_pct(row.get('clean'))} | " + " | ".join(cells)
                   + f" | {certified} | {', '.join(row['failed_checks']) or 'none'} |")
    if cert:
        check = cert.get("check", {})
        out += ["", f"Smoothing: sigma = {cert['sigma']:g}, n0 = {cert['n0']}, n = {cert['n']}, "
                f"alpha = {cert['alpha']:g}; {cert['abstained']} test images abstained. "
                "Certified accuracy by radius: "
                + ", ".join(f"{r['radius']:.3g}: {100 * r['certified_accuracy']:.1f} %"
                            for r in cert["table"] if r["eps_linf"] is None)
                + ". Check that the feature-space attack does not beat the certificate: "
                + {True: "passed", False: "**FAILED**", None: "skipped"}.get(check.get("passed"),
                                                                             "not run") + "."]
    return out + [""]


def _sanity_section(evals):
    """Every check of every evaluation, and what each check's value is."""
    out = ["## Sanity checks", "", "What each value is (its unit) and when the check passes "
           "are listed under the table.", "",
           "| Evaluation | Check | Passed | Value |", "|---|---|---|---|"]
    names = []
    for key, ev in evals.items():
        for c in ev.get("checks", []):
            passed = {True: "yes", False: "**NO**", None: "skipped"}.get(c.get("passed"), c.get("passed"))
            value = c.get("value")
            value = "–" if value is None else f"{value:.4g}" if isinstance(value, float) else value
            out.append(f"| {key} | {c.get('name')} | {passed} | {value} |")
            names += [c.get("name")] if c.get("name") not in names else []
    out += ["", "| Check | Value | Passes when |", "|---|---|---|"]
    for name in names:
        what, when = CHECK_VALUES.get(name, ("see its details in results.json", "–"))
        out.append(f"| {name} | {what} | {when} |")
    return out + [""]


def render_report(results):
    """Markdown text of the report for a ``results`` dict from ``run_paper_study``.

    Parameters
    ----------
    results : dict
        As returned by :func:`sknnmfdiff.study.run_paper_study` (or read from its
        ``results.json``).

    Returns
    -------
    text : str
    """
    cfg = results["config"]
    data = results.get("data", {})
    out = ["# sknnmfdiff study report", ""]
    if data.get("synthetic"):
        out += [
            "> **SYNTHETIC DATA.** These figures come from phantom slices made by "
            "`make_phantom_mri`, not from MRI. Run `sknnmfdiff paper --data DIR` on real images.",
            "",
        ]
    m = results.get("machine", {})
    out += [
        f"Run started {results.get('started')} and finished {results.get('finished')} on "
        f"{m.get('platform')} ({m.get('cpu_count')} CPUs, torch threads {m.get('torch_threads')}, "
        f"CUDA: {m.get('cuda') or 'none'}); device `{cfg.get('device')}`.",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in results.get("versions", {}).items()) + ".",
        "",
        "## Data",
        "",
        f"- Source: {data.get('source')}; {data.get('n_images')} images "
        f"({', '.join(f'{k}: {v}' for k, v in data.get('counts', {}).items())}), "
        f"{data.get('image_size')} x {data.get('image_size')} grayscale in [0, 1].",
        f"- Exact duplicates: {data.get('exact_duplicate_groups')} groups "
        f"({data.get('exact_duplicate_images')} images), collapsed before sampling; "
        f"near duplicates (perceptual hash): {data.get('near_duplicate_groups')} groups "
        f"({data.get('near_duplicate_images')} images), each kept inside one split part.",
    ]
    split = data.get("split") or {}
    if split:
        counts = split.get("counts", {})
        out.append(
            f"- Sample: {data.get('n_per_class')} per class; split "
            + ", ".join(f"{part}: {sum(c.values())} ({', '.join(f'{k}: {v}' for k, v in c.items())})"
                        for part, c in counts.items())
            + f"; exact duplicates removed: {split.get('n_exact_duplicates_removed')}."
        )
    out += [
        "",
        "## Settings",
        "",
        f"KL-NMF rank {cfg['n_components']} ({cfg['nmf_max_iter']} iterations), top-{cfg['k']} "
        f"components by StatSelector, purifier t = {cfg['t']} with n_eot = {cfg['n_eot']}"
        f"{_purifier_note(results)}, "
        f"classifier max_epochs={cfg['clf_max_epochs']}; AutoAttack L-inf eps = {cfg['eps']}; seed {cfg['seed']}.",
        "",
    ]
    clean = results.get("clean", {})
    if "validation" in clean:
        rows = [dict(setting=f"validation {name}", **clean["validation"][name])
                for name in ("baseline", "defended")]
        out += [
            "## Clean figures on the validation part",
            "",
            "From the pipelines' `predict_proba` (the defended one with its seeded "
            "`transform`, i.e. one fixed set of n_eot noise draws); the test-part tables "
            "below re-score the defended model over many fresh draws instead.",
            "",
            _table(rows),
            "",
        ]

    tables = results.get("tables", {})
    evals = results.get("evaluations", {})
    for space in cfg.get("spaces", ()):
        for protocol in cfg.get("protocols", ()):
            key = f"{space}-{protocol}"
            if key not in tables:
                continue
            title = "paper protocol (APGD-CE + Square, no EOT)" if protocol == "paper" else \
                "adaptive protocol (EOT gradients, log-mean-probability loss, EOT Square)"
            out += [f"## {title[0].upper() + title[1:]} — {_space_label(space)}", ""]
            rows = tables[key]["rows"]
            if protocol == "paper" and not data.get("synthetic"):
                out += [_paper_table_note(False), "", _table_with_paper(rows, PAPER_TABLE), ""]
            elif protocol == "paper":
                out += [_paper_table_note(True), "", _table(rows), ""]
            else:
                out += [_table(rows), ""]
            for name in ("baseline", "defended"):
                ev = evals.get(f"{key}-{name}")
                if ev is None:
                    continue
                out += [
                    f"- {name}: threat model {_threat(ev)}.",
                    f"  Robust accuracy by scoring rule: {_robust_rules(ev)}.",
                    f"  Wall time {_fmt(ev['timings'].get('total'), '{:.1f}')} s "
                    f"(attack {_fmt(ev['timings'].get('attack'), '{:.1f}')} s).",
                ]
            out.append("")

    out += _defences_section(results)
    if evals:
        out += _sanity_section(evals)

    t = results.get("timings", {})
    if t:
        out += ["## Timings (wall clock, seconds)", ""]
        if any("(reused" in k for k in t):
            out += [
                "Some evaluations were reused from an earlier run in this folder: their "
                "times are the original run's, and this run's fit times may come from the "
                "cache, so the sums below mix the two runs.",
                "",
            ]
        out += ["| Stage | Seconds |", "|---|---|"]
        out += [f"| {k} | {_fmt(v, '{:.1f}')} |" for k, v in t.items()]
        out.append("")
    figs = results.get("figures", {})
    if figs:
        out += ["## Figures", ""]
        out += [f"![{name}]({path})" for name, path in figs.items()]
        out.append("")
    out += [
        "## Reading these figures",
        "",
        "- Feature space is the threat model the paper most plausibly used (its MATLAB features "
        "were attacked through an ONNX-exported CNN); pixel space attacks the images through "
        "the whole pipeline. The two eps are in different units and are not comparable.",
        "- The paper protocol runs APGD-CE and Square without EOT, as the paper did; against a "
        "randomized defence this over-credits robustness. The adaptive protocol averages "
        "gradients over noise draws and is the figure to trust.",
        "- Attack settings: main eps "
        + (f"overrides {cfg.get('attack')}" if cfg.get("attack") else "the protocols' defaults")
        + f"; the extra eps of the robustness curves and sanity checks use lighter settings "
        f"{cfg.get('grid_attack')}, so those points are upper bounds of what a full attack reaches.",
        "- Robust figures of the defended (randomized) model are re-scored with "
        f"{cfg.get('n_draws')} noise draws; the mean-probability rule is used in the tables.",
    ]
    caps = sorted({c["details"].get("max_samples") for ev in evals.values()
                   for c in ev.get("checks", []) if c.get("name") == "attack_strength_plateau"
                   and (c.get("details") or {}).get("form") == "nested"} - {None})
    if caps:
        out.append(
            "- attack_strength_plateau: the samples an attack left correct (at most "
            f"{', '.join(map(str, caps))}, drawn at random) get one more APGD restart with "
            "twice its iterations and EOT draws and another seed; the check fails when that "
            "lowers the robust figure by more than one sample (randomized: the half-width of "
            "its 95 % interval). Its value is the robust accuracy left after that restart.")
    out.append("")
    return "\n".join(out)


def write_report(results, path):
    """Write :func:`render_report` to ``path`` (UTF-8); returns the path."""
    path = Path(path)
    path.write_text(render_report(results), encoding="utf-8")
    return path
