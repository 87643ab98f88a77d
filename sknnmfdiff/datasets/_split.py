"""The paper's balanced sample and its leakage-free train / validation / test split."""

from __future__ import annotations

import logging
import numbers

import numpy as np
from sklearn.utils import Bunch
from sklearn.utils._param_validation import Interval, validate_params

from ..paper import PAPER_PROTOCOL
from ._common import _seed_from
from ._duplicates import _groups_from_keys
from ._images import _pixel_hash

logger = logging.getLogger(__name__)


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
    n_per_class=PAPER_PROTOCOL["n_per_class"],
    train_size=PAPER_PROTOCOL["train_size"],
    val_size=PAPER_PROTOCOL["val_size"],
    test_size=PAPER_PROTOCOL["test_size"],
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
        A binary-task Bunch from :func:`~sknnmfdiff.datasets.load_mri_folder` (exact
        duplicates are then read from its ``pixel_hash``, the original pixels), or a
        pixel matrix (exact duplicates are then rows with identical values).
    y : array-like of shape (n_samples,), default=None
        Binary labels, required with an array ``X`` and ignored with a Bunch.
    groups : list of array-like of int, default=None
        Further duplicate groups as returned by
        :func:`~sknnmfdiff.datasets.find_duplicates`, e.g.
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
