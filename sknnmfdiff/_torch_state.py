"""The torch parts of fitted estimators in model files: what :func:`sknnmfdiff.save` takes
out of an estimator, and how :func:`sknnmfdiff.load` rebuilds it.

skops serialises scikit-learn state without pickle, but not torch modules or skorch
nets. For each estimator type that holds them, a handler here removes those attributes
before skops sees the estimator, hands their ``state_dict`` tensors to safetensors and a
little JSON metadata to the manifest, and at load rebuilds the module *from the
estimator's own parameters* (the code that built it in ``fit``), checks the file's
tensors against it (names, shapes, dtypes) and loads them. Nothing of the module's
structure is read from the file, so a file cannot make the loader build anything but
what the estimator's own code builds.

The rest of each estimator travels as unpickling restores it (skops calls the class's
``__setstate__``, the one pickles use: :class:`~sknnmfdiff._persistence.VersionedEstimatorMixin`
and, for :class:`~sknnmfdiff.DiffusionPurifier`, the default of ``antithetic`` for older
models). What a loaded model lacks next to an unpickled one: the optimizer's state and
the early-stopping callback of the skorch net (which holds the validation rows), neither
of which prediction uses; a later ``fit`` builds both anew.
"""

import json
import math

import numpy as np
import torch

__all__ = ["ModelFileError", "HANDLERS", "handler_for", "check_tensors"]


class ModelFileError(ValueError):
    """A model file is damaged, changed, or not a sknnmfdiff model file."""


def _cpu_tensors(state_dict):
    """Detached, contiguous CPU copies (safetensors refuses tensors sharing memory)."""
    return {k: v.detach().to("cpu").clone().contiguous() for k, v in state_dict.items()}


def check_tensors(expected, got, where):
    """Check ``got`` (the file's tensors) against ``expected`` (a freshly built module's
    ``state_dict``): same names, shapes and dtypes; :class:`ModelFileError` otherwise."""
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    if missing:
        raise ModelFileError(
            f"{where}: tensor {missing[0]!r} is missing from weights.safetensors"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    if extra:
        raise ModelFileError(
            f"{where}: weights.safetensors holds tensor {extra[0]!r}, which the estimator "
            "does not have" + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""))
    for name, ref in expected.items():
        t = got[name]
        if tuple(t.shape) != tuple(ref.shape) or t.dtype != ref.dtype:
            raise ModelFileError(
                f"{where}: tensor {name!r} has shape {tuple(t.shape)} ({t.dtype}) in the "
                f"file, but the estimator's parameters make {tuple(ref.shape)} ({ref.dtype})")


def _plain(value):
    """Whether ``value`` is a JSON primitive (bool, int, finite float, str, None)."""
    if value is None or isinstance(value, bool | str):
        return True
    if isinstance(value, int):
        return True
    return isinstance(value, float) and math.isfinite(value)


def _json_value(obj):
    """``json.dumps`` default for skorch's history: numpy scalars to Python ones."""
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"history value of type {type(obj).__name__} cannot be written to JSON")


def _load_device(saved):
    """The device to rebuild a net on: the saved one, or the CPU when it is CUDA and
    CUDA is absent (as skorch does when it unpickles a CUDA net)."""
    dev = torch.device(saved)
    if dev.type == "cuda" and not torch.cuda.is_available():
        return "cpu"
    return str(saved)


class _Handler:
    """How the torch state of one estimator type (and its subclasses) travels.

    Attributes
    ----------
    name : str
        Name of the handler in the manifest.
    attrs : tuple of str
        Attributes removed before skops sees the estimator; the first one is present
        exactly when there is torch state to save.
    fitted : str
        An attribute every fitted instance has: a fitted instance without torch state
        in the file is refused as a missing entry.
    """

    name = None
    attrs = ()
    fitted = None

    def base_class(self):
        """The estimator type handled (instances of subclasses too)."""
        raise NotImplementedError

    def dump(self, est):
        """``(tensors, meta)``: the tensors (name -> CPU tensor), JSON-able metadata."""
        raise NotImplementedError

    def load(self, est, tensors, meta, where):
        """Rebuild the removed attributes of ``est`` from ``tensors`` and ``meta``."""
        raise NotImplementedError


class _Denoiser(_Handler):
    """:class:`~sknnmfdiff.DiffusionPurifier`'s ``denoiser_``, a
    :class:`~sknnmfdiff.nn.DenoiserMLP` built as ``fit`` builds it: from ``n_features_in_``,
    ``hidden``, ``n_layers``, ``emb_dim`` and, preconditioned, ``alphas_cumprod_`` and
    the data scale (metadata; the data mean is a buffer)."""

    name = "denoiser"
    attrs = ("denoiser_",)
    fitted = "alphas_cumprod_"

    def base_class(self):
        from .purification import DiffusionPurifier

        return DiffusionPurifier

    def dump(self, est):
        from .nn import DenoiserMLP

        module = est.denoiser_
        if type(module) is not DenoiserMLP:
            raise TypeError(
                f"cannot save {type(est).__name__}.denoiser_ of type "
                f"{type(module).__module__}.{type(module).__qualname__}: only "
                "sknnmfdiff.nn.DenoiserMLP denoisers are written to model files")
        meta = {"data_scale": float(module.data_scale) if module.preconditioned else None}
        return _cpu_tensors(module.state_dict()), meta

    def load(self, est, tensors, meta, where):
        from .nn import DenoiserMLP

        kwargs = {}
        if est.parameterization == "preconditioned":
            scale = meta.get("data_scale")
            if not (isinstance(scale, float) and math.isfinite(scale) and scale > 0):
                raise ModelFileError(
                    f"{where}: the manifest's data_scale {scale!r} is not a positive number")
            kwargs = dict(alphas_cumprod=np.asarray(est.alphas_cumprod_, dtype=np.float64),
                          data_scale=scale)
        with torch.random.fork_rng(devices=[]):  # weight init draws from the global RNG
            module = DenoiserMLP(int(est.n_features_in_), hidden=int(est.hidden),
                                 n_layers=int(est.n_layers), emb_dim=int(est.emb_dim), **kwargs)
        check_tensors(module.state_dict(), tensors, where)
        module.load_state_dict(tensors, strict=True)
        est.denoiser_ = module.eval().requires_grad_(False)


class _SkorchNet(_Handler):
    """:class:`~sknnmfdiff.SkorchCNNClassifier`'s ``net_`` (and ``history_``), rebuilt by
    the estimator's own ``_build_net`` (no validation split), with the net's other plain
    parameters (numbers, strings, flags: e.g. ``iterator_train__drop_last``, which
    depends on the training size) and its history from the metadata, then initialised
    and given the file's module weights."""

    name = "skorch_net"
    attrs = ("net_", "history_")
    fitted = "classes_"

    def base_class(self):
        from .classifier import SkorchCNNClassifier

        return SkorchCNNClassifier

    def dump(self, est):
        net = est.net_
        params = {k: v for k, v in net.get_params(deep=False).items()
                  if _plain(v) and k != "device"}
        history = json.loads(json.dumps(list(net.history_), default=_json_value))
        return _cpu_tensors(net.module_.state_dict()), {
            "device": str(net.device), "params": params, "history": history}

    def load(self, est, tensors, meta, where):
        from skorch.history import History

        weights = est.class_weight_
        device = _load_device(meta.get("device", "cpu"))
        # The module's class and shape from the estimator's parameters; its weights and
        # buffers (e.g. the MLP's standardisation) come from the file below.
        module = est._module_params(np.zeros((2, int(est.n_features_in_)), np.float32),
                                    len(est.classes_))
        net = est._build_net(module, len(est.classes_), 0,
                             None if weights is None else np.asarray(weights), None, device)
        own = net.get_params(deep=False)
        params = meta.get("params", {})
        unknown = sorted(set(params) - set(own))
        if unknown or not all(_plain(v) for v in params.values()):
            raise ModelFileError(
                f"{where}: the manifest sets net parameters the estimator does not have "
                f"or to values that are not plain numbers or strings: {unknown or params}")
        # The network and the loss come from the estimator's parameters, never the file.
        net.set_params(**{k: v for k, v in params.items()
                          if own[k] != v and not k.startswith(("module__", "criterion__"))})
        with torch.random.fork_rng(devices=[]):  # module init draws from the global RNG
            net.initialize()
        check_tensors(net.module_.state_dict(), tensors, where)
        net.module_.load_state_dict(tensors, strict=True)
        net.module_.eval()
        history = meta.get("history", [])
        if not isinstance(history, list) or not all(isinstance(e, dict) for e in history):
            raise ModelFileError(f"{where}: the manifest's history is not a list of epochs")
        net.history_ = History(history)
        est.net_, est.history_ = net, net.history_


#: Handlers by their name in the manifest.
HANDLERS = {h.name: h for h in (_Denoiser(), _SkorchNet())}


def handler_for(obj):
    """The handler whose estimator type ``obj`` is an instance of, or None."""
    for handler in HANDLERS.values():
        if isinstance(obj, handler.base_class()):
            return handler
    return None
