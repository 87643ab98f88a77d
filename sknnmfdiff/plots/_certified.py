"""Figure of randomized smoothing: certified accuracy against the L2 radius."""

import numbers

import numpy as np

from ._common import _curves_on_grid, _new_figure

_LINESTYLES = ("-", "--", ":", "-.")


def plot_certified_accuracy(radius_grid, curves, *, ci=None, radius_marks=None, title=None,
                            xlabel="certified L2 radius (feature units)",
                            ci_label="95 % confidence interval"):
    """Certified accuracy against the radius, one curve per smoothed classifier.

    Certified accuracy at radius ``r``: the fraction of samples whose certified class is
    right with a certified radius of at least ``r`` (Cohen et al., 2019, figure 6;
    :func:`sknnmfdiff.evaluation.certified_accuracy`). Drawn as steps, since it changes
    only at the samples' radii: between two radii of the grid the curve shows the value
    at the larger one, which is a lower bound there, and exact when the grid holds every
    sample's certified radius.

    Parameters
    ----------
    radius_grid : array-like of shape (n_radii,)
        Radii, >= 0, in feature units (L2).
    curves : mapping of str to array-like of shape (n_radii,)
        Certified accuracy per label (e.g. ``{"sigma = 0.25": ...}``), in [0, 1].
    ci : mapping of str to (array-like, array-like), optional
        Confidence band ``(lo, hi)`` per label of ``curves``, each of shape ``(n_radii,)``.
    radius_marks : mapping of str to float, optional
        Vertical lines at given radii, e.g. ``{"L-inf eps = 0.10, k = 10": 0.316}``.
    title : str, optional
        Figure title; name the threat model (feature space, L2).
    xlabel : str, default="certified L2 radius (feature units)"
        Label of the x axis.
    ci_label : str, default="95 % confidence interval"
        What the bands are, shown in the legend (as "shaded: ...") when there are bands.

    Returns
    -------
    fig : matplotlib.figure.Figure
        One axes, y axis fixed to [0, 1].

    Raises
    ------
    ValueError
        If ``radius_grid`` is not 1-D or has a negative radius, ``curves`` is empty, a
        curve is outside [0, 1] or not as long as the grid, a ``ci`` label is not in
        ``curves`` or its band is malformed, or a mark is not a finite radius >= 0.

    Examples
    --------
    >>> from sknnmfdiff.plots import plot_certified_accuracy
    >>> fig = plot_certified_accuracy([0.0, 0.25, 0.5], {"sigma = 0.25": [0.8, 0.6, 0.3]},
    ...                               radius_marks={"L-inf eps = 0.1": 0.316})
    >>> len(fig.axes[0].lines)
    2
    """
    from matplotlib.patches import Patch

    grid, data, bands = _curves_on_grid("radius_grid", radius_grid, curves, ci,
                                        unit_interval=True)
    marks = {}
    for label, radius in (radius_marks or {}).items():
        if not isinstance(radius, numbers.Real) or not np.isfinite(radius) or radius < 0:
            raise ValueError(f"radius_marks[{label!r}] must be a finite radius >= 0; got "
                             f"{radius!r}.")
        marks[label] = float(radius)

    order = np.argsort(grid, kind="stable")
    fig = _new_figure((5.5, 4.0))
    ax = fig.add_subplot()
    for i, (label, values) in enumerate(data.items()):
        (line,) = ax.plot(grid[order], values[order], drawstyle="steps-pre", label=str(label),
                          linestyle=_LINESTYLES[i % len(_LINESTYLES)])
        if label in bands:
            lo, hi = bands[label]
            ax.fill_between(grid[order], lo[order], hi[order], step="pre",
                            color=line.get_color(), alpha=0.2, linewidth=0)
    for i, (label, radius) in enumerate(marks.items()):
        ax.axvline(radius, color="0.4", linewidth=1, label=str(label),
                   linestyle=_LINESTYLES[(i + 2) % len(_LINESTYLES)])
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("certified accuracy")
    if title is not None:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if bands:
        handles.append(Patch(facecolor="0.5", alpha=0.3, linewidth=0))
        labels.append(f"shaded: {ci_label}")
    ax.legend(handles, labels, fontsize="small")
    return fig
