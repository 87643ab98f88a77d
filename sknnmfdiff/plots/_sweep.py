"""Figures of a robustness sweep: the clean-robust trade-off with its Pareto front, and a
metric against the purifier's timestep t for each rank."""

from ._common import _as_float_array, _new_figure


def _finish(ax, xlabel, ylabel, title):
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")


def plot_tradeoff(clean, robust, *, labels=None, front=None, highlight=None,
                  title=None, xlabel="clean balanced accuracy",
                  ylabel="robust balanced accuracy"):
    """Clean against robust score of every configuration, with the Pareto front.

    Parameters
    ----------
    clean, robust : array-like of shape (n_configs,)
        Scores of each configuration (fractions in [0, 1] for accuracies).
    labels : sequence of str, optional
        One label per configuration, written next to the points of the front and of
        ``highlight``.
    front : sequence of int, optional
        Indices of the Pareto front, in the order to join them (e.g. from
        :func:`sknnmfdiff.sweep.pareto_front`); drawn as a line.
    highlight : mapping of str to int, optional
        Configurations to mark, e.g. ``{"paper": 12}``.
    title : str, optional
        Figure title; name the threat model and eps in it.
    xlabel, ylabel : str
        Axis labels.

    Returns
    -------
    fig : matplotlib.figure.Figure
        One axes.

    Raises
    ------
    ValueError
        If ``clean`` and ``robust`` differ in length, are empty or not finite, or an
        index of ``front`` or ``highlight`` is out of range.

    Examples
    --------
    >>> from sknnmfdiff.plots import plot_tradeoff
    >>> fig = plot_tradeoff([0.9, 0.85, 0.8], [0.05, 0.2, 0.1], front=[0, 1])
    """
    c = _as_float_array("clean", clean, ndim=1)
    r = _as_float_array("robust", robust, ndim=1)
    if c.shape != r.shape:
        raise ValueError(f"clean and robust differ in length: {c.size} and {r.size}.")
    front = [] if front is None else [int(i) for i in front]
    highlight = dict(highlight or {})
    for i in front + list(highlight.values()):
        if not 0 <= i < c.size:
            raise ValueError(f"index {i} is out of range for {c.size} configurations.")
    if labels is not None and len(labels) != c.size:
        raise ValueError(f"labels has {len(labels)} entries for {c.size} configurations.")
    fig = _new_figure((6.0, 4.5))
    ax = fig.add_subplot()
    ax.scatter(c, r, s=18, color="tab:gray", alpha=0.7, label="configuration")
    if front:
        ax.plot(c[front], r[front], "-o", color="tab:blue", ms=5, label="Pareto front")
    for (name, i), marker in zip(highlight.items(), ("*", "D", "s", "^")):
        ax.scatter([c[i]], [r[i]], s=120, marker=marker, zorder=3, label=name)
    if labels is not None:
        for i in sorted(set(front) | set(highlight.values())):
            ax.annotate(labels[i], (c[i], r[i]), textcoords="offset points", xytext=(4, 4),
                        fontsize=7)
    _finish(ax, xlabel, ylabel, title)
    return fig


def plot_metric_vs_t(t, curves, *, title=None, ylabel="robust balanced accuracy",
                     xlabel="purifier timestep t", errors=None):
    """A metric against the purifier's timestep ``t``, one line per group (e.g. rank).

    Parameters
    ----------
    t : array-like of shape (n_t,)
        Timesteps, non-negative integers (0 = no purifier).
    curves : mapping of str to array-like of shape (n_t,)
        One line per label, e.g. ``{"rank 15": [...]}``; NaN leaves a gap.
    title : str, optional
        Figure title.
    ylabel, xlabel : str
        Axis labels.
    errors : mapping of str to array-like of shape (n_t,), optional
        Error bar half-widths (e.g. the standard deviation over folds) per label.

    Returns
    -------
    fig : matplotlib.figure.Figure
        One axes; the x axis is symmetric-log so that t = 0 and t = 300 both show.

    Raises
    ------
    ValueError
        If ``t`` is not 1-D, non-negative and finite, ``curves`` is empty, or a curve
        or error array differs in length from ``t``.

    Examples
    --------
    >>> from sknnmfdiff.plots import plot_metric_vs_t
    >>> fig = plot_metric_vs_t([0, 20, 41], {"rank 15": [0.01, 0.05, 0.08]})
    """
    t = _as_float_array("t", t, ndim=1)
    if (t < 0).any():
        raise ValueError("t must be non-negative.")
    if not curves:
        raise ValueError("curves is empty; give at least one line.")
    fig = _new_figure((6.0, 4.0))
    ax = fig.add_subplot()
    for label, values in curves.items():
        v = _as_float_array(f"curves[{label!r}]", values, ndim=1, allow_nan=True)
        if v.shape != t.shape:
            raise ValueError(f"curve {label!r} has {v.size} values for {t.size} timesteps.")
        err = None
        if errors is not None and label in errors:
            err = _as_float_array(f"errors[{label!r}]", errors[label], ndim=1, allow_nan=True)
            if err.shape != t.shape:
                raise ValueError(f"errors of {label!r} have {err.size} values for {t.size} timesteps.")
        ax.errorbar(t, v, yerr=err, marker="o", ms=4, capsize=3, label=label)
    ax.set_xscale("symlog", linthresh=10)
    _finish(ax, xlabel, ylabel, title)
    return fig
