"""Figures of the NMF features: the basis images, their class-wise activation and
the per-criterion scores used to select them."""

import logging

import numpy as np
from matplotlib.patches import Patch

from ._common import _as_float_array, _check_image_shape, _check_positive_int, _new_figure

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
                        ha="right", va="bottom", fontsize="x-small", zorder=5,
                        bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1})
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
