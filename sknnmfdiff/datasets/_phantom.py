"""Synthetic head-like phantom slices with and without tumour-like lesions."""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.utils import Bunch
from sklearn.utils._param_validation import Interval, validate_params

from ._common import _seed_from
from ._folders import BINARY_TARGET_NAMES
from ._images import _check_image_size, _pixel_hash


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
        Same keys as :func:`~sknnmfdiff.datasets.load_mri_folder`: ``data``
        (n_samples, H * W) float32 in [0, 1], ``images`` (n_samples, H, W),
        ``target`` int64 (0 no tumour, 1 tumour), ``target_names``, ``class_names``,
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
