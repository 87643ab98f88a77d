"""Decoding DICOM and NIfTI files into 2-D grayscale float32 slices in [0, 1].

DICOM (pydicom): the stored pixels go through the modality LUT (``RescaleSlope`` and
``RescaleIntercept``, or a Modality LUT Sequence) into modality units, then through the
file's VOI transform (its first ``WindowCenter``/``WindowWidth`` with its
``VOILUTFunction``, DICOM PS3.3 C.11.2.1.2, or else its first VOI LUT), whose output is
scaled to [0, 1]; ``MONOCHROME1`` (low values bright) is inverted so that 1 is always
bright. A file without a VOI transform is scaled by its full scale when it is 8-bit
without rescaling (as an 8-bit PNG), and by the percentile window otherwise.

NIfTI (nibabel): the volume, scaled by its ``scl_slope``/``scl_inter``, is reoriented to
the closest canonical orientation (RAS+: the first axis runs to the patient's right, the
second anterior, the third superior; :func:`nibabel.as_closest_canonical`) and cut into
axial slices along the third axis, slice 0 the most inferior. Each slice is shown as
axial DICOM images are (radiological convention): anterior at the top, the patient's
right on the image's left. The intensities map to [0, 1] through the header's display
range ``cal_min``..``cal_max`` when it is set, and through the percentile window
otherwise.

Percentile window: the values at the ``low`` and ``high`` percentiles of the whole file
(every slice or frame, so the slices of a volume share one window) map to 0 and 1,
linearly, clipped; a constant file maps to 0. ``intensity="percentile"`` or a
``(low, high)`` pair applies it to every DICOM and NIfTI file, ignoring their own windows.
"""

from __future__ import annotations

import numbers

import numpy as np

#: File name endings read as DICOM (case-insensitive); files without them are read as
#: DICOM too when they hold the ``DICM`` marker after the 128-byte preamble.
DICOM_EXTENSIONS = (".dcm", ".dicom")
#: File name endings read as NIfTI-1/2 (case-insensitive).
NIFTI_EXTENSIONS = (".nii", ".nii.gz")
#: The percentile window of ``intensity="percentile"`` and of files without a window.
DEFAULT_PERCENTILES = (0.5, 99.5)


def check_intensity(intensity):
    """``None`` for ``"auto"``, else the (low, high) percentiles; ValueError otherwise."""
    if isinstance(intensity, str):
        if intensity == "auto":
            return None
        if intensity == "percentile":
            return DEFAULT_PERCENTILES
    elif (isinstance(intensity, tuple | list) and len(intensity) == 2
          and all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in intensity)
          and 0 <= intensity[0] < intensity[1] <= 100):
        return float(intensity[0]), float(intensity[1])
    raise ValueError(
        f"intensity must be 'auto', 'percentile' or a (low, high) pair of percentiles with "
        f"0 <= low < high <= 100, got {intensity!r}")


def check_slices(slices):
    """``slices`` validated: "middle", "all" or an int >= 0; ValueError otherwise."""
    if slices in ("middle", "all") if isinstance(slices, str) else (
            isinstance(slices, numbers.Integral) and not isinstance(slices, bool)
            and slices >= 0):
        return slices if isinstance(slices, str) else int(slices)
    raise ValueError(f"slices must be 'middle', 'all' or a slice index >= 0, got {slices!r}")


def kind_of(path):
    """``"dicom"``, ``"nifti"`` or None (a raster image for Pillow), from the file name
    and, for DICOM, the ``DICM`` marker at byte 128."""
    name = str(path).lower()
    if name.endswith(NIFTI_EXTENSIONS):
        return "nifti"
    if name.endswith(DICOM_EXTENSIONS):
        return "dicom"
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return None
    return "dicom" if head[128:132] == b"DICM" else None


def percentile_window(values, percentiles):
    """Map ``values`` linearly from their ``percentiles`` (low, high) to [0, 1], clipped.

    Parameters
    ----------
    values : ndarray
        Any shape; NaN values are ignored for the percentiles and map to 0.
    percentiles : (float, float)
        In percent, ``0 <= low < high <= 100``.

    Returns
    -------
    out : ndarray of the shape of ``values``, float32 in [0, 1]
        Zeros when the two percentiles coincide (a constant file).
    """
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return np.zeros(values.shape, dtype=np.float32)
    low, high = np.percentile(finite, percentiles)
    return _linear(values, low, high)


def _linear(values, low, high):
    if not high > low:
        return np.zeros(values.shape, dtype=np.float32)
    out = np.clip((values - low) / (high - low), 0.0, 1.0)
    return np.nan_to_num(out, nan=0.0).astype(np.float32)


def voi_window(values, center, width, function="LINEAR"):
    """The VOI window of DICOM PS3.3 C.11.2.1.2, with output range [0, 1].

    Parameters
    ----------
    values : ndarray
        Modality values (after the modality LUT).
    center, width : float
        ``WindowCenter`` and ``WindowWidth``; ``width >= 1`` for ``LINEAR``, ``> 0``
        otherwise.
    function : {"LINEAR", "LINEAR_EXACT", "SIGMOID"}, default="LINEAR"
        ``VOILUTFunction``.

    Returns
    -------
    out : ndarray, float32 in [0, 1]

    Raises
    ------
    ValueError
        For a width out of range or another function.
    """
    x = np.asarray(values, dtype=np.float64)
    c, w = float(center), float(width)
    function = (function or "LINEAR").upper()
    if function == "LINEAR":
        if not w >= 1:
            raise ValueError(f"WindowWidth {width} must be >= 1 for the LINEAR VOI function")
        if w == 1:
            out = (x > c - 0.5).astype(np.float64)
        else:
            out = np.clip((x - (c - 0.5)) / (w - 1) + 0.5, 0.0, 1.0)
    elif function == "LINEAR_EXACT":
        if not w > 0:
            raise ValueError(f"WindowWidth {width} must be > 0 for LINEAR_EXACT")
        out = np.clip((x - c) / w + 0.5, 0.0, 1.0)
    elif function == "SIGMOID":
        if not w > 0:
            raise ValueError(f"WindowWidth {width} must be > 0 for SIGMOID")
        out = 1.0 / (1.0 + np.exp(np.clip(-4.0 * (x - c) / w, -700, 700)))
    else:
        raise ValueError(f"VOILUTFunction {function!r} is not one of LINEAR, LINEAR_EXACT, "
                         "SIGMOID")
    return out.astype(np.float32)


def _first(value):
    """The first value of a DICOM element that may hold several (MultiValue)."""
    if isinstance(value, str | bytes) or not hasattr(value, "__len__"):
        return value
    return value[0]


def _pick(count, slices, what):
    """Indices of the slices (or frames) to keep out of ``count``."""
    if slices == "all":
        return list(range(count))
    if slices == "middle":
        return [count // 2]
    if slices >= count:
        raise ValueError(f"slice {slices} is out of range: the {what} has {count} "
                         f"slice(s), 0 .. {count - 1}")
    return [slices]


def read_dicom(path, *, percentiles=None, slices="middle"):
    """Decode a grayscale DICOM file (see the module's docstring).

    Parameters
    ----------
    path : str or path-like
    percentiles : (float, float) or None, default=None
        The percentile window for every file; None uses the file's own window
        (``intensity="auto"``).
    slices : "middle", "all" or int, default="middle"
        Which frames of a multi-frame file to keep (a single frame is always kept).

    Returns
    -------
    slices : list of (int, ndarray of shape (rows, columns), float32 in [0, 1])
        Frame index (-1 for a single-frame file) and pixels.

    Raises
    ------
    ValueError, pydicom.errors.InvalidDicomError, ...
        For a file that is not DICOM, holds no pixel data, is not grayscale, or has a
        transfer syntax no installed decoder reads; the caller reports the message.
    """
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    ds = pydicom.dcmread(path)
    if "PixelData" not in ds:
        raise ValueError("the DICOM file holds no pixel data (PixelData)")
    photometric = str(ds.get("PhotometricInterpretation", "")).upper()
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise ValueError(f"PhotometricInterpretation {photometric or 'missing'!r} is not "
                         "supported: only grayscale (MONOCHROME1/2) DICOM images are read")
    stored = ds.pixel_array
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    frames = stored if n_frames > 1 else stored[None]
    if frames.ndim != 3 or min(frames.shape) == 0:
        raise ValueError(f"decoded to pixels of shape {stored.shape}, expected "
                         "(rows, columns) or (frames, rows, columns)")
    keep = _pick(frames.shape[0], slices, "multi-frame file")
    values = apply_modality_lut(frames, ds).astype(np.float64)
    if percentiles is not None:
        out = percentile_window(values, percentiles)
    elif "WindowCenter" in ds and "WindowWidth" in ds:
        out = voi_window(values, _first(ds.WindowCenter), _first(ds.WindowWidth),
                         ds.get("VOILUTFunction", "LINEAR"))
    elif "VOILUTSequence" in ds:
        bits = int(ds.VOILUTSequence[0].LUTDescriptor[2])
        lut = apply_voi_lut(values, ds, index=0, prefer_lut=True).astype(np.float64)
        out = np.clip(lut / (2.0**bits - 1.0), 0.0, 1.0).astype(np.float32)
    elif (int(ds.get("BitsStored", 16)) <= 8 and int(ds.get("PixelRepresentation", 0)) == 0
          and "ModalityLUTSequence" not in ds
          and float(ds.get("RescaleSlope", 1) or 1) == 1
          and float(ds.get("RescaleIntercept", 0) or 0) == 0):
        out = np.clip(values / (2.0 ** int(ds.BitsStored) - 1.0), 0.0, 1.0).astype(np.float32)
    else:
        out = percentile_window(values, DEFAULT_PERCENTILES)
    if photometric == "MONOCHROME1":
        out = (1.0 - out).astype(np.float32)
    return [(i if n_frames > 1 else -1, np.ascontiguousarray(out[i])) for i in keep]


def read_nifti(path, *, percentiles=None, slices="middle"):
    """Decode axial slices of a NIfTI volume (see the module's docstring).

    Parameters
    ----------
    path : str or path-like
        ``.nii`` or ``.nii.gz``.
    percentiles : (float, float) or None, default=None
        The percentile window; None uses the header's ``cal_min``/``cal_max`` when set,
        else :data:`DEFAULT_PERCENTILES` (``intensity="auto"``).
    slices : "middle", "all" or int, default="middle"
        Axial slice(s) to keep, counted from the most inferior (0) after the
        reorientation to RAS+; ``"middle"`` is ``n_slices // 2``.

    Returns
    -------
    slices : list of (int, ndarray of shape (n_anterior_posterior, n_right_left), float32)
        Slice index (-1 for a 2-D image) and pixels in [0, 1].

    Raises
    ------
    ValueError, nibabel.filebasedimages.ImageFileError, ...
        For a file nibabel cannot read, a 4-D series, or a slice out of range.
    """
    import nibabel as nib

    img = nib.load(path)
    header = img.header
    shape = tuple(img.shape)
    if len(shape) > 3 and all(s == 1 for s in shape[3:]):
        img = nib.funcs.squeeze_image(img)
    if len(img.shape) == 2:
        flat = True
        img = nib.Nifti1Image(np.asanyarray(img.dataobj)[:, :, None], img.affine)
    elif len(img.shape) == 3:
        flat = False
    else:
        raise ValueError(f"a NIfTI image of shape {shape} is not supported: give a 2-D "
                         "image or a 3-D volume (one time point)")
    data = nib.as_closest_canonical(img).get_fdata(dtype=np.float32)
    keep = _pick(data.shape[2], slices, "volume")
    if percentiles is not None:
        out = percentile_window(data, percentiles)
    else:
        low, high = float(header["cal_min"]), float(header["cal_max"])
        out = (_linear(data.astype(np.float64), low, high) if high > low
               else percentile_window(data, DEFAULT_PERCENTILES))
    # (x: right, y: anterior) -> rows anterior to posterior, columns right to left.
    return [(-1 if flat else k, np.ascontiguousarray(out[::-1, ::-1, k].T)) for k in keep]
