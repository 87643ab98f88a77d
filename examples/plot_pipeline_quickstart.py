"""
Quick start: the baseline and the paper's defended pipeline
===========================================================

This example fits the two ready-made pipelines of ``sknnmfdiff``:

- :func:`~sknnmfdiff.make_baseline_pipeline`: KL-NMF features -> statistical
  top-k selection -> neural classifier;
- :func:`~sknnmfdiff.make_paper_pipeline`: the same with the feature-space
  diffusion purifier before the classifier (the defence of arXiv 2603.13182).

It scores them with :mod:`sklearn.metrics`, saves and reloads the defended
pipeline with :mod:`joblib`, and compiles it into one differentiable
:class:`torch.nn.Module` with :func:`~sknnmfdiff.to_torch_module`.

The data are SYNTHETIC phantoms from :func:`~sknnmfdiff.make_phantom_mri`,
not real MRI, so the example runs offline in well under a minute; the
settings (64 x 64 pixels, 100 NMF iterations, 50 classifier epochs) are far smaller
than the paper's. The numbers it prints say nothing about clinical
performance. A last section runs on a small sample of the real Kaggle data
when it is found (``SKNNMFDIFF_DATA`` or ``../shared/data/brain-tumor-mri``
beside the checkout).
"""

# %%
import os
import tempfile
import time
from pathlib import Path

import joblib
import numpy as np
import torch
from sklearn.metrics import accuracy_score, matthews_corrcoef, roc_auc_score
from sklearn.model_selection import train_test_split

from sknnmfdiff import (
    load_mri_folder,
    make_baseline_pipeline,
    make_paper_pipeline,
    make_phantom_mri,
    to_torch_module,
)

# The models are tiny: one torch thread is faster than several on a small machine.
torch.set_num_threads(1)
t_start = time.perf_counter()

# %%
# Synthetic data
# --------------
# 400 phantom slices of 64 x 64 pixels, half of them with a tumour-like lesion.
# ``data`` holds one flattened image per row, float32 pixels in [0, 1].
phantom = make_phantom_mri(400, image_size=64, random_state=0)
print(phantom.DESCR)
X_train, X_test, y_train, y_test = train_test_split(
    phantom.data, phantom.target, test_size=0.25, stratify=phantom.target, random_state=0
)
print(f"train {X_train.shape}, test {X_test.shape}, dtype {X_train.dtype}")

# %%
# Fit both pipelines
# ------------------
# Extra parameters in ``step__param`` form shorten the fits; the steps are
# ``nmf``, ``select``, ``purify`` (defended only) and ``clf``.
small = dict(n_components=15, k=10, random_state=0, nmf__max_iter=100, clf__max_epochs=50)
baseline = make_baseline_pipeline(**small)
defended = make_paper_pipeline(t=41, n_eot=8, purify__max_epochs=100, **small)
print("baseline steps:", [name for name, _ in baseline.steps])
print("defended steps:", [name for name, _ in defended.steps])

for name, pipe in (("baseline", baseline), ("defended", defended)):
    t0 = time.perf_counter()
    pipe.fit(X_train, y_train)
    print(f"fitted {name} in {time.perf_counter() - t0:.1f} s")

# %%
# Clean metrics
# -------------
# ``predict_proba`` of the defended pipeline averages ``n_eot`` purified draws;
# with an int ``random_state`` it is deterministic.
print(f"{'pipeline':<10} {'accuracy':>9} {'ROC-AUC':>8} {'MCC':>7}")
for name, pipe in (("baseline", baseline), ("defended", defended)):
    proba = pipe.predict_proba(X_test)
    pred = pipe.classes_[proba.argmax(axis=1)]
    print(
        f"{name:<10} {accuracy_score(y_test, pred):>9.4f} "
        f"{roc_auc_score(y_test, proba[:, 1]):>8.4f} {matthews_corrcoef(y_test, pred):>7.4f}"
    )

# %%
# Save and reload
# ---------------
# A fitted pipeline is saved with :func:`joblib.dump`. ``joblib.load`` runs
# code from the file: load only files you trust.
with tempfile.TemporaryDirectory() as tmp:
    path = Path(tmp) / "defended.joblib"
    joblib.dump(defended, path)
    reloaded = joblib.load(path)
    same = np.array_equal(reloaded.predict_proba(X_test), defended.predict_proba(X_test))
    size_kb = path.stat().st_size / 1e3
    print(f"joblib round trip ({size_kb:.0f} kB): identical predict_proba: {same}")

# %%
# One torch module
# ----------------
# :func:`~sknnmfdiff.to_torch_module` compiles the fitted pipeline into a
# module mapping images (N, 1, H, W) in [0, 1] to logits, with the exact
# NNLS projection, selection, purifier and classifier, so that attacks get gradients
# down to every pixel. Its purifier draws fresh noise on each call from its own
# generator, seeded like the sklearn step: the first call after compiling
# (or after ``module.reset()``) reproduces ``predict_proba``.
images = torch.as_tensor(X_test, dtype=torch.float32).reshape(-1, 1, 64, 64)
for name, pipe in (("baseline", baseline), ("defended", defended)):
    module = to_torch_module(pipe, device="cpu")
    with torch.no_grad():
        first = torch.softmax(module(images), dim=1).numpy()
        second = torch.softmax(module(images), dim=1).numpy()
    gap = np.abs(first - pipe.predict_proba(X_test)).max()
    flips = np.mean(first.argmax(axis=1) != second.argmax(axis=1))
    print(
        f"{name}: randomized={module.randomized}, max |softmax(module) - predict_proba| "
        f"= {gap:.2e}; a second call changes the probabilities by up to "
        f"{np.abs(second - first).max():.2f} and {flips:.0%} of the predictions"
    )

# %%
# The purifier's noise is shared by all rows of a call (common random numbers,
# so a row's output never depends on its batch neighbours); one call's draws
# therefore move every prediction together, and the accuracy of single calls
# varies. Scoring over many draws, as :func:`~sknnmfdiff.evaluate_robustness`
# does, gives the expected accuracy.
module = to_torch_module(defended, device="cpu")
with torch.no_grad():
    draws = np.stack([torch.softmax(module(images), dim=1).numpy() for _ in range(20)])
per_call = (defended.classes_[draws.argmax(axis=2)] == y_test).mean(axis=1)
mean_prob = accuracy_score(y_test, defended.classes_[draws.mean(axis=0).argmax(axis=1)])
print(
    f"defended accuracy over 20 calls: min {per_call.min():.4f}, mean {per_call.mean():.4f}, "
    f"max {per_call.max():.4f}; mean probability of the 20 calls: {mean_prob:.4f}"
)

# %%
# Real data, when present
# -----------------------
# The same code runs on the real Kaggle "Brain Tumor MRI Dataset"; here on 100
# images per class only, drawn at random (``max_per_class``), so the score is
# rough. The paper's protocol (a duplicate-aware 2,200-image split, 128 x 128
# pixels) is in the ``plot_load_data`` example and the ``sknnmfdiff paper``
# command.
try:
    checkout = Path(__file__).resolve().parents[1]
except NameError:  # run interactively
    checkout = Path.cwd()
data_dir = Path(
    os.environ.get("SKNNMFDIFF_DATA", checkout.parent / "shared" / "data" / "brain-tumor-mri")
)
if (data_dir / "Training").is_dir():
    X_real, y_real = load_mri_folder(
        data_dir, image_size=64, max_per_class=100, random_state=0, return_X_y=True
    )
    Xr_train, Xr_test, yr_train, yr_test = train_test_split(
        X_real, y_real, test_size=0.3, stratify=y_real, random_state=0
    )
    real = make_baseline_pipeline(**small).fit(Xr_train, yr_train)
    proba = real.predict_proba(Xr_test)
    print(
        f"real MRI sample ({len(y_real)} images): baseline accuracy "
        f"{accuracy_score(yr_test, real.predict(Xr_test)):.4f}, "
        f"ROC-AUC {roc_auc_score(yr_test, proba[:, 1]):.4f}"
    )
else:
    print(f"real data not found at {data_dir}; skipped the real-data section")

print(f"done in {time.perf_counter() - t_start:.1f} s")
