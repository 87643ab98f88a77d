"""
Loading MRI folders, finding duplicates and drawing the paper's split
=====================================================================

This example shows the data side of ``sknnmfdiff``:

- :func:`~sknnmfdiff.datasets.make_phantom_mri` makes SYNTHETIC head-like
  slices with and without tumour-like lesions, so the example runs offline;
- :func:`~sknnmfdiff.datasets.load_mri_folder` reads the real Kaggle "Brain
  Tumor MRI Dataset" when it is found (set ``SKNNMFDIFF_DATA`` or keep
  ``../shared/data/brain-tumor-mri`` beside the checkout);
- :func:`~sknnmfdiff.datasets.find_duplicates` finds exact and near-duplicate
  images, and :func:`~sknnmfdiff.datasets.paper_split` draws the balanced
  1,100 + 1,100 sample split 70 / 20 / 10 with no duplicate group shared by
  two parts.
"""

# %%
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from sknnmfdiff.datasets import find_duplicates, load_mri_folder, make_phantom_mri, paper_split

# %%
# Synthetic phantoms
# ------------------
# The phantoms come in the same Bunch as the real loader, so code written
# against one runs on the other.
phantom = make_phantom_mri(8, image_size=128, random_state=0)
print(phantom.DESCR)

fig, axes = plt.subplots(2, 4, figsize=(8, 4.4))
for ax, img, label, name in zip(
    axes.ravel(), phantom.images, phantom.target, phantom.filenames, strict=True
):
    ax.imshow(img, cmap="gray", vmin=0, vmax=1)
    ax.set_title(f"{name}\n{phantom.target_names[label]}", fontsize=8)
    ax.axis("off")
fig.suptitle("SYNTHETIC phantom slices (not real MRI)")
fig.tight_layout()

# %%
# Real data, when present
# -----------------------
# Exact duplicates are found on the original decoded pixels (``pixel_hash``),
# near duplicates by a perceptual hash; both kinds are kept inside one part
# of the split.
try:
    checkout = Path(__file__).resolve().parents[1]
except NameError:  # run interactively
    checkout = Path.cwd()
data_dir = Path(
    os.environ.get("SKNNMFDIFF_DATA", checkout.parent / "shared" / "data" / "brain-tumor-mri")
)
if (data_dir / "Training").is_dir():
    bunch = load_mri_folder(data_dir, image_size=64, n_jobs=2)
    exact = find_duplicates(bunch)
    near = find_duplicates(bunch, kind="near")
    across = sum(len(set(bunch.split[g])) > 1 for g in exact)
    print(f"{len(bunch.target)} images; {len(exact)} exact duplicate groups "
          f"({across} across Training/Testing), {len(near)} near-duplicate groups")
    split = paper_split(bunch, groups=near, random_state=0)
else:
    print(f"real data not found at {data_dir}; drawing the split on phantoms instead")
    bunch = make_phantom_mri(400, image_size=32, random_state=0)
    split = paper_split(bunch, n_per_class=200, random_state=0)

print(split.summary["counts"])
counts = np.array([[split.summary["counts"][p][c] for p in ("train", "val", "test")]
                   for c in (0, 1)])
fig, ax = plt.subplots(figsize=(4, 3))
for c, offset in ((0, -0.2), (1, 0.2)):
    ax.bar(np.arange(3) + offset, counts[c], width=0.4, label=bunch.target_names[c])
ax.set_xticks(range(3), ["train", "val", "test"])
ax.set_ylabel("images")
ax.legend()
ax.set_title("paper_split: balanced, duplicate-aware")
fig.tight_layout()
