"""The exact NNLS projection in a form that exports to one static graph (ONNX).

:func:`nnls_gram` (in ``_nnls``) pivots until every row meets its KKT conditions with
a Python loop over a shrinking per-row ``todo`` list, Cholesky solves and a
pseudo-inverse fallback, none of which an exporter can capture. This module computes
the same thing with :func:`torch.while_loop` (a loop that ``torch.export`` captures
and the ONNX exporter writes as an ONNX ``Loop``) and elementary tensor ops:

- the masked ``r x r`` systems ``G_PP s_P = b_P`` are solved by Gauss-Jordan
  elimination, one loop iteration per pivot, without pivot search: the masked
  matrix is symmetric positive definite when ``G`` is, so elimination without row
  exchanges is stable and every pivot is positive;
- every pivoting step is applied to every row at once; a row whose KKT conditions
  hold keeps its passive set (its flip mask is forced empty), so it stays at its
  solution while the other rows go on pivoting; the loop ends when all rows hold
  or after ``max_iter`` steps;
- the block principal pivoting rule of Kim & Park (2011), with the backup rule of
  Judice & Pires (1994), is the one of :func:`nnls_gram` step for step, so every row
  follows the pivoting sequence it follows there and ends at the same minimiser
  (up to the rounding of the solves); rows still infeasible after ``max_iter`` steps
  are flagged (``converged`` False) and get their last iterate clipped at 0
  (:func:`nnls_gram` instead solves such rows by Lawson & Hanson's method, which a
  static graph does not hold; on non-degenerate problems no row reaches the cap).

Everything is in float64 (ONNX Runtime runs float64 ``MatMul``, ``Div`` and ``Where``
on the CPU). Only ``torch`` is imported.

References
----------
J. Kim and H. Park, "Fast nonnegative matrix factorization: an active-set-like method
and comparisons", SIAM J. Sci. Comput. 33(6), 3261-3281, 2011.
J. J. Judice and F. M. Pires, "A block principal pivoting algorithm for large-scale
strictly monotone linear complementarity problems", Computers & Operations Research
21(5), 587-596, 1994.
"""

import torch

__all__ = ["nnls_gram_export", "solve_spd_export"]

_EPS64 = torch.finfo(torch.float64).eps


def solve_spd_export(A, rhs):
    """Solve ``A[i] s[i] = rhs[i]`` for a batch of symmetric positive definite systems.

    Gauss-Jordan elimination of the augmented matrix ``[A | rhs]`` without pivot
    search, one :func:`torch.while_loop` iteration per pivot ``k = 0 .. r - 1``: row
    ``k`` is divided by its pivot and subtracted from every other row, so after the
    last pivot the left block is the identity and the last column the solution.

    Parameters
    ----------
    A : Tensor of shape (N, r, r), floating point (float64 in the NNLS)
        Symmetric positive definite matrices. Not checked: a zero pivot gives
        infinities (the ONNX exporter refuses a Gram matrix that is not positive
        definite).
    rhs : Tensor of shape (N, r), same dtype and device

    Returns
    -------
    s : Tensor of shape (N, r)
        The solutions, to the rounding of the elimination (for a symmetric positive
        definite matrix as accurate as a Cholesky solve up to a small factor).
    """
    r = rhs.shape[1]
    aug = torch.cat([A, rhs.unsqueeze(2)], dim=2)  # (N, r, r + 1)
    ar = torch.arange(r, device=A.device)

    def more(k, aug):
        return k < r

    def pivot_step(k, aug):
        kk = k.reshape(1)
        row_k = aug.index_select(1, kk).squeeze(1)  # (N, r + 1)
        row = row_k / row_k.index_select(1, kk)  # unit pivot
        # multipliers: column k, less 1 in row k (so that row k becomes ``row``)
        col = aug.index_select(2, kk).squeeze(2) - (ar == k).to(aug.dtype)
        return k + 1, aug - col.unsqueeze(2) * row.unsqueeze(1)

    k0 = torch.zeros((), dtype=torch.long, device=A.device)
    _, aug = torch.while_loop(more, pivot_step, (k0, aug))
    return aug[:, :, r]


def _solve_masked(G, B, P):
    """``G_PP s_P = b_P`` for every row, ``s = 0`` off ``P``."""
    Pf = P.to(B.dtype)
    A = G * (Pf.unsqueeze(2) * Pf.unsqueeze(1)) + torch.diag_embed(1.0 - Pf)
    return solve_spd_export(A, B * Pf) * Pf


def _infeasible(G, B, P, x, tol):
    """KKT violations at ``x``: ``x < 0`` on ``P``, gradient ``< -tol`` off ``P``."""
    y = x @ G - B
    return (P & (x < 0)) | (~P & (y < -tol))


def nnls_gram_export(G, B, max_iter=None):
    """Batched exact NNLS in Gram form, written so that it exports to ONNX.

    The computation of :func:`~sknnmfdiff.nn.nnls_gram` (same start, same pivoting
    rule, same cap): ``min_{w >= 0} w G w^T / 2 - w b^T`` for every row ``b`` of ``B``
    by block principal pivoting from the closed-form first step
    (``P = {i : b_i > tol}``, ``tol = 10 r eps max|b|``), at most ``max_iter`` pivoting
    steps (fewer when every row meets its KKT conditions sooner), then a final solve
    on the last passive set. Loops are :func:`torch.while_loop`, so
    ``torch.onnx.export`` writes them as ONNX ``Loop`` nodes and the graph's size
    does not grow with ``r`` or ``max_iter``. Forward only (no gradient).

    Parameters
    ----------
    G : Tensor of shape (r, r), float64
        Symmetric positive definite Gram matrix ``H H^T``.
    B : Tensor of shape (N, r), float64
        Right-hand sides ``X H^T``.
    max_iter : int or None, default=None
        Cap on the pivoting steps, >= 0; None means ``10 * r + 20`` (that of
        :func:`~sknnmfdiff.nn.nnls_gram`).

    Returns
    -------
    w : Tensor of shape (N, r), float64
        Non-negative solutions: the unique minimiser for every converged row, the
        last iterate clipped at 0 for the others.
    converged : Tensor of shape (N,), bool
        Whether the row's KKT conditions hold (``w_P >= 0``, gradient ``>= -tol``
        off the passive set ``P``).

    Raises
    ------
    ValueError
        If ``max_iter`` is not None or an integer >= 0, or the shapes do not match.

    References
    ----------
    J. Kim and H. Park, SIAM J. Sci. Comput. 33(6), 2011 (block principal pivoting);
    J. J. Judice and F. M. Pires, Comput. Oper. Res. 21(5), 1994 (backup rule).
    """
    if G.ndim != 2 or B.ndim != 2 or tuple(G.shape) != (B.shape[1], B.shape[1]):
        raise ValueError(
            f"G must be (r, r) and B (N, r); got shapes {tuple(G.shape)} and {tuple(B.shape)}."
        )
    r = B.shape[1]
    if max_iter is None:
        max_iter = 10 * r + 20
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 0:
        raise ValueError(f"max_iter must be None or an integer >= 0, got {max_iter!r}.")
    dev = B.device
    tol = 10.0 * r * _EPS64 * B.abs().amax(1, keepdim=True)  # (N, 1)
    # First pivoting step from (w = 0, P = {}) in closed form, as in nnls_gram.
    P = B > tol
    ninf = P.sum(1)  # int64 (N,)
    budget = torch.full_like(ninf, 3)
    ar = torch.arange(r, device=dev)

    def more(i, P, ninf, budget, pending):
        return (i < max_iter) & pending

    def pivoting_step(i, P, ninf, budget, pending):
        x = _solve_masked(G, B, P)
        infeas = _infeasible(G, B, P, x, tol)
        nv = infeas.sum(1)
        ok = nv == 0
        better = nv < ninf
        ninf = torch.where(better, nv, ninf)
        budget = torch.where(better, torch.full_like(budget, 3), budget - 1)
        full = (better | (budget >= 0)).unsqueeze(1)
        # backup rule: flip only the largest infeasible index
        last = torch.where(infeas, ar, torch.full_like(ar, -1)).amax(1)
        single = ar.unsqueeze(0) == last.unsqueeze(1)
        # (full ? infeas : single) in logic ops (ONNX Runtime has no boolean Where);
        # a row that holds flips nothing and stays at its solution.
        flip = ((full & infeas) | (~full & single)) & ~ok.unsqueeze(1)
        return i + 1, P ^ flip, ninf, budget, ~ok.all()

    start = (torch.zeros((), dtype=torch.long, device=dev), P, ninf, budget,
             torch.ones((), dtype=torch.bool, device=dev))
    _, P, _, _, _ = torch.while_loop(more, pivoting_step, start)
    x = _solve_masked(G, B, P)
    converged = _infeasible(G, B, P, x, tol).sum(1) == 0
    return x.clamp_min(0.0), converged
