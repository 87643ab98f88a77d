"""Building blocks shared by every figure: a pyplot-free figure, input checks, and
writing a figure to a PNG file (:func:`sknnmfdiff.plots.save_figure`)."""

import logging
import numbers
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

logger = logging.getLogger(__name__)


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



def _curves_on_grid(x_name, x, curves, ci, *, unit_interval=False):
    """Check a 1-D grid ``x`` (>= 0), curves over it and optional bands.

    Returns ``(x, data, bands)``: ``x`` as float64, ``data`` label -> float64 array of
    ``x``'s shape, ``bands`` label -> ``(lo, hi)`` arrays. Raises ValueError naming the
    grid (``x_name``), the curve or the band at fault; ``unit_interval`` also requires
    the curves to lie in [0, 1].
    """
    x = _as_float_array(x_name, x, ndim=1)
    if (x < 0).any():
        raise ValueError(f"{x_name} must be non-negative; got {x.tolist()}.")
    if not hasattr(curves, "items") or len(curves) == 0:
        raise ValueError(
            f"curves must be a non-empty mapping of label -> array of shape (n_{x_name},).")
    data = {}
    for label, values in curves.items():
        arr = _as_float_array(f"curves[{label!r}]", values, ndim=1)
        if arr.shape != x.shape:
            raise ValueError(
                f"curves[{label!r}] has {arr.shape[0]} values but {x_name} has {x.shape[0]}.")
        if unit_interval and ((arr < 0).any() or (arr > 1).any()):
            raise ValueError(f"curves[{label!r}] must hold accuracies in [0, 1].")
        data[label] = arr
    bands = {}
    for label, band in (ci or {}).items():
        if label not in data:
            raise ValueError(f"ci has label {label!r} that is not in curves ({list(data)}).")
        try:
            lo, hi = band
        except (TypeError, ValueError) as exc:
            raise ValueError(f"ci[{label!r}] must be a pair (lo, hi).") from exc
        lo = _as_float_array(f"ci[{label!r}] lo", lo, ndim=1)
        hi = _as_float_array(f"ci[{label!r}] hi", hi, ndim=1)
        if lo.shape != x.shape or hi.shape != x.shape:
            raise ValueError(f"ci[{label!r}] bounds must each have shape {x.shape}; got "
                             f"{lo.shape} and {hi.shape}.")
        if (lo > hi).any():
            raise ValueError(f"ci[{label!r}] has lo > hi at some {x_name}.")
        bands[label] = (lo, hi)
    return x, data, bands


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
