"""Seeds from ``random_state``: one int per estimator call, independent ones per purpose.

Every random draw of the package comes from ``random_state`` through a numpy
``Generator`` or a ``torch.Generator`` seeded here, so results repeat run to run and
across local and distributed backends.
"""

import numbers

import numpy as np
from sklearn.utils import check_random_state

__all__ = ["SEED_MAX", "base_seed", "derived_seed"]

#: Largest seed handed out (seeds lie in ``0 .. SEED_MAX - 1``).
SEED_MAX = 2**31 - 1


def base_seed(random_state):
    """An int seed from ``random_state``.

    Parameters
    ----------
    random_state : int, numpy.random.RandomState or None
        An int is used as is; a ``RandomState`` gives one draw (and is advanced, as in
        scikit-learn); None gives fresh OS entropy on every call.

    Returns
    -------
    int
        In ``0 .. SEED_MAX - 1`` (an int ``random_state`` as given).
    """
    if random_state is None:
        return int(np.random.SeedSequence().generate_state(1)[0] % SEED_MAX)
    if isinstance(random_state, numbers.Integral):
        return int(random_state)
    return int(check_random_state(random_state).randint(SEED_MAX))


def derived_seed(seed, purpose):
    """An independent int seed for one use (``purpose``, a small int) of ``seed``.

    Parameters
    ----------
    seed : int
        Non-negative base seed (:func:`base_seed`).
    purpose : int
        Non-negative label of the use, e.g. fitting, transforming, training.

    Returns
    -------
    int
        In ``0 .. SEED_MAX - 1``, from ``numpy.random.SeedSequence([seed, purpose])``.
    """
    return int(np.random.SeedSequence([seed, purpose]).generate_state(1)[0] % SEED_MAX)
