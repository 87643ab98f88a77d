"""Run every script in ``examples/`` as a user would, and check what it prints.

Each example runs in a fresh interpreter (``sys.executable``) from an empty
temporary directory, with the Agg matplotlib backend and this checkout first on
``PYTHONPATH``. A test passes when the script exits with status 0 and its
standard output holds the lines expected of it (patterns below; no numbers are
checked, only that each stage ran to the end). A new example fails here until it
gets an entry in ``EXPECTED``.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES_DIR = ROOT / "examples"
EXAMPLES = sorted(EXAMPLES_DIR.glob("*.py"))

#: The shared real dataset, located as in tests/conftest.py.
REAL_DATA_DIR = Path(
    os.environ.get(
        "SKNNMFDIFF_DATA", ROOT.parent / "shared" / "data" / "brain-tumor-mri"
    )
)
HAS_REAL_DATA = (REAL_DATA_DIR / "Training").is_dir()

#: Regular expressions each example's stdout must match (re.MULTILINE), chosen
#: by whether the real data are present.
EXPECTED = {
    "plot_load_data.py": [
        r"^SYNTHETIC phantom data, NOT real MRI",
        (
            r"^\d+ images; \d+ exact duplicate groups \(\d+ across Training/Testing\), "
            r"\d+ near-duplicate groups$"
            if HAS_REAL_DATA
            else r"^real data not found at "
        ),
        r"^\{'train': \{0: \d+, 1: \d+\}, 'val': ",
    ],
    "plot_pipeline_quickstart.py": [
        r"^SYNTHETIC phantom data, NOT real MRI",
        r"^defended steps: \['nmf', 'select', 'purify', 'clf'\]$",
        r"^baseline\s+[01]\.\d{4}\s+[01]\.\d{4}\s+-?[01]\.\d{4}$",
        r"^defended\s+[01]\.\d{4}\s+[01]\.\d{4}\s+-?[01]\.\d{4}$",
        r"identical predict_proba: True$",
        r"^baseline: randomized=False, max \|softmax\(module\) - predict_proba\| = ",
        r"^defended: randomized=True, max \|softmax\(module\) - predict_proba\| = ",
        r"^defended accuracy over 20 calls: ",
        (
            r"^real MRI sample \(200 images\): baseline accuracy "
            if HAS_REAL_DATA
            else r"^real data not found at .*; skipped the real-data section$"
        ),
        r"^done in ",
    ],
    "plot_grid_search.py": [
        r"^\s*rank\s+t\s+mean acc\s+std\s+rank_test$",
        r"^\s*15\s+41\s+[01]\.\d{4}",
        r"^best params: \{'nmf__n_components': (8|15), 'purify__t': (0|20|41)\}",
        # The cache: one denoiser training per (rank, fold) plus the refit.
        r"^pipeline fits: 18 \+ 1 refit; denoiser trainings run: 7 \(",
    ],
    "plot_robustness_evaluation.py": [
        r"^baseline: paper Linf eps=0\.1 \(feature space\): accuracy ",
        r"^defended: paper Linf eps=0\.1 \(feature space\): accuracy ",
        r"^\| Setting \| Accuracy \| Balanced acc\. \| ROC-AUC \| MCC \| Brier \| Log-loss \|$",
        r"^\| Robust defended \| ",
        r"^Threat model: feature space, Linf eps = 0\.1",
        r"^adaptive: adaptive Linf eps=0\.1 \(feature space\): accuracy ",
        r"^  eps 0\.50: robust accuracy ",
        r"^sanity checks, defended, adaptive:$",
        r"^  (passed|failed|error)\s+perturbation_bounds",
        r"^done in ",
    ],
}

#: Generous: the examples take 5-20 s each on 2 cores; this only stops a hang.
TIMEOUT_S = 600


def test_every_example_has_expectations():
    names = {p.name for p in EXAMPLES}
    assert "plot_pipeline_quickstart.py" in names, f"examples not found in {EXAMPLES_DIR}"
    missing = sorted(names - set(EXPECTED))
    assert not missing, f"add the lines expected of {missing} to EXPECTED in {__file__}"
    stale = sorted(set(EXPECTED) - names)
    assert not stale, f"EXPECTED names examples that do not exist: {stale}"


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(script, tmp_path):
    if script.name not in EXPECTED:
        pytest.fail(f"no expected output for {script.name}; add it to EXPECTED")
    env = dict(os.environ)
    env["MPLBACKEND"] = "Agg"
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    env["SKNNMFDIFF_DATA"] = str(REAL_DATA_DIR)
    # The examples' models are tiny: several BLAS/OpenMP threads only contend.
    env.setdefault("OMP_NUM_THREADS", "1")
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    report = (
        f"{script.name} exited with {proc.returncode}\n"
        f"--- stdout (tail) ---\n{proc.stdout[-3000:]}\n"
        f"--- stderr (tail) ---\n{proc.stderr[-3000:]}"
    )
    assert proc.returncode == 0, report
    for pattern in EXPECTED[script.name]:
        assert re.search(pattern, proc.stdout, flags=re.MULTILINE), (
            f"{script.name}: no line matching {pattern!r}\n{report}"
        )
    # An example must not leave files behind in the user's working directory.
    assert not any(tmp_path.iterdir()), sorted(p.name for p in tmp_path.iterdir())
