"""Compile a fitted pipeline into one differentiable ``torch.nn.Module``.

The module maps pixels to logits with the same computation as the fitted
scikit-learn steps, so white-box attacks (AutoAttack) reach every pixel through
the exact NNLS gradient, the L2 normalisation, the selection, the purifier's
noise-and-denoise average and the CNN. There is no numpy, no ``detach`` and no
argmax inside ``forward``.

Design notes: ../shared design, "What flows where"; the exact NNLS gradient by
implicit differentiation on the active set lives in
:mod:`sknnmfdiff.nn`.
"""

import copy
import operator
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted
from torch import nn
from torch.autograd.function import once_differentiable

__all__ = ["CompiledPipeline", "to_torch_module"]


class _Select(nn.Module):
    """Keep the columns ``index`` of a (N, n_features) input."""

    def __init__(self, index):
        super().__init__()
        self.register_buffer("index", torch.as_tensor(np.asarray(index), dtype=torch.long))

    def forward(self, z):
        return z.index_select(1, self.index)


#: Fewest denoiser rows of a batched pass worth splitting over worker threads
#: (an APGD step on 12 feature vectors, 1,920 rows: 5.3 ms split, 6.7 ms not).
_PARALLEL_MIN_ROWS = 1024
#: Fewest images per worker worth splitting the pixel front over worker threads.
_PARALLEL_MIN_IMAGES = 8
#: Denoiser rows of one CPU chunk: its activations (128 floats a row) stay in the
#: caches. On the project's 2-core machine a step over 185 images x 160 draws took
#: 54 ms in chunks of 4,096 rows and 92 ms in two chunks of 14,800.
_CPU_CHUNK_ROWS = 4096


def _draw_chunks(n_draws, rows_per_draw, max_rows, n_workers):
    """Split ``range(n_draws)`` into ``(lo, hi)`` chunks for :class:`_WorkerMap`.

    A chunk holds at most ``min(max_rows, _CPU_CHUNK_ROWS)`` denoiser rows (at
    least one draw). Work of ``_PARALLEL_MIN_ROWS`` rows or more is split into at
    least ``n_workers`` chunks (one per worker); smaller work stays one chunk.
    """
    per_chunk = max(1, min(max_rows, _CPU_CHUNK_ROWS) // max(1, rows_per_draw))
    if n_workers > 1 and n_draws * rows_per_draw >= _PARALLEL_MIN_ROWS:
        per_chunk = min(per_chunk, -(-n_draws // n_workers))
    return [(lo, min(n_draws, lo + per_chunk)) for lo in range(0, n_draws, per_chunk)]


_POOLS = {}  # (process id, size) -> kept thread pool


def _on_workers(fn, n_workers):
    """``[fn(w) for w in range(n_workers)]``: ``fn(0)`` on this thread, the others on
    a kept pool of ``n_workers - 1`` threads (one per process: a forked child makes
    its own), with torch's intra-op thread count at 1 meanwhile (restored
    afterwards; ``fn`` sets it in its own thread)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        if n_workers == 1:
            return [fn(0)]
        key = (os.getpid(), n_workers - 1)
        pool = _POOLS.get(key)
        if pool is None:
            pool = _POOLS[key] = ThreadPoolExecutor(n_workers - 1)
        others = [pool.submit(fn, w) for w in range(1, n_workers)]
        first = fn(0)
        return [first] + [f.result() for f in others]
    finally:
        torch.set_num_threads(threads)


class _WorkerMap(torch.autograd.Function):
    """Parts of a batched pass on single-threaded CPU worker threads, differentiably.

    ``forward(x, fn, parts, n_workers, grad_enabled, split)`` returns
    ``cat([fn(x_p, lo, hi) for lo, hi in parts])`` along dim 0, where part
    ``(lo, hi)`` gives rows ``lo:hi`` of the result and ``x_p`` is ``x[lo:hi]``
    (``split=True``: a row-wise map such as the pixel front) or all of ``x``
    (``split=False``: draws of the head, each part a range of draws). Every part
    runs with one torch intra-op thread: on a small, shared machine the per-op
    barriers of torch's intra-op threads stall (see
    ``sknnmfdiff.decomposition._BlockRunner``, measured 8x slower on a loaded
    2-core machine), and the tiny ops of a few attacked samples gain nothing from
    them. Parts are spread over ``n_workers`` Python threads (fixed, interleaved
    assignment; torch releases the GIL inside ops). When ``grad_enabled`` (the
    caller's grad mode) and ``x`` requires grad, each part keeps its own graph
    and ``backward`` replays them on the workers: the input gradient is that of
    the plain computation (parts concatenated, or summed in a fixed order), so
    it does not depend on ``n_workers`` beyond float rounding. Gradients reach
    ``x`` only (the compiled module's weights are frozen); first order only.
    Sets torch's process-global thread count while it runs.
    """

    @staticmethod
    def forward(ctx, x, fn, parts, n_workers, grad_enabled, split):
        need_grad = bool(ctx.needs_input_grad[0]) and grad_enabled
        n_workers = max(1, min(len(parts), int(n_workers)))

        def work(w):
            torch.set_num_threads(1)  # this thread's own OpenMP setting
            done = []
            for lo, hi in parts[w::n_workers]:
                xp = x[lo:hi] if split else x
                if need_grad:
                    xp = xp.detach().requires_grad_(True)
                with torch.set_grad_enabled(need_grad):  # grad mode is per thread
                    done.append((lo, hi, xp, fn(xp, lo, hi)))
            return done

        per_worker = _on_workers(work, n_workers)
        ctx.per_worker, ctx.split = (per_worker if need_grad else None), split
        done = sorted((d for ds in per_worker for d in ds), key=lambda d: d[0])
        return torch.cat([out.detach() for _, _, _, out in done])

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        per_worker, ctx.per_worker = ctx.per_worker, None  # the graphs are freed after

        def work(w):
            torch.set_num_threads(1)
            return [(lo, torch.autograd.grad(out, xp, grad_out[lo:hi])[0])
                    for lo, hi, xp, out in per_worker[w]]

        grads = sorted((g for gs in _on_workers(work, len(per_worker)) for g in gs),
                       key=lambda g: g[0])
        if ctx.split:
            return torch.cat([g for _, g in grads]), None, None, None, None, None
        total = grads[0][1]
        for _, g in grads[1:]:
            total = total + g
        return total, None, None, None, None, None


class CompiledPipeline(nn.Module):
    """A fitted pipeline as one module: inputs in [0, 1] -> logits.

    Built by :func:`to_torch_module`; not meant to be constructed directly.

    Parameters
    ----------
    feature_steps : list of (str, nn.Module)
        Steps from pixels to the selected, L2-normalised features
        (NNLS projection, selection).
    head_steps : list of (str, nn.Module)
        Steps from the selected features to logits (purifier, CNN).
    space : {"pixel", "feature"}
        Input space of :meth:`forward`.
    image_shape : tuple of int or None
        (H, W) of the pixel input, when known.
    n_classes : int
        Number of classes (columns of the logits).
    classes : array-like of shape (n_classes,)
        Class labels of the fitted classifier, in logit column order.

    Attributes
    ----------
    randomized : bool
        True when a step draws noise on every call (the purifier with t > 0).
    classes_ : ndarray
        Class labels of the fitted classifier, in logit column order.
    batch_draws : bool, default=True
        Run the draws of :meth:`forward_draws` and :meth:`forward_seeded_draws`
        as one batched pass. ``False`` gives the reference loop (one head call,
        or one full call, per draw): the same noise and the same logits up to
        float rounding, only slower; kept for benchmarks and tests.
    max_rows : int, default=131072
        Most denoiser rows (``draws * n_eot * N``) of one batched pass; larger
        requests are chunked over draws (memory: about 1 kB per row without
        gradient, a few kB with).
    n_workers : int or None
        CPU threads that run the chunks of a batched pass, each with one torch
        intra-op thread (default: torch's intra-op thread count when the module
        was built). Work under 1,024 denoiser rows runs on the calling thread,
        also with one intra-op thread. Reads None while ``batch_draws`` is
        False. An evaluator may run its own small tensor ops on one thread
        when a module has workers (:mod:`sknnmfdiff.evaluation` does).
    """

    batch_draws = True
    max_rows = 131072

    @property
    def n_workers(self):
        return self._n_workers if self.batch_draws else None

    @n_workers.setter
    def n_workers(self, value):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"n_workers must be an integer >= 1, got {value!r}.")
        self._n_workers = value

    def __init__(self, feature_steps, head_steps, *, space, image_shape, n_classes, classes):
        super().__init__()
        self.feature_steps = nn.ModuleDict(dict(feature_steps))
        self.head_steps = nn.ModuleDict(dict(head_steps))
        self.space = space
        self.image_shape = image_shape
        self.n_classes = int(n_classes)
        self.classes_ = np.asarray(classes)
        self.randomized = any(getattr(m, "randomized", False) for m in self.head_steps.values())
        self.n_workers = max(1, torch.get_num_threads())
        self.eval()

    def pixel_features(self, x):
        """Selected, L2-normalised NMF features of pixel input.

        Parameters
        ----------
        x : torch.Tensor of shape (N, 1, H, W) or (N, H*W), float32 in [0, 1]

        Returns
        -------
        z : torch.Tensor of shape (N, k), float32, each row of unit or zero L2 norm
            before selection, values in [0, 1].
        """
        z = x.reshape(x.shape[0], -1)
        for step in self.feature_steps.values():
            z = step(z)
        return z

    def features(self, x):
        """Feature-space input for this module's feature-space twin.

        Parameters
        ----------
        x : torch.Tensor of shape (N, 1, H, W), float32 in [0, 1]

        Returns
        -------
        z : torch.Tensor of shape (N, 1, 1, k), float32 in [0, 1]
            The selected NMF features, shaped as 4-D images for AutoAttack.
        """
        with torch.no_grad():
            z = self.pixel_features(x)
        return z.reshape(z.shape[0], 1, 1, z.shape[1])

    def _input_features(self, x):
        """(N, k) features of the input: projected pixels, or the features as given.

        With batching on, on the CPU and with two or more workers, the pixel
        front (NNLS projection, normalisation, selection: row-wise) runs on the
        workers, the rows split between them (see :class:`_WorkerMap`).
        """
        if self.space != "pixel":
            return x.reshape(x.shape[0], -1)
        workers = self.n_workers or 1
        if (x.device.type != "cpu" or workers < 2 or x.shape[0] < 2 * _PARALLEL_MIN_IMAGES
                or any(p.requires_grad for p in self.feature_steps.parameters())):
            return self.pixel_features(x)
        size = -(-x.shape[0] // workers)
        parts = [(lo, min(x.shape[0], lo + size)) for lo in range(0, x.shape[0], size)]
        return _WorkerMap.apply(x, lambda xp, lo, hi: self.pixel_features(xp), parts, workers,
                                torch.is_grad_enabled(), True)

    def head(self, z):
        """Purifier and CNN: (N, k) features -> (N, n_classes) logits."""
        for step in self.head_steps.values():
            z = step(z)
        return z

    def forward(self, x):
        """Logits of the compiled pipeline.

        Parameters
        ----------
        x : torch.Tensor, float32 in [0, 1]
            Shape (N, 1, H, W) (or (N, H*W)) for ``space="pixel"``; shape
            (N, 1, 1, k) (or (N, k)) for ``space="feature"``.

        Returns
        -------
        logits : torch.Tensor of shape (N, n_classes), float32
        """
        return self.head(self._input_features(x))

    def forward_draws(self, x, n_draws):
        """Logits of ``n_draws`` noise draws of the same input, in one batched pass.

        The expectation over transformation (EOT; Athalye et al. 2018) of a
        randomized defence needs many forward passes of the same input. Here the
        deterministic front (NNLS projection, selection) runs once, and the
        randomized head runs once over all draws: first the noise of every draw is
        drawn, in the order ``n_draws`` calls of :meth:`forward` would draw it (draw
        0's noise for every noise step, then draw 1's, ...; the generator ends where
        those calls leave it), then one denoiser pass over
        ``n_draws * n_eot * N`` rows and one CNN pass over ``n_draws * N`` rows
        (the CNN's BatchNorm is in eval mode, so rows are independent). The noise
        sequence is therefore the same as that of ``n_draws`` separate calls, and
        the logits equal theirs up to float rounding of the larger kernels (about
        1e-6). Passes are chunked over draws so that no pass exceeds
        :attr:`max_rows` denoiser rows (a pass holds at least one draw); on the CPU
        the chunks run on :attr:`n_workers` single-threaded worker threads.

        With ``batch_draws=False`` (the reference loop) or a head whose noise steps
        do not all come before its deterministic steps, the head is called
        ``n_draws`` times instead (same noise, same logits).

        Parameters
        ----------
        x : torch.Tensor
            Input as for :meth:`forward`.
        n_draws : int
            Number of draws, >= 1.

        Returns
        -------
        logits : torch.Tensor of shape (n_draws, N, n_classes), float32
            Differentiable in ``x``.

        Raises
        ------
        ValueError
            If ``n_draws < 1``.

        References
        ----------
        A. Athalye, L. Engstrom, A. Ilyas and K. Kwok, "Synthesizing robust
        adversarial examples", ICML 2018 (expectation over transformation).
        """
        n_draws = int(n_draws)
        if n_draws < 1:
            raise ValueError(f"n_draws must be >= 1, got {n_draws}.")
        z = self._input_features(x)
        if not self._batchable():
            return torch.stack([self.head(z) for _ in range(n_draws)])
        return self._head_draws(z, n_draws, None)

    def forward_seeded_draws(self, x, seeds):
        """Logits of one draw per seed, each draw as if alone after ``manual_seed``.

        Draw ``d`` equals ``self.manual_seed(seeds[d]); self(x)``: its noise depends
        only on ``seeds[d]``, never on the other draws, the batch or its size. All
        draws run as one batched pass (see :meth:`forward_draws`): the noise of every
        draw is drawn first, in the order of ``seeds`` (rewinding every generator to
        ``seeds[d]`` before draw ``d``'s noise), then the front runs once, the
        denoiser once over ``len(seeds) * n_eot * N`` rows and the CNN once over
        ``len(seeds) * N`` rows (chunked over draws by :attr:`max_rows`). Afterwards
        the generators stand where the last of those calls leaves them.

        With ``batch_draws=False`` it is the reference loop: for every seed, rewind
        and call :meth:`forward` (front included).

        Parameters
        ----------
        x : torch.Tensor
            Input as for :meth:`forward`.
        seeds : sequence of int
            One non-negative seed per draw (at least one).

        Returns
        -------
        logits : torch.Tensor of shape (len(seeds), N, n_classes), float32
            Equal to the loop's logits up to float rounding (about 1e-6).

        Raises
        ------
        ValueError
            If ``seeds`` is empty or holds a negative or non-integer seed.
        """
        try:
            seeds = [operator.index(s) for s in seeds]
        except TypeError:
            seeds = None
        if not seeds or min(seeds) < 0:
            raise ValueError("seeds must be a sequence of one or more non-negative integers.")
        if not self.batch_draws:
            out = []
            for s in seeds:
                self.manual_seed(s)
                out.append(self(x))
            return torch.stack(out)
        z = self._input_features(x)
        if not self._batchable():
            out = []
            for s in seeds:
                self.manual_seed(s)
                out.append(self.head(z))
            return torch.stack(out)
        return self._head_draws(z, len(seeds), seeds)

    def _noise_steps(self):
        """Indices of the head steps that draw noise (a purifier with ``t > 0``)."""
        return [
            i for i, m in enumerate(self.head_steps.values())
            if getattr(m, "randomized", False) and hasattr(m, "purify_draws")
            and hasattr(m, "draw_noise")
        ]

    def _batchable(self):
        """Whether the head can run all draws in one pass: batching is on and every
        noise step comes before every deterministic step (so all noise can be drawn
        first, at the input width)."""
        if not getattr(self, "batch_draws", True):
            return False
        steps = list(self.head_steps.values())
        noisy = self._noise_steps()
        if any(getattr(m, "randomized", False) for i, m in enumerate(steps) if i not in noisy):
            return False  # a randomized step we cannot batch
        return noisy == list(range(len(noisy)))

    def _head_draws(self, z, n_draws, seeds):
        """(n_draws, N, n_classes) logits of the head: all noise first, then one pass."""
        steps = list(self.head_steps.values())
        noisy = self._noise_steps()
        n, k = z.shape
        if not noisy:  # deterministic head: every draw is the same
            return self.head(z).unsqueeze(0).expand(n_draws, n, -1)
        eps = {i: [] for i in noisy}
        for d in range(n_draws):
            if seeds is not None:
                self.manual_seed(seeds[d])
            for i in noisy:  # drawn on the CPU generator; moved in one copy below
                eps[i].append(steps[i].draw_noise(k, device="cpu", dtype=z.dtype))
        eps = {i: torch.stack(e).to(z.device) for i, e in eps.items()}  # (n_draws, n_eot, 1, k)
        tail = steps[len(noisy):]

        def run(zc, lo, hi):
            h = zc
            for i in noisy:
                h = steps[i].purify_draws(h, eps[i][lo:hi])
            h = h.reshape((hi - lo) * n, k)
            for m in tail:
                h = m(h)
            return h.reshape(hi - lo, n, -1)

        per_draw = n * max(int(steps[i].n_eot) for i in noisy)
        params_grad = torch.is_grad_enabled() and any(
            p.requires_grad for p in self.head_steps.parameters())
        if z.device.type != "cpu" or params_grad:
            # CUDA (its own parallelism) or trainable weights under grad mode (the
            # threaded pass gives the input gradient only): plain chunks on this thread.
            chunk = max(1, int(self.max_rows) // max(1, per_draw))
            out = [run(z, lo, min(n_draws, lo + chunk)) for lo in range(0, n_draws, chunk)]
            return out[0] if len(out) == 1 else torch.cat(out)
        workers = self.n_workers or 1
        chunks = _draw_chunks(n_draws, per_draw, int(self.max_rows), workers)
        return _WorkerMap.apply(z, run, chunks, workers, torch.is_grad_enabled(), False)

    def without_purifier(self):
        """The same module without its purifier: the bare CNN on the features.

        A deterministic proxy for transfer attacks (checklist item 8). Shares
        weights with this module.

        Returns
        -------
        bare : CompiledPipeline
        """
        from .nn import FeaturePurifier

        head = [(n, m) for n, m in self.head_steps.items() if not isinstance(m, FeaturePurifier)]
        bare = CompiledPipeline(
            list(self.feature_steps.items()), head, space=self.space,
            image_shape=self.image_shape, n_classes=self.n_classes, classes=self.classes_,
        )
        bare.batch_draws, bare.max_rows, bare._n_workers = (
            self.batch_draws, self.max_rows, self._n_workers)
        return bare

    def manual_seed(self, seed):
        """Rewind every noise generator inside the module to ``seed``.

        Parameters
        ----------
        seed : int

        Returns
        -------
        self : CompiledPipeline
        """
        for m in self.modules():
            if m is not self and hasattr(m, "manual_seed"):
                m.manual_seed(seed)
        return self

    def reset(self):
        """Rewind every noise generator to the seed it was compiled with."""
        for m in self.modules():
            if m is not self and hasattr(m, "reset"):
                m.reset()
        return self


def _resolve_device(device):
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _compile_transform_step(name, est, device):
    """One fitted transformer step -> (kind, module or None)."""
    from sklearn.feature_selection import SelectorMixin

    from .nn import NNLSProjection
    from .decomposition import KLNMFTransformer
    from .purification import DiffusionPurifier

    if est is None or (isinstance(est, str) and est == "passthrough"):
        return None, None
    if isinstance(est, KLNMFTransformer):
        check_is_fitted(est)
        comps = torch.as_tensor(np.asarray(est.components_, dtype=np.float32))
        return "feature", NNLSProjection(comps, normalize=True).to(device)
    if isinstance(est, SelectorMixin):
        return "feature", _Select(np.flatnonzero(est.get_support())).to(device)
    if isinstance(est, DiffusionPurifier) or hasattr(est, "make_torch_purifier"):
        check_is_fitted(est)  # the purifier, or a SmoothedClassifier's noise and denoiser
        purifier = est.make_torch_purifier()
        # Own copy of the denoiser: moving the module must not move the estimator's.
        purifier.denoiser = copy.deepcopy(purifier.denoiser)
        purifier.randomized = getattr(purifier, "randomized", int(purifier.t) > 0)
        return "head", purifier.to(device)
    raise TypeError(
        f"to_torch_module cannot compile pipeline step {name!r} of type "
        f"{type(est).__name__}: supported steps are KLNMFTransformer, a feature "
        "selector (SelectorMixin, e.g. StatSelector), DiffusionPurifier, "
        "'passthrough', and a final SkorchCNNClassifier."
    )


def _drop_identity_pooling(cnn):
    """Replace, in the CNN's copy, an ``AdaptiveAvgPool1d`` that keeps the length.

    :class:`~sknnmfdiff.nn.CNN1d` pools to ``min(k, pooled_length)`` positions, so
    for ``k <= pooled_length`` its pooling averages windows of one position: the
    identity, exactly (bit for bit), yet it took about 8 % of an attack step. Any
    other module is returned unchanged.
    """
    from .nn import CNN1d

    if isinstance(cnn, CNN1d):  # its convolutions keep the length (kernel 3, padding 1)
        length = cnn.n_features
        for i, m in enumerate(cnn.features):
            if isinstance(m, nn.AdaptiveAvgPool1d) and m.output_size in (length, (length,)):
                cnn.features[i] = nn.Identity()
    return cnn


def to_torch_module(pipeline, *, device=None, space="pixel", image_shape=None):
    """Compile a fitted pipeline into one torch module (pixels -> logits).

    Parameters
    ----------
    pipeline : sklearn.pipeline.Pipeline
        Fitted pipeline of :class:`~sknnmfdiff.KLNMFTransformer`, a selector
        (e.g. :class:`~sknnmfdiff.StatSelector`), optionally
        :class:`~sknnmfdiff.DiffusionPurifier`, and a final
        :class:`~sknnmfdiff.SkorchCNNClassifier` (made by ``make_paper_pipeline`` or
        ``make_baseline_pipeline``), or a final :class:`~sknnmfdiff.AdversarialClassifier`
        or :class:`~sknnmfdiff.SmoothedClassifier`, compiled as its ``fitted_steps()``
        (the smoothed one as its soft version: one noise draw per call).
    device : str, torch.device or None, default=None
        Device of the module; None or "auto" picks CUDA when available.
    space : {"pixel", "feature"}, default="pixel"
        Input of the module. "pixel": images (N, 1, H, W) in [0, 1] (pixel
        units) through the whole pipeline. "feature": the selected,
        L2-normalised NMF features (N, 1, 1, k) in [0, 1] in front of the
        purifier and the CNN (use :meth:`CompiledPipeline.features` to compute
        them from images).
    image_shape : tuple of (int, int) or None, default=None
        (H, W) of the images, for documentation and reshaping only; inferred
        as a square when None and H*W is a perfect square.

    Returns
    -------
    module : CompiledPipeline
        In eval mode, float32. Logits of shape (N, n_classes); softmax of the
        logits equals the pipeline's ``predict_proba`` (within 1e-5 for the
        baseline; identical draws for the defended pipeline with the same seed).
        The purifier draws fresh noise on every call from its own generator,
        seeded by its ``random_state``; :meth:`CompiledPipeline.manual_seed`
        rewinds it.

    Raises
    ------
    TypeError
        If ``pipeline`` is not a Pipeline, or a step cannot be compiled (the
        message names the step).
    sklearn.exceptions.NotFittedError
        If the pipeline is not fitted.
    ValueError
        If ``space`` is not "pixel" or "feature".
    """
    if not isinstance(pipeline, Pipeline):
        raise TypeError(
            f"to_torch_module expects a fitted sklearn Pipeline, got {type(pipeline).__name__}"
        )
    if space not in ("pixel", "feature"):
        raise ValueError(f"space must be 'pixel' or 'feature', got {space!r}")
    from .classifier import SkorchCNNClassifier

    dev = _resolve_device(device)
    steps, (last, clf) = list(pipeline.steps[:-1]), pipeline.steps[-1]
    if hasattr(clf, "fitted_steps"):  # Adversarial/SmoothedClassifier: parts as steps
        *inner, (last, clf) = [(f"{last}_{n}", e) for n, e in clf.fitted_steps()]
        steps += inner
    feature_steps, head_steps = [], []
    for name, est in steps:
        kind, module = _compile_transform_step(name, est, dev)
        if kind == "feature":
            if head_steps:
                raise TypeError(
                    f"pipeline step {name!r} ({type(est).__name__}) comes after the "
                    "purifier; to_torch_module compiles NMF and selection before it only."
                )
            feature_steps.append((name, module))
        elif kind == "head":
            head_steps.append((name, module))
    name = last
    if not isinstance(clf, SkorchCNNClassifier):
        raise TypeError(
            f"to_torch_module cannot compile final step {name!r} of type {type(clf).__name__}"
            ": it must be a SkorchCNNClassifier, AdversarialClassifier or SmoothedClassifier."
        )
    check_is_fitted(clf)
    cnn = _drop_identity_pooling(copy.deepcopy(clf.net_.module_)).to(dev).float().eval()
    head_steps.append((name, cnn))
    n_features_in = getattr(pipeline.steps[0][1], "n_features_in_", None)
    if image_shape is None and n_features_in is not None:
        side = int(round(np.sqrt(n_features_in)))
        image_shape = (side, side) if side * side == n_features_in else None
    module = CompiledPipeline(
        feature_steps,
        head_steps,
        space=space,
        image_shape=image_shape,
        n_classes=len(clf.classes_),
        classes=clf.classes_,
    )
    for p in module.parameters():
        p.requires_grad_(False)
    return module.to(dev).eval()
