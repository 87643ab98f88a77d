"""KL-divergence NMF features with an exact NNLS projection.

:class:`KLNMFTransformer` learns a non-negative basis ``components_`` (``H``) of
``X ~= W H`` by minimising the generalised Kullback-Leibler divergence with the
multiplicative updates of Lee & Seung (2001), written in PyTorch (CPU or CUDA), and
projects any sample onto that fixed basis by exact non-negative least squares followed
by row-wise L2 normalisation, as in the paper (arXiv 2603.13182, Sec. 3).

Naming follows scikit-learn: ``components_`` are the basis images (the paper's ``W``)
and ``transform`` returns the per-image coefficients (the paper's ``H``).
"""

import logging
import math
import warnings
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.decomposition._nmf import _initialize_nmf
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, check_non_negative, validate_data

from ._persistence import VersionedEstimatorMixin
from ._torch_nnls import l2_normalize_rows, nnls

__all__ = ["KLNMFTransformer"]

logger = logging.getLogger(__name__)

#: Same epsilon as scikit-learn's ``_nmf.EPSILON``: X entries at or below it are
#: ignored in the KL sum, and WH is clamped to it.
_EPSILON = float(np.finfo(np.float32).eps)
#: Rows per block in the fused multiplicative-update sweep (the block's WH and
#: X / WH stay in cache: 128 x 16,384 float32 = 8 MB).
_BLOCK_ROWS = 128


def _resolve_device(device):
    """Map ``"auto"``/``"cpu"``/``"cuda[:k]"`` to a :class:`torch.device`."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"device={device!r} is not a valid torch device; use 'cpu', 'cuda', "
            "'cuda:<k>' or 'auto'."
        ) from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was requested but CUDA is not available.")
    return dev


def _kl_divergence(X, W, H, Xlog=None, const=None, block_rows=_BLOCK_ROWS):
    """Generalised KL divergence ``D(X || W H)``, accumulated in float64.

    Same definition as scikit-learn's ``_beta_divergence(X, W, H, beta=1)``: entries
    with ``X <= EPSILON`` (float32 eps) are left out of ``sum X log(X / WH)``, ``WH``
    is clamped to ``EPSILON`` there, and ``sum(WH) - sum(X)`` is added in full.

    Parameters
    ----------
    X : Tensor of shape (n_samples, n_features), non-negative
    W : Tensor of shape (n_samples, n_components)
    H : Tensor of shape (n_components, n_features)
    Xlog, const : optional precomputed ``X`` with ``X <= EPSILON`` zeroed and
        ``sum_{X > EPSILON} (X log X - X)``; computed when None.
    block_rows : int
        Rows per block (bounds the temporary to ``block_rows x n_features``).

    Returns
    -------
    float
        The divergence (not square-rooted).
    """
    if Xlog is None or const is None:
        Xlog, const = _kl_constants(X)
    total = const
    buf = torch.empty(min(block_rows, X.shape[0]), X.shape[1], dtype=X.dtype, device=X.device)
    acc = torch.zeros((), dtype=torch.float64, device=X.device)
    for s in range(0, X.shape[0], block_rows):
        T = buf[: min(block_rows, X.shape[0] - s)]
        torch.mm(W[s : s + block_rows], H, out=T)
        T.clamp_(min=_EPSILON).log_().mul_(Xlog[s : s + block_rows])
        acc -= T.sum(dtype=torch.float64)
    sum_wh = torch.dot(W.sum(0, dtype=torch.float64), H.sum(1, dtype=torch.float64))
    return float(total + acc + sum_wh)


def _kl_constants(X):
    """``X`` with entries ``<= EPSILON`` zeroed, and ``sum_{X > EPSILON} X log X - X``."""
    small = (X > 0) & (X <= _EPSILON)
    Xlog = X.masked_fill(small, 0.0) if bool(small.any()) else X
    const = 0.0
    for s in range(0, X.shape[0], 1024):
        Xb = Xlog[s : s + 1024].to(torch.float64)
        const += float(torch.special.xlogy(Xb, Xb).sum() - Xb.sum())
    return Xlog, const


def _mu_sweep(X, W, H, buf, num_w, num_h, block_rows=_BLOCK_ROWS):
    """One Lee-Seung KL multiplicative update of ``W`` then ``H``, in place.

    ``W <- W * ((X / WH) H^T) / (1 H^T)`` and then, with the new ``W``,
    ``H <- H * (W^T (X / WH)) / (W^T 1)``: exactly scikit-learn's
    ``solver="mu"`` order (Gauss-Seidel). Because the ``W`` update is separable over
    rows, both halves are fused into one pass over ``X`` in row blocks: for each block
    the new ``W_b`` is computed and ``W_b^T (X_b / W_b H)`` is accumulated for the
    ``H`` update, while ``W_b H`` and ``X_b / W_b H`` stay in cache. Denominators are
    clamped to ``EPSILON`` (no NaN when a component vanishes).

    Parameters
    ----------
    X : Tensor (n_samples, n_features); W : Tensor (n_samples, r), updated in place;
    H : Tensor (r, n_features), updated in place; buf : Tensor (block_rows, n_features),
    num_w : Tensor (block_rows, r), num_h : Tensor (r, n_features): work buffers.
    """
    Ht = H.T
    h_sum = H.sum(1).clamp_(min=_EPSILON)
    num_h.zero_()
    for s in range(0, X.shape[0], block_rows):
        n = min(block_rows, X.shape[0] - s)
        Xb, Wb, T, nw = X[s : s + n], W[s : s + n], buf[:n], num_w[:n]
        torch.mm(Wb, H, out=T)
        T.clamp_(min=_EPSILON)
        torch.div(Xb, T, out=T)
        torch.mm(T, Ht, out=nw)
        Wb.mul_(nw.div_(h_sum))
        torch.mm(Wb, H, out=T)
        T.clamp_(min=_EPSILON)
        torch.div(Xb, T, out=T)
        num_h.addmm_(Wb.T, T)
    w_sum = W.sum(0).clamp_(min=_EPSILON)
    H.mul_(num_h.div_(w_sum[:, None]))


def _fit_kl_mu(X, W, H, *, max_iter, tol, eval_every, target_loss=None, verbose=0):
    """Run KL multiplicative updates from ``(W, H)`` until convergence.

    Parameters
    ----------
    X : Tensor of shape (n_samples, n_features), non-negative, float32 or float64
    W : Tensor of shape (n_samples, n_components), non-negative, same dtype/device
    H : Tensor of shape (n_components, n_features), non-negative, same dtype/device
    max_iter : int
        Maximum number of updates (of both factors).
    tol : float
        Stop when the relative decrease of the KL loss between two evaluations,
        ``(prev - cur) / prev``, falls below ``tol`` (0 disables).
    eval_every : int
        Evaluate the loss every ``eval_every`` iterations (and after the last one).
    target_loss : float or None
        Also stop as soon as an evaluated loss is ``<= target_loss`` (benchmarks).
    verbose : int
        Log the loss at each evaluation at INFO level when > 0.

    Returns
    -------
    W, H : Tensors, the updated factors (same objects, modified in place).
    n_iter : int
        Updates performed.
    curve : list of (int, float)
        ``(iteration, KL divergence)`` at iteration 0 and at each evaluation.

    References
    ----------
    D. D. Lee and H. S. Seung, "Algorithms for non-negative matrix factorization",
    NIPS 13, 2001 (the KL updates, which never increase the divergence).
    """
    n, f = X.shape
    r = W.shape[1]
    b = min(_BLOCK_ROWS, n)
    buf = torch.empty(b, f, dtype=X.dtype, device=X.device)
    num_w = torch.empty(b, r, dtype=X.dtype, device=X.device)
    num_h = torch.empty(r, f, dtype=X.dtype, device=X.device)
    Xlog, const = _kl_constants(X)
    prev = _kl_divergence(X, W, H, Xlog, const)
    curve = [(0, prev)]
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        _mu_sweep(X, W, H, buf, num_w, num_h)
        if n_iter % eval_every and n_iter != max_iter:
            continue
        loss = _kl_divergence(X, W, H, Xlog, const)
        curve.append((n_iter, loss))
        if verbose:
            logger.info("KL-NMF iteration %d: KL divergence %.6g", n_iter, loss)
        if target_loss is not None and loss <= target_loss:
            break
        if tol > 0 and (prev - loss) <= tol * max(abs(prev), np.finfo(np.float64).tiny):
            break
        prev = loss
    return W, H, n_iter, curve


class KLNMFTransformer(
    VersionedEstimatorMixin, ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator
):
    """KL-divergence NMF basis with an exact, batch-independent NNLS projection.

    ``fit`` factorises ``X ~= W H`` (``H = components_``, non-negative) by minimising
    the generalised Kullback-Leibler divergence ``D(X || W H)`` with the multiplicative
    updates of Lee & Seung (2001), in PyTorch on CPU or CUDA. ``transform`` solves, for
    every sample ``x`` on its own, ``w = argmin_{w >= 0} ||x - w H||_2`` exactly (NNLS,
    see :func:`sknnmfdiff._torch_nnls.nnls`) and returns ``w / ||w||_2`` (all-zero codes
    stay zero). This is the feature extractor of the paper (arXiv 2603.13182, Sec. 3):
    KL-NMF with rank 15 learned on the training images, every split projected onto the
    fixed basis by NNLS, then L2-normalised. The paper writes ``V ~= W H`` with ``W``
    the basis; here, as in scikit-learn, the basis is ``components_`` and the codes are
    the output of ``transform``.

    Unlike :class:`sklearn.decomposition.NMF`, ``transform`` gives every sample the same
    features whatever batch it arrives in, and ``fit_transform(X)`` equals
    ``fit(X).transform(X)``.

    Parameters
    ----------
    n_components : int, default=15
        Rank ``r`` of the factorisation (the paper uses 15).
    init : {"nndsvda", "nndsvdar", "nndsvd", "random"}, default="nndsvda"
        Initialisation, computed by scikit-learn's
        ``sklearn.decomposition._nmf._initialize_nmf`` (Boutsidis & Gallopoulos 2008
        NNDSVD, its zero-filled variants, or scaled uniform random). ``"nndsvd"`` leaves
        zeros that multiplicative updates can never move; prefer ``"nndsvda"``. The
        NNDSVD variants need ``n_components <= min(n_samples, n_features)``.
    max_iter : int, default=200
        Maximum number of multiplicative updates (each updates both factors).
    tol : float, default=1e-4
        Stop when the KL loss decreased by less than ``tol`` relative to its previous
        value between two evaluations (every ``eval_every`` iterations); 0 runs
        ``max_iter`` updates.
    eval_every : int, default=10
        Evaluate the loss (for ``tol`` and ``loss_curve_``) every ``eval_every`` updates
        (as scikit-learn does every 10); 1 records it after every update.
    random_state : int, RandomState instance or None, default=None
        Seeds the initialisation (the random init and the randomized SVD of NNDSVD).
        ``None`` draws a fresh seed from a new :class:`numpy.random.Generator`.
    device : str, default="cpu"
        Torch device for fitting and projection: ``"cpu"``, ``"cuda"``, ``"cuda:<k>"``
        or ``"auto"`` (CUDA when available). Results are returned as NumPy arrays.
    dtype : {"float32", "float64"}, default="float32"
        Precision of the multiplicative updates (losses are always accumulated in
        float64). ``components_`` and ``transform``'s output are float32 either way.
    batch_size : int, default=4096
        Rows projected per batch in ``transform`` (memory only: results do not depend
        on it).
    verbose : int, default=0
        Log the loss at each evaluation (``logging`` at INFO level) when > 0.

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features), float32
        Non-negative basis ``H`` (basis images).
    reconstruction_err_ : float
        ``sqrt(2 * D_KL(X || W H))`` at the end of ``fit``: the same quantity as
        scikit-learn's ``NMF.reconstruction_err_`` with ``beta_loss="kullback-leibler"``.
    loss_curve_ : ndarray of shape (n_evals,), float64
        KL divergence (not square-rooted) at iteration 0 and after every evaluation.
    loss_curve_iter_ : ndarray of shape (n_evals,), int
        Iteration numbers of ``loss_curve_``.
    n_iter_ : int
        Number of updates performed.
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen in ``fit`` (only when ``X`` has string column names).

    Raises
    ------
    ValueError
        In ``fit``: negative, NaN or infinite values; ``n_components > min(n_samples,
        n_features)`` with an NNDSVD init; an unavailable device. In ``transform``: the
        same value checks and a wrong number of features.
    TypeError
        Sparse input (not supported: the NMF is dense; densify with ``X.toarray()``).

    See Also
    --------
    sklearn.decomposition.NMF : scikit-learn's NMF, our numerical reference.
    sknnmfdiff.nn.NNLSProjection : ``transform`` as a differentiable ``torch.nn.Module``.

    References
    ----------
    D. D. Lee and H. S. Seung, "Algorithms for non-negative matrix factorization",
    NIPS 13, 2001. C. L. Lawson and R. J. Hanson, *Solving Least Squares Problems*,
    1974, ch. 23. J. Kim and H. Park, SIAM J. Sci. Comput. 33(6), 2011 (block principal
    pivoting). "Diffusion-Based Feature Denoising and Using NNMF for Robust Brain Tumor
    Classification", arXiv 2603.13182.

    Examples
    --------
    >>> import numpy as np
    >>> from sknnmfdiff.decomposition import KLNMFTransformer
    >>> X = np.random.default_rng(0).random((20, 12))
    >>> nmf = KLNMFTransformer(n_components=3, random_state=0).fit(X)
    >>> nmf.components_.shape, nmf.transform(X).dtype
    ((3, 12), dtype('float32'))
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "init": [StrOptions({"nndsvda", "nndsvdar", "nndsvd", "random"})],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "eval_every": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "device": [str],
        "dtype": [StrOptions({"float32", "float64"})],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        n_components=15,
        *,
        init="nndsvda",
        max_iter=200,
        tol=1e-4,
        eval_every=10,
        random_state=None,
        device="cpu",
        dtype="float32",
        batch_size=4096,
        verbose=0,
    ):
        self.n_components = n_components
        self.init = init
        self.max_iter = max_iter
        self.tol = tol
        self.eval_every = eval_every
        self.random_state = random_state
        self.device = device
        self.dtype = dtype
        self.batch_size = batch_size
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True
        tags.input_tags.sparse = False
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags

    @property
    def _n_features_out(self):
        return self.components_.shape[0]

    def _validate_X(self, X, reset):
        X = validate_data(
            self,
            X,
            reset=reset,
            accept_sparse=False,
            dtype=[np.float32, np.float64],
            order="C",
        )
        check_non_negative(X, f"{type(self).__name__} (input X)")
        return X

    def _init_factors(self, X):
        n_samples, n_features = X.shape
        if self.init.startswith("nndsvd") and self.n_components > min(n_samples, n_features):
            raise ValueError(
                f"n_components={self.n_components} must be <= min(n_samples, n_features) = "
                f"{min(n_samples, n_features)} for init={self.init!r}; X has shape "
                f"(n_samples={n_samples}, n_features={n_features}). Lower n_components or "
                "use init='random'."
            )
        rs = self.random_state
        if rs is None:
            rs = int(np.random.default_rng().integers(2**31 - 1))
        elif not isinstance(rs, (Integral, np.random.RandomState)):
            rs = check_random_state(rs)
        # Initialisation reused from scikit-learn (sklearn/decomposition/_nmf.py).
        W, H = _initialize_nmf(X, self.n_components, init=self.init, eps=1e-6, random_state=rs)
        return W, H

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Learn the non-negative basis ``components_`` by KL multiplicative updates.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), non-negative
            Training data, e.g. flattened grayscale images with pixels in [0, 1].
            int, float32 and float64 are accepted; the updates run in ``dtype``.
        y : None
            Ignored.

        Returns
        -------
        self : KLNMFTransformer
            Fitted estimator.
        """
        X = self._validate_X(X, reset=True)
        device = _resolve_device(self.device)
        tdtype = torch.float32 if self.dtype == "float32" else torch.float64
        Xnp = np.asarray(X, dtype=np.float32 if self.dtype == "float32" else np.float64)
        W0, H0 = self._init_factors(Xnp)
        Xt = torch.tensor(Xnp, device=device)
        Wt = torch.tensor(W0, dtype=tdtype, device=device)
        Ht = torch.tensor(H0, dtype=tdtype, device=device)
        Wt, Ht, n_iter, curve = _fit_kl_mu(
            Xt, Wt, Ht, max_iter=self.max_iter, tol=self.tol,
            eval_every=self.eval_every, verbose=self.verbose,
        )
        H = Ht.to(torch.float32).cpu().numpy()
        dead = np.flatnonzero(~(H > 0).any(axis=1))
        if dead.size:
            warnings.warn(
                f"{dead.size} of {self.n_components} components are identically zero after "
                f"fit (components {dead.tolist()}); their features will always be 0. "
                "Lower n_components or change init.",
                UserWarning,
                stacklevel=2,
            )
        self.components_ = H
        self.n_iter_ = int(n_iter)
        self.loss_curve_iter_ = np.array([i for i, _ in curve], dtype=int)
        self.loss_curve_ = np.array([v for _, v in curve], dtype=np.float64)
        self.reconstruction_err_ = math.sqrt(2.0 * max(self.loss_curve_[-1], 0.0))
        return self

    def transform(self, X):
        """Project ``X`` onto ``components_`` by exact NNLS, then L2-normalise rows.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), non-negative

        Returns
        -------
        W : ndarray of shape (n_samples, n_components), float32
            ``argmin_{w >= 0} ||x - w components_||_2`` per row, divided by its L2 norm
            (rows whose code is 0 stay 0). Each row depends only on that sample.
        """
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        device = _resolve_device(self.device)
        H = torch.from_numpy(self.components_).to(device)
        out = np.empty((X.shape[0], self.components_.shape[0]), dtype=np.float32)
        with torch.no_grad():
            for s in range(0, X.shape[0], self.batch_size):
                Xb = torch.tensor(np.asarray(X[s : s + self.batch_size], dtype=np.float32))
                Wb = l2_normalize_rows(nnls(Xb.to(device), H).to(torch.float32))
                out[s : s + Xb.shape[0]] = Wb.cpu().numpy()
        return out

    def fit_transform(self, X, y=None):
        """Fit, then project ``X`` exactly as :meth:`transform` does.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), non-negative
        y : None
            Ignored.

        Returns
        -------
        W : ndarray of shape (n_samples, n_components), float32
            Equal to ``self.fit(X).transform(X)``.
        """
        return self.fit(X).transform(X)
