"""Shared fixtures: seeded torch, the shared real MRI data (skipped when absent)."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch

#: The shared real dataset beside the checkout (CI has it too); override with
#: the SKNNMFDIFF_DATA environment variable.
REAL_DATA_DIR = Path(
    os.environ.get(
        "SKNNMFDIFF_DATA",
        Path(__file__).resolve().parents[1].parent / "shared" / "data" / "brain-tumor-mri",
    )
)

# One intra-op thread: the test models are tiny, and on a 2-core machine two
# spinning threads cost far more than they give.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed_everything():
    """Fix global seeds so that a test that forgets random_state is still stable."""
    np.random.seed(0)
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def real_data_dir():
    """Path of the shared Kaggle-layout MRI folder; skips the test when absent."""
    if not (REAL_DATA_DIR / "Training").is_dir():
        pytest.skip(f"shared MRI data not found at {REAL_DATA_DIR}")
    return REAL_DATA_DIR


@pytest.fixture
def two_threads():
    """The caller runs torch on 2 intra-op threads (the test session uses 1)."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield 2
    torch.set_num_threads(before)
