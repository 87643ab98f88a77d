"""A fitted pipeline as one ONNX graph: pixels in [0, 1] -> class probabilities.

:func:`export_onnx` writes the pipeline compiled by
:func:`~sknnmfdiff.to_torch_module` as an ONNX file that ONNX Runtime (or any ONNX
runtime with float64 ``MatMul``) runs without Python, scikit-learn or torch:

- input ``pixels``: float32 of shape (N, 1, H, W), values in [0, 1], N dynamic;
- input ``noise`` (only with ``noise="input"`` and a purifier with ``t > 0``):
  float32 of shape (n_eot, 1, k), standard normal, shared by the rows of the call;
- output ``probabilities``: float32 of shape (N, n_classes), softmax of the logits,
  columns in the order of the pipeline's ``classes_``;
- output ``nnls_converged``: bool of shape (N,), whether the row's NNLS projection met
  its KKT conditions within the graph's fixed number of pivoting steps.

The exact NNLS projection is expressed in the graph by
:func:`sknnmfdiff.nn.nnls_gram_export`: the block principal pivoting of
:func:`sknnmfdiff.nn.nnls_gram` with its cap on the pivoting steps, written with
:func:`torch.while_loop` (ONNX ``Loop`` nodes; the loop stops when every row meets its
KKT conditions), each masked system solved by Gauss-Jordan elimination, in float64.
The purifier's noise is either baked in (``noise="fixed"``: the ``n_eot`` noise
vectors the pipeline's own ``predict_proba`` draws, so the graph reproduces it) or an
explicit input (``noise="input"``: the caller draws fresh noise for every call).

The export uses torch's dynamo-based exporter (``torch.onnx.export(..., dynamo=True)``,
the default since torch 2.9; it needs ``onnx`` and ``onnxscript``). Install the extra:
``pip install "sknnmfdiff[onnx]"``.
"""

import contextlib
import json
import logging
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

__all__ = ["check_onnx_export", "export_onnx"]

NOISE_MODES = ("fixed", "input")
_INSTALL = 'pip install "sknnmfdiff[onnx]"'


def _require(*names):
    """Import the named packages or raise an ImportError that says how to install them."""
    import importlib

    mods = []
    for name in names:
        try:
            mods.append(importlib.import_module(name))
        except ImportError:
            raise ImportError(
                f"ONNX export needs the package {name!r}, which is not installed; "
                f"install the extra: {_INSTALL}"
            ) from None
    return mods


@contextlib.contextmanager
def _quiet_exporter():
    """The exporter's chatter off while it runs: its note that torchvision's operators
    are not registered (logged as a warning) and a FutureWarning of torch's pytree
    code, neither about this model. Other warnings pass."""
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)
            yield
    finally:
        registration.setLevel(level)


class _ExportProjection(nn.Module):
    """:class:`~sknnmfdiff.nn.NNLSProjection` in exportable form; also returns
    whether each row converged."""

    def __init__(self, projection, max_iter):
        super().__init__()
        H64 = projection.components.detach().to("cpu", torch.float64)
        G = H64 @ H64.T
        if int(torch.linalg.cholesky_ex(G).info) != 0:
            raise ValueError(
                "The NMF components are linearly dependent (their Gram matrix is not "
                "positive definite), so the NNLS projection has no unique solution and "
                "cannot be exported as a fixed graph; refit with fewer components."
            )
        self.register_buffer("components", H64)
        self.register_buffer("gram", G)
        self.normalize = bool(projection.normalize)
        self.max_iter = max_iter

    def forward(self, x):
        from .nn import l2_normalize_rows, nnls_gram_export

        B = x.to(torch.float64) @ self.components.T
        w, converged = nnls_gram_export(self.gram, B, self.max_iter)
        w = w.to(torch.float32)
        return (l2_normalize_rows(w) if self.normalize else w), converged


class _ExportGraph(nn.Module):
    """What is exported: ``(pixels[, noise]) -> (probabilities, nnls_converged)``."""

    def __init__(self, compiled, *, max_iter, noise, fixed_eps):
        super().__init__()
        from .nn import FeaturePurifier, NNLSProjection

        self.front = nn.ModuleList(
            _ExportProjection(m, max_iter) if isinstance(m, NNLSProjection) else m
            for m in compiled.feature_steps.values()
        )
        self.head = nn.ModuleList(compiled.head_steps.values())
        self.noisy = [isinstance(m, FeaturePurifier) and int(m.t) > 0 for m in self.head]
        self.noise = noise
        if fixed_eps is not None:
            self.register_buffer("fixed_eps", fixed_eps)

    def forward(self, pixels, noise=None):
        z = pixels.reshape(pixels.shape[0], -1)
        converged = None
        for m in self.front:
            if isinstance(m, _ExportProjection):
                z, c = m(z)
                converged = c if converged is None else converged & c
            else:
                z = m(z)
        for m, noisy in zip(self.head, self.noisy):
            if noisy:
                z = m.purify_with_noise(z, noise if self.noise == "input" else self.fixed_eps)
            else:
                z = m(z)
        if converged is None:
            converged = torch.ones(z.shape[0], dtype=torch.bool, device=z.device)
        return torch.softmax(z, dim=1), converged


def _n_head_features(compiled, n_pixels):
    """Number of features ``k`` entering the head (the selected NMF coefficients)."""
    from .nn import NNLSProjection

    steps = list(compiled.feature_steps.values())
    if not steps or not isinstance(steps[0], NNLSProjection):
        raise TypeError("export_onnx needs a pipeline that starts with a KLNMFTransformer.")
    with torch.no_grad():
        return int(compiled.pixel_features(torch.zeros(1, n_pixels)).shape[1])


def _purifier_of(compiled):
    from .nn import FeaturePurifier

    found = [m for m in compiled.head_steps.values()
             if isinstance(m, FeaturePurifier) and int(m.t) > 0]
    if len(found) > 1:
        raise TypeError("export_onnx supports at most one purifier step in a pipeline.")
    return found[0] if found else None


def _check_args(noise, nnls_max_iter, seed):
    if noise not in NOISE_MODES:
        raise ValueError(f"noise must be one of {NOISE_MODES}, got {noise!r}.")
    if nnls_max_iter is not None and (isinstance(nnls_max_iter, bool) or not isinstance(
            nnls_max_iter, int) or nnls_max_iter < 1):
        raise ValueError(f"nnls_max_iter must be None or an integer >= 1, got {nnls_max_iter!r}.")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ValueError(f"seed must be None or an integer >= 0, got {seed!r}.")


def export_onnx(pipeline, path, *, noise="fixed", seed=None, nnls_max_iter=None,
                image_shape=None, opset_version=None):
    """Write a fitted pipeline as one ONNX graph (pixels -> class probabilities).

    The graph computes what :func:`~sknnmfdiff.to_torch_module` computes, followed by a
    softmax: exact NNLS projection onto the KL-NMF basis and L2 normalisation (arXiv
    2603.13182, Sec. 3), the selected features, the purifier's noise-denoise-average
    (Ho et al., 2020, eq. 4) and the CNN. The NNLS projection is the block principal
    pivoting method of Kim & Park (2011) as in :func:`sknnmfdiff.nn.nnls_gram`, in
    float64, written as ONNX ``Loop`` nodes (:func:`sknnmfdiff.nn.nnls_gram_export`)
    that stop when every row of the call meets its KKT conditions, after at most
    ``nnls_max_iter`` pivoting steps; a row still infeasible then is flagged by the
    ``nnls_converged`` output and gets its last iterate clipped at 0 (what
    :func:`~sknnmfdiff.nn.nnls_gram` does, with a warning, at its cap).

    Parameters
    ----------
    pipeline : sklearn.pipeline.Pipeline
        Fitted pipeline that :func:`~sknnmfdiff.to_torch_module` compiles (made by
        :func:`~sknnmfdiff.make_paper_pipeline` or
        :func:`~sknnmfdiff.make_baseline_pipeline`).
    path : str or path-like
        File to write (conventionally ``*.onnx``); its folder must exist.
    noise : {"fixed", "input"}, default="fixed"
        The purifier's noise (ignored without a purifier or with ``t = 0``).
        ``"fixed"``: the ``n_eot`` noise vectors are constants of the graph, those of
        the torch module's first call after ``manual_seed(seed)``; with ``seed=None``
        the seed of the purifier's ``transform``, so the graph reproduces the
        pipeline's ``predict_proba``. Every call then uses the same noise: the model
        is deterministic. ``"input"``: a graph input ``noise`` of shape
        (n_eot, 1, k), float32, standard normal, that the caller draws afresh for
        every call (antithetic pairs when the metadata says ``antithetic``: the
        first ``ceil(n_eot / 2)`` vectors drawn, then the negatives of the first
        ``n_eot // 2``), as the randomized defence does.
    seed : int or None, default=None
        Seed of the fixed noise (``noise="fixed"`` only), >= 0.
    nnls_max_iter : int or None, default=None
        Cap on the NNLS pivoting steps in the graph, >= 1; None is the cap of
        :func:`~sknnmfdiff.nn.nnls_gram`, ``10 r + 20``. The graph's size does not
        depend on it; on 400 real MRI slices (128 x 128) every row met its KKT
        conditions within 4 steps at rank 15 and within 5 at rank 60.
    image_shape : tuple of (int, int) or None, default=None
        (H, W) of the input images; None infers a square from the pipeline's
        ``n_features_in_``.
    opset_version : int or None, default=None
        ONNX opset; None uses the exporter's default.

    Returns
    -------
    path : pathlib.Path
        The file written. Its metadata (``onnx.ModelProto.metadata_props``) records
        the classes, image shape, noise mode and seed, ``n_eot``, ``k``,
        ``antithetic``, ``t``, ``nnls_max_iter`` and the sknnmfdiff and torch versions.

    Raises
    ------
    ImportError
        If ``onnx`` or ``onnxscript`` is not installed.
    TypeError
        If the pipeline cannot be compiled (see :func:`~sknnmfdiff.to_torch_module`)
        or holds more than one purifier.
    ValueError
        If ``noise``, ``seed``, ``nnls_max_iter`` or ``image_shape`` is invalid, the
        image shape cannot be inferred, or the NMF components are linearly dependent.
    sklearn.exceptions.NotFittedError
        If the pipeline is not fitted.

    References
    ----------
    J. Kim and H. Park, "Fast nonnegative matrix factorization: an active-set-like
    method and comparisons", SIAM J. Sci. Comput. 33(6), 2011.
    """
    _check_args(noise, nnls_max_iter, seed)
    onnx, _ = _require("onnx", "onnxscript")
    from . import __version__
    from .torch_adapter import to_torch_module

    compiled = to_torch_module(pipeline, device="cpu", image_shape=image_shape)
    shape = compiled.image_shape
    if shape is None or len(shape) != 2 or min(int(s) for s in shape) < 1:
        raise ValueError(
            f"cannot tell the image shape of this pipeline (got {shape!r}); pass "
            "image_shape=(H, W)."
        )
    H, W = (int(s) for s in shape)
    purifier = _purifier_of(compiled)
    mode = noise if purifier is not None else "none"
    k = _n_head_features(compiled, H * W)
    rank = int(next(iter(compiled.feature_steps.values())).components.shape[0])
    fixed_eps, noise_seed = None, None
    if purifier is not None:
        if mode == "fixed":
            noise_seed = int(purifier._seed) if seed is None else seed
            purifier.manual_seed(noise_seed)
            fixed_eps = purifier.draw_noise(k, device="cpu", dtype=torch.float32)
    graph = _ExportGraph(compiled, max_iter=nnls_max_iter, noise=mode, fixed_eps=fixed_eps).eval()
    example = (torch.rand(3, 1, H, W, generator=torch.Generator().manual_seed(0)),)
    input_names = ["pixels"]
    batch = torch.export.Dim("batch", min=1)
    dynamic = {"pixels": {0: batch}}
    if mode == "input":
        example += (torch.zeros(int(purifier.n_eot), 1, k),)
        input_names.append("noise")
        dynamic["noise"] = None
    path = Path(path)
    with torch.no_grad(), _quiet_exporter():
        program = torch.onnx.export(
            graph, example, dynamo=True, input_names=input_names,
            output_names=["probabilities", "nnls_converged"], dynamic_shapes=dynamic,
            opset_version=opset_version, verbose=False,
        )
    model = program.model_proto
    _drop_unused_initializers(model.graph)
    meta = {
        "sknnmfdiff_version": __version__,
        "torch_version": torch.__version__,
        "classes": json.dumps(np.asarray(compiled.classes_).tolist()),
        "image_shape": json.dumps([H, W]),
        "input_range": "[0, 1]",
        "noise": mode,
        "noise_seed": "" if noise_seed is None else str(noise_seed),
        "n_eot": "" if purifier is None else str(int(purifier.n_eot)),
        "antithetic": "" if purifier is None else str(bool(purifier.antithetic)).lower(),
        "t": "0" if purifier is None else str(int(purifier.t)),
        "k": str(k),
        "nnls_max_iter": str(nnls_max_iter if nnls_max_iter is not None else 10 * rank + 20),
    }
    onnx.helper.set_model_props(model, meta)
    model.doc_string = (
        "sknnmfdiff pipeline: pixels (N, 1, H, W) float32 in [0, 1] -> probabilities "
        "(N, n_classes); nnls_converged (N,) flags rows whose NNLS needed more steps."
    )
    onnx.checker.check_model(model)
    onnx.save_model(model, str(path))
    return path


def _subgraphs(node):
    from onnx import AttributeProto

    for attr in node.attribute:
        if attr.type == AttributeProto.GRAPH:
            yield attr.g
        elif attr.type == AttributeProto.GRAPHS:
            yield from attr.graphs


def _names_used(graph):
    """Every value name read by the nodes of ``graph`` and its subgraphs, or output."""
    used = {o.name for o in graph.output}
    for node in graph.node:
        used.update(node.input)
        for sub in _subgraphs(node):
            used |= _names_used(sub)
    return used


def _drop_unused_initializers(graph):
    """Remove constants no node reads, in ``graph`` and its subgraphs (the exporter
    leaves a few inside the ``Loop`` bodies; ONNX Runtime warns about them)."""
    used = _names_used(graph)
    keep = [t for t in graph.initializer if t.name in used]
    if len(keep) != len(graph.initializer):
        del graph.initializer[:]
        graph.initializer.extend(keep)
    for node in graph.node:
        for sub in _subgraphs(node):
            _drop_unused_initializers(sub)


def _metadata(model_proto):
    return {p.key: p.value for p in model_proto.metadata_props}


def check_onnx_export(pipeline, path, X, *, seed=0, batch_size=256):
    """Compare an exported graph, run by ONNX Runtime, with the torch module.

    Runs ``path`` with ``onnxruntime`` (CPU execution provider) and
    :func:`~sknnmfdiff.to_torch_module` of ``pipeline`` (on the CPU) on the same
    images and the same purifier noise: for ``noise="fixed"`` the torch module is
    seeded with the file's noise seed before every batch; for ``noise="input"`` the
    noise of the module's first call after ``manual_seed(seed)`` is fed to the graph
    and the module is seeded with ``seed`` before every batch.

    Parameters
    ----------
    pipeline : sklearn.pipeline.Pipeline
        The fitted pipeline that was exported.
    path : str or path-like
        The ONNX file written by :func:`export_onnx`.
    X : array-like of shape (n_samples, H*W) or (n_samples, 1, H, W)
        Images, float32 pixels in [0, 1].
    seed : int, default=0
        Noise seed for ``noise="input"``, >= 0.
    batch_size : int, default=256
        Images per call, >= 1.

    Returns
    -------
    result : dict
        ``n_images``; ``max_abs_diff`` (largest absolute difference of the
        probabilities, ONNX against torch); ``same_predictions`` (bool) and
        ``n_disagreements`` (rows whose argmax differs); ``nnls_converged_fraction``;
        ``max_abs_diff_predict_proba`` (against ``pipeline.predict_proba``, for a
        baseline or ``noise="fixed"`` with the pipeline's own seed, else None);
        ``noise``; ``seconds_onnx`` and ``seconds_torch``.

    Raises
    ------
    ImportError
        If ``onnxruntime`` or ``onnx`` is not installed.
    ValueError
        If ``X`` does not match the file's image shape or lies outside [0, 1].
    """
    onnx, ort = _require("onnx", "onnxruntime")
    from .torch_adapter import to_torch_module

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}.")
    meta = _metadata(onnx.load(str(path), load_external_data=False))
    H, W = json.loads(meta["image_shape"])
    X = np.asarray(X, dtype=np.float32)
    if X.size != X.shape[0] * H * W:
        raise ValueError(f"X of shape {X.shape} does not hold images of {H} x {W} pixels.")
    if X.size and (X.min() < 0 or X.max() > 1 or not np.isfinite(X).all()):
        raise ValueError("X must hold pixels in [0, 1].")
    x = X.reshape(-1, 1, H, W)
    module = to_torch_module(pipeline, device="cpu", image_shape=(H, W))
    purifier = _purifier_of(module)
    mode = meta["noise"]
    run_seed = int(meta["noise_seed"]) if mode == "fixed" else int(seed)
    feed_noise = None
    if mode == "input":
        purifier.manual_seed(run_seed)
        feed_noise = purifier.draw_noise(int(meta["k"]), device="cpu").numpy()
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    p_onnx, p_torch, conv = [], [], []
    t_onnx = t_torch = 0.0
    for lo in range(0, len(x), batch_size):
        xb = x[lo : lo + batch_size]
        feeds = {"pixels": xb}
        if feed_noise is not None:
            feeds["noise"] = feed_noise
        t0 = time.perf_counter()
        prob, ok = session.run(["probabilities", "nnls_converged"], feeds)
        t_onnx += time.perf_counter() - t0
        p_onnx.append(prob)
        conv.append(ok)
        t0 = time.perf_counter()
        module.manual_seed(run_seed)
        with torch.no_grad():
            p_torch.append(torch.softmax(module(torch.from_numpy(xb)), dim=1).numpy())
        t_torch += time.perf_counter() - t0
    p_onnx, p_torch = np.concatenate(p_onnx), np.concatenate(p_torch)
    diff_pp = None
    own_seed = purifier is None or (mode == "fixed" and run_seed == _transform_seed(pipeline))
    if own_seed:
        diff_pp = float(np.abs(p_onnx - pipeline.predict_proba(X.reshape(len(x), -1))).max())
    disagree = int(np.sum(p_onnx.argmax(1) != p_torch.argmax(1)))
    return {
        "n_images": int(len(x)),
        "max_abs_diff": float(np.abs(p_onnx - p_torch).max()) if len(x) else 0.0,
        "same_predictions": disagree == 0,
        "n_disagreements": disagree,
        "nnls_converged_fraction": float(np.concatenate(conv).mean()) if len(x) else 1.0,
        "max_abs_diff_predict_proba": diff_pp,
        "noise": mode,
        "seconds_onnx": t_onnx,
        "seconds_torch": t_torch,
    }


def _transform_seed(pipeline):
    """Seed of the purifier's ``transform`` (its noise in ``predict_proba``), or None."""
    from .purification import DiffusionPurifier

    for _, est in pipeline.steps:
        if isinstance(est, DiffusionPurifier) and int(est.t) > 0:
            return int(est.make_torch_purifier()._seed)
    return None
