"""Brain-MRI image folders, duplicate detection, the paper's split and phantom data.

Four public functions feed the rest of the package with a pixel matrix
``X`` of shape ``(n_samples, H * W)``, float32 in [0, 1]:

- :func:`load_mri_folder` reads the folder layouts that brain-tumour MRI
  collections ship in (the Kaggle "Brain Tumor MRI Dataset", plain class
  folders, ``yes/`` + ``no/`` folders);
- :func:`find_duplicates` finds groups of exact (identical pixels) or near
  (perceptual hash) duplicates;
- :func:`paper_split` draws the paper's balanced 1,100 + 1,100 sample and
  splits it 70 / 20 / 10 without letting a duplicate group straddle two parts;
- :func:`make_phantom_mri` makes synthetic head-like slices with and without
  tumour-like lesions, for tests and examples that must run without real data.

The binary task of the paper labels the no-tumour class 0 and every tumour
class 1 (Nickparvar's dataset; arXiv 2603.13182, Sec. 3).
"""

from __future__ import annotations

import hashlib
import logging
import numbers
import os
import warnings
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed
from PIL import Image
from sklearn.utils import Bunch
from sklearn.utils._param_validation import Interval, StrOptions, validate_params

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

logger = logging.getLogger(__name__)

#: File extensions read by :func:`load_mri_folder` (compared case-insensitively).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")

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


class ImageLoadError(ValueError):
    """One or more image files could not be read or decoded.

    Parameters
    ----------
    failures : list of (str, str)
        ``(path, reason)`` for every file that failed.

    Attributes
    ----------
    failures : list of (str, str)
        ``(path, reason)`` for every file that failed, in file order.
    """

    def __init__(self, failures):
        self.failures = list(failures)
        lines = "\n".join(f"  {path}: {reason}" for path, reason in self.failures)
        super().__init__(
            f"{len(self.failures)} image file(s) could not be loaded "
            f"(pass on_error='warn' to skip them):\n{lines}"
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
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS
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
# Decoding
# --------------------------------------------------------------------------- #


def _to_gray_array(img):
    """Decode a Pillow image into a 2-D grayscale integer array and its full scale.

    8-bit modes (``1``, ``L``, ``P``, ``RGB``, ``CMYK``, ...) give uint8 with
    full scale 255 (colour through Pillow's ITU-R 601-2 luma); 16-bit modes
    (``I;16*``, or ``I`` holding values in [0, 65535]) give uint16 with full
    scale 65535. Transparent pixels (``LA``, ``RGBA``, ``PA``, palette with a
    transparency entry) are composited onto black, the background of an MRI.
    """
    mode = img.mode
    if mode.startswith("I;16"):
        arr = np.asarray(img)
        return arr.astype(np.uint16, copy=False), 65535
    if mode == "I":
        arr = np.asarray(img)
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise ValueError(
                f"32-bit integer pixels outside the 16-bit range [0, 65535] "
                f"(min {arr.min()}, max {arr.max()})"
            )
        return arr.astype(np.uint16), 65535
    if mode == "F":
        raise ValueError("floating-point images (Pillow mode 'F') are not supported")
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif mode == "PA":
        img = img.convert("RGBA")
    if img.mode in ("LA", "RGBA", "La", "RGBa"):
        rgba = img.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        img = Image.alpha_composite(black, rgba)
    return np.asarray(img.convert("L"), dtype=np.uint8), 255


def _pixel_hash(gray):
    h = hashlib.sha1(f"{gray.dtype.str}{gray.shape}".encode())
    h.update(np.ascontiguousarray(gray).tobytes())
    return h.hexdigest()


def _resize(gray01, size):
    """Resize float32 [0, 1] pixels to ``size`` = (H, W) with Pillow's antialiased bicubic."""
    height, width = size
    if gray01.shape == (height, width):
        return gray01
    out = Image.fromarray(gray01, mode="F").resize(
        (width, height), resample=Image.Resampling.BICUBIC
    )
    return np.clip(np.asarray(out, dtype=np.float32), 0.0, 1.0)


def _load_one(path, size):
    """Return ``(image float32 (H, W) in [0, 1], pixel hash)`` or ``(None, reason)``."""
    try:
        with Image.open(path) as img:
            img.load()
            gray, scale = _to_gray_array(img)
    except Exception as exc:  # noqa: BLE001 - decoder plugins raise many types; all are reported
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return None, reason
    if gray.ndim != 2 or min(gray.shape) == 0:
        return None, f"decoded to an array of shape {gray.shape}, expected a 2-D image"
    digest = _pixel_hash(gray)
    gray01 = gray.astype(np.float32) / np.float32(scale)
    return _resize(gray01, size), digest


def load_images(paths, *, image_size=128):
    """Load individual image files as grayscale float32 pixel rows in [0, 1].

    The same decoding and resizing as :func:`load_mri_folder` (grayscale luma,
    8-bit / 16-bit scaling, transparency onto black, antialiased bicubic), for
    images outside any folder layout, e.g. to classify them with a saved model.

    Parameters
    ----------
    paths : sequence of str or os.PathLike
        Image files (JPEG, PNG, TIFF, BMP).
    image_size : int or (int, int), default=128
        Output side (or (height, width)) in pixels; use the size the model was
        trained at.

    Returns
    -------
    X : ndarray of shape (n_files, height * width), dtype float32
        One row per file, in the order given, values in [0, 1].

    Raises
    ------
    FileNotFoundError
        If a path does not exist (the message names it).
    IsADirectoryError
        If a path is a folder.
    ImageLoadError
        If files exist but cannot be decoded; lists every such file and why.
    ValueError
        If ``paths`` is empty or ``image_size`` is invalid.
    """
    size = _check_image_size(image_size)
    paths = [os.fspath(p) for p in paths]
    if not paths:
        raise ValueError("load_images needs at least one image file, got none")
    folders = [p for p in paths if os.path.isdir(p)]
    if folders:
        raise IsADirectoryError(
            f"expected image files, got folder(s): {', '.join(folders)} "
            "(use load_mri_folder for a folder)"
        )
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise FileNotFoundError(f"no such image file: {', '.join(missing)}")
    X = np.empty((len(paths), size[0] * size[1]), dtype=np.float32)
    failures = []
    for i, p in enumerate(paths):
        img, info = _load_one(p, size)
        if img is None:
            failures.append((p, info))
        else:
            X[i] = img.reshape(-1)
    if failures:
        raise ImageLoadError(failures)
    return X


def _check_image_size(image_size):
    if isinstance(image_size, numbers.Integral) and not isinstance(image_size, bool):
        size = (int(image_size), int(image_size))
    elif (
        isinstance(image_size, tuple | list)
        and len(image_size) == 2
        and all(isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in image_size)
    ):
        size = (int(image_size[0]), int(image_size[1]))
    else:
        raise ValueError(
            f"image_size must be an int or a (height, width) pair of ints, got {image_size!r}"
        )
    if min(size) < 1:
        raise ValueError(f"image_size must be positive, got {image_size!r}")
    return size


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
        :data:`NEGATIVE_CLASS_NAMES`) and 1 for every other class, with
        ``target_names = ["no tumour", "tumour"]``. ``"multiclass"``: one label
        per class folder, ``target_names`` being the sorted folder names.
    on_error : {"raise", "warn"}, default="raise"
        What to do with files that cannot be decoded: ``"raise"`` raises one
        :class:`ImageLoadError` listing every bad file and its reason;
        ``"warn"`` skips them and emits one ``UserWarning`` listing them.
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
        - ``split`` : ndarray of shape (n_samples,), object, the split
          folder name (``"Training"``, ``"Testing"``) or None when the layout
          has no split;
        - ``pixel_hash`` : ndarray of shape (n_samples,), str, SHA-1 of the
          original decoded grayscale pixels (before resizing, with their
          dtype and shape), so two files share a hash exactly when their
          decoded pixels are identical; feed it to :func:`find_duplicates`;
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
    results = Parallel(n_jobs=n_jobs, prefer="threads")(delayed(_load_one)(f, size) for f in files)

    failures = [(str(f), res[1]) for f, res in zip(files, results, strict=True) if res[0] is None]
    if failures:
        if on_error == "raise":
            raise ImageLoadError(failures)
        listing = "\n".join(f"  {p}: {r}" for p, r in failures)
        warnings.warn(
            f"skipped {len(failures)} unreadable image file(s) in {root}:\n{listing}",
            UserWarning,
            stacklevel=2,
        )
        ok = np.array([res[0] is not None for res in results], dtype=bool)
        keep = keep[ok]
        files = [f for f, good in zip(files, ok, strict=True) if good]
        results = [res for res, good in zip(results, ok, strict=True) if good]
        if len(np.unique(target[keep])) < 2:
            raise ValueError(
                f"after skipping {len(failures)} unreadable file(s), {root} holds fewer "
                f"than two classes"
            )

    n = len(results)
    images = np.empty((n, *size), dtype=np.float32)
    for i, (img, _) in enumerate(results):
        images[i] = img
    bunch = Bunch(
        data=images.reshape(n, -1),
        images=images,
        target=target[keep],
        target_names=target_names,
        class_names=np.array(class_names[keep], dtype=str),
        filenames=np.array([str(f) for f in files], dtype=str),
        split=np.array([entries[i][2] for i in keep], dtype=object),
        pixel_hash=np.array([digest for _, digest in results], dtype=str),
        layout=layout,
        skipped=failures,
        DESCR=_describe(root, layout, task, size, target_names, target[keep]),
    )
    if return_X_y:
        return bunch.data, bunch.target
    return bunch


def _seed_from(random_state):
    """Turn an sklearn-style ``random_state`` into something ``default_rng`` accepts."""
    if isinstance(random_state, np.random.RandomState):
        return random_state.randint(np.iinfo(np.int32).max)
    return random_state


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


# --------------------------------------------------------------------------- #
# Duplicates
# --------------------------------------------------------------------------- #


def _groups_from_keys(keys):
    """Groups of 2+ indices sharing a key, sorted by their first index."""
    order = {}
    for i, key in enumerate(keys):
        order.setdefault(key, []).append(i)
    groups = [np.array(idx, dtype=np.int64) for idx in order.values() if len(idx) > 1]
    groups.sort(key=lambda g: g[0])
    return groups


def _phash_bits(images, hash_size):
    import imagehash

    bits = np.empty((len(images), hash_size * hash_size), dtype=bool)
    for i, img in enumerate(images):
        u8 = np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)
        bits[i] = imagehash.phash(Image.fromarray(u8), hash_size=hash_size).hash.ravel()
    return bits


def _hamming_groups(bits, max_distance, chunk=512):
    """Connected components of the graph linking hashes within ``max_distance`` bits."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(bits)
    packed = np.packbits(bits, axis=1)
    n_words = -(-packed.shape[1] // 8)
    padded = np.zeros((n, n_words * 8), dtype=np.uint8)
    padded[:, : packed.shape[1]] = packed
    words = padded.view(np.uint64)
    rows, cols = [], []
    for start in range(0, n, chunk):
        block = words[start : start + chunk]
        dist = np.zeros((len(block), n), dtype=np.int64)
        for w in range(n_words):
            dist += np.bitwise_count(block[:, w, None] ^ words[None, :, w])
        r, c = np.nonzero(dist <= max_distance)
        r = r + start
        upper = c > r
        rows.append(r[upper])
        cols.append(c[upper])
    rows = np.concatenate(rows) if rows else np.empty(0, dtype=np.int64)
    cols = np.concatenate(cols) if cols else np.empty(0, dtype=np.int64)
    graph = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return _groups_from_keys(labels)


@validate_params(
    {
        "images": ["array-like", Bunch],
        "kind": [StrOptions({"exact", "near"})],
        "max_distance": [Interval(numbers.Integral, 0, None, closed="left")],
        "hash_size": [Interval(numbers.Integral, 2, None, closed="left")],
    },
    prefer_skip_nested_validation=True,
)
def find_duplicates(images, *, kind="exact", max_distance=4, hash_size=8):
    """Find groups of exact or near-duplicate images.

    Parameters
    ----------
    images : Bunch, ndarray of shape (n_samples, H, W), or array-like of str
        What to compare:

        - a Bunch from :func:`load_mri_folder` (or :func:`make_phantom_mri`):
          ``kind="exact"`` compares its ``pixel_hash`` (the original decoded
          pixels, before resizing), ``kind="near"`` hashes its ``images``;
        - an image array (float pixels in [0, 1]): ``kind="exact"`` compares
          the pixels as given, ``kind="near"`` hashes them;
        - a 1-D array of hashable keys (e.g. ``bunch.pixel_hash``), only
          with ``kind="exact"``: equal keys form a group.
    kind : {"exact", "near"}, default="exact"
        ``"exact"``: identical pixels. ``"near"``: perceptual hash (pHash,
        the DCT hash of Zauner 2010 as implemented by ``imagehash.phash``,
        computed on the 8-bit rounded image) within ``max_distance`` bits,
        groups being the connected components of the "within distance"
        graph (so a group can chain images further apart than
        ``max_distance``). Identical images have identical hashes, so every
        exact group lies inside one near group.
    max_distance : int, default=4
        Largest Hamming distance, in bits out of ``hash_size ** 2``, between
        the pHashes of two near duplicates. Ignored for ``kind="exact"``.
        The default 4 of 64 bits was chosen on the shared Kaggle data (7,019
        images at 128 x 128): pairs at distance 0-2 are re-saved or re-scaled
        copies (pixel correlation >= 0.93), pairs at 4 are mostly copies or
        neighbouring slices, and from 6 on the graph chains unrelated images
        into one component (280 images at 6, 2,577 at 8). At 4 it finds 1,074
        groups holding 3,570 images, the largest of 28; exact duplicates are
        300 groups holding 726 images.
    hash_size : int, default=8
        Side of the pHash bit matrix (``hash_size ** 2`` bits).

    Returns
    -------
    groups : list of ndarray of int64
        Each group holds the sorted indices of two or more duplicates;
        groups are sorted by their first index. Images without a duplicate
        are in no group.

    Raises
    ------
    ValueError
        If ``images`` has an unsupported shape, or hash keys are given with
        ``kind="near"``.

    Examples
    --------
    >>> import numpy as np
    >>> from sknnmfdiff.datasets import find_duplicates
    >>> imgs = np.zeros((3, 4, 4), dtype=np.float32)
    >>> imgs[1, 0, 0] = 1.0
    >>> find_duplicates(imgs)
    [array([0, 2])]
    """
    if isinstance(images, Bunch):
        if kind == "exact":
            if "pixel_hash" in images:
                return _groups_from_keys(np.asarray(images["pixel_hash"]).tolist())
            images = images["images"]
        else:
            images = images["images"]

    arr = np.asarray(images)
    if arr.ndim == 1:
        if kind == "near":
            raise ValueError(
                "kind='near' needs images of shape (n_samples, H, W) or a Bunch, "
                f"got a 1-D array of {len(arr)} keys"
            )
        return _groups_from_keys(arr.tolist())
    if arr.ndim != 3:
        raise ValueError(
            f"images must be a Bunch, an array of shape (n_samples, H, W) or a 1-D array "
            f"of hash keys; got an array of shape {arr.shape}"
        )
    if kind == "exact":
        return _groups_from_keys([_pixel_hash(np.ascontiguousarray(a)) for a in arr])
    bits = _phash_bits(arr, hash_size)
    return _hamming_groups(bits, max_distance)


# --------------------------------------------------------------------------- #
# Paper split
# --------------------------------------------------------------------------- #


class _UnionFind:
    def __init__(self, n):
        self.parent = np.arange(n)

    def find(self, i):
        parent = self.parent
        root = i
        while parent[root] != root:
            root = parent[root]
        while parent[i] != root:
            parent[i], i = root, parent[i]
        return root

    def union_group(self, members):
        members = list(members)
        if len(members) < 2:
            return
        root = self.find(members[0])
        for m in members[1:]:
            other = self.find(m)
            if other != root:
                self.parent[other] = root

    def labels(self):
        return np.array([self.find(i) for i in range(len(self.parent))])


def _allocate(total, fractions):
    """Integer sizes summing to ``total``, proportional to ``fractions`` (largest remainder)."""
    raw = np.asarray(fractions, dtype=float) * total
    sizes = np.floor(raw + 1e-9).astype(np.int64)
    rest = total - sizes.sum()
    order = np.argsort(-(raw - sizes), kind="stable")
    sizes[order[:rest]] += 1
    return sizes


def _group_assign(items, labels, group_of, classes, fractions, rng):
    """Assign ``items`` to parts, whole groups at a time, with per-class target sizes.

    Groups of two or more items are placed first, largest first, each into
    the part that has room for it and the most remaining room relative to its
    target; the singletons of each class then fill the remaining room in
    random order, which makes the sizes exact whenever the groups fit.
    """
    n_parts = len(fractions)
    n_cls = len(classes)
    cls_index = {c: k for k, c in enumerate(classes)}
    y = np.array([cls_index[c] for c in labels[items]])
    targets = np.stack([_allocate(np.sum(y == k), fractions) for k in range(n_cls)])
    room = targets.copy()
    part = np.full(len(items), -1)

    gids = group_of[items]
    uniq, inverse, counts = np.unique(gids, return_inverse=True, return_counts=True)
    multi = np.flatnonzero(counts > 1)
    multi = multi[rng.permutation(len(multi))]
    multi = multi[np.argsort(-counts[multi], kind="stable")]
    overflow = 0
    for g in multi:
        pos = np.flatnonzero(inverse == g)
        need = np.bincount(y[pos], minlength=n_cls)
        fits = np.all(room >= need[:, None], axis=0)
        total_room = room.sum(axis=0) / np.maximum(targets.sum(axis=0), 1)
        tie = rng.random(n_parts) * 1e-9
        if fits.any():
            p = int(np.argmax(np.where(fits, total_room + tie, -np.inf)))
        else:
            p = int(np.argmax(total_room + tie))
            overflow += 1
        part[pos] = p
        room[:, p] -= need
    if overflow:
        logger.warning(
            "%d duplicate group(s) did not fit the target sizes; part sizes are approximate",
            overflow,
        )
    for k in range(n_cls):
        free = np.flatnonzero((part == -1) & (y == k))
        free = free[rng.permutation(len(free))]
        start = 0
        for p in range(n_parts):
            take = max(int(room[k, p]), 0) if p < n_parts - 1 else len(free) - start
            part[free[start : start + take]] = p
            start += take
    return part


@validate_params(
    {
        "X": ["array-like", Bunch],
        "y": ["array-like", None],
        "groups": [list, tuple, None],
        "n_per_class": [Interval(numbers.Integral, 1, None, closed="left")],
        "train_size": [Interval(numbers.Real, 0, 1, closed="neither")],
        "val_size": [Interval(numbers.Real, 0, 1, closed="left")],
        "test_size": [Interval(numbers.Real, 0, 1, closed="left")],
        "random_state": ["random_state", np.random.Generator],
    },
    prefer_skip_nested_validation=True,
)
def paper_split(
    X,
    y=None,
    *,
    groups=None,
    n_per_class=1100,
    train_size=0.7,
    val_size=0.2,
    test_size=0.1,
    random_state=0,
):
    """Draw the paper's balanced sample and split it without duplicate leakage.

    The protocol (arXiv 2603.13182, Sec. 4; leakage control is our addition):

    1. collapse exact duplicates, keeping the first image (in input order) of
       each group; a group whose copies carry different labels is dropped
       whole, its label being ambiguous;
    2. draw ``n_per_class`` unique images of each of the two classes, without
       replacement, from ``numpy.random.default_rng(random_state)``;
    3. split the sample into train / validation / test with the given
       fractions, stratified by class, with every duplicate group (the exact
       groups, merged with ``groups`` when given, transitively) kept inside
       one part. Sizes are exact (1,540 / 440 / 220 for the defaults, 770 /
       220 / 110 per class) whenever the groups fit.

    Parameters
    ----------
    X : Bunch or array-like of shape (n_samples, n_features)
        A binary-task Bunch from :func:`load_mri_folder` (exact duplicates are
        then read from its ``pixel_hash``, the original pixels), or a pixel
        matrix (exact duplicates are then rows with identical values).
    y : array-like of shape (n_samples,), default=None
        Binary labels, required with an array ``X`` and ignored with a Bunch.
    groups : list of array-like of int, default=None
        Further duplicate groups as returned by :func:`find_duplicates`, e.g.
        ``find_duplicates(bunch, kind="near")``. Their members are kept in one
        part (near duplicates are not collapsed).
    n_per_class : int, default=1100
        Unique images drawn per class.
    train_size, val_size, test_size : float, default=0.7, 0.2, 0.1
        Fractions of the sample in each part; they must sum to 1.
    random_state : int, Generator or None, default=0
        Seeds the sample and the split.

    Returns
    -------
    split : :class:`~sklearn.utils.Bunch`
        ``train``, ``val``, ``test`` : ndarray of int64, sorted indices into
        ``X``; ``summary`` : dict with ``n_input``, ``n_exact_groups``,
        ``n_exact_duplicates_removed`` (images dropped as copies),
        ``n_conflicting_groups`` and ``n_conflicting_images_removed``,
        ``n_unique_per_class``, ``n_groups_in_sample`` (groups of 2+ sampled
        images kept together) and ``counts`` (``{part: {label: count}}``).

    Raises
    ------
    ValueError
        If the labels are not binary, the fractions do not sum to 1, ``y`` is
        missing or of the wrong length, a group index is out of range, or a
        class has fewer than ``n_per_class`` unique images.

    Examples
    --------
    >>> from sknnmfdiff.datasets import make_phantom_mri, paper_split
    >>> bunch = make_phantom_mri(60, image_size=16, random_state=0)
    >>> split = paper_split(bunch, n_per_class=30, random_state=0)
    >>> len(split.train), len(split.val), len(split.test)
    (42, 12, 6)
    """
    if abs(train_size + val_size + test_size - 1.0) > 1e-6:
        raise ValueError(
            f"train_size + val_size + test_size must be 1, got "
            f"{train_size} + {val_size} + {test_size} = {train_size + val_size + test_size}"
        )
    if isinstance(X, Bunch):
        target = np.asarray(X["target"])
        n = len(target)
        keys = (
            np.asarray(X["pixel_hash"]).tolist()
            if "pixel_hash" in X
            else [_pixel_hash(np.ascontiguousarray(row)) for row in np.asarray(X["data"])]
        )
    else:
        if y is None:
            raise ValueError("paper_split needs y when X is an array (or pass a Bunch)")
        data = np.asarray(X)
        target = np.asarray(y)
        n = len(data)
        if target.shape != (n,):
            raise ValueError(
                f"y must have shape ({n},) to match X, got {target.shape}"
            )
        keys = [_pixel_hash(np.ascontiguousarray(row)) for row in data.reshape(n, -1)]
    classes = np.unique(target)
    if len(classes) != 2:
        raise ValueError(
            f"paper_split implements the paper's binary task and needs exactly two "
            f"classes, got {len(classes)}: {classes.tolist()} (load with task='binary')"
        )

    rng = np.random.default_rng(_seed_from(random_state))

    # 1. collapse exact duplicates
    exact = _groups_from_keys(keys)
    candidate = np.ones(n, dtype=bool)
    n_conflicting = n_conflicting_images = n_removed = 0
    for g in exact:
        if len(np.unique(target[g])) > 1:
            candidate[g] = False
            n_conflicting += 1
            n_conflicting_images += len(g)
        else:
            candidate[g[1:]] = False
            n_removed += len(g) - 1

    # 2. balanced draw
    unique_per_class = {c.item(): int(np.sum(candidate & (target == c))) for c in classes}
    sample = []
    for c in classes:
        pool = np.flatnonzero(candidate & (target == c))
        if len(pool) < n_per_class:
            raise ValueError(
                f"class {c.item()!r} has {len(pool)} unique images after collapsing exact "
                f"duplicates, fewer than n_per_class={n_per_class}"
            )
        sample.append(rng.choice(pool, size=n_per_class, replace=False))
    sample = np.sort(np.concatenate(sample))

    # 3. group-aware stratified split
    uf = _UnionFind(n)
    for g in exact:
        uf.union_group(g)
    for k, g in enumerate(groups or []):
        g = np.asarray(g, dtype=np.int64).ravel()
        if g.size and (g.min() < 0 or g.max() >= n):
            raise ValueError(
                f"groups[{k}] holds index {int(g.max() if g.max() >= n else g.min())}, "
                f"outside [0, {n - 1}]"
            )
        uf.union_group(g.tolist())
    group_of = uf.labels()
    fractions = (train_size, val_size, test_size)
    part = _group_assign(sample, target, group_of, classes, fractions, rng)

    names = ("train", "val", "test")
    parts = {name: np.sort(sample[part == p]) for p, name in enumerate(names)}
    sampled_groups = np.unique(group_of[sample], return_counts=True)[1]
    summary = {
        "n_input": int(n),
        "n_exact_groups": len(exact),
        "n_exact_duplicates_removed": int(n_removed),
        "n_conflicting_groups": int(n_conflicting),
        "n_conflicting_images_removed": int(n_conflicting_images),
        "n_unique_per_class": unique_per_class,
        "n_groups_in_sample": int(np.sum(sampled_groups > 1)),
        "counts": {
            name: {c.item(): int(np.sum(target[idx] == c)) for c in classes}
            for name, idx in parts.items()
        },
        "random_state": random_state if isinstance(random_state, numbers.Integral) else None,
    }
    logger.info("paper_split: %s", summary)
    return Bunch(**parts, summary=summary)


# --------------------------------------------------------------------------- #
# Phantom data
# --------------------------------------------------------------------------- #


def _cosine_basis(n, n_freq, dtype=np.float32):
    """Low-frequency cosine basis of shape (n, n_freq) on [0, 1], for smooth fields."""
    t = (np.arange(n) + 0.5) / n
    return np.cos(np.pi * np.outer(t, np.arange(n_freq))).astype(dtype)


def _ramp(r, width):
    """Soft inside-indicator of ``r < 1``: 1 inside, 0 outside, linear ramp of ``width``."""
    return np.clip((1.0 - r) / (2.0 * width) + 0.5, 0.0, 1.0)


# Where the three kinds of tumour-like lesion sit, in head coordinates (x right,
# y down, head semi-axes about 0.7 x 0.9): "sellar" lesions near the skull base
# on the midline (pituitary-like), "peripheral" ones against the inner skull
# (meningioma-like), "intra-axial" ones anywhere in the brain (glioma-like).
_LESION_KINDS = ("sellar", "peripheral", "intra-axial")


def _lesion_centre(rng, kind, a_brain, b_brain):
    if kind == "sellar":
        return rng.normal(0.0, 0.05), rng.uniform(0.25, 0.4)
    if kind == "peripheral":
        angle = rng.uniform(0, 2 * np.pi)
        depth = rng.uniform(0.78, 0.9)
        return depth * a_brain * np.cos(angle), depth * b_brain * np.sin(angle)
    while True:
        cx, cy = rng.uniform(-0.6, 0.6, size=2)
        if (cx / a_brain) ** 2 + (cy / b_brain) ** 2 < 0.55:
            return cx, cy


def _phantom_slice(rng, xx, yy, basis_y, basis_x, lesion):
    """One head-like slice on the grid ``xx, yy`` in [-1, 1]; returns float32 in [0, 1]."""
    # pose: rotation, shift, scale
    theta = rng.uniform(-0.08, 0.08)
    cos, sin = np.cos(theta), np.sin(theta)
    scale = rng.uniform(0.95, 1.02)
    dx, dy = rng.uniform(-0.02, 0.02, size=2)
    u = (cos * (xx - dx) + sin * (yy - dy)) / scale
    v = (-sin * (xx - dx) + cos * (yy - dy)) / scale

    def smooth(n_freq, amplitude):
        coef = rng.normal(0.0, 1.0, size=(n_freq, n_freq)).astype(np.float32)
        coef /= 1.0 + np.add.outer(np.arange(n_freq), np.arange(n_freq))
        coef[0, 0] = 0.0
        field = basis_y[:, :n_freq] @ coef @ basis_x[:, :n_freq].T
        return field * (amplitude / (np.abs(field).max() + 1e-6))

    a_head = rng.uniform(0.66, 0.76)
    b_head = rng.uniform(0.82, 0.92)
    thickness = rng.uniform(0.06, 0.1)
    a_brain, b_brain = a_head - thickness, b_head - thickness
    head = _ramp((u / a_head) ** 2 + (v / b_head) ** 2, 0.03)
    r_brain = (u / a_brain) ** 2 + (v / b_brain) ** 2
    brain = _ramp(r_brain, 0.03)

    img = (head - brain) * rng.uniform(0.8, 0.9)
    white = _ramp(r_brain / rng.uniform(0.45, 0.65) + smooth(6, 0.35), 0.15)
    tissue = rng.uniform(0.42, 0.52) + smooth(10, rng.uniform(0.03, 0.07))
    img += brain * (tissue + white * rng.uniform(0.05, 0.12))

    # lesions first, so that their mass effect can push the ventricles
    shift = 0.0
    if lesion:
        n_lesions = 1 if rng.random() < 0.8 else 2
        for _ in range(n_lesions):
            kind = _LESION_KINDS[rng.choice(3, p=(0.4, 0.3, 0.3))]
            cx, cy = _lesion_centre(rng, kind, a_brain, b_brain)
            radius = rng.uniform(0.12, 0.3)
            ecc = rng.uniform(0.75, 1.3)
            r2 = ((u - cx) / (radius * ecc)) ** 2 + ((v - cy) / (radius / ecc)) ** 2
            faint = rng.random() < 0.15
            contrast = rng.uniform(0.1, 0.2) if faint else rng.uniform(0.3, 0.6)
            sign = -1.0 if (kind == "intra-axial" and rng.random() < 0.3) else 1.0
            blob = np.exp(-np.minimum(r2, 30.0) * rng.uniform(1.0, 2.5))
            if kind == "intra-axial" and rng.random() < 0.4:  # ring with a darker core
                blob = blob - 1.2 * np.exp(-np.minimum(r2, 30.0) * 5.0)
            img += brain * (sign * contrast) * blob
            if kind != "sellar":  # vasogenic oedema: a broad, faint bright halo
                halo = np.exp(-np.minimum(r2, 30.0) / rng.uniform(4.0, 9.0))
                img += brain * rng.uniform(0.08, 0.18) * halo
            shift -= np.sign(cx) * radius * 0.3
    # ventricles: two dark lobes near the midline
    vx = rng.uniform(0.06, 0.11)
    vy = rng.uniform(0.12, 0.22)
    vc = rng.uniform(-0.1, 0.05)
    depth = rng.uniform(0.2, 0.32)
    for side in (-1.0, 1.0):
        rv = ((u - shift - side * vx * 1.1) / vx) ** 2 + ((v - vc) / vy) ** 2
        img -= brain * _ramp(rv, 0.25) * depth

    # acquisition: gain, bias field, noise
    bias = 1.0 + rng.uniform(-0.12, 0.12) * xx + rng.uniform(-0.12, 0.12) * yy
    img = img * (rng.uniform(0.92, 1.08) * bias)
    sigma = rng.uniform(0.01, 0.035)
    img += rng.standard_normal(size=img.shape, dtype=np.float32) * sigma * (0.3 + head)
    return np.clip(img, 0.0, 1.0)


@validate_params(
    {
        "n_samples": [Interval(numbers.Integral, 2, None, closed="left")],
        "image_size": [Interval(numbers.Integral, 8, None, closed="left"), tuple, list],
        "random_state": ["random_state", np.random.Generator],
    },
    prefer_skip_nested_validation=True,
)
def make_phantom_mri(n_samples, *, image_size=128, random_state=None):
    """Make SYNTHETIC head-like MRI slices with and without tumour-like lesions.

    Each slice has a bright skull ring, a brain ellipse with smooth texture
    and a brighter white-matter core, two dark ventricles, a random pose
    (rotation up to about 9 degrees, shift up to 4 % of the field of view,
    scale 0.90-1.03), a random gain, a linear bias field and Gaussian noise.
    Tumour slices (label 1) add one lesion (two in 20 % of them) inside the
    brain, a Gaussian blob of radius 7-20 % of the half field of view and
    contrast 0.2-0.5 (15 % faint: 0.06-0.15), of one of three kinds: sellar
    (midline near the skull base, pituitary-like, 40 %), peripheral (against
    the inner skull, meningioma-like, 30 %) or intra-axial (anywhere, glioma-
    like, 30 %; of these 30 % darker than tissue and 40 % ring-enhancing).
    Each lesion pushes the ventricles away (mass effect). Classes are
    balanced (the extra image of an odd ``n_samples`` is a no-tumour one) and
    shuffled.

    The task is learnable but not trivial: logistic regression on the raw
    pixels, trained on 2,000 phantoms and tested on 1,000 others, scores
    about 0.74 (32 x 32, C=0.1), 0.77 (64 x 64, C=0.1) and 0.76 (128 x 128,
    C=0.01) accuracy; an RBF SVC at 32 x 32 about 0.77.

    These images are not medical data and say nothing about real MRI; they
    exist so that the package can be tested and demonstrated offline.

    Parameters
    ----------
    n_samples : int
        Number of images, 2 or more.
    image_size : int or (int, int), default=128
        Side in pixels, or ``(height, width)``.
    random_state : int, RandomState instance, Generator or None, default=None
        Seeds every draw (through :func:`numpy.random.default_rng`); the same
        seed gives the same images.

    Returns
    -------
    bunch : :class:`~sklearn.utils.Bunch`
        Same keys as :func:`load_mri_folder`: ``data`` (n_samples, H * W)
        float32 in [0, 1], ``images`` (n_samples, H, W), ``target`` int64
        (0 no tumour, 1 tumour), ``target_names``, ``class_names``,
        ``filenames`` (``"phantom-00001"``, ...), ``split`` (all None),
        ``pixel_hash``, ``layout`` (``"phantom"``), ``skipped`` (empty) and a
        ``DESCR`` stating that the data are synthetic.
    """
    height, width = _check_image_size(image_size)
    if min(height, width) < 8:
        raise ValueError(f"image_size must be at least 8 pixels, got {image_size!r}")
    rng = np.random.default_rng(_seed_from(random_state))
    n_pos = n_samples // 2
    target = np.zeros(n_samples, dtype=np.int64)
    target[rng.permutation(n_samples)[:n_pos]] = 1

    ys = np.linspace(-1.0, 1.0, height, dtype=np.float32)
    xs = np.linspace(-1.0, 1.0, width, dtype=np.float32) * np.float32(width / height)
    xx, yy = np.meshgrid(xs, ys)
    basis_y, basis_x = _cosine_basis(height, 10), _cosine_basis(width, 10)
    images = np.empty((n_samples, height, width), dtype=np.float32)
    for i in range(n_samples):
        images[i] = _phantom_slice(rng, xx, yy, basis_y, basis_x, bool(target[i]))

    target_names = np.array(BINARY_TARGET_NAMES)
    return Bunch(
        data=images.reshape(n_samples, -1),
        images=images,
        target=target,
        target_names=target_names,
        class_names=np.array(["phantom-normal", "phantom-lesion"])[target],
        filenames=np.array([f"phantom-{i + 1:05d}" for i in range(n_samples)]),
        split=np.full(n_samples, None, dtype=object),
        pixel_hash=np.array([_pixel_hash(img) for img in images]),
        layout="phantom",
        skipped=[],
        DESCR=(
            "SYNTHETIC phantom data, NOT real MRI: "
            f"{n_samples} computer-generated head-like slices of {height} x {width} pixels "
            "(skull ring, brain ellipse, ventricles, smooth texture, random pose, gain, bias "
            f"field and noise), {n_pos} of them with tumour-like lesions (label 1) and "
            f"{n_samples - n_pos} without (label 0). Made by "
            "sknnmfdiff.datasets.make_phantom_mri for tests and examples; results on these "
            "images say nothing about clinical performance."
        ),
    )
