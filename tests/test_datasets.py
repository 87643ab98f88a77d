"""Tests for sknnmfdiff.datasets: folder loading, duplicates, the paper split, phantoms."""

from collections import Counter

import numpy as np
import pytest
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.utils import Bunch

from sknnmfdiff.datasets import (
    BINARY_TARGET_NAMES,
    ImageLoadError,
    find_duplicates,
    load_mri_folder,
    make_phantom_mri,
    paper_split,
)

# --------------------------------------------------------------------------- #
# helpers: tiny images written with Pillow
# --------------------------------------------------------------------------- #


def _gray_pattern(seed, size=(12, 10)):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=size, dtype=np.uint8)


def _write(path, arr=None, *, mode="L", seed=0, value=None):
    """Write a small image of ``mode`` at ``path`` (format from the suffix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if arr is None:
        arr = _gray_pattern(seed) if value is None else np.full((12, 10), value, np.uint8)
    if mode == "L":
        img = Image.fromarray(arr)
    elif mode == "RGB":
        img = Image.fromarray(np.stack([arr] * 3, axis=-1))
    elif mode == "RGBA":
        alpha = np.full(arr.shape, 255, np.uint8)
        img = Image.fromarray(np.stack([arr, arr, arr, alpha], axis=-1))
    elif mode == "P":
        img = Image.fromarray(arr).convert("P")
    elif mode == "I;16":
        img = Image.fromarray(arr.astype(np.uint16) * 257)
    else:  # pragma: no cover - test helper misuse
        raise ValueError(mode)
    img.save(path)
    return path


def _make_class_folders(root, classes, n=3, ext=".png"):
    for k, name in enumerate(classes):
        for i in range(n):
            _write(root / name / f"img{i}{ext}", seed=100 * k + i)
    return root


# --------------------------------------------------------------------------- #
# formats, bit depths and modes
# --------------------------------------------------------------------------- #

FORMAT_MODES = [
    (".png", "L"),
    (".png", "RGB"),
    (".png", "RGBA"),
    (".png", "P"),
    (".png", "I;16"),
    (".tif", "L"),
    (".tiff", "RGB"),
    (".tif", "RGBA"),
    (".tif", "P"),
    (".tif", "I;16"),
    (".bmp", "L"),
    (".bmp", "RGB"),
    (".bmp", "P"),
    (".jpg", "L"),
    (".jpeg", "RGB"),
    (".JPG", "L"),
]


@pytest.mark.parametrize(("ext", "mode"), FORMAT_MODES)
def test_every_format_and_mode_becomes_gray_float32_in_unit_range(tmp_path, ext, mode):
    value = 200
    _write(tmp_path / "notumor" / f"a{ext}", mode=mode, value=value)
    _write(tmp_path / "glioma" / f"b{ext}", mode=mode, value=30)
    bunch = load_mri_folder(tmp_path, image_size=8)
    assert bunch.data.dtype == np.float32
    assert bunch.images.shape == (2, 8, 8)
    assert bunch.data.shape == (2, 64)
    assert np.shares_memory(bunch.data, bunch.images)
    # sorted by relative path: glioma/ before notumor/
    np.testing.assert_array_equal(bunch.target, [1, 0])
    tol = 2.5 / 255  # JPEG rounding on a flat image
    np.testing.assert_allclose(bunch.images[1], value / 255, atol=tol)
    np.testing.assert_allclose(bunch.images[0], 30 / 255, atol=tol)
    assert bunch.data.min() >= 0.0 and bunch.data.max() <= 1.0


def test_16_bit_keeps_its_precision(tmp_path):
    arr = np.full((6, 6), 40000, np.uint16)
    for name in ("no", "yes"):
        (tmp_path / name).mkdir()
        Image.fromarray(arr).save(tmp_path / name / "x.png")
    bunch = load_mri_folder(tmp_path, image_size=6)
    np.testing.assert_allclose(bunch.images, 40000 / 65535, rtol=1e-6)


def test_transparent_pixels_become_black_and_colour_uses_luma(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 255  # pure red
    rgba[:2, :, 3] = 255  # top half opaque, bottom half transparent
    (tmp_path / "no").mkdir()
    (tmp_path / "yes").mkdir()
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "no" / "a.png")
    _write(tmp_path / "yes" / "b.png")
    bunch = load_mri_folder(tmp_path, image_size=4)
    img = bunch.images[0]
    np.testing.assert_allclose(img[:2], 76 / 255, atol=1 / 255)  # 0.299 * 255 rounded
    np.testing.assert_array_equal(img[2:], 0.0)


def test_resize_is_antialiased(tmp_path):
    checker = (np.indices((64, 64)).sum(axis=0) % 2 * 255).astype(np.uint8)
    _write(tmp_path / "no" / "a.png", checker)
    _write(tmp_path / "yes" / "b.png", checker)
    bunch = load_mri_folder(tmp_path, image_size=(16, 8))
    assert bunch.images.shape == (2, 16, 8)
    # a 1-pixel checkerboard averages to mid-grey instead of aliasing to 0 or 1
    np.testing.assert_allclose(bunch.images, 0.5, atol=0.05)


# --------------------------------------------------------------------------- #
# layouts and options
# --------------------------------------------------------------------------- #


def test_kaggle_layout(tmp_path):
    for split in ("Training", "Testing"):
        _make_class_folders(tmp_path / split, ["glioma", "meningioma", "notumor"], n=2)
    (tmp_path / "Training" / "notumor" / "readme.txt").write_text("not an image")
    bunch = load_mri_folder(tmp_path, image_size=4)
    assert bunch.layout == "kaggle"
    assert len(bunch.target) == 12
    assert Counter(bunch.split) == {"Training": 6, "Testing": 6}
    assert list(bunch.target_names) == list(BINARY_TARGET_NAMES)
    assert Counter(bunch.target.tolist()) == {1: 8, 0: 4}
    assert all((bunch.class_names == "notumor") == (bunch.target == 0))
    # deterministic order: sorted relative paths
    rel = [f.split(str(tmp_path))[1] for f in bunch.filenames]
    assert rel == sorted(rel)
    assert bunch.filenames[0].endswith("Testing/glioma/img0.png")

    multi = load_mri_folder(tmp_path, image_size=4, task="multiclass")
    assert list(multi.target_names) == ["glioma", "meningioma", "notumor"]
    np.testing.assert_array_equal(
        multi.target_names[multi.target], multi.class_names
    )

    testing = load_mri_folder(tmp_path, image_size=4, splits="testing")
    assert set(testing.split) == {"Testing"}
    assert len(testing.target) == 6
    with pytest.raises(ValueError, match="no split folder named"):
        load_mri_folder(tmp_path, splits=["Validation"])


def test_class_folder_layout(tmp_path):
    _make_class_folders(tmp_path, ["healthy", "tumour_a", "tumour_b"], n=2, ext=".bmp")
    bunch = load_mri_folder(tmp_path, image_size=5)
    assert bunch.layout == "class_folders"
    assert all(s is None for s in bunch.split)
    np.testing.assert_array_equal(bunch.target, [0, 0, 1, 1, 1, 1])
    with pytest.raises(ValueError, match="needs the Kaggle layout"):
        load_mri_folder(tmp_path, splits="Training")


def test_yes_no_layout(tmp_path):
    _make_class_folders(tmp_path, ["yes", "no"], n=3, ext=".jpg")
    bunch = load_mri_folder(tmp_path, image_size=6)
    assert bunch.layout == "yes_no"
    assert Counter(zip(bunch.class_names, bunch.target.tolist())) == {
        ("no", 0): 3,
        ("yes", 1): 3,
    }
    X, y = load_mri_folder(tmp_path, image_size=6, return_X_y=True)
    np.testing.assert_array_equal(X, bunch.data)
    np.testing.assert_array_equal(y, bunch.target)


def test_max_per_class_is_a_seeded_subset_and_threads_agree(tmp_path):
    _make_class_folders(tmp_path, ["glioma", "pituitary", "notumor"], n=6)
    full = load_mri_folder(tmp_path, image_size=6)
    a = load_mri_folder(tmp_path, image_size=6, max_per_class=4, random_state=3)
    b = load_mri_folder(tmp_path, image_size=6, max_per_class=4, random_state=3, n_jobs=2)
    c = load_mri_folder(tmp_path, image_size=6, max_per_class=4, random_state=4)
    assert Counter(a.target.tolist()) == {0: 4, 1: 4}
    np.testing.assert_array_equal(a.filenames, b.filenames)
    np.testing.assert_array_equal(a.data, b.data)
    assert list(a.filenames) == sorted(a.filenames)
    assert set(a.filenames) <= set(full.filenames)
    assert not np.array_equal(a.filenames, c.filenames)
    # images match the full load
    pos = np.searchsorted(full.filenames, a.filenames)
    np.testing.assert_array_equal(full.data[pos], a.data)


def test_pixel_hash_is_on_original_pixels(tmp_path):
    arr = _gray_pattern(7, size=(40, 40))
    _write(tmp_path / "no" / "a.png", arr)
    _write(tmp_path / "no" / "b.bmp", arr)  # same pixels, other format
    changed = arr.copy()
    changed[0, 0] ^= 1  # one grey level in one pixel
    _write(tmp_path / "yes" / "c.png", changed)
    bunch = load_mri_folder(tmp_path, image_size=4)
    assert bunch.pixel_hash[0] == bunch.pixel_hash[1]
    assert bunch.pixel_hash[2] != bunch.pixel_hash[0]
    groups = find_duplicates(bunch)
    assert [g.tolist() for g in groups] == [[0, 1]]


# --------------------------------------------------------------------------- #
# bad input
# --------------------------------------------------------------------------- #


def test_missing_path_raises_file_not_found(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_mri_folder(missing)


def test_path_to_a_file_raises(tmp_path):
    f = _write(tmp_path / "a.png")
    with pytest.raises(NotADirectoryError, match="a.png"):
        load_mri_folder(f)


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda root: None, "is empty"),
        (lambda root: _write(root / "loose.png"), "no class sub-folders"),
        (lambda root: _make_class_folders(root, ["glioma"]), "single class"),
        (lambda root: _write(root / "a" / "b" / "c.png"), "unknown layout"),
        (
            lambda root: (
                _make_class_folders(root / "Training", ["no", "yes"]),
                _write(root / "extra" / "x.png"),
            ),
            "split folders",
        ),
        (lambda root: (root / "Testing" / "no").mkdir(parents=True), "no images found"),
        (lambda root: _make_class_folders(root, ["glioma", "pituitary"]), "no-tumour"),
    ],
    ids=["empty", "loose", "single", "deep", "mixed", "empty-split", "no-negative"],
)
def test_bad_layouts_name_the_path_and_the_layouts(tmp_path, build, match):
    root = tmp_path / "data"
    root.mkdir()
    build(root)
    with pytest.raises(ValueError, match=match) as info:
        load_mri_folder(root)
    assert str(root) in str(info.value)
    if match != "no-tumour":
        assert "Kaggle" in str(info.value) and "yes/no" in str(info.value)


def test_corrupt_files_raise_one_error_listing_all(tmp_path):
    _make_class_folders(tmp_path, ["no", "yes"], n=2)
    (tmp_path / "no" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (tmp_path / "yes" / "text.jpg").write_text("this is not a JPEG")
    good = tmp_path / "yes" / "truncated.jpg"
    _write(good, _gray_pattern(1, size=(64, 64)))
    good.write_bytes(good.read_bytes()[:200])

    with pytest.raises(ImageLoadError) as info:
        load_mri_folder(tmp_path, image_size=4)
    err = info.value
    assert isinstance(err, ValueError)
    assert len(err.failures) == 3
    for name in ("broken.png", "text.jpg", "truncated.jpg"):
        assert name in str(err)

    with pytest.warns(UserWarning, match="skipped 3 unreadable") as record:
        bunch = load_mri_folder(tmp_path, image_size=4, on_error="warn")
    assert "broken.png" in str(record[0].message)
    # one line, attributed to this call (not to scikit-learn's validate_params wrapper)
    assert len(record) == 1 and "\n" not in str(record[0].message)
    assert record[0].filename == __file__
    assert len(bunch.target) == 4
    assert len(bunch.skipped) == 3
    assert len(bunch.pixel_hash) == len(bunch.filenames) == 4


def test_invalid_parameters(tmp_path):
    _make_class_folders(tmp_path, ["no", "yes"])
    with pytest.raises(ValueError, match="task"):
        load_mri_folder(tmp_path, task="regression")
    with pytest.raises(ValueError, match="on_error"):
        load_mri_folder(tmp_path, on_error="ignore")
    with pytest.raises(ValueError, match="image_size"):
        load_mri_folder(tmp_path, image_size=(4, 0))


# --------------------------------------------------------------------------- #
# duplicates
# --------------------------------------------------------------------------- #


def test_find_exact_duplicates_on_arrays_and_keys():
    rng = np.random.default_rng(0)
    imgs = rng.random((6, 8, 8)).astype(np.float32)
    imgs[3] = imgs[0]
    imgs[5] = imgs[0]
    imgs[4] = imgs[1]
    groups = find_duplicates(imgs)
    assert [g.tolist() for g in groups] == [[0, 3, 5], [1, 4]]
    assert all(g.dtype == np.int64 for g in groups)
    keys = np.array(["a", "b", "a", "c"])
    assert [g.tolist() for g in find_duplicates(keys)] == [[0, 2]]
    assert find_duplicates(rng.random((3, 4, 4))) == []


def test_find_near_duplicates():
    bunch = make_phantom_mri(6, image_size=64, random_state=0)
    imgs = bunch.images.copy()
    rng = np.random.default_rng(1)
    noisy = np.clip(imgs[2] + rng.normal(0, 0.01, imgs[2].shape), 0, 1).astype(np.float32)
    imgs = np.concatenate([imgs, noisy[None], imgs[4:5]])
    exact = find_duplicates(imgs)
    assert [g.tolist() for g in exact] == [[4, 7]]
    near = find_duplicates(imgs, kind="near", max_distance=4)
    as_lists = [g.tolist() for g in near]
    assert [2, 6] in as_lists and [4, 7] in as_lists
    # every exact group lies inside a near group
    for g in exact:
        assert any(set(g) <= set(h) for h in near)
    assert find_duplicates(imgs, kind="near", max_distance=64)[0].tolist() == list(range(8))
    with pytest.raises(ValueError, match="kind='near'"):
        find_duplicates(np.array(["a", "b"]), kind="near")
    with pytest.raises(ValueError, match="shape"):
        find_duplicates(np.zeros((2, 2, 2, 2)))


# --------------------------------------------------------------------------- #
# paper split
# --------------------------------------------------------------------------- #


def _with_duplicates(n_per_class=40, seed=0):
    """Phantom Bunch (images ~n_per_class per class) plus exact duplicates."""
    bunch = make_phantom_mri(2 * n_per_class, image_size=8, random_state=seed)
    data = bunch.data
    target = bunch.target
    idx0 = np.flatnonzero(target == 0)[:3]
    idx1 = np.flatnonzero(target == 1)[:2]
    extra = np.concatenate([idx0, idx0[:1], idx1])  # one image in three copies
    conflict = np.flatnonzero(target == 0)[5]
    data = np.concatenate([data, data[extra], data[[conflict]]])
    y = np.concatenate([target, target[extra], [1]])  # the last copy has the other label
    return data, y, conflict


def test_paper_split_sizes_balance_and_no_straddling():
    X, y, conflict = _with_duplicates(n_per_class=60)
    near = [np.array([1, 2, 3]), np.array([10, 11])]
    split = paper_split(X, y, n_per_class=50, groups=near, random_state=0)
    parts = (split.train, split.val, split.test)
    assert [len(p) for p in parts] == [70, 20, 10]
    for p in parts:
        assert Counter(y[p].tolist())[0] == Counter(y[p].tolist())[1]
    union = np.concatenate(parts)
    assert len(np.unique(union)) == 100
    # exact copies: at most one member per group in the sample, conflicting group dropped
    for g in find_duplicates(X.reshape(len(X), 8, 8)):
        assert np.isin(g, union).sum() <= 1 or len(np.unique(y[g])) > 1
    assert conflict not in union and len(X) - 1 not in union
    # near groups never straddle parts
    for g in near:
        assert sum(np.isin(g, p).any() for p in parts) <= 1
    s = split.summary
    assert s["n_exact_duplicates_removed"] == 6  # 2 + 1 + 1 + 2 extra copies
    assert s["n_conflicting_groups"] == 1 and s["n_conflicting_images_removed"] == 2
    assert s["counts"] == {
        "train": {0: 35, 1: 35},
        "val": {0: 10, 1: 10},
        "test": {0: 5, 1: 5},
    }
    again = paper_split(X, y, n_per_class=50, groups=near, random_state=0)
    for a, b in zip(parts, (again.train, again.val, again.test), strict=True):
        np.testing.assert_array_equal(a, b)
    other = paper_split(X, y, n_per_class=50, groups=near, random_state=1)
    assert not np.array_equal(split.train, other.train)


def test_paper_split_keeps_large_groups_whole():
    bunch = make_phantom_mri(200, image_size=8, random_state=2)
    rng = np.random.default_rng(0)
    order = rng.permutation(200)
    groups = [order[i : i + 8] for i in range(0, 80, 8)]  # ten groups of 8 (mixed labels)
    split = paper_split(bunch, groups=groups, n_per_class=100, random_state=0)
    parts = (split.train, split.val, split.test)
    for g in groups:
        assert sum(np.isin(g, p).any() for p in parts) == 1
    assert sum(len(p) for p in parts) == 200
    assert split.summary["n_groups_in_sample"] == 10


def test_paper_split_errors():
    bunch = make_phantom_mri(20, image_size=8, random_state=0)
    with pytest.raises(ValueError, match="fewer than n_per_class=11"):
        paper_split(bunch, n_per_class=11)
    with pytest.raises(ValueError, match="must be 1"):
        paper_split(bunch, n_per_class=5, train_size=0.5, val_size=0.2, test_size=0.2)
    with pytest.raises(ValueError, match="exactly two classes"):
        paper_split(bunch.data, np.arange(20) % 3, n_per_class=2)
    with pytest.raises(ValueError, match="needs y"):
        paper_split(bunch.data, n_per_class=2)
    with pytest.raises(ValueError, match="outside"):
        paper_split(bunch, n_per_class=5, groups=[[0, 25]])


# --------------------------------------------------------------------------- #
# phantom data
# --------------------------------------------------------------------------- #


def test_phantom_bunch_matches_the_loader():
    bunch = make_phantom_mri(11, image_size=(24, 20), random_state=0)
    assert isinstance(bunch, Bunch)
    assert bunch.data.shape == (11, 480) and bunch.data.dtype == np.float32
    assert bunch.images.shape == (11, 24, 20)
    assert 0.0 <= bunch.data.min() and bunch.data.max() <= 1.0
    assert Counter(bunch.target.tolist()) == {0: 6, 1: 5}
    assert list(bunch.target_names) == list(BINARY_TARGET_NAMES)
    assert bunch.filenames[0] == "phantom-00001" and bunch.filenames[-1] == "phantom-00011"
    assert "SYNTHETIC" in bunch.DESCR
    assert len(set(bunch.pixel_hash)) == 11
    real_keys = {"data", "images", "target", "target_names", "filenames", "split", "pixel_hash"}
    assert real_keys <= set(bunch)


def test_phantom_is_deterministic_per_seed():
    a = make_phantom_mri(8, image_size=32, random_state=5)
    b = make_phantom_mri(8, image_size=32, random_state=np.random.default_rng(5))
    c = make_phantom_mri(8, image_size=32, random_state=6)
    np.testing.assert_array_equal(a.data, b.data)
    np.testing.assert_array_equal(a.target, b.target)
    assert not np.array_equal(a.data, c.data)


def test_phantom_looks_like_a_head():
    bunch = make_phantom_mri(20, image_size=64, random_state=0)
    mean = bunch.images.mean(axis=0)
    assert mean[0, 0] < 0.05  # background corner is dark
    assert mean[32, 32] > 0.15  # the brain is not empty
    assert mean[32, 3:12].max() > mean[32, 20]  # the skull ring is brighter than the brain


def test_phantom_is_learnable_but_not_trivial():
    # logistic regression on raw pixels: ~0.70 here, ~0.77 at 64 x 64 with 2,000 images
    train = make_phantom_mri(1000, image_size=24, random_state=0)
    test = make_phantom_mri(400, image_size=24, random_state=1)
    clf = LogisticRegression(C=0.1, max_iter=2000).fit(train.data, train.target)
    acc = clf.score(test.data, test.target)
    assert 0.6 < acc < 0.97


# --------------------------------------------------------------------------- #
# the shared real data
# --------------------------------------------------------------------------- #

REAL_COUNTS = {
    ("Training", "glioma"): 1321,
    ("Training", "meningioma"): 1339,
    ("Training", "notumor"): 1591,
    ("Training", "pituitary"): 1457,
    ("Testing", "glioma"): 300,
    ("Testing", "meningioma"): 306,
    ("Testing", "notumor"): 405,
    ("Testing", "pituitary"): 300,
}


@pytest.fixture(scope="module")
def real_bunch(real_data_dir):
    """All 7,019 shared images at 32 x 32 (decoding dominates; a few seconds on 2 cores)."""
    return load_mri_folder(real_data_dir, image_size=32, n_jobs=2)


@pytest.mark.realdata
def test_real_subset(real_data_dir):
    bunch = load_mri_folder(
        real_data_dir, image_size=16, task="multiclass", max_per_class=3, random_state=0
    )
    assert list(bunch.target_names) == ["glioma", "meningioma", "notumor", "pituitary"]
    assert Counter(bunch.target.tolist()) == {0: 3, 1: 3, 2: 3, 3: 3}
    assert bunch.layout == "kaggle"
    assert set(bunch.split) <= {"Training", "Testing"}
    assert bunch.images.shape == (12, 16, 16)


@pytest.mark.realdata
@pytest.mark.slow
def test_real_counts(real_bunch):
    assert Counter(zip(real_bunch.split, real_bunch.class_names)) == REAL_COUNTS
    assert Counter(real_bunch.target.tolist()) == {0: 1996, 1: 5023}
    assert real_bunch.data.shape == (7019, 1024)
    assert 0.0 <= real_bunch.data.min() and real_bunch.data.max() <= 1.0
    assert real_bunch.skipped == []


@pytest.mark.realdata
@pytest.mark.slow
def test_real_duplicates_and_paper_split(real_bunch):
    exact = find_duplicates(real_bunch)
    assert len(exact) > 0
    straddling = [g for g in exact if len(set(real_bunch.split[g])) > 1]
    assert len(straddling) > 0, "the shared data has exact duplicates across Training/Testing"
    near = find_duplicates(real_bunch, kind="near")
    for g in exact:  # pixel-identical originals give identical resized images
        assert any(set(g) <= set(h) for h in near)

    split = paper_split(real_bunch, groups=near, random_state=0)
    parts = (split.train, split.val, split.test)
    assert [len(p) for p in parts] == [1540, 440, 220]
    y = real_bunch.target
    for p, n in zip(parts, (770, 220, 110), strict=True):
        assert np.sum(y[p] == 0) == n and np.sum(y[p] == 1) == n
    union = np.concatenate(parts)
    assert len(np.unique(union)) == 2200
    hashes = real_bunch.pixel_hash[union]
    assert len(np.unique(hashes)) == 2200  # exact duplicates collapsed
    for g in exact + near:
        assert sum(np.isin(g, p).any() for p in parts) <= 1
    assert split.summary["n_exact_duplicates_removed"] > 0


def test_load_images_matches_folder_loader(tmp_path):
    from PIL import Image

    from sknnmfdiff.datasets import ImageLoadError, load_images, load_mri_folder

    rng = np.random.default_rng(0)
    for cls in ("no", "yes"):
        (tmp_path / cls).mkdir()
        for i in range(2):
            arr = (rng.random((20, 24)) * 255).astype(np.uint8)
            Image.fromarray(arr).save(tmp_path / cls / f"{i}.png")
    bunch = load_mri_folder(tmp_path, image_size=16)
    X = load_images([tmp_path / f for f in bunch.filenames], image_size=16)
    np.testing.assert_array_equal(X, bunch.data)
    with pytest.raises(FileNotFoundError, match="missing.png"):
        load_images([tmp_path / "missing.png"], image_size=16)
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    with pytest.raises(ImageLoadError, match="bad.png"):
        load_images([bad], image_size=16)
    with pytest.raises(ValueError, match="at least one"):
        load_images([], image_size=16)
    with pytest.raises(IsADirectoryError, match="folder"):
        load_images([tmp_path / "no"], image_size=16)
