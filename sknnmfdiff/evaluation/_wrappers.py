"""The models the attacks differentiate: the EOT mean-probability wrapper and a
pass-through that keeps a graph when a module cut it; and the rule by which the
adaptive attack counts a randomized model's sample as broken."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class MeanProbabilityLogits(nn.Module):
    """Log of the mean class probability over ``n_draws`` forward passes.

    ``forward(x) = log(mean_k softmax(module(x)))``, computed stably as
    ``logsumexp_k log_softmax(module(x)) - log(n_draws)``. It is a valid set of
    logits (its softmax is the mean probability), so cross-entropy on it is the
    loss of the averaged prediction, its gradient is the expectation-over-
    transformation gradient (Athalye et al. 2018), and its argmax is the
    mean-probability decision of a randomized defence.

    Parameters
    ----------
    module : torch.nn.Module
        Classifier returning logits of shape ``(N, n_classes)``. If it has a method
        ``forward_draws(x, n)`` returning ``(n, N, n_classes)`` logits of ``n``
        draws (as :class:`~sknnmfdiff.torch_adapter.CompiledPipeline` has: one
        batched pass over draws x rows, with the noise sequence of ``n``
        separate calls), that is used instead of ``n`` calls; the logits and
        their gradient are the same up to float rounding.
    n_draws : int, default=1
        Forward passes averaged per call (each draws fresh noise from the module's
        own generator). With 1 the output is ``log_softmax(module(x))``.

    Raises
    ------
    ValueError
        If ``n_draws < 1``.
    """

    def __init__(self, module, n_draws=1):
        super().__init__()
        if int(n_draws) < 1:
            raise ValueError(f"n_draws must be >= 1, got {n_draws}.")
        self.module = module
        self.n_draws = int(n_draws)

    def draw_log_probabilities(self, x):
        """Log-probabilities of every draw, float32 of shape (n_draws, N, n_classes)."""
        if self.n_draws == 1:
            return F.log_softmax(self.module(x).float(), dim=1).unsqueeze(0)
        draws = getattr(self.module, "forward_draws", None)
        if draws is not None:
            # One pass through the deterministic front (e.g. the NNLS projection)
            # and one batched pass of the randomized head over all draws: the same
            # noise sequence as n_draws separate calls, at a fraction of the cost.
            logits = draws(x, self.n_draws)
        else:
            logits = torch.stack([self.module(x) for _ in range(self.n_draws)])
        return F.log_softmax(logits.float(), dim=2)

    def forward(self, x):
        """Return mean-probability log-probabilities, float32 of shape (N, n_classes)."""
        if self.n_draws == 1:
            return F.log_softmax(self.module(x).float(), dim=1)
        logp = self.draw_log_probabilities(x)
        return torch.logsumexp(logp, dim=0) - math.log(self.n_draws)


class _GradientSafe(nn.Module):
    """Pass-through that keeps a graph when the module cut it (``detach``, numpy, argmax).

    Such a module has no input gradient; instead of letting APGD crash on
    ``backward`` this returns the same values with an identically zero gradient,
    so the attack runs and the gradient check reports the cut (obfuscated
    gradients are reported, not hidden).
    """

    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, x):
        out = self.module(x)
        if torch.is_grad_enabled() and x.requires_grad and not out.requires_grad:
            out = out + 0.0 * x.reshape(x.shape[0], -1).sum(1, keepdim=True)
        return out


def confidently_misclassified(logp, y, *, level=0.95):
    """Whether each sample's mean-probability prediction is wrong with confidence ``level``.

    The decision of a randomized model is the argmax of its mean class probability,
    which an attack can only estimate from a finite number of draws; near the
    decision boundary the estimate misjudges. Here a sample counts as misclassified
    only when the mean over draws of the margin ``p_y - p_c`` (true class ``y``
    against the most probable other class ``c`` of the mean) is below 0 by more than
    its one-sided Student-t bound: ``mean + t_level(n - 1) * sd / sqrt(n) < 0``.

    Parameters
    ----------
    logp : torch.Tensor of shape (n_draws, N, n_classes)
        Per-draw log-probabilities (:meth:`MeanProbabilityLogits.draw_log_probabilities`).
    y : torch.Tensor of shape (N,), int64
        True labels.
    level : float, default=0.95
        One-sided confidence in (0, 1).

    Returns
    -------
    fooled : torch.Tensor of shape (N,), bool
        With one draw: the draw's argmax differs from ``y`` (no interval).
    """
    from scipy.stats import t as student_t

    p = logp.exp()
    n = p.shape[0]
    mean = p.mean(0)
    other = mean.clone()
    other[torch.arange(len(y)), y] = -1.0
    c = other.argmax(1)
    idx = torch.arange(len(y))
    margin = p[:, idx, y] - p[:, idx, c]  # (n_draws, N)
    if n == 1:
        return margin[0] < 0
    bound = float(student_t.ppf(level, n - 1)) * margin.std(0, unbiased=True) / math.sqrt(n)
    return margin.mean(0) + bound < 0
