"""Brain-MRI image folders, duplicate detection, the paper's split and phantom data.

Four public functions feed the rest of the package with a pixel matrix
``X`` of shape ``(n_samples, H * W)``, float32 in [0, 1]:

- :func:`load_mri_folder` reads the folder layouts that brain-tumour MRI
  collections ship in (the Kaggle "Brain Tumor MRI Dataset", plain class
  folders, ``yes/`` + ``no/`` folders), of raster images, DICOM or NIfTI files;
- :func:`find_duplicates` finds groups of exact (identical pixels) or near
  (perceptual hash) duplicates;
- :func:`paper_split` draws the paper's balanced 1,100 + 1,100 sample and
  splits it 70 / 20 / 10 without letting a duplicate group straddle two parts;
- :func:`make_phantom_mri` makes synthetic head-like slices with and without
  tumour-like lesions, for tests and examples that must run without real data.

The binary task of the paper labels the no-tumour class 0 and every tumour
class 1 (Nickparvar's dataset; arXiv 2603.13182, Sec. 3).

The code lives in private submodules, one concern each; this module only
re-exports their public names:

- ``_clinical``: decoding DICOM (pydicom) and NIfTI (nibabel) files into 2-D
  slices in [0, 1]: modality LUT, VOI window, percentile window, orientation;
- ``_images``: decoding one image file into grayscale float32 in [0, 1]
  (:func:`load_images`, :class:`ImageLoadError`, :data:`IMAGE_EXTENSIONS`);
- ``_folders``: finding the classes and files of a folder layout
  (:func:`load_mri_folder`, :data:`NEGATIVE_CLASS_NAMES`,
  :data:`BINARY_TARGET_NAMES`);
- ``_duplicates``: exact and near-duplicate detection (:func:`find_duplicates`);
- ``_split``: the paper's sample and split (:func:`paper_split`);
- ``_phantom``: the synthetic phantom slices (:func:`make_phantom_mri`);
- ``_common``: the ``random_state`` helper of ``_folders``, ``_split`` and
  ``_phantom``.

Imports run one way: ``_clinical`` and ``_common`` import nothing of the package,
``_images`` builds on ``_clinical``, ``_folders`` and ``_duplicates`` on ``_images``,
``_split`` on ``_duplicates`` and ``_phantom`` on ``_folders``.
"""

import logging


from ._duplicates import find_duplicates
from ._folders import BINARY_TARGET_NAMES, NEGATIVE_CLASS_NAMES, load_mri_folder
from ._images import IMAGE_EXTENSIONS, ImageLoadError, load_images
from ._phantom import make_phantom_mri
from ._split import paper_split

__all__ = [
    "BINARY_TARGET_NAMES",
    "IMAGE_EXTENSIONS",
    "NEGATIVE_CLASS_NAMES",
    "ImageLoadError",
    "find_duplicates",
    "load_images",
    "load_mri_folder",
    "make_phantom_mri",
    "paper_split",
]

#: The parent of the submodules' loggers (``sknnmfdiff.datasets``), importable here as
#: before the split: a level or handler set on it applies to all of them.
logger = logging.getLogger(__name__)
