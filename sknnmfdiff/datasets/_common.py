"""The ``random_state`` helper shared by the loader, the split and the phantoms."""

from __future__ import annotations

import numpy as np


def _seed_from(random_state):
    """Turn an sklearn-style ``random_state`` into something ``default_rng`` accepts."""
    if isinstance(random_state, np.random.RandomState):
        return random_state.randint(np.iinfo(np.int32).max)
    return random_state
