"""Feature-space diffusion purification as plain torch modules (no scikit-learn).

The forward (noising) process is DDPM's (Ho et al., 2020, "Denoising Diffusion
Probabilistic Models", NeurIPS, eq. 4): with a variance schedule ``beta_1 .. beta_T``,
``alpha_bar_t = prod_{s<=t} (1 - beta_s)`` and

    q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I).

Purification (the paper, arXiv 2603.13182, "feature-space diffusion denoising"; in the
spirit of DiffPure, Nie et al., 2022) noises a feature vector to a small step ``t`` with
that closed form, maps it back with a denoiser trained to predict ``x_0`` and averages
``n_eot`` such draws (expectation over transformation).

Time-step convention: ``t`` is an integer in ``0 .. T``. For ``t >= 1`` the schedule
value is ``alpha_bar_t = alphas_cumprod[t - 1]`` (``alphas_cumprod`` is indexed from 0,
the step ``t`` from 1, as in Ho et al.); ``t = 0`` means "no noise" (``alpha_bar_0 = 1``)
and purification at ``t = 0`` is the identity.

This module imports only torch (part of :mod:`sknnmfdiff.nn`), so that the purifier
estimator and ``sknnmfdiff.torch_adapter`` share it without scikit-learn.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "DenoiserMLP",
    "FeaturePurifier",
    "alpha_bar",
    "eot_noise",
    "linear_beta_schedule",
    "sinusoidal_embedding",
]


def linear_beta_schedule(n_steps=1000, beta_start=1e-4, beta_end=0.02):
    """DDPM's linear variance schedule and its cumulative products.

    Parameters
    ----------
    n_steps : int, default=1000
        Number of diffusion steps ``T`` (>= 1).
    beta_start, beta_end : float, default=1e-4, 0.02
        First and last noise variances, ``0 < beta_start <= beta_end < 1``. The defaults are
        Ho et al. (2020, section 4), which the paper's linear schedule is assumed to follow.

    Returns
    -------
    betas : torch.Tensor of shape (n_steps,), dtype float64
        ``betas[i] = beta_start + i (beta_end - beta_start) / (n_steps - 1)`` (the variance
        of step ``t = i + 1``).
    alphas_cumprod : torch.Tensor of shape (n_steps,), dtype float64
        ``alphas_cumprod[i] = prod_{j <= i} (1 - betas[j])`` = ``alpha_bar_{i + 1}``.

    Raises
    ------
    ValueError
        If ``n_steps < 1`` or the betas are not in ``(0, 1)`` with ``beta_start <= beta_end``.
    """
    if not isinstance(n_steps, int) or isinstance(n_steps, bool) or n_steps < 1:
        raise ValueError(f"n_steps must be an integer >= 1, got {n_steps!r}.")
    if not (0.0 < beta_start <= beta_end < 1.0):
        raise ValueError(
            "The betas must satisfy 0 < beta_start <= beta_end < 1, got "
            f"beta_start={beta_start!r}, beta_end={beta_end!r}."
        )
    betas = torch.linspace(beta_start, beta_end, n_steps, dtype=torch.float64)
    alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
    return betas, alphas_cumprod


def alpha_bar(alphas_cumprod, t):
    """Schedule value ``alpha_bar_t`` for an integer step ``t`` in ``0 .. T``.

    Parameters
    ----------
    alphas_cumprod : array-like or torch.Tensor of shape (T,)
        Output of :func:`linear_beta_schedule`.
    t : int
        Step; ``0`` gives 1.0 (no noise).

    Returns
    -------
    value : float

    Raises
    ------
    ValueError
        If ``t`` is not an integer in ``0 .. T``.
    """
    ab = torch.as_tensor(alphas_cumprod, dtype=torch.float64).reshape(-1)
    n_steps = ab.shape[0]
    if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t <= n_steps:
        raise ValueError(f"t must be an integer in 0 .. {n_steps} (the schedule's T), got {t!r}.")
    return 1.0 if t == 0 else float(ab[t - 1])


def sinusoidal_embedding(t, dim):
    """Sinusoidal time-step embedding (Vaswani et al., 2017, section 3.5; DDPM, appendix B).

    ``emb[:, i] = sin(t * w_i)`` and ``emb[:, half + i] = cos(t * w_i)`` with
    ``w_i = 10000 ** (-i / half)``, ``half = dim // 2``; an odd ``dim`` gets a final zero
    column.

    Parameters
    ----------
    t : torch.Tensor of shape (N,), integer or float dtype
        Time steps.
    dim : int
        Embedding width (>= 2).

    Returns
    -------
    emb : torch.Tensor of shape (N, dim), dtype float32, on ``t``'s device
        Values in [-1, 1].

    Raises
    ------
    ValueError
        If ``t`` is not one-dimensional or ``dim < 2``.
    """
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 2:
        raise ValueError(f"dim must be an integer >= 2, got {dim!r}.")
    t = torch.as_tensor(t)
    if t.ndim != 1:
        raise ValueError(f"t must be a 1-D tensor of time steps, got shape {tuple(t.shape)}.")
    half = dim // 2
    freqs = torch.exp(
        -math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half
    )
    args = t.to(torch.float32)[:, None] * freqs[None, :]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
    if dim % 2:
        emb = torch.nn.functional.pad(emb, (0, 1))
    return emb


class DenoiserMLP(nn.Module):
    """MLP that predicts the clean features ``x_0`` from ``x_t`` and the step ``t``.

    The network is ``F([u, emb(t)])``: ``n_layers`` hidden layers of width ``hidden`` with
    SiLU activations, ``emb`` the :func:`sinusoidal_embedding` of ``t``. Two
    parameterisations of its output (both trained with the MSE to ``x_0``):

    * ``alphas_cumprod`` given (our default in :class:`~sknnmfdiff.DiffusionPurifier`):
      the preconditioning of Karras et al. (2022, "Elucidating the Design Space of
      Diffusion-Based Generative Models", section 5, table 1) written for DDPM's variance
      preserving process. With ``y = x_t / sqrt(alpha_bar_t) = x_0 + sigma_t eps``,
      ``sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t)``, data mean ``mu`` and data
      scale ``s``::

          x0_hat = mu + c_skip (y - mu) + c_out F(c_in (y - mu), t)
          c_skip = s^2 / (sigma_t^2 + s^2),  c_out = sigma_t s / sqrt(sigma_t^2 + s^2),
          c_in = 1 / sqrt(sigma_t^2 + s^2).

      At small ``t`` (``sigma_41 = 0.145``) the output is ``x_t / sqrt(alpha_bar_t)``
      plus a correction scaled by ``sigma_t``, so the network's errors are scaled down
      with the noise; at large ``t`` it tends to ``mu + s F``. The network's input and
      target have unit scale at every ``t``. Without this, an MLP that predicts ``x_0``
      directly denoises *worse* than doing nothing at small ``t`` (measured in
      ``benchmarks/study_purifier_accuracy.py``).
    * ``alphas_cumprod=None``: ``x0_hat = F([x_t, emb(t)])``, the plain "MLP predicts
      ``x_0``" the paper describes.

    The paper does not give the denoiser's width or depth; the defaults are our choice.

    Parameters
    ----------
    n_features : int
        Number of features ``k``.
    hidden : int, default=128
        Width of the hidden layers.
    n_layers : int, default=3
        Number of hidden layers (>= 1).
    emb_dim : int, default=32
        Width of the sinusoidal time embedding.
    alphas_cumprod : array-like or torch.Tensor of shape (T,) or None, default=None
        Schedule for the preconditioned parameterisation (stored as a float64 buffer);
        ``None`` for the direct one.
    data_mean : array-like of shape (k,) or None, default=None
        ``mu`` (zeros when ``None``); used only with ``alphas_cumprod``.
    data_scale : float or None, default=None
        ``s`` > 0 (1 when ``None``), e.g. the standard deviation of the training features
        around ``mu`` over all features; used only with ``alphas_cumprod``.

    Notes
    -----
    ``forward(x_t, t)``: ``x_t`` float tensor of shape (N, k); ``t`` an int or an integer
    tensor of shape (N,), (1,) or () in ``1 .. T`` (an int, a 0-d or a 1-element tensor: one
    step shared by all rows, which takes a faster path with the same result up to float
    rounding); returns a tensor of shape (N, k) and the dtype of ``x_t``; any other shape of
    ``t`` raises ValueError. Rows are processed independently.
    """

    def __init__(
        self, n_features, *, hidden=128, n_layers=3, emb_dim=32, alphas_cumprod=None,
        data_mean=None, data_scale=None,
    ):
        super().__init__()
        for name, value, low in (
            ("n_features", n_features, 1),
            ("hidden", hidden, 1),
            ("n_layers", n_layers, 1),
            ("emb_dim", emb_dim, 2),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}.")
        self.n_features = n_features
        self.emb_dim = emb_dim
        self.preconditioned = alphas_cumprod is not None
        layers = []
        width = n_features + emb_dim
        for _ in range(n_layers):
            layers += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(hidden, n_features)
        if self.preconditioned:
            ab = torch.as_tensor(alphas_cumprod, dtype=torch.float64).reshape(-1)
            mean = torch.zeros(n_features) if data_mean is None else torch.as_tensor(
                data_mean, dtype=torch.float32
            ).reshape(-1)
            if mean.shape[0] != n_features:
                raise ValueError(
                    f"data_mean must have {n_features} entries, got {mean.shape[0]}."
                )
            scale = 1.0 if data_scale is None else float(data_scale)
            if not scale > 0:
                raise ValueError(f"data_scale must be > 0, got {data_scale!r}.")
            self.register_buffer("sigmas", torch.sqrt((1.0 - ab) / ab))
            self.register_buffer("data_mean", mean.clone())
            self.data_scale = scale

    def _network(self, u, emb):
        """``F([u, emb])``; ``emb`` has one row per row of ``u``, or one row shared by all.

        With one shared time step the embedding's share of the first layer is the
        same for all rows: it is computed once and added as a bias instead of being
        concatenated to every row. That saves about a tenth of the network's
        multiply-adds and the concatenated copy of the input, forward and backward.
        Equal to the concatenated form up to float rounding.
        """
        if emb.shape[0] != 1 or u.shape[0] == 1:
            return self.head(self.body(torch.cat([u, emb.expand(u.shape[0], -1)], dim=1)))
        first = self.body[0]
        k = u.shape[1]
        bias = F.linear(emb, first.weight[:, k:], first.bias)  # (1, hidden)
        h = torch.addmm(bias, u, first.weight[:, :k].t())
        for layer in list(self.body)[1:]:
            h = layer(h)
        return self.head(h)

    def forward(self, x_t, t):
        n = x_t.shape[0]
        t = torch.as_tensor(t, device=x_t.device)
        if t.ndim == 1 and t.shape[0] == 1:
            t = t.reshape(())  # one step given as a 1-element vector: shared by all rows
        if t.ndim > 1 or (t.ndim == 1 and t.shape[0] != n):
            raise ValueError(f"t must be one time step or one per row ({n}), got shape "
                             f"{tuple(t.shape)}.")
        t = t.reshape(1) if t.ndim == 0 else t  # one row: shared (the fast path in _network)
        emb = sinusoidal_embedding(t, self.emb_dim).to(x_t.dtype)
        if not self.preconditioned:
            return self._network(x_t, emb)
        sigma = self.sigmas[t.long() - 1][:, None]  # float64 (N, 1), or (1, 1) when shared
        s2 = self.data_scale**2
        c_skip = (s2 / (sigma**2 + s2)).to(x_t.dtype)
        c_out = (sigma * self.data_scale / torch.sqrt(sigma**2 + s2)).to(x_t.dtype)
        c_in = (1.0 / torch.sqrt(sigma**2 + s2)).to(x_t.dtype)
        inv_sqrt_ab = torch.sqrt(1.0 + sigma**2).to(x_t.dtype)  # 1 / sqrt(alpha_bar_t)
        mu = self.data_mean.to(x_t.dtype)
        y = x_t * inv_sqrt_ab - mu
        f = self._network(c_in * y, emb)
        return mu + c_skip * y + c_out * f


def eot_noise(n_eot, n_rows, n_features, *, generator, antithetic=True, device="cpu",
              dtype=torch.float32):
    """Standard normal noise for ``n_eot`` EOT draws, optionally in antithetic pairs.

    With ``antithetic=True`` the draws come in pairs ``(eps, -eps)`` (antithetic
    variates; Hammersley and Morton, 1956): ``ceil(n_eot / 2)`` vectors are drawn and
    followed by the negatives of the first ``n_eot // 2`` of them, so when ``n_eot`` is
    odd the last drawn vector stays unpaired. Every draw is still exactly ``N(0, I)``,
    so the mean of the denoised draws estimates the same expectation as with
    independent draws, without bias; but the noise of a pair cancels in the mean, so
    the part of the denoiser's output that is linear in the noise cancels exactly
    (except for the unpaired draw's share when ``n_eot`` is odd) and the mean varies
    far less from call to call.

    Parameters
    ----------
    n_eot : int
        Number of draws, >= 1.
    n_rows : int
        Rows of noise per draw (1 to share each draw across a batch).
    n_features : int
        Features per row.
    generator : torch.Generator
        Source of the noise; advanced by ``ceil(n_eot / 2)`` (antithetic) or ``n_eot``
        draws of shape ``(n_rows, n_features)``.
    antithetic : bool, default=True
        Antithetic pairs (``True``) or ``n_eot`` independent draws (``False``).
    device, dtype : torch device and floating dtype of the noise.

    Returns
    -------
    eps : torch.Tensor of shape (n_eot, n_rows, n_features)

    Raises
    ------
    ValueError
        If ``n_eot``, ``n_rows`` or ``n_features`` is not a positive integer.
    """
    for name, v in (("n_eot", n_eot), ("n_rows", n_rows), ("n_features", n_features)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}.")
    if not antithetic or n_eot == 1:
        return torch.randn(
            (n_eot, n_rows, n_features), generator=generator, device=device, dtype=dtype
        )
    half = torch.randn(
        (n_eot - n_eot // 2, n_rows, n_features), generator=generator, device=device,
        dtype=dtype,
    )
    return torch.cat([half, -half[: n_eot // 2]])


class FeaturePurifier(nn.Module):
    """Differentiable purification: noise to step ``t``, denoise, average ``n_eot`` draws.

    ``forward(z) = mean_i denoiser(sqrt(alpha_bar_t) z + sqrt(1 - alpha_bar_t) eps_i, t)``
    for ``i = 1 .. n_eot``, the forward process in closed form (Ho et al., 2020, eq. 4).

    Noise design (common random numbers): the ``n_eot`` noise vectors of one call are drawn
    once, shape ``(n_eot, 1, k)``, and broadcast over the rows of the batch. Every row of a
    call therefore sees the same ``eps_1 .. eps_n_eot``, and each row's output depends only
    on that row and the generator state, never on its batch neighbours or the batch size:
    purifying rows one at a time, in batches of 7 or all at once from the same seed gives
    the same output for every row, which makes the defence reproducible and lets callers
    chunk large inputs freely. With ``antithetic=False`` each row's output has exactly the
    distribution of the paper's purification (for one row, ``eps_i`` are i.i.d.
    ``N(0, I)``); only the noise is correlated *across* rows of one call.

    Antithetic draws (the default): the ``n_eot`` vectors come in pairs ``(eps, -eps)``
    (:func:`eot_noise`). Each ``eps_i`` is still ``N(0, I)``, but the draws' mean is
    exactly zero, so the shared noise cannot shift a whole batch in one direction. With
    independent draws that shift (the mean of 8 draws has standard deviation
    ``0.35 sqrt(1 - alpha_bar_t)`` per feature) moved the clean accuracy of one call on
    the paper split by about 3 points (standard deviation over calls); antithetic draws
    bring it under 1 point (``benchmarks/clean_accuracy_gap.py``).

    Every call draws *fresh* noise from the module's own :class:`torch.Generator`, so
    repeated calls (an attack's iterations) see new noise, and the global torch RNG is
    neither used nor advanced. The module's own generator is a CPU generator whatever the
    device of the input: the noise is drawn on the CPU and moved to the input's device
    (``n_eot * k`` numbers a call), so a seed gives the same noise on the CPU and on a GPU,
    and a model gives the same outputs on both up to float rounding (CPU and CUDA
    generators would give different streams).

    Parameters
    ----------
    denoiser : torch.nn.Module
        Maps ``(x_t (M, k), t)`` to predicted ``x_0`` of shape (M, k), e.g.
        :class:`DenoiserMLP`.
    alphas_cumprod : array-like or torch.Tensor of shape (T,)
        Cumulative products of the schedule (:func:`linear_beta_schedule`).
    t : int
        Purification step in ``0 .. T``; ``0`` makes the module the identity.
    n_eot : int
        Number of noise draws averaged (>= 1).
    generator : torch.Generator or None, default=None
        Generator to draw the noise from, on any device (the noise is moved to the
        input's device). ``None`` creates a CPU generator, seeded from fresh OS entropy
        unless :meth:`manual_seed` is called.
    antithetic : bool, default=True
        Draw the noise in antithetic pairs (see above); ``False`` draws ``n_eot``
        independent vectors, as the paper describes EOT.
    sigma : float or None, default=None
        Noise level in units of ``z``: the denoiser's input is ``sqrt(alpha_bar_t) (z +
        sigma eps)``. None gives the forward process, ``sigma_t = sqrt((1 - alpha_bar_t)
        / alpha_bar_t)``; another value is the one-shot denoising step of denoised
        randomized smoothing at ``t`` (Carlini et al., 2023; see
        :class:`~sknnmfdiff.SmoothedClassifier`).

    Attributes
    ----------
    n_steps : int
        ``T``, the length of the schedule (for the record; the module uses only
        ``alpha_bar_t``).

    Raises
    ------
    ValueError
        If ``t`` is not in ``0 .. T``, ``n_eot < 1`` or ``sigma < 0``.
    """

    def __init__(self, denoiser, alphas_cumprod, t, n_eot, generator=None, antithetic=True,
                 sigma=None):
        super().__init__()
        if isinstance(n_eot, bool) or not isinstance(n_eot, int) or n_eot < 1:
            raise ValueError(f"n_eot must be an integer >= 1, got {n_eot!r}.")
        self.denoiser = denoiser
        self.t = t
        self.n_eot = n_eot
        self.antithetic = bool(antithetic)
        ab = alpha_bar(alphas_cumprod, t)  # validates t
        self.n_steps = int(torch.as_tensor(alphas_cumprod).numel())
        # Kept as Python floats (computed in float64) so that the module has no buffer to
        # move between devices and works in any floating dtype.
        self.sqrt_ab = math.sqrt(ab)
        self.sqrt_one_minus_ab = math.sqrt(1.0 - ab)
        if sigma is not None:
            if not isinstance(sigma, (int, float)) or isinstance(sigma, bool) or not sigma >= 0:
                raise ValueError(f"sigma must be a number >= 0 or None, got {sigma!r}.")
            self.sqrt_one_minus_ab = self.sqrt_ab * float(sigma)  # sqrt(ab) (z + sigma eps)
        self._generator = generator
        self._seed = None

    def manual_seed(self, seed):
        """Seed the noise generator; returns ``self``.

        Parameters
        ----------
        seed : int
            Non-negative seed; :meth:`reset` rewinds to it.
        """
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")
        self._seed = seed
        if self._generator is not None:
            self._generator.manual_seed(seed)
        return self

    def reset(self):
        """Rewind the generator to the last :meth:`manual_seed` seed; returns ``self``.

        Raises
        ------
        RuntimeError
            If no seed was set with :meth:`manual_seed`.
        """
        if self._seed is None:
            raise RuntimeError("reset() needs a seed: call manual_seed(seed) first.")
        return self.manual_seed(self._seed)

    def _generator_for(self):
        """The noise generator: the one given, or the module's own CPU generator."""
        g = self._generator
        if g is not None:
            return g
        g = torch.Generator()
        if self._seed is None:
            g.seed()  # fresh OS entropy
        else:
            g.manual_seed(self._seed)
        self._generator = g
        return g

    def draw_noise(self, n_features, *, n_rows=1, device="cpu", dtype=torch.float32):
        """Draw the ``n_eot`` noise vectors of one call, shape (n_eot, n_rows, n_features).

        Antithetic pairs when ``antithetic`` is true (see :func:`eot_noise`). With
        ``n_rows=1`` (shared by all rows) it advances the generator exactly as one
        :meth:`forward` call does; ``n_rows=N`` gives every row its own draws. The
        noise is drawn on the generator's device (the CPU for the module's own) and
        moved to ``device``: the same numbers for every ``device``.
        """
        g = self._generator_for()
        eps = eot_noise(
            self.n_eot, n_rows, n_features, generator=g, antithetic=self.antithetic,
            device=g.device, dtype=dtype,
        )
        return eps.to(device)

    def purify_with_noise(self, z, eps):
        """Purify ``z`` (N, k) with noise ``eps`` (n_eot, 1 or N, k); differentiable in ``z``."""
        if self.t == 0:
            return z
        n, k = z.shape
        x_t = self.sqrt_ab * z.unsqueeze(0) + self.sqrt_one_minus_ab * eps  # (n_eot, N, k)
        x0 = self.denoiser(x_t.reshape(self.n_eot * n, k), int(self.t))  # one shared step
        return x0.reshape(self.n_eot, n, k).mean(dim=0)

    def purify_draws(self, z, eps):
        """Purify ``z`` under ``n_draws`` noise sets at once: one denoiser pass.

        Draw ``d`` of the result is ``purify_with_noise(z, eps[d])`` (equal up to
        float rounding of the larger batched kernels): the expectation over
        transformation of Athalye et al. (2018, "Obfuscated gradients give a false
        sense of security", ICML) for ``n_draws`` outer draws and the ``n_eot``
        inner draws of each, computed as one pass of the denoiser over
        ``n_draws * n_eot * N`` rows instead of ``n_draws`` passes over
        ``n_eot * N`` rows. The denoiser processes rows independently (an MLP;
        no batch statistics), so batching changes nothing but the speed.
        Differentiable in ``z``; draws no noise (the caller draws ``eps``, e.g.
        with :meth:`draw_noise` once per draw, which consumes the generator
        exactly as ``n_draws`` calls of :meth:`forward` do).

        Parameters
        ----------
        z : torch.Tensor of shape (N, k) or (n_draws, N, k), floating dtype
            Features; a 2-D ``z`` is shared by all draws (broadcast, not copied
            before the noise is added).
        eps : torch.Tensor of shape (n_draws, n_eot, R, k), same dtype and device
            Standard normal noise per draw, ``R = 1`` (shared by the rows, as in
            :meth:`forward`) or ``R = N`` (one noise vector per row).

        Returns
        -------
        z_purified : torch.Tensor of shape (n_draws, N, k), dtype of ``z``
            ``z`` broadcast to ``n_draws`` draws when ``t == 0`` (identity).

        Raises
        ------
        ValueError
            If ``z`` is not 2-D or 3-D, or ``eps`` is not 4-D with ``n_eot`` draws
            per set and ``k`` features.
        """
        if z.ndim not in (2, 3):
            raise ValueError(f"z must have shape (N, k) or (n_draws, N, k), got {tuple(z.shape)}.")
        if eps.ndim != 4 or eps.shape[1] != self.n_eot or eps.shape[3] != z.shape[-1]:
            raise ValueError(
                f"eps must have shape (n_draws, {self.n_eot}, 1 or N, {z.shape[-1]}), got "
                f"{tuple(eps.shape)}."
            )
        n_draws = eps.shape[0]
        n, k = z.shape[-2], z.shape[-1]
        if self.t == 0:
            return z.expand(n_draws, n, k) if z.ndim == 2 else z
        zd = z.unsqueeze(0) if z.ndim == 2 else z  # (1 or n_draws, N, k)
        x_t = self.sqrt_ab * zd.unsqueeze(1) + self.sqrt_one_minus_ab * eps
        x_t = x_t.expand(n_draws, self.n_eot, n, k)  # (n_draws, n_eot, N, k)
        rows = n_draws * self.n_eot * n
        x0 = self.denoiser(x_t.reshape(rows, k), int(self.t))  # one shared step
        return x0.reshape(n_draws, self.n_eot, n, k).mean(dim=1)

    def forward(self, z):
        """Purify a batch.

        Parameters
        ----------
        z : torch.Tensor of shape (N, k), floating dtype (float32 in the pipeline)

        Returns
        -------
        z_purified : torch.Tensor of shape (N, k), same dtype and device
            ``z`` itself when ``t == 0``.
        """
        if z.ndim != 2:
            raise ValueError(f"z must have shape (N, k), got {tuple(z.shape)}.")
        if self.t == 0:
            return z
        eps = self.draw_noise(z.shape[1], device=z.device, dtype=z.dtype)
        return self.purify_with_noise(z, eps)

    def extra_repr(self):
        return (
            f"t={self.t}, n_steps={getattr(self, 'n_steps', None)}, n_eot={self.n_eot}, "
            f"antithetic={self.antithetic}, sqrt_alpha_bar={self.sqrt_ab:.5f}"
        )
