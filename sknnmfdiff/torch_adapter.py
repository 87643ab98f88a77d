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

import numpy as np
import torch
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted
from torch import nn

__all__ = ["CompiledPipeline", "to_torch_module"]


class _Select(nn.Module):
    """Keep the columns ``index`` of a (N, n_features) input."""

    def __init__(self, index):
        super().__init__()
        self.register_buffer("index", torch.as_tensor(np.asarray(index), dtype=torch.long))

    def forward(self, z):
        return z.index_select(1, self.index)


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
    """

    def __init__(self, feature_steps, head_steps, *, space, image_shape, n_classes, classes):
        super().__init__()
        self.feature_steps = nn.ModuleDict(dict(feature_steps))
        self.head_steps = nn.ModuleDict(dict(head_steps))
        self.space = space
        self.image_shape = image_shape
        self.n_classes = int(n_classes)
        self.classes_ = np.asarray(classes)
        self.randomized = any(getattr(m, "randomized", False) for m in self.head_steps.values())
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
        """(N, k) features of the input: projected pixels, or the features as given."""
        if self.space == "pixel":
            return self.pixel_features(x)
        return x.reshape(x.shape[0], -1)

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
        """Logits of ``n_draws`` noise draws of the same input.

        Computes the deterministic front (NNLS projection, selection) once and
        the randomized head (purifier, CNN) ``n_draws`` times, consuming the
        noise generator exactly as ``n_draws`` calls of :meth:`forward` would.

        Parameters
        ----------
        x : torch.Tensor
            Input as for :meth:`forward`.
        n_draws : int
            Number of draws, >= 1.

        Returns
        -------
        logits : torch.Tensor of shape (n_draws, N, n_classes), float32
        """
        z = self._input_features(x)
        return torch.stack([self.head(z) for _ in range(int(n_draws))])

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
        return CompiledPipeline(
            list(self.feature_steps.items()), head, space=self.space,
            image_shape=self.image_shape, n_classes=self.n_classes, classes=self.classes_,
        )

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
    if isinstance(est, DiffusionPurifier):
        check_is_fitted(est)
        purifier = est.make_torch_purifier()
        # Own copy of the denoiser: moving the module must not move the estimator's.
        purifier.denoiser = copy.deepcopy(purifier.denoiser)
        purifier.randomized = int(purifier.t) > 0
        return "head", purifier.to(device)
    raise TypeError(
        f"to_torch_module cannot compile pipeline step {name!r} of type "
        f"{type(est).__name__}: supported steps are KLNMFTransformer, a feature "
        "selector (SelectorMixin, e.g. StatSelector), DiffusionPurifier, "
        "'passthrough', and a final SkorchCNNClassifier."
    )


def to_torch_module(pipeline, *, device=None, space="pixel", image_shape=None):
    """Compile a fitted pipeline into one torch module (pixels -> logits).

    Parameters
    ----------
    pipeline : sklearn.pipeline.Pipeline
        Fitted pipeline of :class:`~sknnmfdiff.KLNMFTransformer`, a selector
        (e.g. :class:`~sknnmfdiff.StatSelector`), optionally
        :class:`~sknnmfdiff.DiffusionPurifier`, and a final
        :class:`~sknnmfdiff.SkorchCNNClassifier`, as made by
        :func:`~sknnmfdiff.make_paper_pipeline` or
        :func:`~sknnmfdiff.make_baseline_pipeline`.
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
    feature_steps, head_steps = [], []
    for name, est in pipeline.steps[:-1]:
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
    name, clf = pipeline.steps[-1]
    if not isinstance(clf, SkorchCNNClassifier):
        raise TypeError(
            f"to_torch_module cannot compile final step {name!r} of type "
            f"{type(clf).__name__}: it must be a SkorchCNNClassifier."
        )
    check_is_fitted(clf)
    cnn = copy.deepcopy(clf.net_.module_).to(dev).float().eval()
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
