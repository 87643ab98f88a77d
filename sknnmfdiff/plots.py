"""Figures for the sknnmfdiff pipeline and its robustness evaluation.

Every function builds and returns a :class:`matplotlib.figure.Figure` with an
Agg canvas attached. Nothing here touches :mod:`matplotlib.pyplot` or its global
state, so the functions are safe to call from worker threads and on machines
without a display. Save a figure with :func:`save_figure` (or ``fig.savefig``);
in a notebook, a returned figure is shown when it is the cell's last expression.

The figures follow the paper, "Diffusion-Based Feature Denoising and Using NNMF
for Robust Brain Tumor Classification" (CVPR 2026, arXiv 2603.13182): the rank-15
basis images, the class-wise activation of each component, the per-criterion
feature scores used for selection, the denoising error of the purifier against
the noise it removes, and robust accuracy against the attack budget.

Naming follows scikit-learn: ``X ~= W H`` with ``components_ = H`` the basis
images (one per row) and ``W`` the per-sample activations (the paper writes
``V ~= W H`` with ``W`` the basis).
"""

import logging
import numbers
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

__all__ = [
    "plot_nmf_basis",
    "plot_class_activation_heatmap",
    "plot_feature_scores",
    "plot_denoising_error",
    "plot_robustness_curve",
    "plot_adversarial_examples",
    "save_figure",
]

logger = logging.getLogger(__name__)

#: Colours for highlighted (selected) and other features in bar charts.
_SELECTED_COLOR = "tab:orange"
_OTHER_COLOR = "tab:gray"

#: Axis labels for the criteria of StatSelector (scores: higher is better).
_CRITERION_LABELS = {
    "auc": "|AUC - 0.5|",
    "cohen_d": "|Cohen's d|",
    "welch_p": "-log10 p (Welch)",
}


# --------------------------------------------------------------------------- helpers
def _new_figure(figsize):
    """A constrained-layout figure with its own Agg canvas (no pyplot)."""
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _as_float_array(name, value, *, ndim=None, allow_nan=False):
    """Convert ``value`` to a float64 array, checking its rank and finiteness."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a numeric array; got {type(value).__name__}.") from exc
    if ndim is not None and arr.ndim not in np.atleast_1d(ndim):
        raise ValueError(
            f"{name} must be a {ndim}-D array; got an array of shape {arr.shape}."
        )
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); at least one value is needed.")
    if allow_nan:
        if np.isinf(arr).any():
            raise ValueError(f"{name} contains infinite values.")
    elif not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values.")
    return arr


def _check_image_shape(image_shape):
    if (
        not isinstance(image_shape, (tuple, list))
        or len(image_shape) != 2
        or not all(isinstance(s, numbers.Integral) and s > 0 for s in image_shape)
    ):
        raise ValueError(
            f"image_shape must be a pair of positive integers (height, width); got {image_shape!r}."
        )
    return int(image_shape[0]), int(image_shape[1])


def _check_positive_int(name, value):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}.")
    return int(value)


def _as_images(name, x, image_shape):
    """Reshape ``x`` of shape (n, H*W), (n, H, W) or (n, 1, H, W) to (n, H, W)."""
    h, w = image_shape
    arr = _as_float_array(name, x)
    if arr.ndim == 2 and arr.shape[1] == h * w:
        return arr.reshape(-1, h, w)
    if arr.ndim == 3 and arr.shape[1:] == (h, w):
        return arr
    if arr.ndim == 4 and arr.shape[1:] == (1, h, w):
        return arr[:, 0]
    raise ValueError(
        f"{name} must have shape (n_samples, {h * w}), (n_samples, {h}, {w}) or "
        f"(n_samples, 1, {h}, {w}) for image_shape={image_shape}; got {arr.shape}."
    )


def _optional_labels(name, value, n_samples):
    if value is None:
        return None
    arr = np.asarray(value)
    if arr.ndim != 1 or arr.shape[0] != n_samples:
        raise ValueError(
            f"{name} must be a 1-D array with one entry per sample ({n_samples}); "
            f"got shape {arr.shape}."
        )
    return arr


# --------------------------------------------------------------------------- figures
def plot_nmf_basis(components, image_shape=(128, 128), *, n_cols=5):
    """Show the NMF basis images, one panel per component.

    Each row of ``components`` (scikit-learn's ``components_ = H`` in
    ``X ~= W H``; the paper's basis ``W`` in ``V ~= W H``) is reshaped to
    ``image_shape`` and drawn in gray, scaled from 0 to its own maximum, without
    ticks. The paper's figure shows the 15 basis images learned at rank 15.

    Parameters
    ----------
    components : array-like of shape (n_components, height * width)
        Non-negative basis images, one per row, in the pixel order produced by
        ``image.reshape(-1)`` (row-major).
    image_shape : tuple of int, default=(128, 128)
        ``(height, width)`` of one image in pixels.
    n_cols : int, default=5
        Number of panels per row of the grid.

    Returns
    -------
    fig : matplotlib.figure.Figure
        One axes per component, titled ``"component i"`` with ``i`` the
        0-based row index into ``components`` (the index used by feature names
        and selector masks). Unused grid cells are removed.

    Raises
    ------
    ValueError
        If ``components`` is not 2-D, its width is not ``height * width``, it
        holds negative, NaN or infinite values, or ``image_shape``/``n_cols``
        are invalid.

    Examples
    --------
    >>> import numpy as np
    >>> from sknnmfdiff.plots import plot_nmf_basis
    >>> components = np.random.default_rng(0).random((15, 16 * 16))
    >>> fig = plot_nmf_basis(components, image_shape=(16, 16))
    >>> len(fig.axes)
    15
    """
    h, w = _check_image_shape(image_shape)
    n_cols = _check_positive_int("n_cols", n_cols)
    comps = _as_float_array("components", components, ndim=2)
    if comps.shape[1] != h * w:
        raise ValueError(
            f"components has {comps.shape[1]} columns but image_shape={(h, w)} needs "
            f"{h * w}; pass the image_shape the basis was learned at."
        )
    if (comps < 0).any():
        raise ValueError(
            f"components must be non-negative (NMF basis); min value is {comps.min():.3g}."
        )
    n_components = comps.shape[0]
    n_cols = min(n_cols, n_components)
    n_rows = -(-n_components // n_cols)
    fig = _new_figure((2.0 * n_cols, 2.2 * n_rows))
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        if i >= n_components:
            fig.delaxes(ax)
            continue
        img = comps[i].reshape(h, w)
        vmax = img.max() if img.max() > 0 else 1.0
        ax.imshow(img, cmap="gray", vmin=0.0, vmax=vmax, interpolation="nearest")
        ax.set_title(f"component {i}", fontsize="small")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"NMF basis images (rank {n_components})")
    return fig


def plot_class_activation_heatmap(W, y, *, target_names=None):
    """Heatmap of the class-mean activation of each component.

    Cell ``(c, j)`` is the mean of ``W[:, j]`` over the samples of class ``c``,
    printed in the cell and coloured on a shared colour bar. Components whose
    mean differs between classes are the ones the statistical selector keeps.

    Parameters
    ----------
    W : array-like of shape (n_samples, n_components)
        Per-sample activations, e.g. the output of ``KLNMFTransformer.transform``
        (non-negative, rows L2-normalised, so values in [0, 1]); any real
        features are accepted.
    y : array-like of shape (n_samples,)
        Class labels (any sortable values, e.g. 0/1 or strings).
    target_names : sequence of str, optional
        Display names of the classes, in the order of ``numpy.unique(y)``.
        Defaults to ``str`` of each label.

    Returns
    -------
    fig : matplotlib.figure.Figure
        Two axes: the heatmap (rows classes, columns components) and its colour bar.

    Raises
    ------
    ValueError
        If ``W`` is not 2-D or holds NaN/inf, ``y`` does not have one label per
        row of ``W``, or ``target_names`` does not have one name per class.
    """
    W = _as_float_array("W", W, ndim=2)
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != W.shape[0]:
        raise ValueError(
            f"y must be 1-D with one label per row of W ({W.shape[0]}); got shape {y.shape}."
        )
    classes, inverse = np.unique(y, return_inverse=True)
    if target_names is None:
        names = [str(c) for c in classes]
    else:
        names = [str(n) for n in target_names]
        if len(names) != len(classes):
            raise ValueError(
                f"target_names has {len(names)} names but y has {len(classes)} classes "
                f"({list(classes)})."
            )
    means = np.stack([W[inverse == k].mean(axis=0) for k in range(len(classes))])
    n_classes, n_components = means.shape

    fig = _new_figure((max(4.0, 0.6 * n_components + 2.0), max(2.0, 0.6 * n_classes + 1.2)))
    ax = fig.add_subplot()
    im = ax.imshow(means, cmap="viridis", aspect="auto", interpolation="nearest")
    lo, hi = float(means.min()), float(means.max())
    mid = (lo + hi) / 2.0
    for c in range(n_classes):
        for j in range(n_components):
            value = means[c, j]
            ax.text(
                j, c, f"{value:.2f}", ha="center", va="center", fontsize="x-small",
                color="black" if value > mid else "white",
            )
    ax.set_xticks(np.arange(n_components))
    ax.set_xticklabels([str(j) for j in range(n_components)])
    ax.set_yticks(np.arange(n_classes))
    ax.set_yticklabels(names)
    ax.set_xlabel("component")
    ax.set_ylabel("class")
    ax.set_title("class-mean activation")
    fig.colorbar(im, ax=ax, label="mean activation")
    return fig


def plot_feature_scores(
    scores, *, criteria=("auc", "cohen_d", "welch_p"), support=None, feature_names=None
):
    """Bar charts of the per-criterion feature scores used for selection.

    One panel per criterion (small multiples), one bar per feature, selected
    features highlighted. The scores follow the convention of
    :class:`sknnmfdiff.feature_selection.StatSelector` (``scores_``), where
    higher is better in every criterion: ``"auc"`` is ``|ROC-AUC - 0.5|`` (in
    [0, 0.5]), ``"cohen_d"`` is ``|Cohen's d|``, and ``"welch_p"`` is Welch's
    p-value on the ``-log10(p)`` scale, drawn with a dashed line at ``p = 0.05``.
    The paper ranks the 15 NMF components by the aggregate rank of these three
    criteria.

    Parameters
    ----------
    scores : StatSelector, mapping of str to array-like of shape (n_features,), or array-like of shape (n_features, n_criteria)
        Either a fitted ``StatSelector`` (its ``scores_``, ``criteria_``,
        ``get_support()`` and, when present, ``feature_names_in_`` are used), a
        mapping from criterion name to one score per feature, or an array whose
        columns are the entries of ``criteria`` in order (the layout of
        ``StatSelector.scores_``). NaN marks an undefined score (a degenerate
        feature) and draws no bar but an ``"n/a"`` mark; ``+inf`` (a perfect
        separator) draws a hatched bar to the top of the panel marked ``"inf"``.
    criteria : sequence of str, default=("auc", "cohen_d", "welch_p")
        Criteria to draw, in panel order. With a fitted ``StatSelector`` the
        criteria it did not compute are skipped.
    support : array-like of shape (n_features,), optional
        Boolean mask of the selected features, or their integer indices.
        Defaults to ``scores.get_support()`` for a selector, else nothing is
        highlighted. Selected bars are orange, others gray.
    feature_names : sequence of str, optional
        Tick labels, one per feature. Defaults to the selector's
        ``feature_names_in_`` when present, else ``"0"``, ``"1"``, ...

    Returns
    -------
    fig : matplotlib.figure.Figure
        One axes per drawn criterion.

    Raises
    ------
    ValueError
        If no criterion is left to draw, a criterion is missing from a mapping,
        the score arrays differ in length or have the wrong rank, a score is
        negative or ``-inf``, or ``support``/``feature_names`` do not match the
        number of features.
    """
    criteria = [criteria] if isinstance(criteria, str) else [str(c) for c in criteria]
    default_support = None
    default_names = None
    if hasattr(scores, "scores_") and hasattr(scores, "criteria_"):
        selector = scores
        fitted = list(selector.criteria_)
        skipped = [c for c in criteria if c not in fitted]
        if skipped:
            logger.info("plot_feature_scores: selector did not compute %s; skipped", skipped)
        criteria = [c for c in criteria if c in fitted]
        table = np.asarray(selector.scores_, dtype=np.float64)[:, [fitted.index(c) for c in criteria]]
        default_support = selector.get_support()
        default_names = getattr(selector, "feature_names_in_", None)
    elif hasattr(scores, "keys"):
        missing = [c for c in criteria if c not in scores]
        if missing:
            raise ValueError(
                f"scores has no entry for criteria {missing}; available: {sorted(scores.keys())}."
            )
        rows = [np.asarray(scores[c], dtype=np.float64) for c in criteria]
        for c, r in zip(criteria, rows):
            if r.ndim != 1:
                raise ValueError(f"scores[{c!r}] must be 1-D (one score per feature); got {r.shape}.")
        if len({r.shape[0] for r in rows}) > 1:
            raise ValueError(
                "all score arrays must have the same length (one score per feature); got "
                + ", ".join(f"{c}: {r.shape[0]}" for c, r in zip(criteria, rows)) + "."
            )
        table = np.column_stack(rows) if rows else np.empty((0, 0))
    else:
        table = np.asarray(scores, dtype=np.float64)
        if table.ndim != 2 or table.shape[1] != len(criteria):
            raise ValueError(
                f"scores as an array must have shape (n_features, {len(criteria)}), one column "
                f"per criterion {criteria}; got shape {table.shape}."
            )
    if not criteria:
        raise ValueError("criteria must name at least one criterion to draw; none is left.")
    if table.shape[0] == 0:
        raise ValueError("scores holds no feature (0 rows).")
    if (table < 0).any() or np.isneginf(table).any():
        raise ValueError(
            "scores must be non-negative (higher is better, p-values as -log10(p), AUC as "
            f"|AUC - 0.5|); min value is {np.nanmin(table):.3g}."
        )
    n_features = table.shape[0]

    if support is None:
        support = default_support
    selected = np.zeros(n_features, dtype=bool)
    if support is not None:
        sup = np.asarray(support)
        if sup.dtype == bool:
            if sup.shape != (n_features,):
                raise ValueError(
                    f"support as a boolean mask must have shape ({n_features},); got {sup.shape}."
                )
            selected = sup
        elif np.issubdtype(sup.dtype, np.integer) and sup.ndim == 1:
            if sup.size and (sup.min() < 0 or sup.max() >= n_features):
                raise ValueError(
                    f"support indices must lie in [0, {n_features - 1}]; got {sup.tolist()}."
                )
            selected[sup] = True
        else:
            raise ValueError(
                "support must be a boolean mask of shape (n_features,) or 1-D integer "
                f"indices; got dtype {sup.dtype} and shape {sup.shape}."
            )
    if feature_names is None:
        feature_names = default_names
    if feature_names is None:
        names = [str(j) for j in range(n_features)]
    else:
        names = [str(n) for n in feature_names]
        if len(names) != n_features:
            raise ValueError(
                f"feature_names has {len(names)} names but scores has {n_features} features."
            )

    n_panels = len(criteria)
    fig = _new_figure((max(4.0, 0.35 * n_features + 1.5), 2.2 * n_panels + 0.5))
    axes = fig.subplots(n_panels, 1, squeeze=False, sharex=True)[:, 0]
    colors = np.where(selected, _SELECTED_COLOR, _OTHER_COLOR).tolist()
    x = np.arange(n_features)
    for ax, criterion, values in zip(axes, criteria, table.T):
        finite = values[np.isfinite(values)]
        top = float(finite.max()) if finite.size else 0.0
        if criterion == "welch_p":
            top = max(top, -np.log10(0.05))
            ax.axhline(-np.log10(0.05), color="black", linestyle="--", linewidth=0.8)
            ax.annotate("p = 0.05", (1.0, -np.log10(0.05)), xycoords=("axes fraction", "data"),
                        ha="right", va="bottom", fontsize="x-small")
        top = top * 1.1 if top > 0 else 1.0
        inf = np.isposinf(values)
        heights = np.where(inf, top, np.nan_to_num(values, nan=0.0))
        bars = ax.bar(x, heights, color=colors)
        for j in np.flatnonzero(inf):
            bars[j].set_hatch("//")
            ax.annotate("inf", (j, top), ha="center", va="bottom", fontsize="x-small")
        for j in np.flatnonzero(np.isnan(values)):
            ax.annotate("n/a", (j, 0), ha="center", va="bottom", fontsize="x-small")
        ax.set_ylim(0, top * 1.12)
        ax.set_ylabel(_CRITERION_LABELS.get(criterion, criterion))
    axes[-1].set_xticks(x)
    axes[-1].set_xticklabels(names, rotation=90 if max(map(len, names)) > 3 else 0)
    axes[-1].set_xlabel("feature")
    if selected.any():
        axes[0].legend(
            handles=[Patch(color=_SELECTED_COLOR, label="selected"),
                     Patch(color=_OTHER_COLOR, label="not selected")],
            fontsize="x-small", loc="best",
        )
    fig.suptitle("feature scores per criterion (higher is better)")
    return fig


def plot_denoising_error(err_noisy, err_denoised, *, t=None):
    """Scatter the purifier's output error against the error of its noisy input.

    Each point is one sample (or one diffusion step): on the x axis
    ``||x_t - x0||``, the distance of the noised features from the clean ones,
    on the y axis ``||x0_hat - x0||``, the distance of the denoiser's estimate
    from the clean ones. Points below the identity line are improved by the
    denoiser; the paper shows every point below it. The share of points below
    the line is given in the legend.

    Parameters
    ----------
    err_noisy : array-like of shape (n_points,) or (n_t, n_samples)
        ``||x_t - x0||`` per point, non-negative, in feature units.
    err_denoised : array-like, same shape as ``err_noisy``
        ``||x0_hat - x0||`` per point, non-negative, in feature units.
    t : int, float or array-like, optional
        Diffusion step of each point, used as colour (with a colour bar). Either
        a scalar, an array of the same shape as the errors, or, for 2-D errors,
        a 1-D array of length ``n_t`` (one step per row).

    Returns
    -------
    fig : matplotlib.figure.Figure
        One axes, plus a colour bar when ``t`` is an array.

    Raises
    ------
    ValueError
        If the two error arrays differ in shape, hold negative, NaN or infinite
        values, or ``t`` cannot be matched to them.
    """
    noisy = _as_float_array("err_noisy", err_noisy)
    denoised = _as_float_array("err_denoised", err_denoised)
    if noisy.shape != denoised.shape:
        raise ValueError(
            f"err_noisy and err_denoised must have the same shape; got {noisy.shape} and "
            f"{denoised.shape}."
        )
    if noisy.ndim > 2:
        raise ValueError(f"errors must be 1-D or 2-D (n_t, n_samples); got shape {noisy.shape}.")
    for name, arr in (("err_noisy", noisy), ("err_denoised", denoised)):
        if (arr < 0).any():
            raise ValueError(f"{name} holds norms and must be non-negative; min is {arr.min():.3g}.")

    colour = None
    title_t = ""
    if t is not None:
        t_arr = _as_float_array("t", t)
        if t_arr.ndim == 0:
            title_t = f" (t = {t_arr.item():g})"
        elif t_arr.shape == noisy.shape:
            colour = t_arr.ravel()
        elif noisy.ndim == 2 and t_arr.shape == (noisy.shape[0],):
            colour = np.broadcast_to(t_arr[:, None], noisy.shape).ravel()
        else:
            raise ValueError(
                f"t must be a scalar, an array of the errors' shape {noisy.shape}"
                + (f", or of shape ({noisy.shape[0]},)" if noisy.ndim == 2 else "")
                + f"; got shape {t_arr.shape}."
            )
    xs, ys = noisy.ravel(), denoised.ravel()
    below = float(np.mean(ys < xs))

    fig = _new_figure((4.8, 4.2))
    ax = fig.add_subplot()
    if colour is None:
        ax.scatter(xs, ys, s=10, alpha=0.7, color="tab:blue", label=f"{below:.0%} below identity")
    else:
        sc = ax.scatter(xs, ys, s=10, alpha=0.8, c=colour, cmap="viridis",
                        label=f"{below:.0%} below identity")
        fig.colorbar(sc, ax=ax, label="diffusion step t")
    top = max(xs.max(), ys.max())
    top = top * 1.05 if top > 0 else 1.0
    ax.plot([0, top], [0, top], color="black", linestyle="--", linewidth=0.8, label="identity")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_aspect("equal")
    ax.set_xlabel(r"$\|x_t - x_0\|$ (noisy input)")
    ax.set_ylabel(r"$\|\hat{x}_0 - x_0\|$ (denoised)")
    ax.set_title("denoising error" + title_t)
    ax.legend(fontsize="small", loc="upper left")
    return fig


_CURVE_STYLES = (
    {"linestyle": "-", "marker": "o"},
    {"linestyle": "--", "marker": "s"},
    {"linestyle": ":", "marker": "^"},
    {"linestyle": "-.", "marker": "D"},
)


def plot_robustness_curve(
    eps, curves, *, title=None, ylabel="robust accuracy", ci=None, xlabel="eps"
):
    """Robust accuracy (or another metric) against the attack budget.

    Parameters
    ----------
    eps : array-like of shape (n_eps,)
        Attack budgets, non-negative, in the units of the threat model (pixel
        units in [0, 1] for pixel-space attacks, feature units for feature-space
        attacks). ``eps = 0`` is clean accuracy.
    curves : mapping of str to array-like of shape (n_eps,)
        One curve per label, e.g. ``{"baseline / paper": ..., "defended / adaptive": ...}``.
        Accuracies as fractions in [0, 1] (the y axis is then fixed to [0, 1])
        or any other scale.
    title : str, optional
        Figure title; put the threat model in it, e.g. ``"pixel space, L-inf"``.
    ylabel : str, default="robust accuracy"
        Label of the y axis.
    ci : mapping of str to (array-like, array-like), optional
        Confidence band ``(lo, hi)`` per label of ``curves``, each of shape
        ``(n_eps,)``, drawn as a shaded band.
    xlabel : str, default="eps"
        Label of the x axis; name the norm and units, e.g. ``"eps (L-inf, pixel units)"``.

    Returns
    -------
    fig : matplotlib.figure.Figure
        One axes.

    Raises
    ------
    ValueError
        If ``eps`` is not 1-D or has negative values, ``curves`` is empty, a
        curve's length differs from ``eps``, a ``ci`` label is not in
        ``curves``, or a band has ``lo > hi`` or the wrong length.

    Examples
    --------
    >>> from sknnmfdiff.plots import plot_robustness_curve
    >>> fig = plot_robustness_curve(
    ...     [0.0, 0.05, 0.10],
    ...     {"baseline / paper": [0.86, 0.20, 0.01], "defended / adaptive": [0.85, 0.55, 0.40]},
    ...     title="pixel space, L-inf",
    ...     xlabel="eps (L-inf, pixel units)",
    ... )
    >>> fig.axes[0].get_title()
    'pixel space, L-inf'
    """
    eps = _as_float_array("eps", eps, ndim=1)
    if (eps < 0).any():
        raise ValueError(f"eps must be non-negative; got {eps.tolist()}.")
    if not hasattr(curves, "items") or len(curves) == 0:
        raise ValueError("curves must be a non-empty mapping of label -> array of shape (n_eps,).")
    data = {}
    for label, values in curves.items():
        arr = _as_float_array(f"curves[{label!r}]", values, ndim=1)
        if arr.shape != eps.shape:
            raise ValueError(
                f"curves[{label!r}] has {arr.shape[0]} values but eps has {eps.shape[0]}."
            )
        data[label] = arr
    bands = {}
    if ci is not None:
        for label, band in ci.items():
            if label not in data:
                raise ValueError(f"ci has label {label!r} that is not in curves ({list(data)}).")
            try:
                lo, hi = band
            except (TypeError, ValueError) as exc:
                raise ValueError(f"ci[{label!r}] must be a pair (lo, hi).") from exc
            lo = _as_float_array(f"ci[{label!r}] lo", lo, ndim=1)
            hi = _as_float_array(f"ci[{label!r}] hi", hi, ndim=1)
            if lo.shape != eps.shape or hi.shape != eps.shape:
                raise ValueError(
                    f"ci[{label!r}] bounds must each have shape {eps.shape}; got {lo.shape} "
                    f"and {hi.shape}."
                )
            if (lo > hi).any():
                raise ValueError(f"ci[{label!r}] has lo > hi at some eps.")
            bands[label] = (lo, hi)

    order = np.argsort(eps, kind="stable")
    fig = _new_figure((5.5, 4.0))
    ax = fig.add_subplot()
    for label, values in data.items():
        # Cycle line styles and markers too, so that coinciding curves stay visible.
        style = _CURVE_STYLES[len(ax.lines) % len(_CURVE_STYLES)]
        (line,) = ax.plot(eps[order], values[order], label=str(label), markersize=5,
                          markerfacecolor="none", **style)
        if label in bands:
            lo, hi = bands[label]
            ax.fill_between(eps[order], lo[order], hi[order], color=line.get_color(), alpha=0.2,
                            linewidth=0)
    all_values = np.concatenate(
        [v for v in data.values()] + [np.concatenate(b) for b in bands.values()]
    )
    if all_values.min() >= 0 and all_values.max() <= 1:
        ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title is not None:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    return fig


def plot_adversarial_examples(
    x_clean,
    x_adv,
    *,
    y=None,
    pred_clean=None,
    pred_adv=None,
    image_shape=(128, 128),
    n=4,
):
    """Clean images, their adversarial versions and the perturbations.

    One row per sample (the first ``n``): the clean image, the adversarial image
    (both gray, pixel range [0, 1]) and the perturbation ``x_adv - x_clean`` on a
    diverging colour map with limits symmetric about 0, shared by all rows and
    shown on one colour bar. Each perturbation panel is titled with its measured
    L-inf size, ``max |x_adv - x_clean|``, in pixel units.

    Parameters
    ----------
    x_clean : array-like of shape (n_samples, height * width), (n_samples, height, width) or (n_samples, 1, height, width)
        Clean images, pixels in [0, 1].
    x_adv : array-like, same shape as ``x_clean``
        Adversarial images, pixels in [0, 1].
    y : array-like of shape (n_samples,), optional
        True labels, shown over the clean images.
    pred_clean : array-like of shape (n_samples,), optional
        Predictions on the clean images.
    pred_adv : array-like of shape (n_samples,), optional
        Predictions on the adversarial images.
    image_shape : tuple of int, default=(128, 128)
        ``(height, width)`` of one image in pixels.
    n : int, default=4
        Number of samples (rows) to show; at most ``n_samples``.

    Returns
    -------
    fig : matplotlib.figure.Figure
        ``3 * min(n, n_samples)`` image axes plus one colour-bar axes.

    Raises
    ------
    ValueError
        If the image arrays do not match ``image_shape`` or each other, hold
        NaN/inf, a label array does not have one entry per sample, or ``n`` is
        not a positive integer.
    """
    shape = _check_image_shape(image_shape)
    n = _check_positive_int("n", n)
    clean = _as_images("x_clean", x_clean, shape)
    adv = _as_images("x_adv", x_adv, shape)
    if clean.shape != adv.shape:
        raise ValueError(
            f"x_clean and x_adv must hold the same number of images; got {clean.shape[0]} "
            f"and {adv.shape[0]}."
        )
    n_samples = clean.shape[0]
    y = _optional_labels("y", y, n_samples)
    pred_clean = _optional_labels("pred_clean", pred_clean, n_samples)
    pred_adv = _optional_labels("pred_adv", pred_adv, n_samples)

    n_rows = min(n, n_samples)
    delta = adv[:n_rows] - clean[:n_rows]
    vmax = float(np.abs(delta).max())
    vmax = vmax if vmax > 0 else 1.0

    fig = _new_figure((7.5, 2.4 * n_rows + 0.4))
    axes = fig.subplots(n_rows, 3, squeeze=False)
    im = None
    for i in range(n_rows):
        ax_c, ax_a, ax_d = axes[i]
        ax_c.imshow(clean[i], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        parts = ["clean"]
        if y is not None:
            parts.append(f"y={y[i]}")
        if pred_clean is not None:
            parts.append(f"pred={pred_clean[i]}")
        ax_c.set_title(", ".join(parts), fontsize="small")

        ax_a.imshow(adv[i], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        title = "adversarial" + (f", pred={pred_adv[i]}" if pred_adv is not None else "")
        ax_a.set_title(title, fontsize="small")

        im = ax_d.imshow(delta[i], cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest")
        ax_d.set_title(f"perturbation, eps = {np.abs(delta[i]).max():.3g}", fontsize="small")
        for ax in (ax_c, ax_a, ax_d):
            ax.set_xticks([])
            ax.set_yticks([])
    fig.colorbar(im, ax=axes[:, 2].tolist(), label="x_adv - x_clean (pixel units)", shrink=0.8)
    fig.suptitle(f"adversarial examples (max L-inf perturbation {float(np.abs(delta).max()):.3g})")
    return fig


def save_figure(fig, path, *, dpi=120):
    """Write a figure to a PNG file, creating the parent folder.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure to save, e.g. the return value of a ``plot_*`` function.
    path : str or path-like
        Destination. A path without a suffix gets ``.png``; any other suffix
        than ``.png`` is refused.
    dpi : int or float, default=120
        Resolution in dots per inch.

    Returns
    -------
    path : pathlib.Path
        The file written.

    Raises
    ------
    TypeError
        If ``fig`` is not a :class:`matplotlib.figure.Figure`.
    ValueError
        If ``path`` has a suffix other than ``.png`` or ``dpi`` is not positive.
    """
    if not isinstance(fig, Figure):
        raise TypeError(f"fig must be a matplotlib.figure.Figure; got {type(fig).__name__}.")
    if not isinstance(dpi, numbers.Real) or isinstance(dpi, bool) or not dpi > 0:
        raise ValueError(f"dpi must be a positive number; got {dpi!r}.")
    path = Path(path)
    if path.suffix == "":
        path = path.with_suffix(".png")
    elif path.suffix.lower() != ".png":
        raise ValueError(f"save_figure writes PNG files; got path {str(path)!r} with suffix "
                         f"{path.suffix!r}. Use a .png suffix or fig.savefig for other formats.")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, format="png")
    logger.info("saved figure to %s", path)
    return path
