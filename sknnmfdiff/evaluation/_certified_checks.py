"""Sanity check of an evaluation against a certificate: no attack may beat randomized
smoothing's certified accuracy on the same inputs (checklist item 12)."""

from __future__ import annotations

import numbers

import numpy as np

from ._certified import _check_certificates, _check_n_features, linf_to_l2_radius
from ._check_result import CheckResult


def check_certified_bound(y, certified_pred, radii, attacked_pred, eps, *, n_features=None,
                          norm="Linf", abstain_label=-1, alpha=0.002, confidence=0.95):
    """Checklist item 12: an attack on the smoothed classifier never beats its certificate.

    For every budget ``eps`` the L2 radius ``r`` of the ball that contains the threat
    model's ball is ``sqrt(n_features) eps`` (L-inf) or ``eps`` (L2). A sample certified
    correct at ``r`` (certified class right, radius >= ``r``) is classified correctly by
    the smoothed classifier ``g`` everywhere within ``r``, with probability >= ``1 -
    alpha_certify`` over the certification noise; PREDICT (:meth:`SmoothedClassifier.predict`)
    returns a wrong class with probability <= ``alpha_predict``, and may abstain. Hence,
    when the certificates and the evaluation are right:

    * each certified-correct sample is mispredicted (a wrong class, not an abstention) on
      its adversarial input with probability at most ``alpha = alpha_certify +
      alpha_predict``: the check fails when the number of such *violations* is too large
      for ``Binomial(n_certified, alpha)`` (one-sided binomial test, p-value below ``1 -
      confidence``);
    * the attacked accuracy, abstentions not counted as errors, is at least the certified
      accuracy: the check fails when it falls below the lower end of the certified
      accuracy's exact confidence interval at ``confidence``.

    PREDICT abstains legitimately near ``g``'s decision boundary, which an attack may
    reach at exactly the certified radius: an abstention is not a violation. The attacked
    accuracy counting abstentions as errors is reported beside (``attacked_accuracy``).

    Valid only for a feature-space attack (the space of the certificate) on the *same*
    smoothed classifier and the *same* inputs, with the adversarial inputs scored by
    PREDICT with noise the attack did not see (another ``random_state``).

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        True labels.
    certified_pred : array-like of shape (n_samples,)
        Certified classes (:meth:`SmoothedClassifier.certify`), ``abstain_label`` where
        abstained.
    radii : array-like of shape (n_samples,)
        Certified L2 radii in feature units, NaN where abstained.
    attacked_pred : array-like of shape (n_samples,) or (n_eps, n_samples)
        PREDICT's labels on the adversarial inputs of each budget.
    eps : float or array-like of shape (n_eps,)
        Attack budgets, >= 0, in feature units.
    n_features : int or None, default=None
        The dimension ``k``; needed for ``norm="Linf"``.
    norm : {"Linf", "L2"}, default="Linf"
        Norm of the attack budget.
    abstain_label : scalar, default=-1
        The smoothed classifier's abstention label.
    alpha : float, default=0.002
        Total failure probability of a certificate plus a prediction (``alpha`` of
        ``certify`` plus ``alpha`` of ``predict``), in (0, 1).
    confidence : float, default=0.95
        Level in (0, 1) of the confidence interval and of the binomial test.

    Returns
    -------
    result : CheckResult
        ``certified_bound``; ``value`` is the smallest margin, over the budgets, of the
        attacked accuracy (abstentions not errors) over the certified accuracy (< 0:
        the attack went below the certified figure). ``details["per_eps"]`` lists for
        every budget ``eps``, ``radius``, ``certified_accuracy``, ``certified_ci``,
        ``attacked_accuracy``, ``attacked_non_error_rate``, ``abstained``,
        ``n_certified``, ``violations``, ``violation_pvalue`` and ``passed``.

    Raises
    ------
    ValueError
        If the arrays disagree in length, ``attacked_pred`` has not one row per
        ``eps``, ``norm`` is unknown, ``n_features`` is missing for L-inf, or ``alpha``
        or ``confidence`` is outside (0, 1).
    """
    from scipy.stats import binomtest

    if norm not in ("Linf", "L2"):
        raise ValueError(f"norm must be 'Linf' or 'L2', got {norm!r}.")
    for name, value in (("alpha", alpha), ("confidence", confidence)):
        if not (isinstance(value, numbers.Real) and 0 < value < 1):
            raise ValueError(f"{name} must be in (0, 1), got {value!r}.")
    y = np.asarray(y)
    cert = np.asarray(certified_pred)
    eps_arr = np.atleast_1d(np.asarray(eps, dtype=np.float64))
    attacked = np.asarray(attacked_pred)
    if attacked.ndim == 1:
        attacked = attacked[None]
    if y.ndim != 1 or cert.shape != y.shape:
        raise ValueError(f"y and certified_pred must be 1-D of one length, got shapes "
                         f"{y.shape} and {cert.shape}.")
    r, certified_ok = _check_certificates(radii, np.array(
        [a == b for a, b in zip(cert.tolist(), y.tolist())], dtype=bool))
    if r.shape != y.shape:
        raise ValueError(f"radii has {r.shape[0]} entries, y {y.shape[0]}.")
    if eps_arr.ndim != 1 or attacked.shape != (eps_arr.shape[0], y.shape[0]):
        raise ValueError(f"attacked_pred must have shape (n_eps, n_samples) = "
                         f"({eps_arr.shape[0]}, {y.shape[0]}), got {np.shape(attacked_pred)}.")
    if norm == "Linf":
        if n_features is None:
            raise ValueError("norm='Linf' needs n_features (the dimension k).")
        radius = np.atleast_1d(linf_to_l2_radius(eps_arr, _check_n_features(n_features)))
    else:
        if not np.isfinite(eps_arr).all() or (eps_arr < 0).any():
            raise ValueError(f"eps must be finite and >= 0, got {eps!r}.")
        radius = eps_arr
    n = y.shape[0]
    per_eps, margins = [], []
    for e, rad, pred in zip(eps_arr, radius, attacked):
        certified = certified_ok & ~np.isnan(r) & (r >= rad)
        n_cert = int(certified.sum())
        right = np.array([a == b for a, b in zip(pred.tolist(), y.tolist())], dtype=bool)
        abstained = np.array([p == abstain_label for p in pred.tolist()], dtype=bool)
        wrong = ~right & ~abstained
        violations = int((certified & wrong).sum())
        ci = binomtest(n_cert, n).proportion_ci(confidence_level=confidence, method="exact")
        p_viol = (binomtest(violations, n_cert, alpha, alternative="greater").pvalue
                  if n_cert else 1.0)
        non_error = float(np.mean(~wrong))
        ok = non_error >= ci.low and p_viol >= 1 - confidence
        margins.append(non_error - n_cert / n)
        per_eps.append({
            "eps": float(e), "radius": float(rad), "certified_accuracy": n_cert / n,
            "certified_ci": [float(ci.low), float(ci.high)],
            "attacked_accuracy": float(np.mean(right)), "attacked_non_error_rate": non_error,
            "abstained": int(abstained.sum()), "n_certified": n_cert,
            "violations": violations, "violation_pvalue": float(p_viol), "passed": bool(ok),
        })
    passed = all(row["passed"] for row in per_eps)
    return CheckResult("certified_bound", passed, float(min(margins)), {
        "per_eps": per_eps, "norm": norm, "n_features": n_features, "n": int(n),
        "alpha": float(alpha), "confidence": float(confidence),
    })
