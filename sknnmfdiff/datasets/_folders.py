"""Finding the classes and image files of a folder layout, and loading them.

Holds :func:`~sknnmfdiff.datasets.load_mri_folder` and the class-name constants of the
binary task.
"""

from __future__ import annotations

import logging
import numbers
import os
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed
from sklearn.utils import Bunch
from sklearn.utils._param_validation import Interval, StrOptions, validate_params

from .._warnings import warn_at_caller
from ._common import _seed_from
from . import _clinical
from ._images import (
    IMAGE_EXTENSIONS,
    ImageLoadError,
    _check_image_size,
    _load_file,
    has_image_extension,
)

logger = logging.getLogger(__name__)

#: Folder names (case-insensitive, ``-``/``_``/space ignored) of the no-tumour
#: class; every other class folder is a tumour class in the binary task.
NEGATIVE_CLASS_NAMES = frozenset({"notumor", "notumour", "no", "normal", "healthy"})

#: ``target_names`` of the binary task: label 0 is "no tumour", label 1 "tumour".
BINARY_TARGET_NAMES = ("no tumour", "tumour")

#: Split folder names recognised at the top of the Kaggle layout (case-insensitive).
_SPLIT_NAMES = frozenset({"training", "testing", "train", "test", "validation", "val", "valid"})

#: Folder names that are never classes (archive litter).
_IGNORED_DIRS = frozenset({"__macosx"})

_LAYOUTS_HELP = (
    "expected one of these layouts: "
    "(1) Kaggle 'Brain Tumor MRI Dataset': <path>/Training|Testing/<class>/<image>; "
    "(2) class folders: <path>/<class>/<image>, at least two classes; "
    "(3) yes/no folders: <path>/yes/<image> and <path>/no/<image>. "
    f"Images are files ending in {', '.join(IMAGE_EXTENSIONS)}."
)


# --------------------------------------------------------------------------- #
# Folder layout
# --------------------------------------------------------------------------- #


def _normalise_class_name(name):
    return name.lower().replace("_", "").replace("-", "").replace(" ", "")


def _is_negative(name):
    return _normalise_class_name(name) in NEGATIVE_CLASS_NAMES


def _visible_dirs(path):
    return sorted(
        p
        for p in path.iterdir()
        if p.is_dir() and not p.name.startswith(".") and p.name.lower() not in _IGNORED_DIRS
    )


def _image_files(path):
    return sorted(
        p
        for p in path.iterdir()
        if p.is_file() and not p.name.startswith(".") and has_image_extension(p.name)
    )


def _class_entries(class_root, split):
    """``(file, class, split)`` for every image in ``class_root/<class>/``."""
    entries = []
    for class_dir in _visible_dirs(class_root):
        files = _image_files(class_dir)
        if not files:
            logger.warning("class folder %s holds no image files; skipped", class_dir)
            continue
        entries.extend((f, class_dir.name, split) for f in files)
    return entries


def _discover(path):
    """Find the layout of ``path`` and list its image files.

    Returns
    -------
    layout : {"kaggle", "yes_no", "class_folders"}
    entries : list of (Path, str, str or None)
        ``(file, class folder name, split folder name or None)``.
    """
    subdirs = _visible_dirs(path)
    if not subdirs:
        loose = _image_files(path)
        if loose:
            raise ValueError(
                f"{path} holds {len(loose)} image file(s) but no class sub-folders, so the "
                f"images have no labels; {_LAYOUTS_HELP}"
            )
        raise ValueError(f"{path} is empty: no class folders and no images; {_LAYOUTS_HELP}")

    split_dirs = [d for d in subdirs if d.name.lower() in _SPLIT_NAMES]
    if split_dirs:
        others = [d.name for d in subdirs if d not in split_dirs]
        if others:
            raise ValueError(
                f"unknown layout at {path}: split folders {[d.name for d in split_dirs]} "
                f"next to other folders {others}; {_LAYOUTS_HELP}"
            )
        entries = []
        for split_dir in split_dirs:
            entries.extend(_class_entries(split_dir, split_dir.name))
        if not entries:
            raise ValueError(
                f"no images found under the split folders of {path} "
                f"({[d.name for d in split_dirs]}); {_LAYOUTS_HELP}"
            )
        return "kaggle", entries

    entries = _class_entries(path, None)
    if not entries:
        raise ValueError(
            f"unknown layout at {path}: none of its sub-folders "
            f"{[d.name for d in subdirs]} holds image files directly; {_LAYOUTS_HELP}"
        )
    names = {_normalise_class_name(d.name) for d in subdirs}
    layout = "yes_no" if names == {"yes", "no"} else "class_folders"
    return layout, entries


# --------------------------------------------------------------------------- #
# Loader
# --------------------------------------------------------------------------- #


@validate_params(
    {
        "path": [str, os.PathLike],
        "image_size": [Interval(numbers.Integral, 1, None, closed="left"), tuple, list],
        "task": [StrOptions({"binary", "multiclass"})],
        "on_error": [StrOptions({"raise", "warn"})],
        "max_per_class": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "splits": [list, tuple, str, None],
        "random_state": ["random_state", np.random.Generator],
        "n_jobs": [numbers.Integral, None],
        "return_X_y": ["boolean"],
        "intensity": [StrOptions({"auto", "percentile"}), tuple, list],
        "slices": [StrOptions({"middle", "all"}), Interval(numbers.Integral, 0, None, closed="left")],
    },
    prefer_skip_nested_validation=True,
)
def load_mri_folder(
    path,
    *,
    image_size=128,
    task="binary",
    on_error="raise",
    max_per_class=None,
    splits=None,
    random_state=None,
    n_jobs=None,
    return_X_y=False,
    intensity="auto",
    slices="middle",
):
    """Load a folder of brain-MRI images as grayscale float32 pixels in [0, 1].

    Three layouts are recognised (folder names case-insensitive, hidden files
    and ``__MACOSX`` ignored, image files taken directly inside each class
    folder, not from deeper sub-folders):

    1. ``"kaggle"``: ``path/<split>/<class>/<image>`` with split folders named
       ``Training``/``Testing`` (also ``train``, ``test``, ``val``,
       ``validation``, ``valid``), as in the Kaggle "Brain Tumor MRI Dataset"
       (Nickparvar; glioma, meningioma, notumor, pituitary);
    2. ``"class_folders"``: ``path/<class>/<image>``, two classes or more;
    3. ``"yes_no"``: ``path/yes/<image>`` and ``path/no/<image>`` (Br35H style).

    JPEG, PNG, TIFF and BMP files, 8- or 16-bit, in grayscale, RGB, RGBA or
    palette mode are all decoded to one grayscale channel (colour by Pillow's
    ITU-R 601-2 luma, transparent pixels composited onto black), divided by
    their full scale (255 or 65535), and resized to ``image_size`` with
    Pillow's antialiased bicubic filter (the default of MATLAB's ``imresize``,
    which the paper used), then clipped to [0, 1]. Images are stretched to the
    target shape, not cropped.

    Clinical formats go into the same convention (details in
    ``sknnmfdiff.datasets._clinical`` and the "Deploying a model" page):

    - DICOM (``.dcm``, ``.dicom``; pydicom), grayscale: the modality LUT (rescale
      slope and intercept), then the file's VOI window (its first
      ``WindowCenter``/``WindowWidth`` and ``VOILUTFunction``, or its VOI LUT)
      scaled to [0, 1]; without one, 8-bit pixels by their full scale and deeper
      ones by the percentile window; ``MONOCHROME1`` is inverted (bright is 1).
    - NIfTI (``.nii``, ``.nii.gz``; nibabel): the volume reoriented to the closest
      canonical orientation (RAS+), cut into axial slices (slice 0 the most
      inferior), each shown in radiological convention (anterior at the top, the
      patient's right on the image's left); intensities through the header's
      ``cal_min``..``cal_max`` when set, else the percentile window over the volume.

    With ``slices="all"`` a volume gives one row per slice: keep the slices of a
    volume together when splitting (``bunch.filenames`` names the volume of each
    row; e.g. ``paper_split(bunch, groups=find_duplicates(bunch, kind="near") +
    find_duplicates(bunch.filenames))``), or they leak between train and test.

    Parameters
    ----------
    path : str or path-like
        Root folder of the dataset.
    image_size : int or (int, int), default=128
        Output size in pixels: ``image_size`` for a square image, or
        ``(height, width)``. The paper uses 128.
    task : {"binary", "multiclass"}, default="binary"
        ``"binary"``: label 0 for the no-tumour class (folders named
        ``notumor``, ``no_tumour``, ``no``, ``normal`` or ``healthy``, see
        :data:`~sknnmfdiff.datasets.NEGATIVE_CLASS_NAMES`) and 1 for every other
        class, with ``target_names = ["no tumour", "tumour"]``. ``"multiclass"``:
        one label per class folder, ``target_names`` being the sorted folder names.
    on_error : {"raise", "warn"}, default="raise"
        What to do with files that cannot be decoded: ``"raise"`` raises one
        :class:`~sknnmfdiff.datasets.ImageLoadError` listing every bad file and its
        reason; ``"warn"`` skips them and emits one ``UserWarning`` listing them.
    max_per_class : int, default=None
        Keep at most this many images per class of ``task`` (a tumour image in
        the binary task may come from any tumour folder), drawn without
        replacement from ``random_state`` before decoding; meant for quick
        runs. ``None`` keeps all.
    splits : str or list of str, default=None
        With the Kaggle layout, load only these split folders (e.g.
        ``"Testing"``, case-insensitive). ``None`` loads all.
    random_state : int, RandomState instance, Generator or None, default=None
        Seeds the ``max_per_class`` draw (through :func:`numpy.random.default_rng`).
    n_jobs : int, default=None
        Number of joblib threads decoding images (Pillow releases the GIL
        while decoding and resizing). ``None`` means 1, ``-1`` all cores.
    return_X_y : bool, default=False
        Return ``(data, target)`` instead of the Bunch.
    intensity : "auto", "percentile" or (float, float), default="auto"
        Intensity normalisation of 16-bit data. ``"auto"``: 16-bit PNG/TIFF by their
        full scale (65535); DICOM by its own window (or full scale for 8-bit data, or
        the percentile window); NIfTI by its ``cal_min``/``cal_max`` (or the
        percentile window). ``"percentile"`` (the window (0.5, 99.5)) or a pair
        ``(low, high)`` of percentiles in [0, 100]: the values at those percentiles
        of each file (each whole volume) map to 0 and 1, linearly, clipped, for
        every DICOM, NIfTI and 16-bit raster file, ignoring their own windows.
        8-bit raster images always use their full scale.
    slices : "middle", "all" or int, default="middle"
        Which axial slices of a NIfTI volume (and frames of a multi-frame DICOM
        file) become images: the middle one (``n_slices // 2``), all of them, or
        the one with this index (0 the most inferior); a file without that slice
        is reported as unreadable. ``max_per_class`` counts files, not slices.

    Returns
    -------
    bunch : :class:`~sklearn.utils.Bunch`
        Images in sorted order of their path relative to ``path``, with keys

        - ``data`` : ndarray of shape (n_samples, H * W), float32 in [0, 1];
        - ``images`` : ndarray of shape (n_samples, H, W), float32 in [0, 1]
          (the same memory as ``data``);
        - ``target`` : ndarray of shape (n_samples,), int64;
        - ``target_names`` : ndarray of str, the name of each label;
        - ``class_names`` : ndarray of shape (n_samples,), str, the class
          folder of each image (e.g. ``"glioma"``);
        - ``filenames`` : ndarray of shape (n_samples,), str, full paths;
        - ``slice_index`` : ndarray of shape (n_samples,), int64, the axial slice
          (NIfTI) or frame (multi-frame DICOM) of each image, -1 for a 2-D file;
        - ``split`` : ndarray of shape (n_samples,), object, the split
          folder name (``"Training"``, ``"Testing"``) or None when the layout
          has no split;
        - ``pixel_hash`` : ndarray of shape (n_samples,), str, SHA-1 of the
          original decoded grayscale pixels (before resizing, with their
          dtype and shape), so two files share a hash exactly when their
          decoded pixels are identical; feed it to
          :func:`~sknnmfdiff.datasets.find_duplicates`;
        - ``layout`` : str, one of ``"kaggle"``, ``"class_folders"``, ``"yes_no"``;
        - ``skipped`` : list of (str, str), files skipped with ``on_error="warn"``;
        - ``DESCR`` : str.

    (data, target) : tuple of ndarrays
        If ``return_X_y`` is True.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    NotADirectoryError
        If ``path`` is a file.
    ValueError
        If the folder is empty, has an unknown layout, holds a single class,
        or (binary task) has no no-tumour class folder or only one. The
        message names the path and lists the layouts expected.
    ImageLoadError
        A ``ValueError`` listing every unreadable file, with ``on_error="raise"``.

    Examples
    --------
    >>> from sknnmfdiff.datasets import load_mri_folder
    >>> bunch = load_mri_folder("../shared/data/brain-tumor-mri",
    ...                         max_per_class=5, random_state=0)  # doctest: +SKIP
    >>> bunch.data.shape  # doctest: +SKIP
    (10, 16384)
    """
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"MRI folder {str(root)!r} does not exist")
    if not root.is_dir():
        raise NotADirectoryError(f"MRI folder {str(root)!r} is a file, expected a folder")
    size = _check_image_size(image_size)
    percentiles = _clinical.check_intensity(intensity)
    slices = _clinical.check_slices(slices)

    layout, entries = _discover(root)
    if splits is not None:
        if layout != "kaggle":
            raise ValueError(
                f"splits={splits!r} needs the Kaggle layout with split folders, "
                f"but {root} has the {layout!r} layout"
            )
        wanted = {splits.lower()} if isinstance(splits, str) else {s.lower() for s in splits}
        present = sorted({e[2] for e in entries})
        missing = wanted - {s.lower() for s in present}
        if missing:
            raise ValueError(
                f"splits={splits!r}: no split folder named {sorted(missing)} in {root}; "
                f"found {present}"
            )
        entries = [e for e in entries if e[2].lower() in wanted]

    entries.sort(key=lambda e: e[0].relative_to(root).as_posix())
    class_names = np.array([e[1] for e in entries], dtype=object)
    folder_classes = sorted(set(class_names))
    if len(folder_classes) < 2:
        raise ValueError(
            f"{root} holds a single class {folder_classes}; a classification dataset "
            f"needs at least two class folders; {_LAYOUTS_HELP}"
        )

    if task == "binary":
        negatives = [c for c in folder_classes if _is_negative(c)]
        if not negatives or len(negatives) == len(folder_classes):
            raise ValueError(
                f"task='binary' needs one or more no-tumour class folders (named one of "
                f"{sorted(NEGATIVE_CLASS_NAMES)}) and one or more tumour class folders; "
                f"{root} has classes {folder_classes}. Use task='multiclass' to keep the "
                f"folder classes."
            )
        target = np.array([0 if _is_negative(c) else 1 for c in class_names], dtype=np.int64)
        target_names = np.array(BINARY_TARGET_NAMES)
    else:
        lookup = {c: i for i, c in enumerate(folder_classes)}
        target = np.array([lookup[c] for c in class_names], dtype=np.int64)
        target_names = np.array(folder_classes)

    keep = np.arange(len(entries))
    if max_per_class is not None:
        rng = np.random.default_rng(_seed_from(random_state))
        chosen = []
        for label in range(len(target_names)):
            members = np.flatnonzero(target == label)
            if len(members) > max_per_class:
                members = rng.choice(members, size=max_per_class, replace=False)
            chosen.append(members)
        keep = np.sort(np.concatenate(chosen))

    files = [entries[i][0] for i in keep]
    logger.info("decoding %d images from %s (%s layout)", len(files), root, layout)
    results = Parallel(n_jobs=n_jobs, prefer="threads")(
        delayed(_load_file)(f, size, percentiles, slices) for f in files)

    failures = [(str(f), res[1]) for f, res in zip(files, results, strict=True) if res[0] is None]
    if failures:
        if on_error == "raise":
            raise ImageLoadError(failures)
        first, why = failures[0]
        more = f" and {len(failures) - 1} more (all in the result's 'skipped')" if len(failures) > 1 else ""
        warn_at_caller(f"skipped {len(failures)} unreadable image file(s) in {root}: "
                       f"{first} ({why}){more}", UserWarning)
        ok = np.array([res[0] is not None for res in results], dtype=bool)
        keep = keep[ok]
        files = [f for f, good in zip(files, ok, strict=True) if good]
        results = [res for res, good in zip(results, ok, strict=True) if good]
        if len(np.unique(target[keep])) < 2:
            raise ValueError(
                f"after skipping {len(failures)} unreadable file(s), {root} holds fewer "
                f"than two classes"
            )

    # One row per image: a volume read with slices="all" gives several.
    rows = np.repeat(np.arange(len(files)), [len(images) for images, _ in results])
    flat = [item for images, _ in results for item in images]
    n = len(flat)
    images = np.empty((n, *size), dtype=np.float32)
    for i, (_, img, _) in enumerate(flat):
        images[i] = img
    keep = keep[rows]
    bunch = Bunch(
        data=images.reshape(n, -1),
        images=images,
        target=target[keep],
        target_names=target_names,
        class_names=np.array(class_names[keep], dtype=str),
        filenames=np.array([str(files[r]) for r in rows], dtype=str),
        slice_index=np.array([index for index, _, _ in flat], dtype=np.int64),
        split=np.array([entries[i][2] for i in keep], dtype=object),
        pixel_hash=np.array([digest for _, _, digest in flat], dtype=str),
        layout=layout,
        skipped=failures,
        DESCR=_describe(root, layout, task, size, target_names, target[keep]),
    )
    if return_X_y:
        return bunch.data, bunch.target
    return bunch


def _describe(root, layout, task, size, target_names, target):
    counts = ", ".join(
        f"{name}: {int(np.sum(target == i))}" for i, name in enumerate(target_names)
    )
    return (
        f"Brain MRI images loaded from {root} ({layout} layout), {task} task.\n"
        f"{len(target)} images, grayscale float32 in [0, 1], resized to "
        f"{size[0]} x {size[1]} pixels (Pillow antialiased bicubic).\n"
        f"Counts per label: {counts}.\n"
        "Exact duplicates may be present: see find_duplicates and paper_split."
    )
