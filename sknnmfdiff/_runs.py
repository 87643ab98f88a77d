"""What every long run (the study, the sweep) shares: loading its data and split,
stage timers, machine information, strict-JSON result files, and the digests and model
settings that key finished work, so that a rerun reuses only what it would recompute."""

import hashlib
import json
import platform
import time
from pathlib import Path

import numpy as np

from ._jsonable import to_jsonable


class Timer:
    """Context manager: logs ``[name] ...`` and ``[name] done in X s``, and stores the
    wall time in ``timings[name]`` (seconds, 2 decimals) when the block finishes."""

    def __init__(self, timings, name, log):
        self.timings, self.name, self.log = timings, name, log

    def __enter__(self):
        self.t0 = time.perf_counter()
        self.log(f"[{self.name}] ...")
        return self

    def __exit__(self, *exc):
        self.timings[self.name] = round(time.perf_counter() - self.t0, 2)
        if exc[0] is None:
            self.log(f"[{self.name}] done in {self.timings[self.name]:.1f} s")


def machine_info():
    """Platform, processor, CPU count, torch threads, CUDA device and Python version."""
    import os

    import torch

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
    }


def write_json(path, obj):
    """Write ``obj`` as strict JSON (NaN -> null) atomically: a temporary file, then a rename."""
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(json.dumps(to_jsonable(obj), indent=2, allow_nan=False))
    tmp.replace(path)


def stratified_subset(bunch, n, seed):
    """A seeded, class-stratified subset of ``n`` rows of a data ``Bunch``.

    Every class keeps its share of the rows (largest remainders, at least one row of each
    class while ``n`` allows), drawn without replacement by a ``numpy.random.Generator``
    seeded with ``seed``; rows keep their order. Arrays of the bunch with one row per
    image are subset alike; ``subset`` holds the row indices kept.

    Parameters
    ----------
    bunch : sklearn.utils.Bunch
        With ``target`` of shape (N,) and per-image arrays (``data``, ``images``,
        ``filenames``, ...).
    n : int
        Rows kept, 1 .. N (``n >= N`` returns ``bunch`` itself).
    seed : int
        Seed of the draw.

    Returns
    -------
    subset : sklearn.utils.Bunch

    Raises
    ------
    ValueError
        ``n`` < 1.
    """
    from sklearn.utils import Bunch

    y = np.asarray(bunch.target)
    total = len(y)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if n >= total:
        return bunch
    classes, counts = np.unique(y, return_counts=True)
    quota = counts * n / total
    take = np.maximum(np.floor(quota).astype(int), np.minimum(1, counts))
    while take.sum() > n:  # the minimum of one per class overshot
        take[np.argmax(take)] -= 1
    for i in np.argsort(-(quota - np.floor(quota)), kind="stable")[: n - take.sum()]:
        take[i] += 1
    rng = np.random.default_rng(seed)
    keep = np.sort(np.concatenate([rng.choice(np.flatnonzero(y == c), size=int(t), replace=False)
                                   for c, t in zip(classes, take)]))
    out = Bunch(**bunch)
    for key, value in bunch.items():
        if isinstance(value, np.ndarray) and value.ndim and value.shape[0] == total:
            out[key] = value[keep]
    out["subset"] = keep
    return out


def load_data(cfg, log):
    """Images (or phantom slices when ``cfg.data`` is None), duplicate groups and the
    paper split; returns ``(bunch, split, summary, near)`` (``near``: the near-duplicate
    groups, lists of row indices). ``cfg`` needs ``data``,
    ``image_size``, ``phantom_samples``, ``n_per_class``, ``near_duplicates``,
    ``on_error`` and ``seed``; an optional ``max_images`` (None: all) keeps a seeded,
    class-stratified subset of the folder's images, and ``n_per_class`` None then takes
    the paper's or what the subset holds, whichever is fewer."""
    from .datasets import find_duplicates, load_mri_folder, make_phantom_mri, paper_split

    max_images = getattr(cfg, "max_images", None)
    if cfg.data is None:
        bunch = make_phantom_mri(cfg.phantom_samples, image_size=cfg.image_size, random_state=cfg.seed)
        synthetic = True
        log(
            f"No --data given: running on {cfg.phantom_samples} SYNTHETIC phantom slices "
            "(not MRI). Give --data DIR for real images."
        )
    else:
        bunch = load_mri_folder(cfg.data, image_size=cfg.image_size, task="binary",
                                on_error=cfg.on_error)
        synthetic = False
        if max_images is not None and max_images < len(bunch.target):
            n_all = len(bunch.target)
            bunch = stratified_subset(bunch, max_images, cfg.seed)
            log(f"Using a seeded, class-stratified subset of {max_images} of the {n_all} images")
    exact = find_duplicates(bunch, kind="exact")
    near = find_duplicates(bunch, kind="near") if cfg.near_duplicates else []
    counts = np.bincount(bunch.target, minlength=2)
    n_per_class = cfg.n_per_class
    if synthetic:
        n_per_class = min(n_per_class, int(counts.min()))
    elif n_per_class is None:
        unique = counts.copy()
        for g in exact:
            unique[bunch.target[g[0]]] -= len(g) - 1
        n_per_class = min(_paper_n_per_class(), int(unique.min()))
    split = paper_split(
        bunch, groups=near or None, n_per_class=n_per_class, random_state=cfg.seed
    )
    summary = {
        "source": "synthetic phantom (make_phantom_mri)" if synthetic else str(cfg.data),
        "synthetic": synthetic,
        "n_images": int(len(bunch.target)),
        "counts": {str(bunch.target_names[i]): int(c) for i, c in enumerate(counts)},
        "image_size": cfg.image_size,
        "exact_duplicate_groups": len(exact),
        "exact_duplicate_images": int(sum(len(g) for g in exact)),
        "near_duplicate_groups": len(near),
        "near_duplicate_images": int(sum(len(g) for g in near)),
        "split": split.summary,
        "n_per_class": n_per_class,
    }
    if max_images is not None and not synthetic:
        summary["max_images"] = int(max_images)
    return bunch, split, summary, near


def _paper_n_per_class():
    from .paper import PAPER_PROTOCOL

    return PAPER_PROTOCOL["n_per_class"]


def json_value(v):
    """``v`` as a JSON value: numbers, strings, booleans and None as such, numpy
    scalars as their Python value, anything else as its ``repr``."""
    if isinstance(v, np.generic):
        v = v.item()
    return v if v is None or isinstance(v, (bool, int, float, str)) else repr(v)


def model_settings(pipe):
    """Every step's class and parameters (defaults included; caches left out)."""
    return [
        [name, f"{type(est).__module__}.{type(est).__qualname__}",
         {k: json_value(v) for k, v in sorted(est.get_params(deep=False).items())
          if k != "memory"}]
        for name, est in pipe.steps
    ]


def digest_arrays(*arrays):
    """SHA-1 of the arrays' shapes, dtypes and bytes."""
    h = hashlib.sha1()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.shape}{a.dtype}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def source_files():
    """Every source file of the package, sub-packages included, in a fixed order."""
    root = Path(__file__).parent
    return sorted(root.rglob("*.py"), key=lambda p: p.relative_to(root).as_posix())


def source_digest():
    """SHA-1 of the package's source files, so that changed code is never taken for
    the code that wrote an evaluation (the version alone does not change in
    development)."""
    root = Path(__file__).parent
    h = hashlib.sha1()
    for path in source_files():
        h.update(path.relative_to(root).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()
