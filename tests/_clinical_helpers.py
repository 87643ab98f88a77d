"""Small DICOM and NIfTI files written by the tests themselves (pydicom, nibabel)."""

import numpy as np


def write_dicom(path, pixels, *, photometric="MONOCHROME2", bits_stored=None, **elements):
    """Write ``pixels`` (rows, cols) or (frames, rows, cols), an unsigned or signed
    integer array, as an uncompressed MR image; ``elements`` are further DICOM
    attributes (``RescaleSlope=2``, ``WindowCenter=40``, ...). Returns ``path``."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage

    pixels = np.asarray(pixels)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
    ds.SOPClassUID = MRImageStorage
    ds.Modality = "MR"
    ds.set_pixel_data(pixels, photometric, bits_stored or pixels.dtype.itemsize * 8)
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    for name, value in elements.items():
        setattr(ds, name, value)
    ds.save_as(path, enforce_file_format=True)
    return path


def write_nifti(path, volume, affine=None, **header):
    """Write ``volume`` (x, y[, z[, t]]) with ``affine`` (default: identity, RAS+) as
    NIfTI-1 (``.nii`` or ``.nii.gz`` by the suffix); ``header`` sets fields such as
    ``cal_min``. Returns ``path``."""
    import nibabel as nib

    img = nib.Nifti1Image(np.asarray(volume), np.eye(4) if affine is None else affine)
    for name, value in header.items():
        img.header[name] = value
    nib.save(img, str(path))
    return path
