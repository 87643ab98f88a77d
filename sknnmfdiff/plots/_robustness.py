"""Figures of the defence and its evaluation: the denoising error of the purifier,
robust accuracy against the attack budget, and adversarial examples."""

import numbers

import numpy as np

from ._common import (
    _as_float_array,
    _as_images,
    _check_image_shape,
    _check_positive_int,
    _curves_on_grid,
    _new_figure,
    _optional_labels,
)


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


def _curve_style(i):
    """Line style, marker, and sizes of the ``i``-th curve. Each curve has its own line
    style and marker, and a thinner line and a smaller marker than the curve before it
    (drawn above it), so that coinciding curves stay visible: the markers nest and the
    wider lines show at the edges of the narrower ones."""
    style = dict(_CURVE_STYLES[i % len(_CURVE_STYLES)])
    style["linewidth"] = max(0.8, 2.8 - 0.6 * i)
    style["markersize"] = max(3.0, 10.0 - 2.0 * i)
    style["zorder"] = 2 + 0.1 * i
    return style


def plot_robustness_curve(
    eps, curves, *, title=None, ylabel="robust accuracy", ci=None, xlabel="eps",
    ci_label="95 % confidence interval", eps_marks=None,
):
    """Robust accuracy (or another metric) against the attack budget.

    Each curve gets its own colour, line style and marker; later curves are drawn
    thinner and with smaller markers on top of earlier ones, so that curves that
    coincide (e.g. every model at 0 % beyond some eps) stay distinguishable. Confidence
    bands are shaded in their curve's colour, outlined in its line style, and named
    once in the legend.

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
    ci_label : str, default="95 % confidence interval"
        What the bands are, shown in the legend (as "shaded: ...") when there are bands.
    eps_marks : mapping of str to float, optional
        Vertical dotted lines at given budgets, with their legend labels, e.g.
        ``{"main eps (full attack)": 0.1}``.

    Returns
    -------
    fig : matplotlib.figure.Figure
        One axes.

    Raises
    ------
    ValueError
        If ``eps`` is not 1-D or has negative values, ``curves`` is empty, a
        curve's length differs from ``eps``, a ``ci`` label is not in
        ``curves``, a band has ``lo > hi`` or the wrong length, or a mark is not a
        finite number >= 0.

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
    from matplotlib.colors import to_rgba
    from matplotlib.patches import Patch

    eps, data, bands = _curves_on_grid("eps", eps, curves, ci)
    marks = {}
    for label, value in (eps_marks or {}).items():
        if not isinstance(value, numbers.Real) or not np.isfinite(value) or value < 0:
            raise ValueError(f"eps_marks[{label!r}] must be a finite eps >= 0; got {value!r}.")
        marks[label] = float(value)

    order = np.argsort(eps, kind="stable")
    fig = _new_figure((5.5, 4.0))
    ax = fig.add_subplot()
    for i, (label, values) in enumerate(data.items()):
        style = _curve_style(i)
        (line,) = ax.plot(eps[order], values[order], label=str(label),
                          markerfacecolor="none", **style)
        if label in bands:
            lo, hi = bands[label]
            colour = line.get_color()
            ax.fill_between(eps[order], lo[order], hi[order], facecolor=to_rgba(colour, 0.12),
                            edgecolor=to_rgba(colour, 0.7), linewidth=0.8,
                            linestyle=style["linestyle"], zorder=1)
    for label, value in marks.items():
        ax.axvline(value, color="0.3", linestyle=":", linewidth=1, label=str(label), zorder=1)
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
    handles, labels = ax.get_legend_handles_labels()
    if bands:
        handles.append(Patch(facecolor="0.5", alpha=0.3, edgecolor="0.3", linewidth=0.8))
        labels.append(f"shaded: {ci_label}")
    ax.legend(handles, labels, fontsize="small")
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
    """Clean images, their adversarial versions and the perturbations, for one or more models.

    One row per sample (the first ``n``): the clean image, then for each model its
    adversarial image (both gray, pixel range [0, 1]) and its perturbation
    ``x_adv - x_clean`` on a diverging colour map with limits symmetric about 0, shared
    by all panels and shown on one colour bar. Each perturbation panel is titled with
    its measured L-inf size, ``max |x_adv - x_clean|``, in pixel units.

    Parameters
    ----------
    x_clean : array-like of shape (n_samples, height * width), (n_samples, height, width) or (n_samples, 1, height, width)
        Clean images, pixels in [0, 1].
    x_adv : array-like, same shape as ``x_clean``, or mapping of str to such arrays
        Adversarial images, pixels in [0, 1]; a mapping gives one pair of columns per
        model, headed by its key (e.g. ``{"baseline": ..., "defended": ...}``).
    y : array-like of shape (n_samples,), optional
        True labels (or class names), shown over the clean images.
    pred_clean : array-like of shape (n_samples,), or mapping like ``x_adv``, optional
        Predictions on the clean images (per model with a mapping).
    pred_adv : array-like of shape (n_samples,), or mapping like ``x_adv``, optional
        Predictions on the adversarial images (per model with a mapping).
    image_shape : tuple of int, default=(128, 128)
        ``(height, width)`` of one image in pixels.
    n : int, default=4
        Number of samples (rows) to show; at most ``n_samples``.

    Returns
    -------
    fig : matplotlib.figure.Figure
        ``(1 + 2 * n_models) * min(n, n_samples)`` image axes plus one colour-bar axes.

    Raises
    ------
    ValueError
        If the image arrays do not match ``image_shape`` or each other, hold
        NaN/inf, a label array does not have one entry per sample, a prediction
        mapping names other models than ``x_adv``, or ``n`` is not a positive integer.
    """
    shape = _check_image_shape(image_shape)
    n = _check_positive_int("n", n)
    clean = _as_images("x_clean", x_clean, shape)
    named = hasattr(x_adv, "items")
    advs = dict(x_adv.items()) if named else {"": x_adv}
    if not advs:
        raise ValueError("x_adv is an empty mapping; give at least one model's images.")
    n_samples = clean.shape[0]
    models = {}
    for name, arr in advs.items():
        field = f"x_adv[{name!r}]" if named else "x_adv"
        adv = _as_images(field, arr, shape)
        if clean.shape != adv.shape:
            raise ValueError(
                f"x_clean and {field} must hold the same number of images; got "
                f"{clean.shape[0]} and {adv.shape[0]}."
            )
        models[name] = {"adv": adv}
    for key, value in (("pred_clean", pred_clean), ("pred_adv", pred_adv)):
        if value is not None and hasattr(value, "items"):
            if not named or set(value) != set(models):
                raise ValueError(f"{key} must name the same models as x_adv "
                                 f"({list(models) if named else 'an array'}); got {list(value)}.")
            for name in models:
                models[name][key] = _optional_labels(f"{key}[{name!r}]", value[name], n_samples)
        else:
            labels = _optional_labels(key, value, n_samples)
            for name in models:
                models[name][key] = labels
    y = _optional_labels("y", y, n_samples)

    n_rows = min(n, n_samples)
    for m in models.values():
        m["delta"] = m["adv"][:n_rows] - clean[:n_rows]
    largest = max(float(np.abs(m["delta"]).max()) for m in models.values())
    vmax = largest if largest > 0 else 1.0

    n_cols = 1 + 2 * len(models)
    fig = _new_figure((2.4 * n_cols + 0.3, 2.4 * n_rows + 0.5))
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    im = None
    for i in range(n_rows):
        ax_c = axes[i, 0]
        ax_c.imshow(clean[i], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        parts = ["clean"] + ([f"y={y[i]}"] if y is not None else [])
        if pred_clean is not None and not named:
            parts.append(f"pred={models['']['pred_clean'][i]}")
        ax_c.set_title(", ".join(parts), fontsize="small")
        for j, (name, m) in enumerate(models.items()):
            ax_a, ax_d = axes[i, 1 + 2 * j], axes[i, 2 + 2 * j]
            ax_a.imshow(m["adv"][i], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
            if named:
                pc, pa = m["pred_clean"], m["pred_adv"]
                change = (f"{pc[i]} -> {pa[i]}" if pc is not None and pa is not None
                          else f"pred={pa[i]}" if pa is not None else "")
                title = f"{name}: {change}" if change else f"{name}, adversarial"
            else:
                title = "adversarial" + (f", pred={m['pred_adv'][i]}"
                                         if m["pred_adv"] is not None else "")
            ax_a.set_title(title, fontsize="small")
            im = ax_d.imshow(m["delta"][i], cmap="RdBu_r", vmin=-vmax, vmax=vmax,
                             interpolation="nearest")
            ax_d.set_title(f"perturbation, eps = {np.abs(m['delta'][i]).max():.3g}",
                           fontsize="small")
        for ax in axes[i]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.colorbar(im, ax=axes[:, -1].tolist(), label="x_adv - x_clean (pixel units)", shrink=0.8)
    fig.suptitle(f"adversarial examples (max L-inf perturbation {largest:.3g})")
    return fig
