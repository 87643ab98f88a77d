"""Decoding image files into grayscale float32 pixels in [0, 1]: raster images through
Pillow here, DICOM and NIfTI through ``_clinical``."""

from __future__ import annotations

import hashlib
import numbers
import os

import numpy as np
from PIL import Image

from . import _clinical

#: File name endings read by :func:`~sknnmfdiff.datasets.load_mri_folder` (compared
#: case-insensitively): raster images, DICOM and NIfTI.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp",
                    *_clinical.DICOM_EXTENSIONS, *_clinical.NIFTI_EXTENSIONS)


def has_image_extension(name):
    """Whether the file name ``name`` ends in one of :data:`IMAGE_EXTENSIONS`."""
    return str(name).lower().endswith(IMAGE_EXTENSIONS)


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


def _reason(exc):
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _load_one(path, size, percentiles=None):
    """Return ``(image float32 (H, W) in [0, 1], pixel hash)`` or ``(None, reason)``.

    A raster image; 16-bit pixels through the percentile window when ``percentiles``
    is given, else by their full scale, like 8-bit ones.
    """
    try:
        with Image.open(path) as img:
            img.load()
            gray, scale = _to_gray_array(img)
    except Exception as exc:  # noqa: BLE001 - decoder plugins raise many types; all are reported
        return None, _reason(exc)
    if gray.ndim != 2 or min(gray.shape) == 0:
        return None, f"decoded to an array of shape {gray.shape}, expected a 2-D image"
    digest = _pixel_hash(gray)
    if percentiles is not None and scale == 65535:
        gray01 = _clinical.percentile_window(gray, percentiles)
    else:
        gray01 = gray.astype(np.float32) / np.float32(scale)
    return _resize(gray01, size), digest


def _load_file(path, size, percentiles=None, slices="middle"):
    """Every image of one file: ``([(slice index, image (H, W), pixel hash), ...], None)``
    or ``(None, reason)``. Raster images and single DICOM frames have slice index -1."""
    kind = _clinical.kind_of(path)
    if kind is None:
        img, info = _load_one(path, size, percentiles)
        return (None, info) if img is None else ([(-1, img, info)], None)
    read = _clinical.read_dicom if kind == "dicom" else _clinical.read_nifti
    try:
        decoded = read(path, percentiles=percentiles, slices=slices)
    except Exception as exc:  # noqa: BLE001 - pydicom and nibabel raise many types; all are reported
        return None, f"{kind.upper() if kind == 'dicom' else 'NIfTI'}: {_reason(exc)}"
    out = []
    for index, gray01 in decoded:
        if gray01.ndim != 2 or min(gray01.shape) == 0:
            return None, f"decoded to a slice of shape {gray01.shape}, expected a 2-D image"
        out.append((index, _resize(gray01, size), _pixel_hash(gray01)))
    return out, None


def load_images(paths, *, image_size=128, intensity="auto", slices="middle"):
    """Load individual image files as grayscale float32 pixel rows in [0, 1].

    The same decoding and resizing as :func:`~sknnmfdiff.datasets.load_mri_folder`
    (grayscale luma, 8-bit / 16-bit scaling, transparency onto black, DICOM and
    NIfTI intensity windows, antialiased bicubic), for images outside any folder
    layout, e.g. to classify them with a saved model.

    Parameters
    ----------
    paths : sequence of str or os.PathLike
        Image files: JPEG, PNG, TIFF, BMP; DICOM (``.dcm``, ``.dicom``, or any file
        with the DICOM marker); NIfTI (``.nii``, ``.nii.gz``).
    image_size : int or (int, int), default=128
        Output side (or (height, width)) in pixels; use the size the model was
        trained at.
    intensity : "auto", "percentile" or (float, float), default="auto"
        Intensity normalisation of 16-bit data, as in
        :func:`~sknnmfdiff.datasets.load_mri_folder`.
    slices : "middle", "all" or int, default="middle"
        Which axial slices of a NIfTI volume (or frames of a multi-frame DICOM file)
        become rows, as in :func:`~sknnmfdiff.datasets.load_mri_folder`.

    Returns
    -------
    X : ndarray of shape (n_rows, height * width), dtype float32
        One row per image, in the order given (the slices of a volume in their order,
        inferior to superior), values in [0, 1]. ``n_rows`` is the number of files
        unless ``slices="all"`` is given volumes.

    Raises
    ------
    FileNotFoundError
        If a path does not exist (the message names it).
    IsADirectoryError
        If a path is a folder.
    ImageLoadError
        If files exist but cannot be decoded; lists every such file and why.
    ValueError
        If ``paths`` is empty, or ``image_size``, ``intensity`` or ``slices`` is invalid.
    """
    size = _check_image_size(image_size)
    percentiles = _clinical.check_intensity(intensity)
    slices = _clinical.check_slices(slices)
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
    rows, failures = [], []
    for p in paths:
        images, reason = _load_file(p, size, percentiles, slices)
        if images is None:
            failures.append((p, reason))
        else:
            rows.extend(img.reshape(-1) for _, img, _ in images)
    if failures:
        raise ImageLoadError(failures)
    return np.stack(rows).astype(np.float32, copy=False)


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
