"""Exact, batched, differentiable non-negative least squares in plain PyTorch.

For every row ``x`` of ``X`` (shape ``(N, n_features)``) and a fixed, small basis
``H`` (``components``, shape ``(r, n_features)``, ``r`` up to about 100) this module
solves

.. math::

    w^\\star(x) = \\arg\\min_{w \\ge 0} \\lVert x - w H \\rVert_2^2 .

It works in the Gram form: with ``G = H H^T`` (``r x r``) and ``b = x H^T`` the
problem is ``min_{w >= 0} w G w^T / 2 - w b^T``, so after one matrix product over the
pixels (float64) everything is ``r``-dimensional and is done in float64. The solver is
the block principal pivoting active-set method of Kim & Park (2011), run for all rows at
once: each row carries its own passive set and follows exactly the pivoting sequence it
would follow alone, from the same start, so a sample's result does not depend on the
batch it arrives in (up to the rounding of the ``X H^T`` product). A row stops only when
its KKT conditions hold (``w_P >= 0``, gradient ``>= -10 r eps max|b|`` off ``P``), so
the result is the unique minimiser that Lawson & Hanson's NNLS (``scipy.optimize.nnls``)
also returns.

The gradient is exact (implicit differentiation on the final passive set ``P``): with
``w_P = G_PP^{-1} b_P`` and ``w = 0`` off ``P``,
``dL/db_P = G_PP^{-1} dL/dw_P``, ``dL/db = 0`` off ``P`` and ``dL/dX = dL/db H``.
It is the gradient of the NNLS map wherever the passive set is locally constant
(everywhere except on the measure-zero boundaries where an entry of ``w`` hits 0).
``components`` are treated as constants (no gradient flows to them).

This module is torch-only (no scikit-learn) so that ``sknnmfdiff.torch_adapter`` can
reuse it.

References
----------
J. Kim and H. Park, "Fast nonnegative matrix factorization: an active-set-like method
and comparisons", SIAM J. Sci. Comput. 33(6), 3261-3281, 2011.
C. L. Lawson and R. J. Hanson, *Solving Least Squares Problems*, Prentice-Hall, 1974,
chapter 23 (algorithm NNLS).
"""

import logging
import warnings

import torch
from torch import nn

from ._runtime import single_thread

__all__ = ["NNLSProjection", "nnls", "nnls_gram", "l2_normalize_rows"]

logger = logging.getLogger(__name__)

_EPS64 = torch.finfo(torch.float64).eps


def _solve_masked(G, B, P):
    """Solve ``G_PP s_P = b_P`` for every row, with ``s = 0`` off ``P``.

    Parameters
    ----------
    G : Tensor of shape (r, r), float64
    B : Tensor of shape (m, r), float64
    P : Tensor of shape (m, r), bool

    Returns
    -------
    s : Tensor of shape (m, r), float64, zero where ``P`` is False.
    """
    Pf = P.to(G.dtype)
    A = G * (Pf[:, :, None] * Pf[:, None, :])
    A.diagonal(dim1=1, dim2=2).add_(1.0 - Pf)
    rhs = (B * Pf).unsqueeze(-1)
    L, info = torch.linalg.cholesky_ex(A)
    s = torch.cholesky_solve(rhs, L)
    bad = info != 0
    if bool(bad.any()):  # G_PP not positive definite (dependent components): least norm
        s[bad] = torch.linalg.pinv(A[bad], hermitian=True) @ rhs[bad]
    return s.squeeze(-1) * Pf


def nnls_gram(G, B, max_iter=None):
    """Batched exact NNLS in Gram form by block principal pivoting.

    Solves ``min_{w >= 0} w G w^T / 2 - w b^T`` for every row ``b`` of ``B``, which is
    ``min_{w >= 0} ||x - w H||^2`` when ``G = H H^T`` and ``b = x H^T``. Every row starts
    from the same state (``w = 0``, empty passive set) and runs its own pivoting
    sequence, so its result does not depend on the other rows of the batch. The loop ends
    for a row exactly when its KKT conditions hold: ``w_P >= 0`` on the passive set and
    the gradient ``y = w G - b >= -tol`` off it, with ``tol = 10 r eps max|b|``.

    Parameters
    ----------
    G : Tensor of shape (r, r)
        Symmetric positive (semi-)definite Gram matrix; used in float64.
    B : Tensor of shape (N, r)
        Right-hand sides ``X H^T``; used in float64.
    max_iter : int or None, default=None
        Cap on the pivoting steps (one batched ``r x r`` solve each); ``None`` means
        ``10 * r + 20``. Rows not converged by then are solved one by one by Lawson &
        Hanson's method (see Notes), with the same cap on its steps; a row that does not
        converge there either keeps its last iterate and a ``RuntimeWarning`` is issued.

    Returns
    -------
    w : Tensor of shape (N, r), float64
        Non-negative solutions.
    passive : Tensor of shape (N, r), bool
        Final passive sets (free entries); used for the implicit gradient.

    Notes
    -----
    Block principal pivoting terminates finitely when ``G`` is positive definite. When
    it is singular (more components than features, ``r > n_features``, or linearly
    dependent components) the minimiser is not unique and the pivoting can cycle; the
    rows that do are solved by Lawson & Hanson's NNLS, which terminates for any ``G``
    and returns a minimiser whose passive components are linearly independent (the
    one ``scipy.optimize.nnls`` would return, up to ties). A row's result still depends
    on that row only.

    References
    ----------
    J. Kim and H. Park, "Fast nonnegative matrix factorization: an active-set-like
    method and comparisons", SIAM J. Sci. Comput. 33(6), 2011 (block principal
    pivoting with the backup rule of Judice & Pires, 1994). The result is the same
    unique minimiser that Lawson & Hanson's NNLS (``scipy.optimize.nnls``) returns.
    C. L. Lawson and R. J. Hanson, *Solving Least Squares Problems*, 1974, ch. 23.
    """
    G = G.to(torch.float64)
    B = B.to(torch.float64)
    N, r = B.shape
    dev = B.device
    if max_iter is None:
        max_iter = 10 * r + 20
    w = torch.zeros_like(B)
    P = torch.zeros(N, r, dtype=torch.bool, device=dev)
    if N == 0 or r == 0:
        return w, P
    with single_thread(dev):
        tol = 10.0 * r * _EPS64 * B.abs().amax(1, keepdim=True)
        # The first pivoting step from (w = 0, P = {}) is known in closed form: y = -b,
        # so every index with b_i > tol is infeasible and, being the first step (fewer
        # infeasibilities than the initial r + 1), all of them enter P. Start there.
        P = B > tol
        ninf = P.sum(1)
        budget = torch.full((N,), 3, dtype=torch.long, device=dev)
        todo = torch.arange(N, device=dev)
        ar = torch.arange(r, device=dev)
        for _ in range(max_iter):
            Pi, Bi = P[todo], B[todo]
            x = _solve_masked(G, Bi, Pi)
            y = x @ G - Bi
            infeas = (Pi & (x < 0)) | (~Pi & (y < -tol[todo]))
            nv = infeas.sum(1)
            ok = nv == 0
            w[todo[ok]] = x[ok]
            if bool(ok.all()):
                todo = todo[:0]
                break
            keep = ~ok
            t, infeas, nv, Pi = todo[keep], infeas[keep], nv[keep], Pi[keep]
            better = nv < ninf[t]
            ninf[t] = torch.where(better, nv, ninf[t])
            budget[t] = torch.where(better, torch.full_like(nv, 3), budget[t] - 1)
            full = better | (budget[t] >= 0)
            # backup rule: flip only the largest infeasible index
            last = torch.where(infeas, ar, -1).amax(1)
            single = torch.zeros_like(infeas)
            single[torch.arange(t.numel(), device=dev), last] = True
            flip = torch.where(full[:, None], infeas, single)
            P[t] = Pi ^ flip
            todo = t
        failed = []
        for i in todo.tolist():  # block pivoting cycled: a singular G (see Notes)
            wi, Pi, ok = _lawson_hanson(G, B[i], tol[i, 0], max_iter)
            w[i], P[i] = wi, Pi
            if not ok:
                failed.append(i)
        if failed:
            warnings.warn(
                f"nnls_gram: {len(failed)} of {N} rows did not converge in max_iter="
                f"{max_iter} steps of block pivoting nor of Lawson-Hanson's method; their "
                "last Lawson-Hanson iterate is kept (non-negative, not optimal).",
                RuntimeWarning,
                stacklevel=2,
            )
    return w, P


def _lawson_hanson(G, b, tol, max_iter):
    """Lawson & Hanson's active-set NNLS of one row in Gram form; ``(w, P, converged)``.

    Solves ``min_{w >= 0} w G w^T / 2 - w b^T`` for one ``b`` of shape (r,). An index
    enters the passive set ``P`` only while its negative gradient exceeds ``tol``, which
    keeps the passive rows of ``H`` linearly independent, so the method ends in finitely
    many steps also when ``G`` is singular (Lawson & Hanson, 1974, ch. 23, Lemma 23.17),
    where block principal pivoting can cycle. ``G_PP`` is then positive definite at the
    end, as the implicit gradient needs. ``max_iter`` caps the outer and the inner loops.
    """
    r = b.shape[0]
    w = torch.zeros_like(b)
    P = torch.zeros(r, dtype=torch.bool, device=b.device)
    for _ in range(max_iter):
        grad = b - w @ G  # negative gradient
        cand = (~P) & (grad > tol)
        if not bool(cand.any()):
            return w, P, True
        P[int(torch.where(cand, grad, torch.full_like(grad, -torch.inf)).argmax())] = True
        for _ in range(max_iter):
            s = _solve_masked(G, b[None], P[None])[0]
            neg = P & (s <= 0)
            if not bool(neg.any()):
                w = s
                break
            alpha = torch.min(w[neg] / (w[neg] - s[neg]))
            w = w + alpha * (s - w)
            P &= w > 0
            w = torch.where(P, w, torch.zeros_like(w))
        else:
            return w.clamp_min(0), P & (w > 0), False
    return w, P, False


def _gram(H):
    """``(H64, G)``: the basis in float64 and its Gram matrix ``H64 @ H64.T``."""
    H64 = H.detach().to(torch.float64)
    return H64, H64 @ H64.T


def _gram_rhs(X, H64, chunk=256):
    """``X @ H64.T`` in float64, converting ``X`` chunk by chunk (no full float64 copy)."""
    if X.dtype == torch.float64:
        return X @ H64.T
    N, F = X.shape
    B = torch.empty(N, H64.shape[0], dtype=torch.float64, device=X.device)
    buf = torch.empty(min(chunk, N), F, dtype=torch.float64, device=X.device)
    for s in range(0, N, chunk):
        n = min(chunk, N - s)
        buf[:n].copy_(X[s : s + n])
        torch.mm(buf[:n], H64.T, out=B[s : s + n])
    return B


class _NNLSFunction(torch.autograd.Function):
    """``X -> argmin_{w >= 0} ||x - w H||^2`` row-wise, with the exact implicit gradient."""

    @staticmethod
    def forward(ctx, X, H, max_iter, gram=None):
        H64, G = gram if gram is not None else _gram(H)
        B = _gram_rhs(X.detach(), H64)
        w, P = nnls_gram(G, B, max_iter=max_iter)
        ctx.save_for_backward(H64, G, P)
        ctx.x_dtype = X.dtype
        return w.to(X.dtype)

    @staticmethod
    def backward(ctx, grad_w):
        H64, G, P = ctx.saved_tensors
        grad_X = None
        if ctx.needs_input_grad[0]:
            with single_thread(G.device):
                gb = _solve_masked(G, grad_w.to(torch.float64), P)
            grad_X = (gb @ H64).to(ctx.x_dtype)
        return grad_X, None, None, None


def _check_inputs(X, components):
    if not isinstance(X, torch.Tensor) or not isinstance(components, torch.Tensor):
        raise TypeError(
            f"X and components must be torch.Tensor, got {type(X).__name__} and "
            f"{type(components).__name__}."
        )
    if X.ndim != 2 or components.ndim != 2:
        raise ValueError(
            f"X must be 2-D (N, n_features) and components 2-D (r, n_features); got "
            f"shapes {tuple(X.shape)} and {tuple(components.shape)}."
        )
    if X.shape[1] != components.shape[1]:
        raise ValueError(
            f"X has {X.shape[1]} features but components have {components.shape[1]}."
        )
    if not X.is_floating_point():
        raise TypeError(f"X must be a floating-point tensor, got dtype {X.dtype}.")


def nnls(X, components, max_iter=None):
    """Row-wise exact NNLS of ``X`` onto fixed ``components``, differentiable in ``X``.

    Parameters
    ----------
    X : Tensor of shape (N, n_features), floating point
        Rows to project (e.g. flattened images with pixels in [0, 1]). Any device.
    components : Tensor of shape (r, n_features)
        Fixed basis ``H`` (treated as a constant: no gradient flows to it), same device
        as ``X``.
    max_iter : int or None, default=None
        Step cap of :func:`nnls_gram`.

    Returns
    -------
    W : Tensor of shape (N, r), dtype of ``X``
        ``W[i] = argmin_{w >= 0} ||X[i] - w @ components||_2``. Solved in float64.
        Backpropagation gives the exact gradient with respect to ``X``.

    Raises
    ------
    TypeError
        If ``X`` or ``components`` is not a tensor or ``X`` is not floating point.
    ValueError
        If the shapes are not 2-D or the feature counts differ.
    """
    _check_inputs(X, components)
    return _NNLSFunction.apply(X, components, max_iter)


def l2_normalize_rows(W):
    """Row-wise L2 normalisation; all-zero rows stay zero (no NaN, also in backward).

    Parameters
    ----------
    W : Tensor of shape (N, r)

    Returns
    -------
    Tensor of shape (N, r), same dtype: ``W[i] / ||W[i]||_2``, or 0 where the row is 0.
    """
    sq = (W * W).sum(1, keepdim=True)
    pos = sq > 0
    norm = torch.sqrt(torch.where(pos, sq, torch.ones_like(sq)))
    return torch.where(pos, W / norm, torch.zeros_like(W))


class NNLSProjection(nn.Module):
    """Differentiable exact NNLS projection onto a fixed basis, optionally L2-normalised.

    Maps ``(N, n_features)`` to ``(N, r)`` float32:
    ``x -> argmin_{w >= 0} ||x - w H||_2`` and then, if ``normalize``,
    ``w / ||w||_2`` (all-zero rows stay zero). This is the ``transform`` of
    :class:`sknnmfdiff.decomposition.KLNMFTransformer` as a ``torch.nn.Module``
    (the paper's feature extraction, arXiv 2603.13182, Sec. 3: NNLS onto the learned KL-NMF
    basis, then L2 normalisation). Gradients reach every input entry exactly (implicit
    differentiation on the active set, see :func:`nnls`).

    Parameters
    ----------
    components : array-like or Tensor of shape (r, n_features)
        Non-negative basis ``H``; stored as a float32 buffer ``components`` (moves with
        ``.to(device)``).
    normalize : bool, default=True
        Apply row-wise L2 normalisation after the projection.
    max_iter : int or None, default=None
        Step cap of the active-set solver (see :func:`nnls_gram`).
    """

    def __init__(self, components, normalize=True, max_iter=None):
        super().__init__()
        comp = torch.as_tensor(components, dtype=torch.float32).detach().clone()
        if comp.ndim != 2:
            raise ValueError(
                f"components must be 2-D (r, n_features), got shape {tuple(comp.shape)}."
            )
        self.register_buffer("components", comp)
        self.normalize = bool(normalize)
        self.max_iter = max_iter
        self._gram_cache = None

    def __getstate__(self):
        # the cache is derived from ``components``: not part of a pickled module
        state = self.__dict__.copy()
        state["_gram_cache"] = None
        return state

    def __setstate__(self, state):
        state.setdefault("_gram_cache", None)  # modules pickled before the cache existed
        super().__setstate__(state)

    def _gram_for(self, comp, device):
        """``(H64, G)`` of ``comp`` on ``device``, kept between calls.

        The float64 basis and its Gram matrix are constants of the fitted basis: kept
        between calls (an attack makes thousands), recomputed when the buffer changes:
        another tensor, dtype or device, or an in-place write through the tensor (its
        version counter moves; a write through ``.data`` or a numpy view does not move
        it and is not seen). The key is read from the buffer itself, not from a copy
        moved to ``device`` (a fresh copy always has version 0, and its address can be
        reused), and the cache holds a view of the buffer, so that its storage cannot be
        freed and its address taken by another tensor while the key names it. Nothing is
        kept under ``torch.inference_mode`` or for an inference-tensor buffer: an
        inference tensor has no version counter, and one kept would break a later
        call with gradients (inference tensors cannot be saved for backward). The cache
        is read once into a local, so concurrent callers (the compiled module's worker
        threads) each use one consistent entry.
        """
        device = torch.device(device)
        if comp.is_inference() or torch.is_inference_mode_enabled():
            return _gram(comp.to(device))
        key = (device, comp.device, comp.dtype, tuple(comp.shape), comp.data_ptr(),
               comp._version)
        cache = self._gram_cache
        if cache is None or cache[0] != key:
            cache = (key, comp.detach(), *_gram(comp.to(device)))
            self._gram_cache = cache
        return cache[2:]

    def forward(self, X):
        """Project ``X`` (N, n_features) -> (N, r) in ``X``'s floating dtype.

        float32 in the pipeline; float64 input stays float64, so that the
        gradient can be checked against finite differences in double precision.
        """
        comp = self.components
        _check_inputs(X, comp)
        W = _NNLSFunction.apply(X, comp, self.max_iter, self._gram_for(comp, X.device))
        W = W.to(X.dtype if X.is_floating_point() else torch.float32)
        if self.normalize:
            W = l2_normalize_rows(W)
        return W

    def extra_repr(self):
        r, f = self.components.shape
        return f"n_components={r}, n_features={f}, normalize={self.normalize}"
