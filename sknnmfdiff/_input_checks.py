"""What a model was trained on, and whether new images look like it.

A fitted pipeline knows nothing of the images it was fitted on: a model trained on the
synthetic phantom slices predicts real MRI with full confidence, and so does any model
on a nearly black or posterised image (the features are L2-normalised, which hides the
intensity scale). :func:`training_record` describes the training data in a small
JSON-able dict saved with the model (``sknnmfdiff fit`` puts it under the key
``"training"`` of its model file; the study beside each of its models);
:func:`check_images` flags the images that lie far outside it, one list of reasons per
image, and :func:`check_data_kind` the data sets of another kind (synthetic against
real, other class names or image size).

The input-distribution reference holds, per training image, three statistics whose
0.5 %, 50 % and 99.5 % quantiles are kept:

``reconstruction_error``
    ``||x - w H||_2 / ||x||_2`` with ``w = argmin_{w >= 0} ||x - w H||_2`` (the exact
    NNLS projection the model's :class:`~sknnmfdiff.KLNMFTransformer` computes before
    the L2 normalisation) and ``H`` its ``components_``: the share of the image the
    learnt parts-based basis cannot explain. Images of another kind (real MRI against
    a phantom basis, a photograph, noise) are explained far worse than the training
    images (novelty detection by reconstruction error, e.g. Pimentel et al., "A review
    of novelty detection", Signal Processing 99, 2014, Sec. 5).
``mean_intensity``
    Mean pixel value in [0, 1]; nearly black or washed-out images sit far outside the
    training range.
``grey_levels``
    Effective number of grey levels: ``exp`` of the Shannon entropy (nats) of the
    image's 256-bin histogram over [0, 1] (its perplexity). An image quantised to 3
    levels has at most 3; resized MRI slices have tens to hundreds.

An image is flagged when its reconstruction error exceeds the smaller of
:data:`RECONSTRUCTION_FACTOR` times the training 99.5 % quantile and the midpoint between
that quantile and 1 (nothing explained; the error is at most 1, and a rank-15 basis of
real MRI leaves about half of an image unexplained), its mean intensity lies below half the training
0.5 % quantile or above the midpoint between the training 99.5 % quantile and 1, or
its grey levels fall below half the training 0.5 % quantile. The margins keep the
false alarms on held-out images of the training kind rare (measured on the real MRI
data: see the tests); a flag is a warning, never a refusal.
"""

import hashlib
import math

import numpy as np

__all__ = ["RECONSTRUCTION_FACTOR", "QUANTILES", "training_record", "image_hashes",
           "image_statistics",
           "check_images", "check_data_kind", "check_inputs", "record_beside"]

#: Record format version (bump on an incompatible change of the dict's keys).
RECORD_VERSION = 1
#: Training quantiles kept per statistic (low, median, high).
QUANTILES = (0.005, 0.5, 0.995)
#: An image is flagged when its reconstruction error exceeds this many times the
#: training 99.5 % quantile.
RECONSTRUCTION_FACTOR = 1.25
_STATISTICS = ("reconstruction_error", "mean_intensity", "grey_levels")


def _nmf_components(model):
    """``components_`` (r, n_features) of the first fitted step that has them, or None."""
    steps = getattr(model, "steps", None)
    candidates = [est for _, est in steps] if steps is not None else [model]
    for est in candidates:
        comp = getattr(est, "components_", None)
        if comp is not None:
            return np.asarray(comp, dtype=np.float32)
    return None


def _digest(X, y):
    """SHA-1 of the arrays' shapes, dtypes and bytes (as ``_runs.digest_arrays``)."""
    h = hashlib.sha1()
    for a in (X, y):
        a = np.ascontiguousarray(a)
        h.update(f"{a.shape}{a.dtype}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def image_statistics(model, X, *, batch_size=256):
    """The three per-image statistics of the input-distribution reference.

    Parameters
    ----------
    model : fitted Pipeline or KLNMFTransformer
        Its first step with ``components_`` gives the basis ``H``; without one the
        reconstruction error is NaN.
    X : array-like of shape (n_samples, n_features)
        Flattened images, pixels in [0, 1].
    batch_size : int, default=256
        Rows projected at a time.

    Returns
    -------
    stats : dict of str to ndarray of shape (n_samples,), float64
        ``"reconstruction_error"`` (relative L2 error of the NNLS reconstruction, in
        [0, 1]; NaN for an all-zero image or a model without a basis),
        ``"mean_intensity"`` (in [0, 1]) and ``"grey_levels"`` (in [1, 256]).

    Raises
    ------
    ValueError
        If ``X`` is not 2-D or its width differs from the basis's.
    """
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {X.shape}")
    n = X.shape[0]
    mean = X.mean(axis=1, dtype=np.float64)
    bins = np.clip((X * 256).astype(np.int64), 0, 255)
    levels = np.empty(n)
    for i in range(n):
        p = np.bincount(bins[i], minlength=256) / X.shape[1]
        p = p[p > 0]
        levels[i] = math.exp(-float(np.sum(p * np.log(p))))
    err = np.full(n, np.nan)
    H = _nmf_components(model)
    if H is not None:
        if H.shape[1] != X.shape[1]:
            raise ValueError(f"X has {X.shape[1]} features per image, the model's basis "
                             f"{H.shape[1]}: load the images at the model's image size")
        import torch

        from .nn import nnls

        Ht = torch.from_numpy(H).to(torch.float64)
        with torch.no_grad():
            for s in range(0, n, batch_size):
                Xb = torch.from_numpy(X[s : s + batch_size]).to(torch.float64)
                resid = (Xb - nnls(Xb, Ht) @ Ht).norm(dim=1)
                norm = Xb.norm(dim=1)
                err[s : s + len(Xb)] = torch.where(norm > 0, resid / norm.clamp(min=1e-300),
                                                   torch.nan).numpy()
    return {"reconstruction_error": err, "mean_intensity": mean, "grey_levels": levels}


def image_hashes(X):
    """Per-image fingerprints: the first 16 hex digits of the SHA-1 of each row's float32 bytes.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Images, flattened, pixels in [0, 1].

    Returns
    -------
    hashes : list of str
        One per row, in row order. Equal images (same file, same size, same loader)
        give equal hashes.
    """
    X = np.ascontiguousarray(X, dtype=np.float32)
    return [hashlib.sha1(row.tobytes()).hexdigest()[:16] for row in X]


def training_record(model, X, y, *, synthetic, image_size, class_names, source):
    """Describe the training data of a fitted model, for saving with it.

    Parameters
    ----------
    model : fitted Pipeline
        The model fitted on ``X``, ``y`` (its KL-NMF basis gives the reconstruction
        error).
    X : array-like of shape (n_samples, n_features)
        The training images, flattened, pixels in [0, 1].
    y : array-like of shape (n_samples,)
        Their labels (only their digest is kept).
    synthetic : bool
        Whether the images are the synthetic phantom slices.
    image_size : int
        Side of the (square) images in pixels.
    class_names : sequence of str
        Name of each label, in label order.
    source : str
        Where the images came from (a folder, or ``"phantom"``).

    Returns
    -------
    record : dict
        JSON-able: ``version``, ``synthetic``, ``image_size``, ``class_names``,
        ``n_images``, ``data_digest`` (SHA-1 of ``X`` and ``y``), ``image_hashes``
        (:func:`image_hashes`, sorted, so that :func:`check_inputs` can tell which
        images were trained on), ``source`` and ``reference``: for each statistic of
        :func:`image_statistics`, its training quantiles at :data:`QUANTILES`
        (``"quantiles"`` lists them).
    """
    X = np.asarray(X, dtype=np.float32)
    stats = image_statistics(model, X)
    reference = {"quantiles": list(QUANTILES)}
    for name in _STATISTICS:
        v = stats[name][np.isfinite(stats[name])]
        reference[name] = [float(q) for q in np.quantile(v, QUANTILES)] if v.size else None
    return {
        "version": RECORD_VERSION, "synthetic": bool(synthetic), "image_size": int(image_size),
        "class_names": [str(c) for c in class_names], "n_images": int(X.shape[0]),
        "data_digest": _digest(X, np.asarray(y)), "image_hashes": sorted(image_hashes(X)),
        "source": str(source), "reference": reference,
    }


def check_images(record, model, X):
    """Flag the images that lie far outside the training distribution.

    Parameters
    ----------
    record : dict
        A :func:`training_record`.
    model : fitted Pipeline
        The model the record belongs to.
    X : array-like of shape (n_samples, n_features)
        Images at the model's image size, pixels in [0, 1].

    Returns
    -------
    reasons : list of list of str
        One list per image, empty where nothing is wrong, else one short reason per
        failed test, e.g. ``"reconstruction error 0.49, 1.9x the training 99.5 %
        quantile 0.26"``,
        ``"nearly black: mean intensity 0.004 (training 0.5 % quantile 0.093)"``,
        ``"only 3 grey levels (training 0.5 % quantile 41)"``.
    """
    ref = record.get("reference") or {}
    stats = image_statistics(model, X)
    out = [[] for _ in range(len(stats["mean_intensity"]))]
    q = ref.get("reconstruction_error")
    if q:
        for i, e in enumerate(stats["reconstruction_error"]):
            if np.isfinite(e) and e > min(RECONSTRUCTION_FACTOR * q[2], (q[2] + 1) / 2):
                out[i].append(f"reconstruction error {e:.2f}, {e / q[2]:.1f}x the training "
                              f"99.5 % quantile {q[2]:.2f}")
    q = ref.get("mean_intensity")
    if q:
        for i, m in enumerate(stats["mean_intensity"]):
            if m < q[0] / 2:
                out[i].append(f"nearly black: mean intensity {m:.3g} (training 0.5 % "
                              f"quantile {q[0]:.3g})")
            elif m > (q[2] + 1) / 2:
                out[i].append(f"too bright: mean intensity {m:.3g} (training 99.5 % "
                              f"quantile {q[2]:.3g})")
    q = ref.get("grey_levels")
    if q:
        for i, g in enumerate(stats["grey_levels"]):
            if g < q[0] / 2:
                out[i].append(f"only {g:.0f} grey levels (training 0.5 % quantile "
                              f"{q[0]:.0f})")
    return out


def check_data_kind(record, *, synthetic=None, class_names=None, image_size=None):
    """Say how a data set differs in kind from a model's training data.

    Parameters
    ----------
    record : dict or None
        A :func:`training_record`, or None for a model saved without one.
    synthetic : bool or None, default=None
        Whether the new data are the synthetic phantom slices; None when unknown (loose
        image files): then a model trained on synthetic data is reported, as its
        predictions on any real image mean nothing.
    class_names : sequence of str or None, default=None
        The new data's class names, in label order; None skips the comparison.
    image_size : int or None, default=None
        The new data's image side; None skips the comparison.

    Returns
    -------
    problems : list of str
        One line per difference; empty when the data look like the training data.
    """
    if record is None:
        return []
    out = []
    trained_synthetic = record.get("synthetic")
    if trained_synthetic and synthetic is not True:
        out.append("the model was trained on SYNTHETIC phantom slices "
                   f"({record.get('source', 'phantom')}); its predictions on real MRI "
                   "mean nothing")
    elif trained_synthetic is False and synthetic is True:
        out.append("the model was trained on real images and is used on SYNTHETIC "
                   "phantom slices")
    names = record.get("class_names")
    if class_names is not None and names and [str(c) for c in class_names] != names:
        out.append(f"the data's classes {[str(c) for c in class_names]} differ from the "
                   f"model's training classes {names}")
    size = record.get("image_size")
    if image_size is not None and size and int(image_size) != size:
        out.append(f"the images are {image_size} px, the model was trained on {size} px")
    return out


def check_inputs(record, model, X, files, *, per_file=True, **kind):
    """Both checks for a command: the data's kind, then every image.

    Parameters
    ----------
    record : dict or None
        The model's :func:`training_record`; None for a model saved without one.
    model : fitted Pipeline
        The model.
    X : array-like of shape (n_samples, n_features)
        Images at the model's image size, pixels in [0, 1].
    files : sequence of str of length n_samples
        The images' files, for the report.
    per_file : bool, default=True
        Whether ``lines`` gives one line per flagged image, or one line in all.
    **kind
        ``synthetic``, ``class_names``, ``image_size`` of :func:`check_data_kind`.

    Returns
    -------
    lines : list of str
        The warnings, one line each: one per difference in kind (or one saying the
        model has no record), one counting the images the model was trained on, then
        one per flagged image or one counting them.
    reasons : list of list of str
        :func:`check_images` per image (all empty without a record).
    summary : dict
        JSON-able: ``training_record`` (without its image hashes), ``data_kind`` (=
        ``problems``), ``n_images``, ``n_out_of_distribution``, ``out_of_distribution``
        (file -> reasons), ``n_in_training_data`` and ``in_training_data`` (the files
        whose images the model was trained on).
    """
    if record is None:
        problems = ["this model file has no record of its training data (saved by an older "
                    "sknnmfdiff); images of another kind are not detected"]
        reasons = [[] for _ in range(len(X))]
    else:
        problems = check_data_kind(record, **kind)
        reasons = check_images(record, model, X)
    seen = set(record.get("image_hashes") or ()) if record is not None else set()
    trained_on = [str(f) for f, h in zip(files, image_hashes(X)) if h in seen] if seen else []
    overlap = [f"{len(trained_on)} of {len(X)} images were in this model's training data "
               f"(first: {trained_on[0]}); figures on them are not held-out figures"
               ] if trained_on else []
    flagged = {str(f): why for f, why in zip(files, reasons) if why}
    if per_file:
        lines = [f"{f}: out of the training distribution: {'; '.join(why)}"
                 for f, why in flagged.items()]
    else:
        lines = [f"{len(flagged)} of {len(X)} images lie out of the training distribution "
                 "(listed in evaluation.json under input_checks)"] if flagged else []
    record_short = None if record is None else {
        k: v for k, v in record.items() if k != "image_hashes"}
    return problems + overlap + lines, reasons, {"training_record": record_short, "data_kind": problems,
                               "n_images": len(X), "n_out_of_distribution": len(flagged),
                               "out_of_distribution": flagged,
                               "n_in_training_data": len(trained_on),
                               "in_training_data": trained_on}


def record_beside(model_path):
    """The training record the study writes beside a model (``<name>.json``), or None.

    Parameters
    ----------
    model_path : path-like
        A model file, e.g. ``<out>/models/defended.joblib``.

    Returns
    -------
    record : dict or None
        The ``"training"`` entry of the JSON file with the same stem; None when the file
        is missing, unreadable or has none.
    """
    import json
    from pathlib import Path

    try:
        record = json.loads(Path(model_path).with_suffix(".json").read_text()).get("training")
    except (OSError, ValueError, AttributeError):
        return None
    return record if isinstance(record, dict) else None
