"""Model files that cannot run code: :func:`save` and :func:`load`.

A model file is one zip archive holding exactly three members:

``manifest.json``
    The format (``"sknnmfdiff-model"``, version 1), the versions of the packages the
    model was saved with (sknnmfdiff, scikit-learn, skorch, torch, numpy, skops,
    safetensors), the SHA-256 of the two other members, and one record per estimator
    with torch state: its place in the model (a path of attribute names, keys and
    indices), its type, the handler that rebuilds it, and small JSON metadata.
``objects.skops``
    The model with its torch parts taken out, written by :func:`skops.io.dumps`:
    parameters and fitted attributes of every estimator, numpy arrays (without pickle),
    Python values. skops rebuilds each object with the class's ``__setstate__``, the
    same one unpickling calls.
``weights.safetensors``
    Every torch tensor (the ``state_dict`` of each denoiser and CNN), in safetensors
    format: raw little-endian arrays and a JSON header, nothing executable.

Loading executes no code from the file: skops refuses every type, function or method
that is not trusted (scikit-learn's estimators, numpy and Python builtins by skops's own
list, the package's estimators in :data:`KNOWN_TYPES`, and what the caller passes as
``trusted``), and the torch modules are built by the estimators' own code from their
parameters and only filled with the file's tensors, after their names, shapes and
dtypes have been checked. A file that differs from what :func:`save` writes (a member
missing or added, a digest that does not match, a tensor missing, extra or of the wrong
shape, a fitted estimator without its weights) is refused with one
:class:`ModelFileError` naming the problem.

The file is not signed: a valid file written by someone else loads. Check where a file
comes from, or compare its SHA-256 with a published one, before you load it.

Adding an estimator type of the package is one entry in :data:`KNOWN_TYPES`; a type
whose torch state is not one of the handled kinds (a :class:`~sknnmfdiff.DiffusionPurifier`
denoiser or a :class:`~sknnmfdiff.SkorchCNNClassifier` net, subclasses included) needs
a handler in ``sknnmfdiff._torch_state`` too.
"""

import hashlib
import json
import os
import sys
import warnings
import zipfile
from pathlib import Path

from ._persistence import InconsistentVersionWarning, package_versions
from ._torch_state import HANDLERS, ModelFileError, handler_for
from ._warnings import warn_at_caller

__all__ = ["save", "load", "is_model_file", "KNOWN_TYPES", "ModelFileError",
           "UntrustedTypeError"]

FORMAT = "sknnmfdiff-model"
FORMAT_VERSION = 1
_MANIFEST, _OBJECTS, _WEIGHTS = "manifest.json", "objects.skops", "weights.safetensors"
_MEMBERS = (_MANIFEST, _OBJECTS, _WEIGHTS)
#: Largest uncompressed size, in bytes, that :func:`load` accepts for one entry of a model
#: file (the manifest: 1 MiB). A model of this package is a few MB; the cap keeps a
#: crafted archive (a "zip bomb") from filling the memory before any check has run.
MAX_ENTRY_BYTES = {_MANIFEST: 1 << 20, _OBJECTS: 1 << 30, _WEIGHTS: 4 << 30}

#: The package's types a model file may hold, by module: the ones skops does not trust
#: on its own (it trusts scikit-learn's estimators, numpy and Python builtins). Types of
#: the package that a model can hold are added here, one entry per module, e.g.
#: ``"sknnmfdiff.adversarial": ("AdversarialClassifier", "_AdversarialCNN")``.
KNOWN_TYPES = {
    "sknnmfdiff.decomposition": ("KLNMFTransformer",),
    "sknnmfdiff.feature_selection": ("StatSelector",),
    "sknnmfdiff.purification": ("DiffusionPurifier",),
    "sknnmfdiff.classifier": ("SkorchCNNClassifier",),
    "sknnmfdiff.smoothing": ("SmoothedClassifier",),
    "sknnmfdiff.adversarial": ("AdversarialClassifier", "_AdversarialCNN"),
}


class UntrustedTypeError(ModelFileError):
    """A model file holds a type (or function) that :func:`load` does not trust.

    Attributes
    ----------
    types : list of str
        The untrusted names, as ``module.name``.
    """

    def __init__(self, message, types):
        super().__init__(message)
        self.types = list(types)


def _known_type_names():
    return [f"{module}.{name}" for module, names in KNOWN_TYPES.items() for name in names]


def _type_name(obj):
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _versions():
    import safetensors
    import skops

    return {**package_versions(), "skops": skops.__version__,
            "safetensors": safetensors.__version__}


def _where(obj, path):
    return f"{type(obj).__name__} at {'/'.join(map(str, path)) or 'the top level'}"


# ----------------------------------------------------------------------------- save
def _strip(obj, path, memo, records, tensors):
    """A copy of ``obj`` without torch state; records and tensors collected on the way.

    Recurses into plain dicts (str or int keys), lists, tuples and scikit-learn
    estimators; an object met twice is copied once (skops keeps the sharing).
    """
    from sklearn.base import BaseEstimator

    if id(obj) in memo:
        return memo[id(obj)]
    if type(obj) is dict:
        out = {k: _strip(v, [*path, k], memo, records, tensors)
               if isinstance(k, str | int) else v for k, v in obj.items()}
    elif type(obj) is list:
        out = [_strip(v, [*path, i], memo, records, tensors) for i, v in enumerate(obj)]
    elif type(obj) is tuple:
        out = tuple(_strip(v, [*path, i], memo, records, tensors) for i, v in enumerate(obj))
    elif isinstance(obj, BaseEstimator):
        state = dict(vars(obj))
        handler = handler_for(obj)
        if handler is not None and handler.attrs[0] in state:
            own, meta = handler.dump(obj)
            index = len(records)
            records.append({"path": path, "type": _type_name(obj), "handler": handler.name,
                            "meta": meta})
            tensors.update({f"{index}/{name}": t for name, t in own.items()})
            for attr in handler.attrs:
                state.pop(attr, None)
        out = type(obj).__new__(type(obj))
        memo[id(obj)] = out
        out.__dict__.update({k: _strip(v, [*path, k], memo, records, tensors)
                             for k, v in state.items()})
        return out
    else:
        return obj
    memo[id(obj)] = out
    return out


def _find_torch(obj, path, seen):
    """Path and type of a torch or skorch object left in ``obj``, or None."""
    import torch

    if id(obj) in seen or isinstance(obj, str | bytes | int | float | type(None)):
        return None
    seen.add(id(obj))
    skorch_net = getattr(sys.modules.get("skorch.net"), "NeuralNet", ())  # if imported
    if isinstance(obj, torch.Tensor | torch.nn.Module | torch.optim.Optimizer) or (
            skorch_net and isinstance(obj, skorch_net)):
        return path, obj
    if isinstance(obj, dict):
        items = obj.items()
    elif isinstance(obj, list | tuple | set | frozenset):
        items = enumerate(obj)
    elif hasattr(obj, "__dict__") and not isinstance(obj, type):
        items = vars(obj).items()
    else:
        return None
    for key, value in items:
        found = _find_torch(value, [*path, key], seen)
        if found is not None:
            return found
    return None


def save(model, path):
    """Write a fitted model to a file that loads without running code.

    Parameters
    ----------
    model : estimator, or dict, list or tuple holding estimators
        Any model of the package: the pipelines of :func:`~sknnmfdiff.make_paper_pipeline`
        and :func:`~sknnmfdiff.make_baseline_pipeline`, pipelines ending in a
        :class:`~sknnmfdiff.SmoothedClassifier`, a single estimator, or a dict such as
        ``{"model": pipe, "image_size": 128}`` (what ``sknnmfdiff fit`` writes). Fitted
        or not; it is not changed.
    path : str or path-like
        File to write (replaced if it exists; written to a temporary file beside it
        first). ``sknnmfdiff fit`` uses the suffix ``.sknnmfdiff``.

    Returns
    -------
    path : pathlib.Path
        The file written.

    Raises
    ------
    TypeError
        If the model holds torch state that no handler writes (a torch module, tensor
        or skorch net outside the estimators of :data:`KNOWN_TYPES`), naming it.

    Notes
    -----
    Types outside :data:`KNOWN_TYPES` and skops's trusted types (your own
    transformer, say) are written, and :func:`load` then needs them in ``trusted``.
    Tensors are written from the CPU; a model fitted on CUDA loads on the CPU where
    CUDA is absent. The file format is described in :mod:`sknnmfdiff.model_file`.

    Examples
    --------
    >>> import sknnmfdiff
    >>> pipe = sknnmfdiff.make_baseline_pipeline()
    >>> path = sknnmfdiff.save(pipe, "model.sknnmfdiff")  # doctest: +SKIP
    >>> sknnmfdiff.load(path)  # doctest: +SKIP
    Pipeline(steps=[('nmf', KLNMFTransformer()), ...])
    """
    import safetensors.torch
    import skops.io

    records, tensors = [], {}
    stripped = _strip(model, [], {}, records, tensors)
    found = _find_torch(stripped, [], set())
    if found is not None:
        where, obj = found
        raise TypeError(
            f"cannot save the model: it holds a {_type_name(obj)} at "
            f"{'/'.join(map(str, where)) or 'the top level'}, and only the torch state of "
            f"{', '.join(sorted(h.base_class().__name__ for h in HANDLERS.values()))} "
            "estimators is written to model files (see sknnmfdiff.model_file)")
    objects = skops.io.dumps(stripped)
    weights = safetensors.torch.save(tensors)
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "versions": _versions(),
        "sha256": {_OBJECTS: hashlib.sha256(objects).hexdigest(),
                   _WEIGHTS: hashlib.sha256(weights).hexdigest()},
        "torch_state": records,
    }
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(_MANIFEST, json.dumps(manifest, indent=1, allow_nan=False))
            zf.writestr(_OBJECTS, objects)
            zf.writestr(_WEIGHTS, weights)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


# ----------------------------------------------------------------------------- load
def _read_members(path):
    """``(manifest dict, objects bytes, weights bytes)``; ModelFileError when the
    archive is not what :func:`save` writes."""
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise ModelFileError(f"{path} is not a sknnmfdiff model file (not a zip "
                             "archive; a joblib file is read with joblib.load)") from None
    with zf:
        names = zf.namelist()
        extra = sorted(set(names) - set(_MEMBERS))
        if extra:
            raise ModelFileError(f"{path} holds an unexpected entry {extra[0]!r}; a model "
                                 f"file holds only {', '.join(_MEMBERS)}")
        missing = [m for m in _MEMBERS if m not in names]
        if missing:
            raise ModelFileError(f"{path} is not a complete sknnmfdiff model file: "
                                 f"entry {missing[0]!r} is missing")
        if len(names) != len(set(names)):
            raise ModelFileError(f"{path} holds an entry twice")
        for m in _MEMBERS:
            size, cap = zf.getinfo(m).file_size, MAX_ENTRY_BYTES[m]
            if size > cap:
                raise ModelFileError(f"{path}: entry {m!r} declares {size} bytes, more than "
                                     f"the {cap} a model file may hold "
                                     "(sknnmfdiff.model_file.MAX_ENTRY_BYTES)")
        try:
            blobs = [_read_entry(zf, m) for m in _MEMBERS]
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise ModelFileError(f"{path} is damaged: {exc}") from None
    try:
        manifest = json.loads(blobs[0])
    except ValueError as exc:
        raise ModelFileError(f"{path}: manifest.json is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ModelFileError(f"{path} is not a sknnmfdiff model file (manifest.json does "
                             f"not name the format {FORMAT!r})")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelFileError(f"{path} has model file format version {version!r}; this "
                             f"sknnmfdiff reads version {FORMAT_VERSION} (upgrade it)")
    digests = manifest.get("sha256") or {}
    for name, blob in zip(_MEMBERS[1:], blobs[1:]):
        if digests.get(name) != hashlib.sha256(blob).hexdigest():
            raise ModelFileError(f"{path}: {name} does not match its SHA-256 in "
                                 "manifest.json; the file is damaged or was changed")
    return manifest, blobs[1], blobs[2]


def _check_versions(path, saved):
    now = _versions()
    diff = sorted((k, v, now[k]) for k, v in (saved or {}).items() if k in now and now[k] != v)
    if diff:
        listing = ", ".join(f"{k} {v} (now {n})" for k, v, n in diff)
        warn_at_caller(f"{Path(path).name} was saved with {listing}; predictions may differ "
                       "from the saved model's: refit it or install those versions.",
                       InconsistentVersionWarning)


def _read_entry(zf, name, chunk=1 << 20):
    """An entry's bytes, inflated ``chunk`` bytes at a time.

    ``ZipFile.read`` inflates as much as the compressed data gives (up to 2 GiB in
    one call) before cutting it to the declared size; read in chunks, a forged
    declared size bounds the memory too (the CRC check then reports the damage).
    """
    out = bytearray()
    with zf.open(name) as f:
        while block := f.read(chunk):
            out += block
    return bytes(out)


def _trusted_names(trusted):
    if trusted is None:
        return []
    if isinstance(trusted, str | type) or not isinstance(trusted, list | tuple | set):
        raise TypeError(f"trusted must be a list of type names or types, got {trusted!r}")
    out = []
    for t in trusted:
        if isinstance(t, type):
            out.append(f"{t.__module__}.{t.__qualname__}")
        elif isinstance(t, str):
            out.append(t)
        else:
            raise TypeError(f"trusted must hold type names or types, got {t!r}")
    return out


def _load_objects(path, data, trusted):
    import skops.io
    from sklearn.exceptions import InconsistentVersionWarning as SklearnVersionWarning

    allowed = _known_type_names() + trusted
    try:
        untrusted = skops.io.get_untrusted_types(data=data)
    except Exception as exc:  # noqa: BLE001 - a damaged skops archive raises many types
        raise ModelFileError(f"{path}: objects.skops is not a readable skops archive "
                             f"({type(exc).__name__}: {exc})") from None
    refused = [t for t in untrusted if t not in allowed]
    if refused:
        listing = ", ".join(repr(t) for t in refused)
        raise UntrustedTypeError(
            f"{path} holds {len(refused)} type(s) or function(s) that sknnmfdiff does not "
            f"load by default: {listing}. Loading one runs its code; if you trust the "
            f"file and that code, load it with sknnmfdiff.load(path, trusted=[{listing}])",
            refused)
    # One warning for the whole file (from the manifest), not one per estimator.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InconsistentVersionWarning)
        warnings.simplefilter("ignore", SklearnVersionWarning)
        try:
            return skops.io.loads(data, trusted=allowed)
        except Exception as exc:  # noqa: BLE001
            raise ModelFileError(f"{path}: objects.skops cannot be loaded "
                                 f"({type(exc).__name__}: {exc})") from None


def _resolve(root, path):
    obj = root
    for key in path:
        if isinstance(obj, dict) and key in obj:
            obj = obj[key]
        elif isinstance(obj, list | tuple) and isinstance(key, int) and 0 <= key < len(obj):
            obj = obj[key]
        elif isinstance(key, str) and key in getattr(obj, "__dict__", {}):
            obj = vars(obj)[key]
        else:
            return None
    return obj


def _unrestored(obj, path, done, seen):
    """A fitted estimator with a handler but without its torch state, or None."""
    from sklearn.base import BaseEstimator

    if id(obj) in seen:
        return None
    seen.add(id(obj))
    if isinstance(obj, dict):
        items = obj.items()
    elif isinstance(obj, list | tuple):
        items = enumerate(obj)
    elif isinstance(obj, BaseEstimator):
        handler = handler_for(obj)
        if (handler is not None and id(obj) not in done and hasattr(obj, handler.fitted)
                and not hasattr(obj, handler.attrs[0])):
            return obj, path
        items = vars(obj).items()
    else:
        return None
    for key, value in items:
        found = _unrestored(value, [*path, key], done, seen)
        if found is not None:
            return found
    return None


def _restore(path, model, records, tensors):
    if not isinstance(records, list):
        raise ModelFileError(f"{path}: the manifest's torch_state is not a list")
    used, done = set(), set()
    for index, rec in enumerate(records):
        if not isinstance(rec, dict) or not isinstance(rec.get("path"), list):
            raise ModelFileError(f"{path}: torch_state[{index}] of the manifest is malformed")
        obj = _resolve(model, rec["path"])
        handler = HANDLERS.get(rec.get("handler"))
        if obj is None or handler is None or _type_name(obj) != rec.get("type") or not (
                isinstance(obj, handler.base_class())):
            raise ModelFileError(
                f"{path}: the manifest puts a {rec.get('type')} (handler "
                f"{rec.get('handler')!r}) at {'/'.join(map(str, rec['path']))}, but the "
                f"model holds {'nothing' if obj is None else _type_name(obj)} there")
        where = f"{path}: {_where(obj, rec['path'])}"
        prefix = f"{index}/"
        own = {k[len(prefix):]: t for k, t in tensors.items() if k.startswith(prefix)}
        used.update(prefix + k for k in own)
        meta = rec.get("meta")
        try:
            obj._validate_params()  # the parameters the modules are built from
            handler.load(obj, own, meta if isinstance(meta, dict) else {}, where)
        except ModelFileError:
            raise
        except Exception as exc:  # noqa: BLE001 - parameters changed in the file
            raise ModelFileError(f"{where}: its torch state cannot be rebuilt from its "
                                 f"parameters ({type(exc).__name__}: {exc})") from None
        done.add(id(obj))
    found = _unrestored(model, [], done, set())
    if found is not None:
        obj, where = found
        raise ModelFileError(f"{path}: the model holds a fitted {_where(obj, where)}, but "
                             "the file has no torch state for it (an entry is missing)")
    extra = sorted(set(tensors) - used)
    if extra:
        raise ModelFileError(f"{path}: weights.safetensors holds tensor {extra[0]!r}, "
                             "which belongs to no estimator of the model")


def load(path, *, trusted=None):
    """Read a model written by :func:`save`, without running code from the file.

    Parameters
    ----------
    path : str or path-like
        The model file.
    trusted : list of str or type, default=None
        Further types (or functions) the file may hold, as ``"module.Name"`` or the
        type itself, e.g. your own transformer in the pipeline. Loading constructs them
        (``__new__`` and ``__setstate__``, as unpickling does): list only code you trust.
        The package's estimators (:data:`KNOWN_TYPES`) and what skops trusts
        (scikit-learn's estimators, numpy, Python builtins) need no listing.

    Returns
    -------
    model : object
        What was saved, fitted as it was; torch modules on the CPU, except a skorch net
        saved on CUDA, which goes back to CUDA when it is available.

    Raises
    ------
    UntrustedTypeError
        If the file holds a type or function that is not trusted; the message names
        them and how to trust them (a :class:`ModelFileError`).
    ModelFileError
        If the file is not a model file of this format, or is damaged or changed: an
        entry missing or added, a digest mismatch, a tensor missing, extra or of the
        wrong shape, a fitted estimator without its weights (a ``ValueError``).
    FileNotFoundError
        If ``path`` does not exist.

    Warns
    -----
    InconsistentVersionWarning
        One warning, one line, when any recorded package version differs from the
        installed one.
    """
    import safetensors.torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such model file: {path}")
    trusted = _trusted_names(trusted)
    manifest, objects, weights = _read_members(path)
    _check_versions(path, manifest.get("versions"))
    model = _load_objects(path, objects, trusted)
    try:
        tensors = safetensors.torch.load(weights)
    except Exception as exc:  # noqa: BLE001 - the parser's own error types
        raise ModelFileError(f"{path}: weights.safetensors is not a valid safetensors "
                             f"file ({type(exc).__name__}: {exc})") from None
    _restore(path, model, manifest.get("torch_state"), tensors)
    return model


def is_model_file(path):
    """Whether a file is a model file of this format (possibly damaged), not joblib.

    Parameters
    ----------
    path : str or path-like
        Any file.

    Returns
    -------
    answer : bool
        True for a zip archive holding a ``manifest.json``; False for anything else (a
        joblib or pickle file, a missing file). The suffix plays no part.
    """
    try:
        with zipfile.ZipFile(path) as zf:
            return _MANIFEST in zf.namelist()
    except (zipfile.BadZipFile, OSError):
        return False

