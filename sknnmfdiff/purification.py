"""Feature-space diffusion purification (stage 4 of the paper's pipeline).

:class:`DiffusionPurifier` learns a denoiser on the selected NMF features and, at
inference, noises each feature vector to a small diffusion step ``t`` with DDPM's closed
form ``q(x_t | x_0)``, denoises it and averages ``n_eot`` draws (the paper,
arXiv 2603.13182, "diffusion-based feature denoising"; Ho et al., 2020; DiffPure,
Nie et al., 2022). The torch parts live in :mod:`sknnmfdiff.nn`. On CPU the denoiser
trains and runs on one torch thread (see :class:`DiffusionPurifier`).
"""

import copy
import logging
import numbers

import numpy as np
import torch
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin, _fit_context
from sklearn.utils import Bunch
from sklearn.utils._param_validation import HasMethods, StrOptions
from sklearn.utils.validation import check_memory, check_is_fitted, validate_data

from ._constraints import RANDOM_STATE, int_interval, real_interval
from ._persistence import VersionedEstimatorMixin
from ._seeding import base_seed as _base_seed
from ._seeding import derived_seed as _derived_seed
from .nn import (DenoiserMLP, FeaturePurifier, as_tensor, check_device, cpu_if_no_cuda,
                 linear_beta_schedule, single_thread)

__all__ = ["DiffusionPurifier"]

logger = logging.getLogger(__name__)

_FIT, _TRANSFORM, _ERROR, _TRAIN_PURIFY = 1, 2, 3, 4




#: Number of denoiser trainings actually run in this process (cache hits excluded).
_N_TRAININGS = 0


def _train_denoiser(
    X, *, n_steps, beta_start, beta_end, hidden, n_layers, emb_dim, parameterization,
    small_t_fraction, t_small, max_epochs, batch_size, lr, device, seed,
):
    """Train a :class:`DenoiserMLP` on features ``X``; returns ``(denoiser, losses)``.

    Module-level and free of the estimator so that ``joblib.Memory`` can cache it:
    its arguments are everything the training depends on (not ``t``, unless
    ``small_t_fraction > 0``). The denoiser comes back on the CPU, in eval mode,
    with frozen weights; ``losses`` is the mean loss per epoch, float64.
    """
    global _N_TRAININGS
    _N_TRAININGS += 1
    device = torch.device(device)
    gen = torch.Generator(device=device).manual_seed(seed)
    betas, alphas_cumprod = linear_beta_schedule(n_steps, beta_start, beta_end)
    # Weight init uses torch's global RNG: do it inside a forked RNG so that the
    # caller's state is untouched, seeded from random_state.
    devices = [device.index or 0] if device.type == "cuda" else []
    precond = {}
    if parameterization == "preconditioned":
        mean = X.mean(axis=0, dtype=np.float64)
        scale = float(np.sqrt(np.mean((X - mean) ** 2)))
        precond = dict(alphas_cumprod=alphas_cumprod, data_mean=mean,
                       data_scale=scale if scale > 1e-6 else 1.0)
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        denoiser = DenoiserMLP(
            X.shape[1], hidden=hidden, n_layers=n_layers, emb_dim=emb_dim, **precond
        )
    denoiser.to(device).train()
    sqrt_ab = torch.sqrt(alphas_cumprod).to(device=device, dtype=torch.float32)
    sqrt_1m = torch.sqrt(1.0 - alphas_cumprod).to(device=device, dtype=torch.float32)
    data = as_tensor(X).to(device)
    n, k = data.shape
    batch_size = min(batch_size, n)
    opt = torch.optim.Adam(denoiser.parameters(), lr=lr)

    losses = np.empty(max_epochs, dtype=np.float64)
    # One intra-op thread on CPU: the steps are tiny (see DiffusionPurifier, Threads).
    with single_thread(device):
        for epoch in range(max_epochs):
            perm = torch.randperm(n, generator=gen, device=device)
            total = torch.zeros((), dtype=torch.float64, device=device)
            for start in range(0, n, batch_size):
                x0 = data[perm[start : start + batch_size]]
                b = x0.shape[0]
                steps = torch.randint(1, n_steps + 1, (b,), generator=gen, device=device)
                if small_t_fraction > 0:
                    small = torch.randint(1, t_small + 1, (b,), generator=gen, device=device)
                    pick = torch.rand(b, generator=gen, device=device) < small_t_fraction
                    steps = torch.where(pick, small, steps)
                eps = torch.randn((b, k), generator=gen, device=device)
                x_t = sqrt_ab[steps - 1, None] * x0 + sqrt_1m[steps - 1, None] * eps
                loss = torch.mean((denoiser(x_t, steps) - x0) ** 2)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += loss.detach() * b  # no host sync per step on CUDA
            losses[epoch] = float(total) / n
    logger.info("DiffusionPurifier: %d epochs on %d x %d features, loss %.4g -> %.4g",
                max_epochs, n, k, losses[0], losses[-1])

    denoiser = denoiser.cpu().eval().requires_grad_(False)
    return denoiser, losses


class DiffusionPurifier(VersionedEstimatorMixin, OneToOneFeatureMixin, TransformerMixin,
                        BaseEstimator):
    """Diffusion purification of feature vectors: noise to step ``t``, denoise, average.

    ``fit`` trains a small denoiser (:class:`sknnmfdiff.nn.DenoiserMLP`) to predict the
    clean features ``x_0`` from ``x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps``
    and the step ``t`` (mean squared error; Ho et al., 2020, with the ``x_0``
    parameterisation), with ``t`` drawn at random for every sample so that one denoiser
    serves every step. ``transform`` computes, for every row ``z``,

        z' = mean_{i=1..n_eot} denoiser(sqrt(alpha_bar_t) z + sqrt(1 - alpha_bar_t) eps_i, t)

    through :class:`sknnmfdiff.nn.FeaturePurifier` (the paper, arXiv 2603.13182: linear
    schedule, ``t = 41``, ``n_eot = 8``; the schedule's ``T`` and betas are DDPM's defaults,
    which the paper is assumed to use). The ``n_eot`` noise vectors of one call are shared
    by all rows (see :class:`~sknnmfdiff.nn.FeaturePurifier`), so a row's output does not
    depend on the other rows of the call.

    Time steps run ``0 .. n_steps``; ``alpha_bar_t = alphas_cumprod_[t - 1]`` and ``t = 0``
    (no noise) makes ``transform`` the identity. With the defaults
    ``sqrt(1 - alpha_bar_41) = 0.142``: noise of standard deviation 0.14 per feature on
    L2-normalised features.

    Training semantics: by default (``train_on_purified=True``) ``fit_transform`` returns
    the *purified* training features (each row with its own noise draws), so that in a
    :class:`~sklearn.pipeline.Pipeline` the downstream classifier is trained on the same
    purified representation it sees at inference. ``train_on_purified=False`` reproduces
    the paper's protocol literally: ``fit_transform`` then returns its input unchanged (as
    float32), the classifier trains on clean features and purification acts only at
    inference. That deliberately breaks scikit-learn's contract that ``fit_transform(X)``
    equals ``fit(X).transform(X)``. Both this choice and the antithetic noise are ours, not
    the paper's; see Notes for what each costs or saves.

    Threads: on CPU, ``fit``, ``transform``, ``fit_transform`` and ``denoising_error`` run
    with torch's intra-op thread count at 1 (:func:`torch.set_num_threads`) and restore the
    caller's count when they return or raise; the denoiser's steps are too small to gain
    from threads, whose barriers stall when the cores are shared (fitting and purifying
    the paper split's features next to a CPU-bound process: 17.3 s on 2 threads, 5.3 s on
    1). Results no longer depend on the caller's thread count. The setting is process-wide:
    do not call these methods from several Python threads at once.

    Parameters
    ----------
    t : int, default=41
        Purification step, ``0 <= t <= n_steps``; ``0`` disables purification.
    n_steps : int, default=1000
        Number of diffusion steps ``T`` of the schedule.
    beta_start, beta_end : float, default=1e-4, 0.02
        Linear beta schedule, ``0 < beta_start <= beta_end < 1``.
    n_eot : int, default=8
        Number of noise draws averaged per transform.
    antithetic : bool, default=True
        Draw the ``n_eot`` noise vectors in antithetic pairs ``(eps, -eps)`` (one extra
        independent draw when ``n_eot`` is odd); see :func:`~sknnmfdiff.nn.eot_noise`.
        Every draw is still ``N(0, I)`` and the mean estimates the same expectation, but
        the part of the purified output that is linear in the noise cancels exactly
        (but for the unpaired draw's share when ``n_eot`` is odd).
        Our default, not the paper's (``False`` gives the paper's independent draws):
        it is what keeps the defended pipeline's clean accuracy near the baseline's
        (see Notes).
    hidden : int, default=128
        Width of the denoiser's hidden layers.
    n_layers : int, default=3
        Number of hidden layers of the denoiser.
    emb_dim : int, default=32
        Width of the sinusoidal time embedding.
    parameterization : {"preconditioned", "direct"}, default="preconditioned"
        Output of the denoiser: ``"preconditioned"`` scales the network's correction to
        ``x_t / sqrt(alpha_bar_t)`` by the noise level (Karras et al., 2022, with the mean
        and standard deviation of the training features); ``"direct"`` is a plain MLP
        predicting ``x_0``, which denoises worse than doing nothing at small ``t``. See
        :class:`~sknnmfdiff.nn.DenoiserMLP`.
    small_t_fraction : float, default=0.0
        Fraction of every training batch whose steps are drawn uniformly from
        ``1 .. max(t, 1)`` (the steps purification uses) instead of ``1 .. n_steps``;
        ``0`` gives DDPM's uniform sampling. Focusing on small steps (0.5) lowers the
        held-out denoising error at ``t = 41`` (0.28 against 0.32 in Euclidean norm on
        real MRI features) but cost an MLP classifier trained on purified features more
        clean accuracy (-7.0 and -5.1 points against +0.4 and -2.1 on two sets of three
        seeds, with independent EOT draws; ``benchmarks/study_purifier_accuracy.py``),
        so the default stays uniform.
    max_epochs : int, default=400
        Passes over the training data. On 1,540 real MRI feature vectors (about 5,000
        Adam steps) 400 epochs gave the most stable clean accuracy of a classifier
        trained on purified features (worst of 6 seeds -1.4 points, against -4.6 with
        200 epochs; independent EOT draws); see ``benchmarks/study_purifier_accuracy.py``.
    batch_size : int, default=128
        Mini-batch size (capped at the number of samples).
    lr : float, default=1e-3
        Adam learning rate.
    train_on_purified : bool, default=True
        Whether ``fit_transform`` returns purified features (``True``) or its input
        unchanged (``False``; the paper's clean-trained classifier). ``fit`` and
        ``transform`` do not depend on it.
    device : str, default="cpu"
        Torch device for training and transforming (``"cpu"``, ``"cuda"``, ``"cuda:1"``).
        The fitted ``denoiser_`` is always kept on the CPU, so that pickles load on
        CPU-only machines. CPU and CUDA draw different noise streams.
    memory : str, joblib.Memory or None, default=None
        Cache of the denoiser's training (a folder or a ``joblib.Memory``). The
        training never depends on ``t``, ``n_eot`` or ``train_on_purified`` (unless
        ``small_t_fraction > 0``), so a grid search over ``t`` with a cache trains
        the denoiser once per training set.
    random_state : int, RandomState instance or None, default=None
        Seeds the weight initialisation, shuffling and training noise (``fit``) and the
        purification noise (every ``transform`` call starts a fresh generator from it, so
        ``transform`` is deterministic and idempotent for an int). ``None`` draws fresh OS
        entropy at every ``fit`` and ``transform`` call: repeated transforms then differ.
        Torch's and numpy's global generators are never used.

    Attributes
    ----------
    denoiser_ : DenoiserMLP
        The trained denoiser, on the CPU, in eval mode, parameters frozen
        (``requires_grad=False``; gradients still flow to its input).
    betas_ : ndarray of shape (n_steps,), dtype float64
        The beta schedule.
    alphas_cumprod_ : ndarray of shape (n_steps,), dtype float64
        ``alpha_bar`` of steps ``1 .. n_steps``.
    loss_curve_ : ndarray of shape (max_epochs,), dtype float64
        Mean training loss (squared error per feature) of every epoch.
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the features seen in ``fit``, when they are all strings.

    See Also
    --------
    sknnmfdiff.nn.FeaturePurifier : the differentiable torch module ``transform`` uses.

    Notes
    -----
    Clean accuracy (``benchmarks/clean_accuracy_gap.py --seeds 20``, output in
    ``docs/results/clean_accuracy_gap.txt``): on the paper split of the shared MRI data
    (1,540 training images, 128 x 128, rank 15, ``k = 10``, the default MLP head), the accuracy
    of one call of the defended pipeline minus the baseline's, mean (standard deviation)
    over 20 seeds, on the 440 validation and 220 test images:

    ================================================  ============  ============
    purifier                                          validation    test
    ================================================  ============  ============
    antithetic, classifier on purified (defaults)     -0.5 (0.8)    -0.7 (1.6)
    independent draws, classifier on purified         -5.6 (1.6)    -5.6 (1.9)
    independent draws, classifier on clean (paper)    -9.3 (2.8)    -8.6 (3.1)
    ================================================  ============  ============

    The standard deviation of one call's accuracy between calls (fresh noise) was 0.5 and
    0.8 points with antithetic draws against 3.0 and 3.5 with independent draws: the
    ``n_eot`` noise vectors of a call are shared by its rows, and with independent draws
    their mean (standard deviation ``0.35 * 0.142`` per feature at ``t = 41``) shifts the
    whole batch, which a classifier cannot undo; antithetic pairs make that mean zero.
    Averaging the probabilities of 20 calls narrows the gap of independent draws (to -2.1
    and -2.3 points) but does not close it. Other options tried on a few seeds (a larger
    denoiser, focusing the denoiser's training on small ``t``, 200 classifier epochs,
    weight decay, dropout, ``k = 5`` or ``15``, out-of-fold purified training features)
    did not help consistently; ``n_eot = 32`` helped, at four times the cost.

    References
    ----------
    .. [1] "Diffusion-Based Feature Denoising and Using NNMF for Robust Brain Tumor
       Classification", CVPR 2026, arXiv:2603.13182.
    .. [2] J. Ho, A. Jain and P. Abbeel, "Denoising Diffusion Probabilistic Models",
       NeurIPS 2020.
    .. [3] W. Nie et al., "Diffusion Models for Adversarial Purification", ICML 2022.

    Examples
    --------
    >>> import numpy as np
    >>> from sknnmfdiff.purification import DiffusionPurifier
    >>> X = np.random.default_rng(0).random((64, 5)).astype(np.float32)
    >>> pur = DiffusionPurifier(max_epochs=2, random_state=0).fit(X)
    >>> pur.transform(X).shape
    (64, 5)
    """

    _parameter_constraints = {
        "t": [int_interval(0, None, closed="left")],
        "n_steps": [int_interval(1, None, closed="left")],
        "beta_start": [real_interval(0, 1, closed="neither")],
        "beta_end": [real_interval(0, 1, closed="neither")],
        "n_eot": [int_interval(1, None, closed="left")],
        "antithetic": ["boolean"],
        "hidden": [int_interval(1, None, closed="left")],
        "n_layers": [int_interval(1, None, closed="left")],
        "emb_dim": [int_interval(2, None, closed="left")],
        "parameterization": [StrOptions({"preconditioned", "direct"})],
        "small_t_fraction": [real_interval(0, 1, closed="both")],
        "max_epochs": [int_interval(1, None, closed="left")],
        "batch_size": [int_interval(1, None, closed="left")],
        "lr": [real_interval(0, None, closed="neither")],
        "train_on_purified": ["boolean"],
        "device": [str],
        "memory": [None, str, HasMethods(["cache"])],
        "random_state": RANDOM_STATE,
    }

    def __init__(
        self, *, t=41, n_steps=1000, beta_start=1e-4, beta_end=0.02, n_eot=8, antithetic=True,
        hidden=128, n_layers=3, emb_dim=32, parameterization="preconditioned",
        small_t_fraction=0.0, max_epochs=400, batch_size=128, lr=1e-3, train_on_purified=True,
        device="cpu", memory=None, random_state=None,
    ):
        self.t = t
        self.n_steps = n_steps
        self.beta_start = beta_start
        self.beta_end = beta_end
        self.n_eot = n_eot
        self.antithetic = antithetic
        self.hidden = hidden
        self.n_layers = n_layers
        self.emb_dim = emb_dim
        self.parameterization = parameterization
        self.small_t_fraction = small_t_fraction
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.train_on_purified = train_on_purified
        self.device = device
        self.memory = memory
        self.random_state = random_state

    def __setstate__(self, state):
        # Models saved before ``antithetic`` existed drew independent noise; they keep
        # doing so, so that a loaded model predicts what it predicted when saved.
        state = dict(state)
        state.setdefault("antithetic", False)
        super().__setstate__(state)

    def _check_params(self):
        if self.beta_start > self.beta_end:
            raise ValueError(
                f"beta_start={self.beta_start!r} must not exceed beta_end={self.beta_end!r}.")
        if self.t > self.n_steps:
            raise ValueError(f"t={self.t!r} must not exceed the number of diffusion steps "
                             f"n_steps={self.n_steps!r}.")
        return check_device(self.device)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]
        tags.input_tags.allow_nan = False
        return tags

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Train the denoiser on the features ``X``.

        Every epoch shuffles the rows; every sample of a batch gets its own step ``t``
        (a fraction ``small_t_fraction`` from ``1 .. max(t, 1)``, the rest from
        ``1 .. n_steps``) and its own Gaussian noise; the loss is the mean squared error
        between the denoiser's output and ``X``. Adam, constant learning rate ``lr``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Clean training features (in the pipeline: L2-normalised NMF coefficients,
            values in [0, 1]). Computations are in float32.
        y : None
            Ignored.

        Returns
        -------
        self : DiffusionPurifier

        Raises
        ------
        ValueError
            If ``X`` holds NaN or infinity, ``beta_start > beta_end``, ``t > n_steps`` or
            the device is unavailable.
        """
        X = validate_data(self, X, dtype=np.float32)
        device = self._check_params()
        seed = _derived_seed(_base_seed(self.random_state), _FIT)
        train = check_memory(self.memory).cache(_train_denoiser)
        denoiser, losses = train(
            X, n_steps=int(self.n_steps), beta_start=float(self.beta_start),
            beta_end=float(self.beta_end), hidden=int(self.hidden), n_layers=int(self.n_layers),
            emb_dim=int(self.emb_dim), parameterization=self.parameterization,
            small_t_fraction=float(self.small_t_fraction),
            t_small=max(int(self.t), 1) if self.small_t_fraction > 0 else 0,
            max_epochs=int(self.max_epochs), batch_size=int(self.batch_size), lr=float(self.lr),
            device=str(device), seed=int(seed),
        )
        betas, alphas_cumprod = linear_beta_schedule(
            self.n_steps, float(self.beta_start), float(self.beta_end)
        )
        self.denoiser_ = denoiser
        self.betas_ = betas.numpy()
        self.alphas_cumprod_ = alphas_cumprod.numpy()
        self.loss_curve_ = losses
        return self

    def _validate_step(self, t):
        n_steps = self.alphas_cumprod_.shape[0]
        if isinstance(t, bool) or not isinstance(t, numbers.Integral) or not 0 <= t <= n_steps:
            raise ValueError(f"t must be an integer in 0 .. {n_steps} (the fitted schedule's "
                             f"n_steps), got {t!r}.")
        return int(t)

    def make_torch_purifier(self, *, seed=None):
        """A :class:`~sknnmfdiff.nn.FeaturePurifier` computing this ``transform``.

        Parameters
        ----------
        seed : int or None, default=None
            Seed of its generator; ``None`` uses the seed ``transform`` uses (derived
            from ``random_state``, fresh entropy when that is ``None``).

        Returns
        -------
        purifier : FeaturePurifier
            Wraps ``denoiser_`` itself (not a copy), on the CPU, in eval mode. Its first
            call after seeding draws the noise ``transform`` draws; later calls draw fresh
            noise.
        """
        check_is_fitted(self)
        t = self._validate_step(self.t)
        if seed is None:
            seed = _derived_seed(_base_seed(self.random_state), _TRANSFORM)
        return FeaturePurifier(self.denoiser_, self.alphas_cumprod_, t, int(self.n_eot),
                               antithetic=bool(self.antithetic)).manual_seed(int(seed))

    def transform(self, X):
        """Purify ``X``: noise to step ``t``, denoise, average ``n_eot`` draws.

        A fresh generator seeded from ``random_state`` draws the ``n_eot`` noise vectors,
        shared by all rows (so a row's output does not depend on the rest of ``X``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Features, as in ``fit``.

        Returns
        -------
        X_purified : ndarray of shape (n_samples, n_features), dtype float32
            ``X`` (as float32) when ``t == 0``.

        Raises
        ------
        ValueError
            If ``X`` has another number of features than in ``fit``, holds NaN or
            infinity, or ``t`` exceeds the fitted schedule.
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float32, reset=False)
        t = self._validate_step(self.t)
        if t == 0 or X.shape[0] == 0:
            return np.array(X, dtype=np.float32, copy=True)
        # A model fitted on a GPU still purifies on a machine without one (on the CPU).
        device = check_device(cpu_if_no_cuda(self.device, type(self).__name__))
        purifier = self.make_torch_purifier()
        if device.type != "cpu":  # a copy: the fitted denoiser_ stays on the CPU
            purifier.denoiser = copy.deepcopy(self.denoiser_).to(device)
        return self._purify(X, purifier, device, per_row=False)

    def _purify(self, X, purifier, device, *, per_row):
        """``purifier`` over float32 ``X`` in chunks, on one torch thread on CPU; the noise
        is one set of ``n_eot`` vectors shared by all rows, or, ``per_row``, one set a row."""
        data = as_tensor(X)
        out = np.empty_like(X, dtype=np.float32)
        chunk = max(1, 65536 // int(self.n_eot))
        with torch.no_grad(), single_thread(device):
            eps = None if per_row else purifier.draw_noise(X.shape[1], device=device)
            for start in range(0, X.shape[0], chunk):
                z = data[start : start + chunk].to(device)
                if per_row:
                    eps = purifier.draw_noise(z.shape[1], n_rows=z.shape[0], device=device)
                out[start : start + chunk] = purifier.purify_with_noise(z, eps).cpu().numpy()
        return out

    def fit_transform(self, X, y=None):
        """Fit, then return the training features for the downstream classifier.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Clean training features.
        y : None
            Ignored.

        Returns
        -------
        X_out : ndarray of shape (n_samples, n_features), dtype float32
            With ``train_on_purified=True``: ``X`` purified with noise drawn
            independently for every row (its own ``n_eot`` draws, from a seed
            derived from ``random_state`` and distinct from ``transform``'s). With
            ``train_on_purified=False``: ``X`` unchanged (as float32), so that the
            classifier trains on clean features (the paper's protocol).

        Notes
        -----
        Both deliberately differ from ``fit().transform()``, whose ``n_eot`` noise
        vectors are shared by all rows: a classifier trained on features purified with
        those few vectors fits them and loses accuracy under the fresh noise of later
        calls (paper split: 83.6 % with the training noise, 74.1 % with fresh draws).
        """
        self.fit(X, y)
        X = validate_data(self, X, dtype=np.float32, reset=False)
        if not self.train_on_purified or int(self.t) == 0 or X.shape[0] == 0:
            return np.array(X, dtype=np.float32, copy=True)
        purifier = self.make_torch_purifier(
            seed=_derived_seed(_base_seed(self.random_state), _TRAIN_PURIFY)
        )
        return self._purify(X, purifier, torch.device("cpu"), per_row=True)

    def denoising_error(self, X, t=None, *, n_draws=8):
        """How well the denoiser recovers ``X`` from ``x_t``, for several steps.

        For every step ``s`` and every row ``x0`` of ``X``, ``n_draws`` independent noisy
        versions ``x_s = sqrt(alpha_bar_s) x0 + sqrt(1 - alpha_bar_s) eps`` are denoised
        (one draw each, no averaging); the Euclidean errors ``||x0_hat - x0||`` and
        ``||x_s - x0||`` are averaged over rows and draws. A useful denoiser has the first
        below the second at every step (the paper's denoising figure). Noise is seeded
        from ``random_state``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Clean features, preferably held out from ``fit``.
        t : int or array-like of int, default=None
            Steps in ``1 .. n_steps``; ``None`` gives ``t``, 1 and nine steps spaced
            geometrically up to ``n_steps``.
        n_draws : int, default=8
            Noise draws per row and step (>= 1).

        Returns
        -------
        result : Bunch
            ``t`` ndarray of int (n_t,); ``denoised`` and ``noisy`` ndarrays of float64
            (n_t,), the mean errors (units of the features); ``denoised_std`` and
            ``noisy_std`` their standard deviations over rows and draws.

        Raises
        ------
        ValueError
            If a step is outside ``1 .. n_steps`` or ``n_draws < 1``.
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float32, reset=False)
        n_steps = self.alphas_cumprod_.shape[0]
        if t is None:
            steps = np.r_[1, np.geomspace(1, n_steps, 10).round(), max(int(self.t), 1)]
            steps = np.unique(steps).astype(int)
        else:
            steps = np.atleast_1d(np.asarray(t))
            if steps.ndim != 1 or not np.issubdtype(steps.dtype, np.integer):
                raise ValueError(f"t must be an int or a 1-D array of ints, got {t!r}.")
            if steps.size == 0 or steps.min() < 1 or steps.max() > n_steps:
                raise ValueError(f"Every step in t must lie in 1 .. {n_steps}, got {t!r}.")
        if isinstance(n_draws, bool) or not isinstance(n_draws, numbers.Integral) or n_draws < 1:
            raise ValueError(f"n_draws must be an integer >= 1, got {n_draws!r}.")
        gen = torch.Generator().manual_seed(_derived_seed(_base_seed(self.random_state), _ERROR))
        x0 = as_tensor(X).repeat(int(n_draws), 1)
        ab = torch.from_numpy(self.alphas_cumprod_)
        res = {k: np.empty(len(steps)) for k in ("denoised", "noisy", "denoised_std", "noisy_std")}
        with torch.no_grad(), single_thread(torch.device("cpu")):
            for i, s in enumerate(steps):
                a = float(ab[s - 1])
                eps = torch.randn(x0.shape, generator=gen)
                x_t = a**0.5 * x0 + (1 - a) ** 0.5 * eps
                x0_hat = self.denoiser_(x_t, int(s))
                e_hat = torch.linalg.norm(x0_hat - x0, dim=1).double().numpy()
                e_noisy = torch.linalg.norm(x_t - x0, dim=1).double().numpy()
                res["denoised"][i], res["denoised_std"][i] = e_hat.mean(), e_hat.std()
                res["noisy"][i], res["noisy_std"][i] = e_noisy.mean(), e_noisy.std()
        return Bunch(t=steps.astype(int), **res)
