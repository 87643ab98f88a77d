"""Warnings attributed to the user's call, not to the package's or its libraries' code.

``warnings.warn(..., stacklevel=n)`` names a fixed number of frames up: through
scikit-learn's ``validate_params`` wrapper, joblib's unpickler or the package's own
layers, that lands in library code, and the user sees a file they never wrote.
:func:`warn_at_caller` walks out of the frames of this package and of the libraries
that call into it (scikit-learn, joblib, skops, the import machinery) and issues the
warning at the first frame outside them, as Python 3.12's ``skip_file_prefixes`` does
(the package supports 3.10). Messages are one line.
"""

import os
import sys
import warnings

__all__ = ["warn_at_caller"]


def _prefixes():
    import importlib.util

    out = [os.path.dirname(os.path.abspath(__file__)) + os.sep]
    for name in ("sklearn", "joblib", "skops", "pickle", "copyreg"):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin:
            base = spec.origin if name in ("pickle", "copyreg") else os.path.dirname(spec.origin) + os.sep
            out.append(base)
    return tuple(out)


def warn_at_caller(message, category=UserWarning):
    """Issue a one-line warning at the first frame outside the package and its libraries.

    Parameters
    ----------
    message : str
        The warning text; line breaks are replaced by spaces.
    category : type of Warning, default=UserWarning
        The warning class.
    """
    message = " ".join(str(message).split())
    prefixes = _prefixes()
    frame = sys._getframe(1)
    outer = frame
    while frame is not None:
        name = frame.f_code.co_filename
        if not (name.startswith("<") or os.path.abspath(name).startswith(prefixes)):
            break
        outer, frame = frame, frame.f_back
    frame = frame or outer
    g = frame.f_globals
    warnings.warn_explicit(message, category, frame.f_code.co_filename, frame.f_lineno,
                           module=g.get("__name__"), registry=g.setdefault("__warningregistry__", {}),
                           module_globals=g)
