"""DICOM and NIfTI inputs: modality LUT, VOI windows, MONOCHROME1, percentile windows,
orientation and slices, and bad files reported all at once. The files are written here."""

import numpy as np
import pytest
from PIL import Image

from _clinical_helpers import write_dicom, write_nifti
from sknnmfdiff.datasets import ImageLoadError, load_images, load_mri_folder
from sknnmfdiff.datasets._clinical import percentile_window, voi_window

# Stored 0 .. 2000, modality values -1000 .. 3000 (slope 2, intercept -1000); the LINEAR
# window of centre 1000.5 and width 2001 maps x to (x - 1000) / 2000 + 0.5, clipped.
STORED = np.array([[0, 500, 1000, 1500, 2000]], dtype=np.uint16)
WINDOWED = np.array([0.0, 0.0, 0.5, 1.0, 1.0], dtype=np.float32)
LUT = dict(RescaleSlope=2, RescaleIntercept=-1000, WindowCenter=1000.5, WindowWidth=2001)


def _row(path, **kw):
    return load_images([path], image_size=(1, 5), **kw)[0]


def test_dicom_modality_lut_then_window(tmp_path):
    path = write_dicom(tmp_path / "a.dcm", STORED, bits_stored=12, **LUT)
    np.testing.assert_allclose(_row(path), WINDOWED, atol=1e-7)


def test_dicom_monochrome1_is_inverted(tmp_path):
    path = write_dicom(tmp_path / "a.dcm", STORED, photometric="MONOCHROME1", bits_stored=12,
                       **LUT)
    np.testing.assert_allclose(_row(path), 1.0 - WINDOWED, atol=1e-7)


def test_dicom_first_of_several_windows_and_voi_functions(tmp_path):
    path = write_dicom(tmp_path / "a.dcm", STORED, bits_stored=12, RescaleSlope=2,
                       RescaleIntercept=-1000, WindowCenter=[1000.5, 0], WindowWidth=[2001, 10])
    np.testing.assert_allclose(_row(path), WINDOWED, atol=1e-7)
    exact = write_dicom(tmp_path / "b.dcm", STORED, bits_stored=12, WindowCenter=1000,
                        WindowWidth=2000, VOILUTFunction="LINEAR_EXACT")
    np.testing.assert_allclose(_row(exact), [0, 0.25, 0.5, 0.75, 1], atol=1e-7)
    # DICOM PS3.3 C.11.2.1.2: the sigmoid is 1 / (1 + exp(-4 (x - c) / w)).
    x = np.array([-1.0, 0.0, 2.0])
    np.testing.assert_allclose(voi_window(x, 0, 4, "SIGMOID"), 1 / (1 + np.exp(-x)), rtol=1e-6)
    np.testing.assert_array_equal(voi_window(x, 0.5, 1), [0, 0, 1])  # width 1: a threshold
    with pytest.raises(ValueError, match="VOILUTFunction 'GAMMA'"):
        voi_window(x, 0, 4, "GAMMA")


def test_dicom_without_window_percentile_or_full_scale(tmp_path):
    ramp = np.arange(1000, dtype=np.uint16).reshape(1, 1000) * 40  # 16-bit, no window
    path = write_dicom(tmp_path / "a.dcm", ramp, bits_stored=16)
    low, high = np.percentile(ramp.astype(np.float64), [0.5, 99.5])
    expected = np.clip((ramp[0] - low) / (high - low), 0, 1)
    got = load_images([path], image_size=(1, 1000))[0]
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert got.min() == 0 and got.max() == 1 and 0 < (got == 1).sum() < 10
    # A chosen window replaces the file's own; (0, 100) is the min-max window.
    windowed = write_dicom(tmp_path / "w.dcm", ramp, bits_stored=16, WindowCenter=10,
                           WindowWidth=20)
    np.testing.assert_allclose(load_images([windowed], image_size=(1, 1000),
                                           intensity=(0, 100))[0], ramp[0] / ramp.max(),
                               atol=1e-6)
    u8 = write_dicom(tmp_path / "u8.dcm", np.array([[0, 51, 255]], dtype=np.uint8))
    np.testing.assert_allclose(load_images([u8], image_size=(1, 3))[0], [0, 0.2, 1])


def test_percentile_window_of_16_bit_png(tmp_path):
    ramp = (np.arange(64, dtype=np.uint16) * 500).reshape(8, 8)
    path = tmp_path / "a.png"
    Image.fromarray(ramp).save(path)
    full = load_images([path], image_size=8)[0]
    np.testing.assert_allclose(full, ramp.ravel() / 65535, atol=1e-7)  # "auto": as before
    pct = load_images([path], image_size=8, intensity="percentile")[0]
    np.testing.assert_allclose(pct, percentile_window(ramp, (0.5, 99.5)).ravel())
    assert pct.max() == 1 and full.max() < 0.5
    with pytest.raises(ValueError, match="intensity must be"):
        load_images([path], intensity=(50, 10))


def test_multiframe_dicom_and_dicom_without_suffix(tmp_path):
    frames = np.stack([STORED, STORED * 0, STORED // 2])
    path = write_dicom(tmp_path / "IM0001", frames, bits_stored=12, **LUT)  # no suffix
    X = load_images([path], image_size=(1, 5), slices="all")
    assert X.shape == (3, 5)
    np.testing.assert_allclose(X[0], WINDOWED, atol=1e-7)
    np.testing.assert_allclose(load_images([path], image_size=(1, 5))[0], X[1])  # middle
    np.testing.assert_allclose(load_images([path], image_size=(1, 5), slices=2)[0], X[2])


def _marked_volume():
    """A (4, 3, 5) volume (x right, y anterior, z superior) with a bright voxel at the
    right-anterior corner of axial slice 1 and a dimmer one at its left-posterior corner;
    slice k also holds the value k at one voxel."""
    vol = np.zeros((4, 3, 5), dtype=np.int16)
    vol[3, 2, 1], vol[0, 0, 1] = 100, 50
    for k in range(5):
        vol[1, 1, k] += 10 * k
    return vol


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_nifti_orientation_is_canonical_and_radiological(tmp_path, suffix):
    vol = _marked_volume()
    ras = write_nifti(tmp_path / f"ras{suffix}", vol)
    # The same anatomy stored left-to-right (LAS): reoriented to RAS+ first.
    las = write_nifti(tmp_path / f"las{suffix}", vol[::-1], affine=np.diag([-1.0, 1, 1, 1]))
    for path in (ras, las):
        img = load_images([path], image_size=(3, 4), slices=1, intensity=(0, 100))[0]
        img = img.reshape(3, 4)
        assert img[0, 0] == 1.0  # anterior at the top, the patient's right on the left
        assert img[2, 3] == 0.5  # posterior, patient's left
        assert img[1, 2] == pytest.approx(0.1)


def test_nifti_slices_and_display_range(tmp_path):
    vol = _marked_volume()
    path = write_nifti(tmp_path / "v.nii.gz", vol, cal_min=0, cal_max=200)
    X = load_images([path], image_size=(3, 4), slices="all")
    assert X.shape == (5, 12)
    # cal_min..cal_max: the value 10 k of slice k (inferior first) maps to 10 k / 200.
    np.testing.assert_allclose(X.reshape(5, 3, 4)[:, 1, 2], [10 * k / 200 for k in range(5)])
    assert X[1].max() == 0.5  # 100 / 200
    np.testing.assert_array_equal(load_images([path], image_size=(3, 4))[0], X[2])  # middle
    flat = write_nifti(tmp_path / "flat.nii", vol[:, :, 1])  # a 2-D image
    assert load_images([flat], image_size=(3, 4), intensity=(0, 100))[0].reshape(3, 4)[0, 0] == 1


def test_bad_clinical_files_are_listed_together(tmp_path):
    good = write_nifti(tmp_path / "good.nii", _marked_volume())
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"not a dicom file" * 20)
    rgb = write_dicom(tmp_path / "rgb.dcm", np.zeros((4, 4, 3), np.uint8), photometric="RGB")
    series = write_nifti(tmp_path / "series.nii.gz", np.zeros((4, 3, 5, 2), np.int16))
    broken = tmp_path / "broken.nii"
    broken.write_bytes(b"\0" * 400)
    with pytest.raises(ImageLoadError) as err:
        load_images([good, junk, rgb, series, broken], image_size=8, slices=4)
    reasons = dict(err.value.failures)
    assert list(reasons) == [str(junk), str(rgb), str(series), str(broken)]
    assert reasons[str(junk)].startswith("DICOM: InvalidDicomError")
    assert "PhotometricInterpretation 'RGB' is not supported" in reasons[str(rgb)]
    assert "shape (4, 3, 5, 2) is not supported" in reasons[str(series)]
    assert reasons[str(broken)].startswith("NIfTI: ")
    with pytest.raises(ImageLoadError, match="slice 7 is out of range: the volume has 5"):
        load_images([good], slices=7)


def test_folder_of_clinical_files(tmp_path):
    for label, scale in (("no", 1), ("yes", 2)):
        (tmp_path / label).mkdir()
        write_dicom(tmp_path / label / "a.dcm", STORED * scale, bits_stored=12, **LUT)
        write_nifti(tmp_path / label / "b.nii.gz", _marked_volume() * scale)
    (tmp_path / "yes" / "notes.txt").write_text("ignored")
    b = load_mri_folder(tmp_path, image_size=(3, 4), slices="all")
    assert b.data.shape == (12, 12)  # per class: 1 DICOM image + 5 NIfTI slices
    assert list(b.target) == [0] * 6 + [1] * 6
    assert list(b.slice_index) == [-1, 0, 1, 2, 3, 4] * 2
    assert [f.rsplit("/", 2)[-2:] for f in b.filenames[:2]] == [["no", "a.dcm"], ["no", "b.nii.gz"]]
    # Hashes of the pixels after their window: every slice of a volume differs; the yes
    # volume (the no volume x 2) gives the same pixels through its percentile window.
    assert len(set(b.pixel_hash[1:6])) == 5 and list(b.pixel_hash[1:6]) == list(b.pixel_hash[7:])
    assert b.pixel_hash[0] != b.pixel_hash[6]  # one DICOM window for both: other pixels
    one = load_mri_folder(tmp_path, image_size=(3, 4))
    assert one.data.shape == (4, 12) and list(one.slice_index) == [-1, 2, -1, 2]
    (tmp_path / "yes" / "c.dcm").write_bytes(b"junk")
    with pytest.raises(ImageLoadError, match="c.dcm"):
        load_mri_folder(tmp_path, image_size=8)
    with pytest.warns(UserWarning, match="c.dcm"):
        assert load_mri_folder(tmp_path, image_size=8, on_error="warn").data.shape == (4, 64)
