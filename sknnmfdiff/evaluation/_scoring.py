"""Scoring of deterministic and randomized models: probability draws, metrics, and
the scoring rules with their confidence intervals."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import torch

from ._common import (
    SCORING_RULES,
    _guard_global_state,
    _infer_randomized,
    _module_device,
    _reseed,
    _seed_int,
    _to_tensor,
)

_log = logging.getLogger(__name__)


def predict_proba_draws(module, x, *, n_draws=1, batch_size=250, random_state=0, device=None):
    """Class probabilities of ``n_draws`` independent forward passes.

    Draw ``d`` uses the seed ``SeedSequence([random_state, 7919, d])``: the
    module's generator is rewound to it before every batch of that draw, so every
    batch of one draw sees the same noise and the result does not depend on
    ``batch_size``.

    When the module has ``forward_seeded_draws(x, seeds)`` (as
    :class:`~sknnmfdiff.torch_adapter.CompiledPipeline` has), every batch is
    scored for all draws at once: one call with the ``n_draws`` seeds returns
    ``(n_draws, batch, n_classes)`` logits, draw ``d`` equal (up to float
    rounding, about 1e-6) to what rewinding to draw ``d``'s seed and calling the
    module gives. Otherwise the draws run one by one (rewind, call), which is
    the same computation, only slower.

    Parameters
    ----------
    module : torch.nn.Module
        Classifier returning logits of shape ``(N, n_classes)``.
    x : ndarray or Tensor of shape (N, C, H, W), float in [0, 1]
        Inputs (converted to float32; not validated).
    n_draws : int, default=1
        Independent forward passes (>= 1).
    batch_size : int, default=250
        Samples per forward pass (per call of ``forward_seeded_draws``, which
        itself chunks its draws to bound memory).
    random_state : int, default=0
        Seed of the draws (``SeedSequence([random_state, 7919, d])`` for draw
        ``d``).
    device : str or torch.device, optional
        Defaults to the device of the module's parameters.

    Returns
    -------
    proba : ndarray of shape (n_draws, N, n_classes), float64
        Softmax of the logits; rows sum to 1.

    Raises
    ------
    ValueError
        If ``n_draws < 1``.
    TypeError
        If ``x`` is not a numpy array, torch tensor, list or tuple.
    """
    if int(n_draws) < 1:
        raise ValueError(f"n_draws must be >= 1, got {n_draws}.")
    dev = _module_device(module, device)
    xt = _to_tensor(x, "x", device=dev).to(torch.float32)
    seeds = [_seed_int(random_state, 7919, d) for d in range(int(n_draws))]
    batched = getattr(module, "forward_seeded_draws", None)
    parts = []
    with _guard_global_state(dev), torch.no_grad():
        for lo in range(0, xt.shape[0], batch_size):
            xb = xt[lo : lo + batch_size]
            if batched is not None:
                logits = batched(xb, seeds)
            else:
                logits = []
                for seed in seeds:
                    _reseed(module, seed)
                    logits.append(module(xb))
                logits = torch.stack(logits)
            parts.append(torch.softmax(logits.double(), dim=2).cpu().numpy())
    if not parts:  # no samples
        return np.zeros((int(n_draws), 0, int(getattr(module, "n_classes", 0))))
    return np.concatenate(parts, axis=1)


def classification_metrics(y_true, proba, y_pred=None, *, n_classes=None):
    """Accuracy, balanced accuracy, ROC-AUC, MCC, Brier score and log-loss.

    Parameters
    ----------
    y_true : array-like of shape (N,), int in 0..n_classes-1
        True class indices.
    proba : array-like of shape (N, n_classes)
        Class probabilities (renormalised to sum to 1).
    y_pred : array-like of shape (N,), optional
        Predicted labels; defaults to ``argmax(proba)``.
    n_classes : int, optional
        Defaults to ``proba.shape[1]``.

    Returns
    -------
    metrics : dict of str to float
        Binary: ROC-AUC and Brier on P(class 1). Multiclass: one-vs-rest macro
        ROC-AUC and the mean multi-class Brier score (sum over classes). A metric
        undefined on the data (e.g. ROC-AUC with one class present) is NaN.
    """
    from sklearn import metrics as skm

    y_true = np.asarray(y_true).astype(int)
    proba = np.clip(np.asarray(proba, dtype=np.float64), 0.0, None)
    proba = proba / np.maximum(proba.sum(axis=1, keepdims=True), 1e-300)
    n_classes = proba.shape[1] if n_classes is None else int(n_classes)
    labels = list(range(n_classes))
    y_pred = proba.argmax(axis=1) if y_pred is None else np.asarray(y_pred).astype(int)
    out = {
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float("nan"),
        "roc_auc": float("nan"),
        "mcc": float(skm.matthews_corrcoef(y_true, y_pred)),
        "brier": float("nan"),
        "log_loss": float(skm.log_loss(y_true, proba, labels=labels)),
    }
    with warnings.catch_warnings():
        # "y_pred contains classes not in y_true": expected on small attacked sets
        warnings.simplefilter("ignore", UserWarning)
        out["balanced_accuracy"] = float(skm.balanced_accuracy_score(y_true, y_pred))
    try:
        if n_classes == 2:
            out["roc_auc"] = float(skm.roc_auc_score(y_true, proba[:, 1]))
        else:
            out["roc_auc"] = float(
                skm.roc_auc_score(y_true, proba, multi_class="ovr", average="macro", labels=labels)
            )
    except ValueError as exc:
        _log.debug("ROC-AUC undefined: %s", exc)
    if n_classes == 2:
        out["brier"] = float(skm.brier_score_loss(y_true, proba[:, 1], labels=labels))
    else:
        out["brier"] = float(skm.brier_score_loss(y_true, proba, labels=labels))
    return out


def _wilson(k, n, confidence):
    from scipy.stats import binomtest

    if n == 0:
        return [float("nan"), float("nan")]
    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return [float(ci.low), float(ci.high)]


def score_draws(y, proba_draws, *, confidence=0.95):
    """Score per-draw probabilities under four rules.

    Parameters
    ----------
    y : array-like of shape (N,), int
        True class indices ``0 .. n_classes - 1``.
    proba_draws : ndarray of shape (n_draws, N, n_classes)
        Class probabilities of each draw (:func:`predict_proba_draws`).
    confidence : float, default=0.95
        Level in (0, 1) of the Wilson intervals on the accuracies.

    Returns
    -------
    scores : dict
        ``{"n_draws", "rules": {rule: metrics}, "correct": {rule: bool ndarray (N,)}}``
        with rules

        - ``single_draw``: the first draw alone;
        - ``mean_probability``: the mean probability over draws;
        - ``majority_vote``: the most voted class (ties to the lowest index), its
          probability the vote fractions;
        - ``worst_case``: correct only if every draw is correct; the probability
          is the draw least favourable to the true class (among wrong draws when
          there are any), the prediction its argmax.

        Each metrics dict holds the :func:`classification_metrics` entries plus
        ``accuracy_ci`` ``[low, high]`` and ``n``.

    Raises
    ------
    ValueError
        If ``proba_draws`` is not 3-D.
    """
    P = np.asarray(proba_draws, dtype=np.float64)
    if P.ndim != 3:
        raise ValueError(f"proba_draws must be 3-D (n_draws, N, n_classes), got shape {P.shape}.")
    y = np.asarray(y).astype(int)
    n_draws, n, c = P.shape
    rows = np.arange(n)
    preds = P.argmax(axis=2)  # (D, N)
    votes = np.stack([(preds == k).sum(axis=0) for k in range(c)], axis=1) / n_draws
    p_true = P[:, rows, y]  # (D, N)
    wrong = preds != y[None, :]
    key = np.where(wrong, p_true - 2.0, p_true)  # prefer wrong draws, then lowest p_true
    worst = key.argmin(axis=0)
    rules_proba = {
        "single_draw": P[0],
        "mean_probability": P.mean(axis=0),
        "majority_vote": votes,
        "worst_case": P[worst, rows],
    }
    preds_rule = {
        "single_draw": preds[0],
        "mean_probability": P.mean(axis=0).argmax(axis=1),
        "majority_vote": votes.argmax(axis=1),
        "worst_case": preds[worst, rows],
    }
    out = {"n_draws": int(n_draws), "rules": {}, "correct": {}}
    for rule in SCORING_RULES:
        m = classification_metrics(y, rules_proba[rule], preds_rule[rule], n_classes=c)
        correct = preds_rule[rule] == y
        m["accuracy_ci"] = _wilson(correct.sum(), n, confidence)
        m["n"] = int(n)
        out["rules"][rule] = m
        out["correct"][rule] = correct
    return out


def score(module, x, y, *, n_draws=None, batch_size=250, random_state=0, device=None, confidence=0.95):
    """Score a module on inputs under the four scoring rules.

    Parameters
    ----------
    module : torch.nn.Module
        Classifier returning logits of shape ``(N, n_classes)``.
    x : ndarray or Tensor of shape (N, C, H, W), float in [0, 1]
        Inputs to score.
    y : array-like of shape (N,), int
        True class indices ``0 .. n_classes - 1``.
    n_draws : int or None, default=None
        Forward passes; ``None`` means 1 for a deterministic module and 100 for a
        randomized one.
    batch_size : int, default=250
        Samples per forward pass.
    random_state : int, default=0
        Seed of the draws (see :func:`predict_proba_draws`).
    device : str or torch.device, optional
        Defaults to the device of the module's parameters.
    confidence : float, default=0.95
        Level of the Wilson intervals (see :func:`score_draws`).

    Returns
    -------
    scores : dict
        See :func:`score_draws`.

    Raises
    ------
    ValueError
        If ``n_draws < 1``.
    TypeError
        If ``x`` or ``y`` is not a numpy array, torch tensor, list or tuple.
    """
    xt = _to_tensor(x, "x")
    if n_draws is None:
        randomized, _ = _infer_randomized(module, xt.to(_module_device(module, device)).float())
        n_draws = 100 if randomized else 1
    P = predict_proba_draws(module, xt, n_draws=n_draws, batch_size=batch_size,
                            random_state=random_state, device=device)
    return score_draws(np.asarray(_to_tensor(y, "y").cpu()), P, confidence=confidence)
