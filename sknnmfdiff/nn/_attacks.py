"""L-inf adversarial examples for adversarial training, in plain torch (no scikit-learn).

Projected gradient ascent with signed steps inside the L-inf ball of radius ``eps``
around the input, intersected with the box ``[lo, hi]`` (Madry et al., 2018, "Towards
deep learning models resistant to adversarial attacks", ICLR, section 2), on any scalar
objective of the input. Two objectives for models given as draws of logits:

- :func:`mean_probability_nll`: the cross-entropy of the mean probability over
  noise draws, ``-sum_i log mean_d softmax(f_d(x_i))[y_i]``, the loss of PGD training
  (Madry et al.) under expectation over transformation for a randomized model
  (Athalye et al., 2018, "Synthesizing robust adversarial examples", ICML); with one
  draw it is the plain cross-entropy;
- :func:`mean_probability_kl`: ``sum_i KL(p_i || mean_d softmax(f_d(x_i)))`` from a
  fixed reference distribution ``p``, the inner maximisation of TRADES (Zhang et al.,
  2019, "Theoretically principled trade-off between robustness and accuracy", ICML,
  algorithm 1).

Every random draw comes from the caller's :class:`torch.Generator`. The functions
differentiate the objective with :func:`torch.autograd.grad` with respect to the input
only, so no parameter's ``.grad`` is touched.
"""

import math

import torch

__all__ = ["mean_probability_kl", "mean_probability_nll", "pgd_linf", "project_linf"]


def project_linf(x, center, eps, lo=0.0, hi=1.0):
    """Closest point of the L-inf ball around ``center`` and the box ``[lo, hi]``.

    Parameters
    ----------
    x, center : torch.Tensor of the same shape
        Point to project and centre of the ball (``center`` inside the box).
    eps : float
        Radius, >= 0, in the input's units.
    lo, hi : float, default=0.0, 1.0
        The box (feature or pixel range).

    Returns
    -------
    x_proj : torch.Tensor, shape and dtype of ``x``
        ``clamp(clamp(x, center - eps, center + eps), lo, hi)``: the ball and the
        box are both products of intervals, so coordinate-wise clipping is the exact
        Euclidean projection onto their intersection.
    """
    return torch.clamp(torch.minimum(torch.maximum(x, center - eps), center + eps), lo, hi)


def _log_mean_probability(logits):
    """``log mean_d softmax(logits[d])``, shape (N, C), from logits (D, N, C)."""
    return torch.logsumexp(torch.log_softmax(logits, dim=-1), dim=0) - math.log(logits.shape[0])


def mean_probability_nll(logits, y):
    """Summed negative log of the true class's mean probability over draws.

    Parameters
    ----------
    logits : torch.Tensor of shape (D, N, C)
        Logits of ``D`` noise draws (``D = 1`` for a deterministic model).
    y : torch.Tensor of shape (N,), int64
        True classes in ``0 .. C - 1``.

    Returns
    -------
    loss : torch.Tensor, scalar
        ``-sum_i log mean_d softmax(logits[d, i])[y_i]``; the summed cross-entropy
        when ``D = 1``.
    """
    return torch.nn.functional.nll_loss(_log_mean_probability(logits), y, reduction="sum")


def mean_probability_kl(logits, p_ref):
    """Summed KL divergence from reference probabilities to the mean probability.

    Parameters
    ----------
    logits : torch.Tensor of shape (D, N, C)
        Logits of ``D`` noise draws at the perturbed input.
    p_ref : torch.Tensor of shape (N, C)
        Reference probabilities (rows summing to 1), e.g. the model's mean
        probability at the clean input; treated as a constant.

    Returns
    -------
    kl : torch.Tensor, scalar, >= 0
        ``sum_i sum_c p_ref[i, c] (log p_ref[i, c] - log q[i, c])`` with ``q`` the
        mean probability over draws (TRADES' inner objective, Zhang et al., 2019).
    """
    return torch.nn.functional.kl_div(
        _log_mean_probability(logits), p_ref.detach(), reduction="sum"
    )


def pgd_linf(objective, x, *, eps, n_steps, step_size, generator, start="uniform",
             lo=0.0, hi=1.0):
    """Maximise ``objective`` over the L-inf ball around ``x`` by signed gradient steps.

    ``x_0 = P(x + delta)``, then ``x_{s+1} = P(x_s + step_size * sign(grad objective(x_s)))``
    for ``s < n_steps``, with ``P`` :func:`project_linf` (ball of radius ``eps`` around
    ``x``, box ``[lo, hi]``); returns ``x_{n_steps}`` (Madry et al., 2018, section 2).

    Parameters
    ----------
    objective : callable
        Maps a perturbed input (shape of ``x``, requiring grad) to a scalar tensor to
        be maximised (a sum over rows, so that each row's gradient is its own).
    x : torch.Tensor of shape (N, ...), floating dtype
        Clean inputs, inside ``[lo, hi]``.
    eps : float
        Radius of the ball, >= 0, in input units.
    n_steps : int
        Gradient steps, >= 1.
    step_size : float
        Size of each signed step, >= 0, in input units.
    generator : torch.Generator
        Source of the random start, on ``x``'s device.
    start : {"uniform", "normal", "none"}, default="uniform"
        ``delta`` uniform in ``[-eps, eps]`` (Madry et al.), ``0.001 * N(0, I)``
        (TRADES, Zhang et al., 2019, algorithm 1) or zero.
    lo, hi : float, default=0.0, 1.0
        The box of valid inputs.

    Returns
    -------
    x_adv : torch.Tensor, shape and dtype of ``x``, detached
        ``|x_adv - x| <= eps`` element-wise and ``lo <= x_adv <= hi``.

    Raises
    ------
    ValueError
        If ``eps < 0``, ``n_steps < 1``, ``step_size < 0`` or ``start`` is unknown.
    """
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0, got {eps!r}.")
    if isinstance(n_steps, bool) or int(n_steps) != n_steps or n_steps < 1:
        raise ValueError(f"n_steps must be an integer >= 1, got {n_steps!r}.")
    if not step_size >= 0:
        raise ValueError(f"step_size must be >= 0, got {step_size!r}.")
    x = x.detach()
    if start == "uniform":
        delta = (2 * torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
                 - 1) * eps
    elif start == "normal":
        delta = 0.001 * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    elif start == "none":
        delta = torch.zeros_like(x)
    else:
        raise ValueError(f"start must be 'uniform', 'normal' or 'none', got {start!r}.")
    x_adv = project_linf(x + delta, x, eps, lo, hi)
    for _ in range(int(n_steps)):
        x_adv.requires_grad_(True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(objective(x_adv), x_adv)
        x_adv = project_linf(x_adv.detach() + step_size * grad.sign(), x, eps, lo, hi)
    return x_adv.detach()
