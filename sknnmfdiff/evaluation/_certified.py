"""Certified accuracy against the L2 radius (randomized smoothing), its confidence
intervals, and the L-inf budgets an L2 radius covers.

Inputs are the output of :meth:`sknnmfdiff.smoothing.SmoothedClassifier.certify` on
labelled samples: a radius per sample (NaN where it abstained) and whether its certified
class is the true one. A sample is *certified correct at radius r* when its class is right
and its radius is at least ``r``; abstentions are never certified (Cohen et al., 2019,
section 4). An L-inf ball of radius ``eps`` in ``k`` dimensions lies inside the L2 ball of
radius ``sqrt(k) eps``, so the certified accuracy at ``sqrt(k) eps`` is a lower bound on the
accuracy of the same smoothed classifier under any L-inf attack of budget ``eps``.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = [
    "certified_accuracy",
    "certified_accuracy_table",
    "format_certified_table",
    "linf_to_l2_radius",
    "max_certified_eps",
]


def _check_certificates(radii, correct):
    """float64 radii (NaN allowed) and bool correct of one length; ValueError otherwise."""
    try:
        r = np.asarray(radii, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"radii must be a numeric array, got {type(radii).__name__}.") from exc
    c = np.asarray(correct)
    if r.ndim != 1 or c.ndim != 1 or r.shape != c.shape:
        raise ValueError(f"radii and correct must be 1-D arrays of one length, got shapes "
                         f"{r.shape} and {c.shape}.")
    if r.size == 0:
        raise ValueError("radii is empty: at least one certified sample is needed.")
    if c.dtype != bool and not np.isin(c, (0, 1)).all():
        raise ValueError("correct must hold booleans (or 0 / 1).")
    if np.isinf(r).any() or (r < 0).any():
        raise ValueError("radii must be >= 0 and finite (NaN for an abstention).")
    return r, c.astype(bool)


def _check_n_features(n_features):
    if isinstance(n_features, bool) or not isinstance(n_features, numbers.Integral) \
            or n_features < 1:
        raise ValueError(f"n_features must be an integer >= 1, got {n_features!r}.")
    return int(n_features)


def linf_to_l2_radius(eps, n_features):
    """The L2 radius whose ball contains the L-inf ball of radius ``eps``: ``sqrt(k) eps``.

    Parameters
    ----------
    eps : float or array-like of float
        L-inf budgets, >= 0, in feature units.
    n_features : int
        Dimension ``k`` (the number of selected features), >= 1.

    Returns
    -------
    radius : float or ndarray of float64
        ``sqrt(n_features) * eps``, the shape of ``eps``.

    Raises
    ------
    ValueError
        If ``eps`` is negative or not finite, or ``n_features < 1``.
    """
    k = _check_n_features(n_features)
    e = np.asarray(eps, dtype=np.float64)
    if not np.isfinite(e).all() or (e < 0).any():
        raise ValueError(f"eps must be finite and >= 0, got {eps!r}.")
    out = math.sqrt(k) * e
    return float(out) if out.ndim == 0 else out


def certified_accuracy(radii, correct, radius_grid):
    """Certified accuracy at every radius of a grid.

    Parameters
    ----------
    radii : array-like of shape (n_samples,)
        Certified L2 radii (:meth:`SmoothedClassifier.certify`), >= 0, NaN where the
        certification abstained.
    correct : array-like of bool, shape (n_samples,)
        Whether the certified class is the true label (False where abstained).
    radius_grid : array-like of shape (n_radii,)
        Radii, >= 0, in the units of ``radii``.

    Returns
    -------
    accuracy : ndarray of shape (n_radii,), float64
        ``mean(correct & (radii >= r))`` for every ``r``, in [0, 1], non-increasing in
        ``r``.

    Raises
    ------
    ValueError
        If the arrays are not 1-D of one length, are empty, or a radius is negative.
    """
    r, c = _check_certificates(radii, correct)
    grid = np.asarray(radius_grid, dtype=np.float64)
    if grid.ndim != 1 or grid.size == 0 or not np.isfinite(grid).all() or (grid < 0).any():
        raise ValueError(f"radius_grid must be a non-empty 1-D array of finite radii >= 0, got "
                         f"{radius_grid!r}.")
    ok = c & ~np.isnan(r)
    return np.array([np.mean(ok & (r >= g)) for g in grid], dtype=np.float64)


def certified_accuracy_table(radii, correct, radius_grid=(), *, eps=(), n_features=None,
                             confidence=0.95):
    """Certified accuracy with exact confidence intervals, at radii and at L-inf budgets.

    Parameters
    ----------
    radii : array-like of shape (n_samples,)
        Certified L2 radii, NaN where abstained.
    correct : array-like of bool, shape (n_samples,)
        Whether the certified class is the true label.
    radius_grid : array-like of shape (n_radii,), default=()
        L2 radii for one row each.
    eps : array-like of shape (n_eps,), default=()
        L-inf budgets for one row each, at the L2 radius ``sqrt(n_features) eps``.
    n_features : int or None, default=None
        The dimension ``k``; needed when ``eps`` is given.
    confidence : float, default=0.95
        Level in (0, 1) of the two-sided Clopper-Pearson intervals
        (``scipy.stats.binomtest(...).proportion_ci(method="exact")``). The interval is
        over the choice of samples; the Monte Carlo failure probability of the
        certificates (``alpha``) comes on top.

    Returns
    -------
    rows : list of dict
        One per radius, then one per ``eps``: ``radius`` (L2), ``eps_linf`` (None for a
        radius row), ``certified_accuracy``, ``ci_low``, ``ci_high``, ``n_certified``,
        ``n``.

    Raises
    ------
    ValueError
        If the inputs are inconsistent (see :func:`certified_accuracy`), ``eps`` is given
        without ``n_features``, or ``confidence`` is outside (0, 1).
    """
    from scipy.stats import binomtest

    if not (isinstance(confidence, numbers.Real) and 0 < confidence < 1):
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}.")
    r, c = _check_certificates(radii, correct)
    eps = np.atleast_1d(np.asarray(eps, dtype=np.float64))
    grid = np.atleast_1d(np.asarray(radius_grid, dtype=np.float64))
    if eps.size and n_features is None:
        raise ValueError("eps rows need n_features (the dimension k of the L-inf ball).")
    cases = [(float(g), None) for g in grid]
    if eps.size:
        cases += [(float(linf_to_l2_radius(e, n_features)), float(e)) for e in eps]
    if not cases:
        raise ValueError("Give radius_grid or eps (at least one row).")
    acc = certified_accuracy(r, c, [radius for radius, _ in cases])
    n = r.shape[0]
    rows = []
    for (radius, e), a in zip(cases, acc):
        k = int(round(a * n))
        ci = binomtest(k, n).proportion_ci(confidence_level=confidence, method="exact")
        rows.append({"radius": radius, "eps_linf": e, "certified_accuracy": float(a),
                     "ci_low": float(ci.low), "ci_high": float(ci.high), "n_certified": k,
                     "n": int(n)})
    return rows


def format_certified_table(rows):
    """A Markdown table of :func:`certified_accuracy_table`'s rows.

    Parameters
    ----------
    rows : list of dict
        Rows of :func:`certified_accuracy_table`.

    Returns
    -------
    table : str
        Columns: L2 radius, L-inf eps (blank for a radius row), certified accuracy in
        percent with its interval, certified count out of ``n``.

    Raises
    ------
    ValueError
        If ``rows`` is empty or a row lacks a key of :func:`certified_accuracy_table`.
    """
    keys = ("radius", "eps_linf", "certified_accuracy", "ci_low", "ci_high", "n_certified", "n")
    if not rows:
        raise ValueError("rows is empty.")
    lines = ["| L2 radius | L-inf eps | certified accuracy % (CI) | certified / n |",
             "| ---: | ---: | ---: | ---: |"]
    for row in rows:
        missing = [key for key in keys if key not in row]
        if missing:
            raise ValueError(f"a row lacks {missing}: pass rows of certified_accuracy_table.")
        e = "" if row["eps_linf"] is None else f"{row['eps_linf']:.4g}"
        lines.append(f"| {row['radius']:.4g} | {e} | {100 * row['certified_accuracy']:.1f} "
                     f"({100 * row['ci_low']:.1f}-{100 * row['ci_high']:.1f}) | "
                     f"{row['n_certified']} / {row['n']} |")
    return "\n".join(lines)


def max_certified_eps(radii, correct, n_features, *, level=0.5):
    """The largest L-inf budget at which the certified accuracy is still >= ``level``.

    The certified accuracy is a non-increasing step function of the radius; with ``m =
    ceil(level n)`` it is >= ``level`` exactly up to the ``m``-th largest radius among the
    certified-correct samples, ``r_m``. The answer is ``r_m / sqrt(k)`` (rounded down so
    that ``linf_to_l2_radius(eps, k) <= r_m`` in floating point).

    Parameters
    ----------
    radii : array-like of shape (n_samples,)
        Certified L2 radii, NaN where abstained.
    correct : array-like of bool, shape (n_samples,)
        Whether the certified class is the true label.
    n_features : int
        The dimension ``k``.
    level : float, default=0.5
        Accuracy level in (0, 1].

    Returns
    -------
    eps : float
        Largest L-inf budget (feature units) with certified accuracy >= ``level``; NaN
        when even the accuracy at radius 0 is below ``level``.

    Raises
    ------
    ValueError
        If the inputs are inconsistent or ``level`` is outside (0, 1].
    """
    k = _check_n_features(n_features)
    if not (isinstance(level, numbers.Real) and 0 < level <= 1):
        raise ValueError(f"level must be in (0, 1], got {level!r}.")
    r, c = _check_certificates(radii, correct)
    m = math.ceil(level * r.shape[0] - 1e-9)
    good = np.sort(r[c & ~np.isnan(r)])[::-1]
    if good.shape[0] < m:
        return float("nan")
    radius = float(good[m - 1])
    eps = radius / math.sqrt(k)
    while math.sqrt(k) * eps > radius:  # rounding: keep linf_to_l2_radius(eps) <= radius
        eps = float(np.nextafter(eps, 0.0))
    return eps
