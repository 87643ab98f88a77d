"""Write the legacy-pickle fixture used by ``tests/test_legacy_pickles.py``.

The fixture ``legacy_pipelines.pkl`` was written by this script at commit
cc69804 (before the package was reorganised into the ``evaluation``,
``datasets`` and ``nn`` sub-packages), so that the test proves that models
pickled with the old module layout still load and predict identically. Do not
regenerate it with newer code: that would defeat its purpose.

Run from the repository root: ``python tests/data/make_legacy_pickles.py``.
"""

import pickle
from pathlib import Path

import numpy as np

from sknnmfdiff import make_baseline_pipeline, make_paper_pipeline, make_phantom_mri

HERE = Path(__file__).resolve().parent


def main():
    data = make_phantom_mri(120, image_size=24, random_state=0)
    X, y = data.data, data.target
    fast = dict(n_components=6, k=4, random_state=0, clf__max_epochs=5)
    baseline = make_baseline_pipeline(**fast).fit(X[:100], y[:100])
    defended = make_paper_pipeline(
        t=20, n_eot=4, purify__max_epochs=5, purify__hidden=32, **fast
    ).fit(X[:100], y[:100])
    X_check = X[100:]
    fixture = {
        "baseline": baseline,
        "defended": defended,
        "X": X_check,
        "baseline_proba": baseline.predict_proba(X_check),
        "defended_proba": defended.predict_proba(X_check),
        "baseline_features": baseline[:-1].transform(X_check),
        "defended_features": defended[:-1].transform(X_check),
    }
    with open(HERE / "legacy_pipelines.pkl", "wb") as fh:
        pickle.dump(fixture, fh, protocol=4)


if __name__ == "__main__":
    main()
