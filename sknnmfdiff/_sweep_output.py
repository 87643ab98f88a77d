"""The output folder of a sweep: ``sweep.json``, tidy CSV tables, figures and ``report.md``."""

import csv
from pathlib import Path

import numpy as np

from . import _runs

_GRID_KEYS = ("n_components", "k", "t", "n_eot")


#: Leading columns of the tables, in this order whatever order a row's keys come in
#: (cells read back from disk have sorted keys).
_FIRST_COLUMNS = ("n_components", "k", "t", "n_eot", "fold")


def _write_csv(path, rows):
    keys = list(dict.fromkeys(k for r in rows for k in r))
    keys = [k for k in _FIRST_COLUMNS if k in keys] + [k for k in keys if k not in _FIRST_COLUMNS]
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow({k: (",".join(f"{x:.6g}" for x in v) if isinstance(v, list) else v)
                        for k, v in r.items()})


def _label(s):
    return "r{n_components} k{k} t{t} e{n_eot}".format(**s)


def _figures(results, figdir, synthetic):
    from . import plots

    figdir.mkdir(parents=True, exist_ok=True)
    files = {}
    cfg = results["config"]
    summary = results["summary"]

    def save(name, fig):
        if synthetic:
            fig.suptitle("SYNTHETIC phantom data (make_phantom_mri), not MRI", fontsize=8,
                         color="firebrick")
        files[name] = f"figures/{name}.png"
        plots.save_figure(fig, figdir / f"{name}.png")

    paper = [i for i, s in enumerate(summary)
             if all(s[k] == results["paper_cell"][k] for k in _GRID_KEYS)]
    save("tradeoff", plots.plot_tradeoff(
        [s["clean_balanced_accuracy"] for s in summary],
        [s["robust_balanced_accuracy"] for s in summary],
        labels=[_label(s) for s in summary], front=results["pareto"],
        highlight={"paper's configuration": paper[0]} if paper else None,
        title=f"{cfg['cv']}-fold CV; adaptive attack, feature space, L-inf eps = {cfg['eps']}"))
    ts = sorted({s["t"] for s in summary})
    for metric, name in (("robust_balanced_accuracy", "robust_vs_t"),
                         ("clean_balanced_accuracy", "clean_vs_t")):
        curves, errs = {}, {}
        for (r, k, e) in sorted({(s["n_components"], s["k"], s["n_eot"]) for s in summary}):
            vals, err = [], []
            for t in ts:
                m = [s for s in summary if (s["n_components"], s["k"], s["t"]) == (r, k, t)
                     and (s["n_eot"] == e or t == 0)]
                vals.append(m[0][metric] if m else np.nan)
                err.append(m[0][metric + "_sd"] if m else np.nan)
            label = f"rank {r}, k {k}" + (f", {e} draws" if len(cfg["n_eot"]) > 1 else "")
            curves[label], errs[label] = vals, err
        ylabel = metric.replace("_", " ")
        save(name, plots.plot_metric_vs_t(
            ts, curves, errors=errs, ylabel=ylabel,
            title=f"mean and sd over {cfg['cv']} folds"
            + (f"; adaptive, feature space, eps = {cfg['eps']}" if metric.startswith("robust")
               else "")))
    for space in cfg["curve_spaces"]:
        cs = [c for c in results["curves"] if c["space"] == space]
        if not cs:
            continue
        eps = [p["eps"] for p in cs[0]["points"]]
        def name(c):
            paper = all(c[k] == results["paper_cell"][k] for k in _GRID_KEYS)
            return _label(c) + (" (paper's)" if paper else "")

        curves = {name(c): [p["balanced_accuracy"] for p in c["points"]] for c in cs}
        ci = {name(c): ([(p.get("accuracy_ci") or [np.nan] * 2)[0] for p in c["points"]],
                        [(p.get("accuracy_ci") or [np.nan] * 2)[1] for p in c["points"]])
              for c in cs}
        if any(np.isnan(v).any() for band in ci.values() for v in band):
            ci = None
        unit = "pixel intensity" if space == "pixel" else "feature value"
        save(f"robust_vs_eps_{space}", plots.plot_robustness_curve(
            eps, curves, ylabel="robust balanced accuracy", xlabel=f"eps (L-inf, {unit})",
            ci=ci, title=f"test part, {space} space, adaptive attack"
            + ("\nbands: 95 % Wilson interval of robust accuracy" if ci else "")))
    return files


def _md_table(rows, cols):
    head = "| " + " | ".join(c for c, _ in cols) + " |"
    lines = [head, "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(f(r) for _, f in cols) + " |")
    return "\n".join(lines)


def _pct(v):
    return "–" if v is None or v != v else f"{100 * v:.1f}"


def render(results):
    """Markdown text of ``report.md`` for the ``results`` of :func:`run_sweep`."""
    cfg = results["config"]
    data = results["data"]
    summary = results["summary"]
    out = ["# sknnmfdiff sweep report", ""]
    if data.get("synthetic"):
        out += ["> **SYNTHETIC DATA.** Phantom slices from `make_phantom_mri`, not MRI.", ""]
    t = results["timings"]
    m = results["machine"]
    out += [
        f"{len(results['cells'])} cells ({len(summary)} configurations x {cfg['cv']} folds) "
        f"in {t.get('total', 0):.0f} s on {m.get('cpu_count')} CPUs "
        f"(backend {cfg['backend']}; grid {t.get('grid', 0):.0f} s, curves "
        f"{t.get('curves', 0):.0f} s).",
        "",
        f"Data: {data.get('source')}; development part (train + validation of the paper split) "
        f"{sum(sum(c.values()) for p, c in data['split']['counts'].items() if p != 'test')} "
        f"images, test part {sum(data['split']['counts']['test'].values())} images, "
        f"{cfg['image_size']} x {cfg['image_size']} px. Folds keep near-duplicate groups "
        "together.",
        "",
        f"Per cell: the defended pipeline (t = 0: undefended) fitted on the other "
        f"{cfg['cv'] - 1} of {cfg['cv']} folds; "
        f"clean balanced accuracy and robust balanced accuracy on the held-out fold under the "
        f"adaptive attack in feature space, L-inf eps = {cfg['eps']}, with light settings "
        f"{cfg['attack']} (upper bounds of what the full attack reaches)"
        + (f", at most {cfg['max_eval']} held-out samples attacked" if cfg["max_eval"] else "")
        + ". Robust accuracy pooled over folds has a 95 % Wilson interval.",
        "",
        "## All configurations",
        "",
    ]
    front = set(results["pareto"])
    cols = [("rank", lambda s: str(s["n_components"])), ("k", lambda s: str(s["k"])),
            ("t", lambda s: str(s["t"])), ("draws", lambda s: str(s["n_eot"]) if s["t"] else "–"),
            ("clean bal. acc. % (sd)",
             lambda s: f"{_pct(s['clean_balanced_accuracy'])} ({_pct(s['clean_balanced_accuracy_sd'])})"),
            ("robust bal. acc. % (sd)",
             lambda s: f"{_pct(s['robust_balanced_accuracy'])} ({_pct(s['robust_balanced_accuracy_sd'])})"),
            ("robust acc. % pooled [95 % CI]",
             lambda s: f"{_pct(s['robust_accuracy_pooled'])} "
                       f"[{_pct((s['robust_accuracy_pooled_ci'] or [None])[0])}, "
                       f"{_pct((s['robust_accuracy_pooled_ci'] or [None, None])[1])}]"),
            ("Pareto", lambda s: "yes" if summary.index(s) in front else "")]
    out += [_md_table(summary, cols), ""]
    out += ["## Robust accuracy against eps (test part)", "",
            f"Configurations: the {cfg['n_best']} most robust of those whose clean balanced "
            f"accuracy is within {100 * cfg['tolerance']:.0f} points of the best, and the paper's "
            "(rank 15, k 10, t 41, 8 draws); each fitted on the whole development part and "
            "attacked on the test part with the cells' adaptive settings (upper bounds). "
            "Each entry: robust balanced accuracy %, then robust accuracy's 95 % Wilson "
            "interval; feature space in feature units, pixel space in pixel units.", ""]
    out += [_curve_table(results["curves"]), ""]
    if results.get("figures"):
        out += ["## Figures", ""] + [f"![{k}]({v})" for k, v in results["figures"].items()] + [""]
    return "\n".join(out)


def _curve_table(curves):
    """Markdown table: one row per eps, one column per curve (configuration, space)."""
    if not curves:
        return "(no curves)"
    eps = sorted({p["eps"] for c in curves for p in c["points"]})
    head = ["eps"] + [f"{_label(c)}, {c['space']}" for c in curves]
    rows = []
    for e in eps:
        row = [f"{e:g}"]
        for c in curves:
            p = next((p for p in c["points"] if p["eps"] == e), None)
            if p is None:
                row.append("–")
                continue
            ci = p.get("accuracy_ci") or [None, None]
            row.append(f"{_pct(p['balanced_accuracy'])} [{_pct(ci[0])}, {_pct(ci[1])}]")
        rows.append(row)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def write_outputs(results, out):
    """Write ``sweep.json``, ``cells.csv``, ``summary.csv``, ``figures/`` and ``report.md``.

    Parameters
    ----------
    results : dict
        From :func:`sknnmfdiff.sweep.run_sweep`.
    out : str or Path
        Output folder (exists).
    """
    out = Path(out)
    results["figures"] = _figures(results, out / "figures", results["data"].get("synthetic"))
    _write_csv(out / "cells.csv", results["cells"])
    _write_csv(out / "summary.csv", results["summary"])
    _runs.write_json(out / "sweep.json", results)
    (out / "report.md").write_text(render(results), encoding="utf-8")
