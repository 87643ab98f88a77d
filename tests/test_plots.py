"""Tests for sknnmfdiff.plots: every figure on tiny synthetic arrays, headless."""

import sys
import threading

import numpy as np
import pytest
from matplotlib.figure import Figure

from sknnmfdiff.plots import (
    plot_adversarial_examples,
    plot_class_activation_heatmap,
    plot_denoising_error,
    plot_feature_scores,
    plot_nmf_basis,
    plot_robustness_curve,
    save_figure,
)

SHAPE = (8, 6)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def _saves_png(fig, tmp_path, name):
    path = save_figure(fig, tmp_path / "sub" / name, dpi=40)
    assert path.is_file()
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 100
    return path


def _images(fig):
    return [ax for ax in fig.axes if ax.get_images()]


# --------------------------------------------------------------------- basis images
@pytest.mark.parametrize("n_components, n_cols", [(15, 5), (7, 3), (2, 5)])
def test_plot_nmf_basis(rng, tmp_path, n_components, n_cols):
    comps = rng.random((n_components, SHAPE[0] * SHAPE[1])).astype(np.float32)
    fig = plot_nmf_basis(comps, SHAPE, n_cols=n_cols)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == n_components
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == [f"component {i}" for i in range(n_components)]
    assert all(ax.get_xticks().size == 0 and ax.get_yticks().size == 0 for ax in fig.axes)
    # The drawn image is the row reshaped row-major.
    np.testing.assert_allclose(fig.axes[1].get_images()[0].get_array(), comps[1].reshape(SHAPE))
    _saves_png(fig, tmp_path, "basis.png")


def test_plot_nmf_basis_zero_component(tmp_path):
    comps = np.zeros((3, SHAPE[0] * SHAPE[1]))
    fig = plot_nmf_basis(comps, SHAPE)
    _saves_png(fig, tmp_path, "zeros.png")


@pytest.mark.parametrize(
    "comps, kwargs, match",
    [
        (np.ones((3, 10)), {}, "image_shape"),
        (np.ones(48), {}, "2-D"),
        (-np.ones((3, 48)), {}, "non-negative"),
        (np.full((3, 48), np.nan), {}, "NaN"),
        (np.ones((3, 48)), {"n_cols": 0}, "n_cols"),
        (np.ones((3, 48)), {"image_shape": (8, -6)}, "image_shape"),
    ],
)
def test_plot_nmf_basis_errors(comps, kwargs, match):
    kwargs = {"image_shape": SHAPE, **kwargs}
    with pytest.raises(ValueError, match=match):
        plot_nmf_basis(comps, **kwargs)


# --------------------------------------------------------------------- activation heatmap
def test_plot_class_activation_heatmap(rng, tmp_path):
    W = rng.random((30, 5))
    y = np.repeat(["notumor", "tumor"], 15)
    W[y == "tumor", 2] += 1.0
    fig = plot_class_activation_heatmap(W, y, target_names=["no tumour", "tumour"])
    assert len(fig.axes) == 2  # heatmap + colour bar
    ax = fig.axes[0]
    shown = ax.get_images()[0].get_array()
    expected = np.stack([W[:15].mean(0), W[15:].mean(0)])
    np.testing.assert_allclose(shown, expected)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["no tumour", "tumour"]
    assert len(ax.texts) == 2 * 5  # one annotation per cell
    _saves_png(fig, tmp_path, "heatmap.png")


def test_plot_class_activation_heatmap_errors(rng):
    W = rng.random((10, 4))
    with pytest.raises(ValueError, match="one label per row"):
        plot_class_activation_heatmap(W, np.zeros(9))
    with pytest.raises(ValueError, match="2-D"):
        plot_class_activation_heatmap(W[:, 0], np.zeros(10))
    with pytest.raises(ValueError, match="target_names"):
        plot_class_activation_heatmap(W, np.arange(10) % 2, target_names=["a", "b", "c"])


# --------------------------------------------------------------------- feature scores
def _scores(rng, n=15):
    return {
        "auc": rng.uniform(0.0, 0.4, n),
        "cohen_d": np.abs(rng.normal(size=n)),
        "welch_p": -np.log10(rng.uniform(1e-6, 1, n)),
    }


@pytest.mark.parametrize("support_kind", ["mask", "indices", None])
def test_plot_feature_scores(rng, tmp_path, support_kind):
    scores = _scores(rng)
    scores["welch_p"][0] = np.inf  # p underflowed: a perfect separator
    scores["welch_p"][1] = np.nan  # degenerate feature
    mask = np.zeros(15, dtype=bool)
    mask[[0, 3, 7]] = True
    support = {"mask": mask, "indices": np.array([0, 3, 7]), None: None}[support_kind]
    fig = plot_feature_scores(scores, support=support)
    assert len(fig.axes) == 3
    p_ax = fig.axes[2]
    heights = np.array([patch.get_height() for patch in p_ax.patches])
    assert heights.shape == (15,)
    assert np.isfinite(heights).all()
    assert heights[0] >= heights[2:].max()  # inf drawn to the top of the panel
    assert heights[1] == 0.0
    np.testing.assert_allclose(heights[2:], scores["welch_p"][2:])
    assert "log10" in p_ax.get_ylabel()
    texts = [t.get_text() for t in p_ax.texts]
    assert "inf" in texts and "n/a" in texts
    colours = [patch.get_facecolor() for patch in fig.axes[0].patches]
    if support_kind is not None:
        assert colours[0] != colours[1] and colours[0] == colours[3]
    else:
        assert len(set(colours)) == 1
    _saves_png(fig, tmp_path, "scores.png")


def test_plot_feature_scores_array_and_names(rng, tmp_path):
    table = np.column_stack([rng.uniform(0.0, 0.3, 4), np.abs(rng.normal(size=4))])
    fig = plot_feature_scores(
        table, criteria=("auc", "cohen_d"), feature_names=["a", "b", "c", "d"]
    )
    assert len(fig.axes) == 2
    assert [t.get_text() for t in fig.axes[-1].get_xticklabels()] == ["a", "b", "c", "d"]
    np.testing.assert_allclose([p.get_height() for p in fig.axes[1].patches], table[:, 1])
    _saves_png(fig, tmp_path, "scores2.png")


def test_plot_feature_scores_from_stat_selector(rng, tmp_path):
    fs = pytest.importorskip("sknnmfdiff.feature_selection")
    y = np.repeat([0, 1], 30)
    X = rng.normal(size=(60, 6))
    X[:, 2] += 2.0 * y
    sel = fs.StatSelector(k=2).fit(X, y)
    fig = plot_feature_scores(sel)
    assert len(fig.axes) == len(sel.criteria_)
    for ax, col in zip(fig.axes, sel.scores_.T):
        np.testing.assert_allclose([p.get_height() for p in ax.patches], col)
    colours = [p.get_facecolor() for p in fig.axes[0].patches]
    chosen = sel.get_support(indices=True)
    assert all(colours[j] == colours[chosen[0]] for j in chosen)
    assert colours[chosen[0]] != colours[np.flatnonzero(~sel.get_support())[0]]
    _saves_png(fig, tmp_path, "selector.png")


def test_plot_feature_scores_errors(rng):
    scores = _scores(rng)
    with pytest.raises(ValueError, match="no entry for criteria"):
        plot_feature_scores(scores, criteria=("auc", "mi"))
    with pytest.raises(ValueError, match="same length"):
        plot_feature_scores({**scores, "auc": scores["auc"][:5]})
    with pytest.raises(ValueError, match="one column"):
        plot_feature_scores(np.ones((15, 2)))
    with pytest.raises(ValueError, match="boolean mask"):
        plot_feature_scores(scores, support=np.ones(4, dtype=bool))
    with pytest.raises(ValueError, match="indices"):
        plot_feature_scores(scores, support=np.array([20]))
    with pytest.raises(ValueError, match="feature_names"):
        plot_feature_scores(scores, feature_names=["a"])
    with pytest.raises(ValueError, match="non-negative"):
        plot_feature_scores({**scores, "cohen_d": -scores["cohen_d"]})
    with pytest.raises(ValueError, match="at least one"):
        plot_feature_scores(scores, criteria=())


# --------------------------------------------------------------------- denoising error
def test_plot_denoising_error_per_sample(rng, tmp_path):
    noisy = rng.uniform(0.5, 1.0, 40)
    denoised = noisy * rng.uniform(0.2, 0.9, 40)
    fig = plot_denoising_error(noisy, denoised, t=41)
    assert len(fig.axes) == 1
    ax = fig.axes[0]
    assert "t = 41" in ax.get_title()
    assert any("100% below" in t.get_text() for t in ax.get_legend().get_texts())
    _saves_png(fig, tmp_path, "denoise.png")


@pytest.mark.parametrize("t_kind", ["per_row", "full"])
def test_plot_denoising_error_per_t(rng, tmp_path, t_kind):
    steps = np.array([10, 41, 100])
    noisy = rng.uniform(0.1, 1.0, (3, 20))
    denoised = noisy * 0.5
    denoised[0, 0] = noisy[0, 0] * 2  # one point above the identity line
    t = steps if t_kind == "per_row" else np.repeat(steps[:, None], 20, axis=1)
    fig = plot_denoising_error(noisy, denoised, t=t)
    assert len(fig.axes) == 2  # scatter + colour bar
    offsets = fig.axes[0].collections[0].get_offsets()
    assert offsets.shape == (60, 2)
    assert any("98% below" in t.get_text() for t in fig.axes[0].get_legend().get_texts())
    _saves_png(fig, tmp_path, "denoise_t.png")


def test_plot_denoising_error_errors(rng):
    a = rng.random(10)
    with pytest.raises(ValueError, match="same shape"):
        plot_denoising_error(a, a[:5])
    with pytest.raises(ValueError, match="non-negative"):
        plot_denoising_error(-a, a)
    with pytest.raises(ValueError, match="t must be"):
        plot_denoising_error(a, a, t=np.arange(3))
    with pytest.raises(ValueError, match="NaN"):
        plot_denoising_error(np.full(3, np.nan), np.ones(3))


# --------------------------------------------------------------------- robustness curve
def test_plot_robustness_curve(tmp_path):
    eps = np.array([0.0, 0.05, 0.1, 0.02])  # unsorted on purpose
    curves = {
        "baseline / paper": np.array([0.86, 0.2, 0.005, 0.5]),
        "defended / adaptive": np.array([0.85, 0.6, 0.4, 0.75]),
    }
    ci = {"defended / adaptive": (curves["defended / adaptive"] - 0.03,
                                  curves["defended / adaptive"] + 0.03)}
    fig = plot_robustness_curve(eps, curves, title="pixel space, L-inf", ci=ci)
    assert len(fig.axes) == 1
    ax = fig.axes[0]
    assert ax.get_title() == "pixel space, L-inf"
    assert ax.get_ylabel() == "robust accuracy"
    assert len(ax.get_lines()) == 2
    np.testing.assert_allclose(ax.get_lines()[0].get_xdata(), np.sort(eps))
    assert len(ax.collections) == 1  # one CI band
    assert ax.get_ylim() == (-0.02, 1.02)
    _saves_png(fig, tmp_path, "robust.png")


def test_plot_robustness_curve_errors():
    eps = np.array([0.0, 0.1])
    with pytest.raises(ValueError, match="non-empty mapping"):
        plot_robustness_curve(eps, {})
    with pytest.raises(ValueError, match="has 3 values"):
        plot_robustness_curve(eps, {"a": [1, 2, 3]})
    with pytest.raises(ValueError, match="not in curves"):
        plot_robustness_curve(eps, {"a": [1, 0]}, ci={"b": ([0, 0], [1, 1])})
    with pytest.raises(ValueError, match="lo > hi"):
        plot_robustness_curve(eps, {"a": [1, 0]}, ci={"a": ([1, 1], [0, 0])})
    with pytest.raises(ValueError, match="non-negative"):
        plot_robustness_curve([-0.1, 0.1], {"a": [1, 0]})


# --------------------------------------------------------------------- adversarial examples
@pytest.mark.parametrize("layout", ["flat", "hw", "chw"])
def test_plot_adversarial_examples(rng, tmp_path, layout):
    n_samples, eps = 5, 0.1
    clean = rng.random((n_samples, SHAPE[0] * SHAPE[1]))
    adv = np.clip(clean + rng.choice([-eps, eps], size=clean.shape), 0, 1)
    reshape = {"flat": (n_samples, -1), "hw": (n_samples, *SHAPE), "chw": (n_samples, 1, *SHAPE)}
    fig = plot_adversarial_examples(
        clean.reshape(reshape[layout]),
        adv.reshape(reshape[layout]),
        y=np.arange(n_samples) % 2,
        pred_clean=np.arange(n_samples) % 2,
        pred_adv=1 - np.arange(n_samples) % 2,
        image_shape=SHAPE,
        n=3,
    )
    assert len(_images(fig)) == 3 * 3
    assert len(fig.axes) == 3 * 3 + 1  # plus the perturbation colour bar
    delta_im = fig.axes[2].get_images()[0]
    lo, hi = delta_im.get_clim()
    assert lo == -hi and hi == pytest.approx(eps)
    assert "eps = 0.1" in fig.axes[2].get_title()
    assert "y=0" in fig.axes[0].get_title() and "pred=1" in fig.axes[1].get_title()
    _saves_png(fig, tmp_path, "adv.png")


def test_plot_adversarial_examples_n_larger_than_samples(rng):
    clean = rng.random((2, SHAPE[0] * SHAPE[1]))
    fig = plot_adversarial_examples(clean, clean, image_shape=SHAPE, n=10)
    assert len(_images(fig)) == 2 * 3


def test_plot_adversarial_examples_errors(rng):
    clean = rng.random((3, SHAPE[0] * SHAPE[1]))
    with pytest.raises(ValueError, match="image_shape"):
        plot_adversarial_examples(clean, clean, image_shape=(5, 5))
    with pytest.raises(ValueError, match="same number"):
        plot_adversarial_examples(clean, clean[:2], image_shape=SHAPE)
    with pytest.raises(ValueError, match="pred_adv"):
        plot_adversarial_examples(clean, clean, pred_adv=[0, 1], image_shape=SHAPE)
    with pytest.raises(ValueError, match="n must be"):
        plot_adversarial_examples(clean, clean, image_shape=SHAPE, n=0)


# --------------------------------------------------------------------- saving, headless use
def test_save_figure_suffix_and_errors(rng, tmp_path):
    fig = plot_robustness_curve([0, 0.1], {"a": [0.9, 0.1]})
    assert save_figure(fig, tmp_path / "deep" / "er" / "curve").suffix == ".png"
    with pytest.raises(ValueError, match="PNG"):
        save_figure(fig, tmp_path / "curve.pdf")
    with pytest.raises(ValueError, match="dpi"):
        save_figure(fig, tmp_path / "curve.png", dpi=0)
    with pytest.raises(TypeError, match="Figure"):
        save_figure("not a figure", tmp_path / "x.png")


def test_no_pyplot_and_thread_safe(rng, tmp_path):
    """Figures are built without pyplot and can be made from several threads at once."""
    comps = rng.random((4, SHAPE[0] * SHAPE[1]))
    errors = []

    def work(i):
        try:
            fig = plot_nmf_basis(comps, SHAPE, n_cols=2)
            save_figure(fig, tmp_path / f"t{i}.png", dpi=30)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    assert all((tmp_path / f"t{i}.png").stat().st_size > 0 for i in range(4))
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:  # another test module may have imported it; we must not add figures
        assert pyplot.get_fignums() == []


def test_plot_tradeoff_draws_front_and_highlight():
    from sknnmfdiff.plots import plot_tradeoff

    fig = plot_tradeoff([0.9, 0.85, 0.8], [0.05, 0.2, 0.1], labels=["a", "b", "c"],
                        front=[0, 1], highlight={"paper": 2}, title="t")
    ax = fig.axes[0]
    line = ax.get_lines()[0]
    assert list(line.get_xdata()) == [0.9, 0.85] and list(line.get_ydata()) == [0.05, 0.2]
    assert {t.get_text() for t in ax.texts} == {"a", "b", "c"}
    with pytest.raises(ValueError, match="differ in length"):
        plot_tradeoff([0.9], [0.1, 0.2])
    with pytest.raises(ValueError, match="out of range"):
        plot_tradeoff([0.9], [0.1], front=[3])
    with pytest.raises(ValueError, match="labels"):
        plot_tradeoff([0.9, 0.8], [0.1, 0.2], labels=["a"])


def test_plot_metric_vs_t_lines_and_errors():
    from sknnmfdiff.plots import plot_metric_vs_t

    fig = plot_metric_vs_t([0, 20, 41], {"rank 10": [0.1, 0.2, np.nan], "rank 15": [0.1, 0.3, 0.4]},
                           errors={"rank 15": [0.01, 0.02, 0.03]})
    ax = fig.axes[0]
    assert ax.get_xscale() == "symlog"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["rank 10", "rank 15"]
    with pytest.raises(ValueError, match="3 timesteps"):
        plot_metric_vs_t([0, 20, 41], {"r": [0.1, 0.2]})
    with pytest.raises(ValueError, match="non-negative"):
        plot_metric_vs_t([-1, 2], {"r": [0.1, 0.2]})
    with pytest.raises(ValueError, match="empty"):
        plot_metric_vs_t([1, 2], {})
