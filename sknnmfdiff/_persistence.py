"""Version stamps for pickled estimators.

scikit-learn warns on unpickling a model made with another scikit-learn version only
for its own classes. :class:`VersionedEstimatorMixin` does the same for ours, covering
the packages a fitted sknnmfdiff model depends on: sknnmfdiff, scikit-learn, skorch,
torch and numpy. ``joblib.dump``/``joblib.load`` (and plain pickle) then carry the
versions with the model and warn on a mismatch when loading.

Security: ``joblib.load`` and ``pickle.load`` execute code from the file. Load only
files you trust.
"""

import warnings

__all__ = ["InconsistentVersionWarning", "VersionedEstimatorMixin", "package_versions"]

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
                warnings.warn(
                    f"{type(self).__name__} was saved with {listing}. Predictions may "
                    "differ from the saved model's; refit it or install those versions.",
                    InconsistentVersionWarning,
                    stacklevel=2,
                )
        super().__setstate__(state)
