"""Pickled models: version stamps, and the import paths of older pickles.

scikit-learn warns on unpickling a model made with another scikit-learn version only
for its own classes. :class:`VersionedEstimatorMixin` does the same for ours, covering
the packages a fitted sknnmfdiff model depends on: sknnmfdiff, scikit-learn, skorch,
torch and numpy. ``joblib.dump``/``joblib.load`` (and plain pickle) then carry the
versions with the model and warn on a mismatch when loading.

A pickle names the module of every class in it. Modules that moved keep their old
names as aliases (:data:`MOVED_MODULES`, installed by ``import sknnmfdiff``), so a model
pickled before a move still loads, and predicts identically.

Security: ``joblib.load`` and ``pickle.load`` execute code from the file. Load only
files you trust.
"""

import importlib
import importlib.abc
import importlib.util
import sys

from ._warnings import warn_at_caller

__all__ = [
    "MOVED_MODULES",
    "InconsistentVersionWarning",
    "VersionedEstimatorMixin",
    "install_module_aliases",
    "package_versions",
]

#: Old module path -> where its classes live now (pickles name the old path).
MOVED_MODULES = {
    "sknnmfdiff._torch_nnls": "sknnmfdiff.nn._nnls",
    "sknnmfdiff._torch_diffusion": "sknnmfdiff.nn._diffusion",
    "sknnmfdiff._torch_cnn": "sknnmfdiff.nn._cnn",
}

_PACKAGES = ("sknnmfdiff", "sklearn", "skorch", "torch", "numpy")


class InconsistentVersionWarning(UserWarning):
    """A model was pickled under versions of its dependencies that differ from the
    ones installed now. Predictions may differ; refit or install the saved versions."""


def package_versions():
    """Versions of the packages a fitted model depends on.

    Returns
    -------
    versions : dict of str to str
        Keys ``"sknnmfdiff"``, ``"sklearn"``, ``"skorch"``, ``"torch"``, ``"numpy"``;
        ``"not installed"`` for a missing package.
    """
    import importlib

    out = {}
    for name in _PACKAGES:
        try:
            out[name] = str(importlib.import_module(name).__version__)
        except ImportError:  # pragma: no cover - all are dependencies
            out[name] = "not installed"
    return out


class VersionedEstimatorMixin:
    """Mixin that stamps pickles with :func:`package_versions` and warns on mismatch.

    Put it first among the bases of an estimator. Subclasses that override
    ``__getstate__``/``__setstate__`` must call ``super()``.
    """

    def __getstate__(self):
        state = super().__getstate__()
        state = dict(state)
        state["_sknnmfdiff_versions"] = package_versions()
        return state

    def __setstate__(self, state):
        saved = state.pop("_sknnmfdiff_versions", None)
        if saved is not None:
            now = package_versions()
            diff = {k: (v, now.get(k)) for k, v in saved.items() if now.get(k) != v}
            if diff:
                listing = ", ".join(f"{k} {a} (now {b})" for k, (a, b) in sorted(diff.items()))
                warn_at_caller(
                    f"{type(self).__name__} was saved with {listing}. Predictions may "
                    "differ from the saved model's; refit it or install those versions.",
                    InconsistentVersionWarning)
        super().__setstate__(state)


class _AliasLoader(importlib.abc.Loader):
    """Makes ``import old`` return the module ``new`` itself.

    The new module is put into ``sys.modules`` under the old name at execution time,
    so the import system hands it out without touching its ``__spec__`` (it stays the
    new module's, and ``importlib.reload`` of it keeps working).
    """

    def __init__(self, new):
        self.new = new

    def create_module(self, spec):
        return None  # a placeholder module, replaced in exec_module

    def exec_module(self, module):
        sys.modules[module.__spec__.name] = importlib.import_module(self.new)


class _MovedModuleFinder(importlib.abc.MetaPathFinder):
    """Finds the old paths of :data:`MOVED_MODULES`; imports the new module lazily."""

    def find_spec(self, fullname, path=None, target=None):
        new = MOVED_MODULES.get(fullname)
        if new is None:
            return None
        return importlib.util.spec_from_loader(fullname, _AliasLoader(new))


def install_module_aliases():
    """Let the old module paths of :data:`MOVED_MODULES` be imported (idempotent).

    Nothing is imported until an old path is; ``import sknnmfdiff`` calls this, and
    unpickling always imports the package first.
    """
    if not any(isinstance(f, _MovedModuleFinder) for f in sys.meta_path):
        sys.meta_path.append(_MovedModuleFinder())
