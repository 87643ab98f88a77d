"""Parameter constraints shared by the estimators: scikit-learn's intervals, without bool.

scikit-learn validates ``Interval(Integral, ...)`` and ``Interval(Real, ...)`` with
``isinstance``, and ``bool`` is a subclass of ``int``: ``True`` passes as the integer 1
(``sklearn.utils._param_validation.Interval.is_satisfied_by``; scikit-learn's own
estimators accept ``NMF(max_iter=True)``). Here a count, a step or a rate given as
``True`` or ``False`` is a mistake (``DiffusionPurifier(t=True)`` would train the whole
denoiser for purification step 1), so these constraints reject bool at ``fit`` with
scikit-learn's usual ``InvalidParameterError``. Parameters meant to take a bool say
``"boolean"``; ``"verbose"`` keeps accepting both, as in scikit-learn.
"""

from numbers import Integral, Real

import numpy as np
from sklearn.utils._param_validation import Interval

__all__ = ["RANDOM_STATE", "NotBoolInterval", "int_interval", "real_interval"]


class NotBoolInterval(Interval):
    """:class:`sklearn.utils._param_validation.Interval` that no bool satisfies.

    Parameters
    ----------
    type : {numbers.Integral, numbers.Real}
        The set of numbers of the interval.
    left, right : int, float or None
        Bounds; ``None`` is unbounded.
    closed : {"left", "right", "both", "neither"}
        Which bounds belong to the interval.

    Raises
    ------
    ValueError, TypeError
        As scikit-learn's ``Interval`` for inconsistent bounds.
    """

    def is_satisfied_by(self, val):
        """Whether ``val`` is a number of ``type`` in the interval and not a bool."""
        if isinstance(val, (bool, np.bool_)):
            return False
        return super().is_satisfied_by(val)

    def __str__(self):
        return f"{super().__str__()} (not a bool)"


def int_interval(left, right=None, *, closed="left"):
    """Integers in ``[left, right)`` (by default), bool excluded.

    Parameters
    ----------
    left, right : int or None
        Bounds; ``None`` is unbounded.
    closed : {"left", "right", "both", "neither"}, default="left"

    Returns
    -------
    constraint : NotBoolInterval
    """
    return NotBoolInterval(Integral, left, right, closed=closed)


def real_interval(left, right=None, *, closed):
    """Real numbers in the interval, bool excluded.

    Parameters
    ----------
    left, right : float or None
        Bounds; ``None`` is unbounded.
    closed : {"left", "right", "both", "neither"}

    Returns
    -------
    constraint : NotBoolInterval
    """
    return NotBoolInterval(Real, left, right, closed=closed)


#: ``random_state`` as scikit-learn's ``"random_state"`` constraint (an int seed in
#: ``[0, 2**32 - 1]``, a ``RandomState`` or None), without bool.
RANDOM_STATE = [int_interval(0, 2**32 - 1, closed="both"), np.random.RandomState, None]
