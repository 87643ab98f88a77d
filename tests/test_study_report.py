"""What a reader of a study sees: the report's tables and notes, and its figures."""

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest
from matplotlib.text import Text

from sknnmfdiff.paper import PAPER_TABLE
from sknnmfdiff.plots import plot_adversarial_examples, plot_robustness_curve
from sknnmfdiff.report import CHECK_VALUES, render_report

_ROWS = [dict(setting=s, accuracy=a, balanced_accuracy=a, roc_auc=0.5, mcc=0.0, brier=0.25,
              log_loss=0.7)
         for s, a in (("Clean baseline", 0.9), ("Clean defended", 0.85),
                      ("Robust baseline", 0.0), ("Robust defended", 0.1))]


def _results(synthetic, checks=()):
    """A minimal ``results.json`` dict of a study with one paper-protocol table."""
    return {
        "config": dict(n_components=15, nmf_max_iter=200, k=10, t=41, n_eot=8,
                       clf_max_epochs="auto", eps=0.1, seed=0, spaces=["feature"],
                       protocols=["paper"], attack={}, grid_attack={}, n_draws=100),
        "data": {"synthetic": synthetic},
        "tables": {"feature-paper": {"rows": _ROWS, "markdown": ""}},
        "evaluations": {"feature-paper-defended": {
            "threat_model": {"space": "feature"}, "robust": {}, "timings": {},
            "checks": [dict(name=n, passed=True, value=v) for n, v in checks]}},
    }


def _paper_cells():
    return [f"{100 * PAPER_TABLE[row]['accuracy']:.2f}%" for row in PAPER_TABLE]


def test_synthetic_report_keeps_the_papers_figures_out_of_its_tables():
    text = render_report(_results(synthetic=True))
    assert not any(cell in text for cell in _paper_cells())
    assert "(paper" not in text and "(*paper*)" not in text
    assert "phantom results are not comparable" in text


def test_real_data_report_labels_the_papers_columns():
    text = render_report(_results(synthetic=False))
    assert all(cell in text for cell in _paper_cells())
    header = next(line for line in text.splitlines() if line.startswith("| Setting |"))
    assert "Accuracy (*paper*)" in header and "Accuracy (ours)" in header
    assert "published figures of arXiv 2603.13182" in text and "not computed here" in text


def test_sanity_values_have_their_meaning_and_unit():
    checks = [("perturbation_bounds", 0.1), ("batch_size_invariance", 9.5e-7),
              ("autoattack_flags", None), ("a_future_check", 3.0)]
    text = render_report(_results(synthetic=True, checks=checks))
    legend = text[text.index("| Check | Value | Passes when |"):].splitlines()
    rows = {line.split(" | ")[0].strip("| "): line for line in legend[2:] if line.startswith("|")}
    assert set(rows) == {name for name, _ in checks}
    assert "input units" in rows["perturbation_bounds"]
    assert "logit units" in rows["batch_size_invariance"]
    assert "see its details in results.json" in rows["a_future_check"]
    assert "| feature-paper-defended | autoattack_flags | yes | – |" in text


def test_every_check_the_package_makes_is_described():
    """A new check needs a line in ``report.CHECK_VALUES`` (what its value is, its unit)."""
    root = Path(__file__).resolve().parents[1] / "sknnmfdiff"
    source = "\n".join(p.read_text() for p in root.rglob("*.py"))
    names = set(re.findall(r'(?:CheckResult|_safe_check)\(\s*"([a-z_]+)"', source))
    assert "perturbation_bounds" in names and "certified_bound" in names
    assert names <= set(CHECK_VALUES), f"describe in report.CHECK_VALUES: {names - set(CHECK_VALUES)}"


def test_coinciding_curves_stay_visible_and_bands_have_a_legend():
    eps = [0.0, 0.05, 0.1, 0.2]
    same = [0.9, 0.1, 0.0, 0.0]
    curves = {"baseline / paper": same, "defended / paper": same, "baseline / adaptive": same}
    ci = {k: ([0.8, 0.05, 0.0, 0.0], [0.95, 0.2, 0.06, 0.06]) for k in curves}
    fig = plot_robustness_curve(eps, curves, ci=ci, eps_marks={"main eps": 0.1})
    ax = fig.axes[0]
    lines = [ln for ln in ax.get_lines() if ln.get_label() in curves]
    assert len({(ln.get_linestyle(), ln.get_marker()) for ln in lines}) == 3
    # Later curves are drawn on top, thinner and with smaller markers: all stay visible.
    sizes = [ln.get_markersize() for ln in lines]
    widths = [ln.get_linewidth() for ln in lines]
    assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == 3
    assert widths == sorted(widths, reverse=True) and len(set(widths)) == 3
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "shaded: 95 % confidence interval" in labels and "main eps" in labels
    assert len(ax.collections) == 3


def test_synthetic_mark_leaves_every_label_readable():
    from sknnmfdiff.study import _mark_synthetic

    fig = _mark_synthetic(plot_robustness_curve([0.0, 0.1], {"a": [0.9, 0.1]},
                                                xlabel="eps (pixel intensity)"))
    renderer = fig.canvas.get_renderer()
    fig.draw_without_rendering()
    (mark,) = [t for t in fig.findobj(Text) if "SYNTHETIC" in t.get_text()]
    mark = mark.get_window_extent(renderer)
    ax = fig.axes[0]
    for text in [ax.xaxis.label, *ax.get_xticklabels()]:
        assert not mark.overlaps(text.get_window_extent(renderer)), text.get_text()
    assert mark.y1 < ax.xaxis.label.get_window_extent(renderer).y0


def test_adversarial_examples_of_several_models():
    rng = np.random.default_rng(0)
    clean = rng.random((3, 36))
    advs = {m: np.clip(clean + rng.choice([-0.1, 0.1], size=clean.shape), 0, 1)
            for m in ("baseline", "defended")}
    fig = plot_adversarial_examples(
        clean, advs, y=["a", "b", "a"], pred_clean={"baseline": [0, 1, 0], "defended": [0, 1, 1]},
        pred_adv={"baseline": [1, 0, 1], "defended": [0, 1, 1]}, image_shape=(6, 6), n=2)
    image_axes = [ax for ax in fig.axes if ax.get_images()]
    assert len(image_axes) == 2 * 5
    titles = [ax.get_title() for ax in image_axes[:5]]
    assert titles[1] == "baseline: 0 -> 1" and titles[3] == "defended: 0 -> 0"
    assert {ax.get_images()[0].get_clim() for ax in image_axes[2::2][:2]} == {(-0.1, 0.1)}
    with pytest.raises(ValueError, match="same models"):
        plot_adversarial_examples(clean, advs, pred_adv={"baseline": [0, 1, 0]}, image_shape=(6, 6))


@pytest.fixture(scope="module")
def tiny_models():
    from sknnmfdiff.datasets import make_phantom_mri
    from sknnmfdiff.pipeline import make_baseline_pipeline, make_paper_pipeline

    bunch = make_phantom_mri(60, image_size=16, random_state=0)
    X, y = bunch.data, bunch.target
    common = dict(n_components=4, k=3, random_state=0, nmf__max_iter=30, clf__max_epochs=5)
    base = make_baseline_pipeline(**common).fit(X[:40], y[:40])
    deff = make_paper_pipeline(t=5, n_eot=2, purify__max_epochs=5, **common).fit(X[:40], y[:40])
    return {"baseline": base, "defended": deff}, X[40:], y[40:], bunch.target_names


def test_adversarial_examples_figure_uses_the_tables_attack_on_both_models(
        tiny_models, tmp_path, monkeypatch):
    import sknnmfdiff.evaluation
    from sknnmfdiff.study import StudyConfig, _adversarial_examples

    models, Xte, yte, names = tiny_models
    cfg = StudyConfig(image_size=16, eps=0.05, seed=3, n_draws=4,
                      attack={"n_restarts": 1, "n_iter": 5, "square_queries": 10, "n_eot": 2})
    calls = []
    run = sknnmfdiff.evaluation.run_attack

    def recording(module, x, y, **kwargs):
        calls.append(kwargs)
        return run(module, x, y, **kwargs)

    monkeypatch.setattr(sknnmfdiff.evaluation, "run_attack", recording)
    path = _adversarial_examples(cfg, models, Xte, yte, names, tmp_path)
    assert (tmp_path / path).stat().st_size > 0
    assert len(calls) == 2  # the baseline and the defended pipeline
    for kw in calls:
        assert kw["protocol"] == "adaptive" and kw["eps"] == 0.05 and kw["random_state"] == 3
        assert {k: kw[k] for k in cfg.attack} == cfg.attack
    paper_only = dataclasses.replace(cfg, protocols=("paper",))
    calls.clear()
    _adversarial_examples(paper_only, models, Xte, yte, names, tmp_path)
    assert [kw["protocol"] for kw in calls] == ["paper", "paper"]


def test_p_value_line_label_stays_readable_over_bars():
    from sknnmfdiff.plots import plot_feature_scores

    scores = {"auc": np.full(4, 0.2), "cohen_d": np.ones(4), "welch_p": np.full(4, 5.0)}
    fig = plot_feature_scores(scores)
    (label,) = [t for t in fig.axes[2].texts if t.get_text() == "p = 0.05"]
    box = label.get_bbox_patch()
    assert box is not None and box.get_facecolor()[:3] == (1.0, 1.0, 1.0)
    assert label.get_zorder() > max(p.get_zorder() for p in fig.axes[2].patches)
