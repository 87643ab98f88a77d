"""Checkpoint files of finished attack batches, so an interrupted attack resumes."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch

from .._jsonable import to_jsonable

#: Version of the layout of the checkpoint files, written into each manifest.
_CHECKPOINT_FORMAT = 1


def _data_digest(xt, yt):
    h = hashlib.sha256()
    h.update(xt.detach().cpu().contiguous().numpy().tobytes())
    h.update(yt.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _open_checkpoint(checkpoint_dir, manifest):
    """Create or validate a checkpoint directory; returns its Path."""
    path = Path(checkpoint_dir)
    path.mkdir(parents=True, exist_ok=True)
    mpath = path / "manifest.json"
    if mpath.exists():
        with open(mpath) as fh:
            old = json.load(fh)
        if old.get("config_hash") != manifest["config_hash"]:
            raise ValueError(
                f"checkpoint_dir {str(path)!r} holds batches of a different attack "
                f"(config hash {old.get('config_hash', '?')[:12]} != "
                f"{manifest['config_hash'][:12]}: configuration, model weights or data "
                "differ). Use a fresh directory or delete this one."
            )
        return path
    tmp = mpath.with_suffix(".tmp")
    with open(tmp, "w") as fh:
        json.dump(to_jsonable(manifest), fh, indent=2, sort_keys=True)
    os.replace(tmp, mpath)
    return path


def _batch_file(path, b):
    return path / f"batch_{b:05d}.npz"


def _save_batch(path, b, x_adv, broken_by, counts, seconds):
    target = _batch_file(path, b)
    tmp = path / f".batch_{b:05d}.tmp.npz"
    np.savez(
        tmp,
        x_adv=x_adv.detach().cpu().numpy().astype(np.float32),
        broken_by=np.asarray(broken_by, dtype="U16"),
        info=np.asarray(json.dumps({"counts": counts, "seconds": seconds})),
    )
    os.replace(tmp, target)


def _load_batch(path, b):
    with np.load(_batch_file(path, b), allow_pickle=False) as z:
        info = json.loads(str(z["info"]))
        return torch.from_numpy(z["x_adv"]), [str(s) for s in z["broken_by"]], info
