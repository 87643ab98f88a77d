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
from concurrent.futures import ThreadPoolExecutor
from numbers import Integral

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
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.validation import check_is_fitted, check_non_negative, validate_data

from ._constraints import RANDOM_STATE, int_interval, real_interval
from ._persistence import VersionedEstimatorMixin
from .nn import cpu_if_no_cuda, l2_normalize_rows, nnls

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


class _BlockRunner:
    """Run a per-row-block function over ``X`` on ``n_workers`` Python threads.

    On CPU each worker owns a fixed, interleaved set of row blocks and runs its torch
    ops single-threaded (torch releases the GIL inside ops): the workers never wait on
    each other inside an op, unlike torch's intra-op threads whose per-op barriers stall
    badly when the cores are shared (measured 8x slower on a loaded 2-core machine).
    The block-to-worker assignment is fixed, so results are deterministic. On CUDA it
    runs blocks in sequence on the calling thread.

    Use as a context manager: inside it torch's intra-op thread count is 1 (restored on
    exit; process-global, so not for concurrent use from other threads).
    """

    def __init__(self, n_rows, block_rows, device, n_workers=None):
        self.cpu = device.type == "cpu"
        self.n_workers = max(1, torch.get_num_threads() if n_workers is None else n_workers)
        if not self.cpu:
            self.n_workers = 1
        self.blocks = [(s, min(block_rows, n_rows - s)) for s in range(0, n_rows, block_rows)]
        self.pool = None

    def __enter__(self):
        if self.cpu:
            self._threads = torch.get_num_threads()
            torch.set_num_threads(1)
            if self.n_workers > 1:
                self.pool = ThreadPoolExecutor(self.n_workers)
        return self

    def __exit__(self, *exc):
        if self.pool is not None:
            self.pool.shutdown()
            self.pool = None
        if self.cpu:
            torch.set_num_threads(self._threads)

    def map(self, fn):
        """Call ``fn(worker, start, n_rows)`` for every block; return per-worker results."""

        def work(k):
            out = None
            for s, n in self.blocks[k :: self.n_workers]:
                out = fn(k, s, n)
            return out

        if self.pool is None:
            return [work(k) for k in range(self.n_workers)]
        return list(self.pool.map(work, range(self.n_workers)))


def _kl_divergence(X, W, H, Xlog=None, const=None, block_rows=_BLOCK_ROWS, runner=None):
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
        Rows per block (bounds the temporaries to ``block_rows x n_features``).
    runner : _BlockRunner or None
        Block scheduler to reuse (one is made when None).

    Returns
    -------
    float
        The divergence (not square-rooted).
    """
    if Xlog is None or const is None:
        Xlog, const = _kl_constants(X)
    if runner is None:
        with _BlockRunner(X.shape[0], block_rows, X.device) as run:
            return _kl_divergence(X, W, H, Xlog, const, block_rows, run)
    b = min(block_rows, X.shape[0])
    bufs = [
        torch.empty(b, X.shape[1], dtype=X.dtype, device=X.device)
        for _ in range(runner.n_workers)
    ]
    accs = [torch.zeros((), dtype=torch.float64, device=X.device) for _ in range(runner.n_workers)]

    def block(k, s, n):
        T = bufs[k][:n]
        torch.mm(W[s : s + n], H, out=T)
        T.clamp_(min=_EPSILON).log_().mul_(Xlog[s : s + n])
        accs[k] -= T.sum(dtype=torch.float64)

    runner.map(block)
    sum_wh = torch.dot(W.sum(0, dtype=torch.float64), H.sum(1, dtype=torch.float64))
    return float(const + sum(accs) + sum_wh)


def _kl_constants(X):
    """``X`` with entries ``<= EPSILON`` zeroed, and ``sum_{X > EPSILON} X log X - X``."""
    small = (X > 0) & (X <= _EPSILON)
    Xlog = X.masked_fill(small, 0.0) if bool(small.any()) else X
    const = 0.0
    for s in range(0, X.shape[0], 1024):
        Xb = Xlog[s : s + 1024].to(torch.float64)
        const += float(torch.special.xlogy(Xb, Xb).sum() - Xb.sum())
    return Xlog, const


def _relax_(rho, omega):
    """Safeguarded over-relaxation of multiplicative factors, in place.

    Replaces each factor ``rho`` by ``rho ** omega`` where that provably does not increase
    the entry's term of the Lee-Seung auxiliary function, and keeps ``rho`` (the plain
    MU step, the term's minimiser) elsewhere. For KL the term's change from ``h`` to
    ``h rho**omega`` is ``a h (rho**omega - 1 - omega rho log rho)``, so the test
    ``rho**omega - 1 - omega rho log rho <= 0`` needs only ``rho``; it holds for every
    ``rho <= 1`` when ``omega <= 2``. The auxiliary function then never increases, and
    with it the divergence (Lee & Seung 2001; over-relaxed exponents as in Fevotte &
    Idier 2011, Sec. 4.2), so the loss stays monotone.
    """
    if omega == 1.0:
        return rho
    log_r = torch.log(rho.clamp(min=torch.finfo(rho.dtype).tiny))
    powed = torch.exp(log_r * omega)
    ok = (powed - 1.0 - omega * rho * log_r <= 0) & (rho > 0)
    return torch.where(ok, powed, rho, out=rho)


def _mu_sweep(X, W, H, bufs, runner, omega=1.0):
    """One Lee-Seung KL multiplicative update of ``W`` then ``H``, in place.

    ``W <- W * ((X / WH) H^T) / (1 H^T)`` and then, with the new ``W``,
    ``H <- H * (W^T (X / WH)) / (W^T 1)``: exactly scikit-learn's
    ``solver="mu"`` order (Gauss-Seidel). Because the ``W`` update is separable over
    rows, both halves are fused into one pass over ``X`` in row blocks: for each block
    the new ``W_b`` is computed and ``W_b^T (X_b / W_b H)`` is accumulated for the
    ``H`` update, while ``W_b H`` and ``X_b / W_b H`` stay in cache and no
    ``(n_samples, n_features)`` temporary is ever made. Denominators are clamped to
    ``EPSILON`` (no NaN when a component vanishes).

    Parameters
    ----------
    X : Tensor (n_samples, n_features)
    W : Tensor (n_samples, r), updated in place
    H : Tensor (r, n_features), updated in place
    bufs : list of per-worker tuples ``(buf (block_rows, n_features), num_w
        (block_rows, r), num_h (r, n_features))`` of work buffers
    runner : _BlockRunner
    omega : float in [1, 2], default=1.0
        Over-relaxation exponent (1 = plain Lee-Seung); see :func:`_relax_`.
    """
    Ht = H.T
    h_sum = H.sum(1).clamp_(min=_EPSILON)
    for _, _, num_h in bufs:
        num_h.zero_()

    def block(k, s, n):
        buf, num_w, num_h = bufs[k]
        Xb, Wb, T, nw = X[s : s + n], W[s : s + n], buf[:n], num_w[:n]
        torch.mm(Wb, H, out=T)
        T.clamp_(min=_EPSILON)
        torch.div(Xb, T, out=T)
        torch.mm(T, Ht, out=nw)
        Wb.mul_(_relax_(nw.div_(h_sum), omega))
        torch.mm(Wb, H, out=T)
        T.clamp_(min=_EPSILON)
        torch.div(Xb, T, out=T)
        num_h.addmm_(Wb.T, T)

    runner.map(block)
    num_h = bufs[0][2]
    for _, _, other in bufs[1:]:
        num_h.add_(other)
    w_sum = W.sum(0).clamp_(min=_EPSILON)
    H.mul_(_relax_(num_h.div_(w_sum[:, None]), omega))


def _fit_kl_mu(
    X, W, H, *, max_iter, tol, eval_every, omega=1.0, target_loss=None, verbose=0
):
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
    omega : float in [1, 2], default=1.0
        Safeguarded over-relaxation exponent (see :func:`_relax_`); 1 is plain MU.
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
    block_rows = _BLOCK_ROWS if X.device.type == "cpu" else 8192
    b = min(block_rows, n)
    Xlog, const = _kl_constants(X)
    with _BlockRunner(n, block_rows, X.device) as run:
        bufs = [
            (
                torch.empty(b, f, dtype=X.dtype, device=X.device),
                torch.empty(b, r, dtype=X.dtype, device=X.device),
                torch.empty(r, f, dtype=X.dtype, device=X.device),
            )
            for _ in range(run.n_workers)
        ]

        def loss_now():
            return _kl_divergence(X, W, H, Xlog, const, block_rows, run)

        prev = loss_now()
        curve = [(0, prev)]
        n_iter = 0
        for n_iter in range(1, max_iter + 1):
            _mu_sweep(X, W, H, bufs, run, omega)
            if n_iter % eval_every and n_iter != max_iter:
                continue
            loss = loss_now()
            curve.append((n_iter, loss))
            if verbose:
                logger.info("KL-NMF iteration %d: KL divergence %.6g", n_iter, loss)
            if target_loss is not None and loss <= target_loss:
                break
            if tol > 0 and (prev - loss) <= tol * max(abs(prev), np.finfo(np.float64).tiny):
                break
            prev = loss
    return W, H, n_iter, curve


def _image_size_hint(got, expected):
    """A hint naming the image sizes behind two flattened widths, when both are squares."""
    side, want = math.isqrt(got), math.isqrt(expected)
    if side * side != got or want * want != expected:
        return ""
    return (f" The rows look like {side} x {side} images flattened, the model was fitted on "
            f"{want} x {want}: load the images with image_size={want}.")


class KLNMFTransformer(
    VersionedEstimatorMixin, ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator
):
    """KL-divergence NMF basis with an exact, batch-independent NNLS projection.

    ``fit`` factorises ``X ~= W H`` (``H = components_``, non-negative) by minimising
    the generalised Kullback-Leibler divergence ``D(X || W H)`` with the multiplicative
    updates of Lee & Seung (2001), in PyTorch on CPU or CUDA. ``transform`` solves, for
    every sample ``x`` on its own, ``w = argmin_{w >= 0} ||x - w H||_2`` exactly (NNLS,
    see :func:`sknnmfdiff.nn.nnls`) and returns ``w / ||w||_2`` (all-zero codes
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
    init : {"nndsvda", "nndsvdar", "nndsvd", "random"} or None, default=None
        Initialisation, computed by scikit-learn's
        ``sklearn.decomposition._nmf._initialize_nmf`` (Boutsidis & Gallopoulos 2008
        NNDSVD, its zero-filled variants, or scaled uniform random). ``None`` resolves
        as scikit-learn's :class:`~sklearn.decomposition.NMF` does: ``"nndsvda"`` when
        ``n_components <= min(n_samples, n_features)`` (the paper's 15 components on
        1,540 images of 16,384 pixels), ``"random"`` otherwise, so that a rank larger
        than the data (``n_components > n_features`` gives an over-complete basis, as in
        scikit-learn) still fits; ``init_`` records the choice. ``"nndsvd"`` leaves
        zeros that multiplicative updates can never move; prefer ``"nndsvda"``. The
        NNDSVD variants, given explicitly, need ``n_components <= min(n_samples,
        n_features)``.
    max_iter : int, default=200
        Maximum number of multiplicative updates (each updates both factors).
    tol : float, default=1e-4
        Stop when the KL loss decreased by less than ``tol`` relative to its previous
        value between two evaluations (every ``eval_every`` iterations); 0 runs
        ``max_iter`` updates.
    eval_every : int, default=10
        Evaluate the loss (for ``tol`` and ``loss_curve_``) every ``eval_every`` updates
        (as scikit-learn does every 10); 1 records it after every update.
    relaxation : float in [1, 2], default=1.5
        Exponent ``omega`` of a safeguarded over-relaxed update: each multiplicative
        factor ``rho`` becomes ``rho ** omega`` wherever that cannot increase the
        Lee-Seung auxiliary function (and stays ``rho`` elsewhere), so the KL loss still
        never increases. 1 gives the plain Lee-Seung updates (scikit-learn's
        ``solver="mu"``); 1.5 reached the loss of 200 plain updates in about 140
        updates on the MRI data.
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
    init_ : str
        The initialisation used: ``init``, or what ``init=None`` resolved to.
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen in ``fit`` (only when ``X`` has string column names).

    Raises
    ------
    ValueError
        In ``fit``: negative, NaN or infinite values; ``n_components > min(n_samples,
        n_features)`` with an NNDSVD init given explicitly; an unavailable device. In ``transform``: the
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
        "n_components": [int_interval(1, None, closed="left")],
        "init": [StrOptions({"nndsvda", "nndsvdar", "nndsvd", "random"}), None],
        "max_iter": [int_interval(1, None, closed="left")],
        "tol": [real_interval(0, None, closed="left")],
        "eval_every": [int_interval(1, None, closed="left")],
        "relaxation": [real_interval(1, 2, closed="both")],
        "random_state": RANDOM_STATE,
        "device": [str],
        "dtype": [StrOptions({"float32", "float64"})],
        "batch_size": [int_interval(1, None, closed="left")],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        n_components=15,
        *,
        init=None,
        max_iter=200,
        tol=1e-4,
        eval_every=10,
        relaxation=1.5,
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
        self.relaxation = relaxation
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
        expected = getattr(self, "n_features_in_", None)
        shape = getattr(X, "shape", None)
        if not reset and expected is not None and shape is not None and len(shape) == 2 \
                and shape[1] != expected:
            raise ValueError(
                f"X has {shape[1]} features, but {type(self).__name__} is expecting "
                f"{expected} features as input.{_image_size_hint(shape[1], expected)}")
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

    def _resolve_init(self, n_samples, n_features):
        """``init``, or for ``None`` what scikit-learn's NMF picks (``_initialize_nmf``)."""
        if self.init is not None:
            return self.init
        return "nndsvda" if self.n_components <= min(n_samples, n_features) else "random"

    def _init_factors(self, X, init):
        n_samples, n_features = X.shape
        if init.startswith("nndsvd") and self.n_components > min(n_samples, n_features):
            raise ValueError(
                f"n_components={self.n_components} must be <= min(n_samples, n_features) = "
                f"{min(n_samples, n_features)} for init={init!r}; X has shape "
                f"(n_samples={n_samples}, n_features={n_features}). Lower n_components, "
                "use init='random', or init=None (random exactly when needed)."
            )
        rs = self.random_state
        if rs is None:
            rs = int(np.random.default_rng().integers(2**31 - 1))
        elif not isinstance(rs, (Integral, np.random.RandomState)):
            rs = check_random_state(rs)
        # Initialisation reused from scikit-learn (sklearn/decomposition/_nmf.py).
        W, H = _initialize_nmf(X, self.n_components, init=init, eps=1e-6, random_state=rs)
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
        # "A": a copy when X is not aligned to its item size (a buffer deserialised by
        # Dask can start at any byte); BLAS then takes other code paths and the
        # initialisation, hence the fit, would depend on where the array came from.
        Xnp = np.require(X, dtype=np.float32 if self.dtype == "float32" else np.float64,
                         requirements=["C", "A"])
        init = self._resolve_init(*Xnp.shape)
        W0, H0 = self._init_factors(Xnp, init)
        Xt = torch.tensor(Xnp, device=device)
        Wt = torch.tensor(W0, dtype=tdtype, device=device)
        Ht = torch.tensor(H0, dtype=tdtype, device=device)
        Wt, Ht, n_iter, curve = _fit_kl_mu(
            Xt, Wt, Ht, max_iter=self.max_iter, tol=self.tol,
            eval_every=self.eval_every, omega=float(self.relaxation), verbose=self.verbose,
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
        self.init_ = init
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
        # A model fitted on a GPU still projects on a machine without one (on the CPU).
        device = _resolve_device(cpu_if_no_cuda(self.device, type(self).__name__))
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
