"""Checkpoint files of finished attack batches, so an interrupted attack resumes.

A finished batch is ``batch_#####.npz``. Inside a batch, the state after its last
finished stage of the cascade (one APGD run or restart, the screening run or the
replicated restarts of the ``"screened"`` schedule, or Square) is
``stage_#####.npz``, random states included, so that an interrupt loses at most one
stage of one batch and the resumed batch ends as an uninterrupted one does; it is
deleted once the batch is written.
"""

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


def _stage_file(path, b):
    return path / f"stage_{b:05d}.npz"


def _save_stage(path, b, state, seconds):
    """Write the state of batch ``b`` after a finished stage (see ``_attack_batch``);
    ``seconds``: the batch's attack time so far."""
    rng = {f"rng_{i}": t.detach().cpu().numpy() for i, t in enumerate(state["rng"].values())}
    info = {"stage": int(state["stage"]), "counts": state["counts"], "seconds": seconds,
            "rng": list(state["rng"])}
    tmp = path / f".stage_{b:05d}.tmp.npz"
    np.savez(
        tmp,
        x_adv=state["x_adv"].detach().cpu().numpy(),
        robust=state["robust"].detach().cpu().numpy(),
        best_loss=state["best_loss"].detach().cpu().numpy(),
        broken_by=np.asarray(state["broken_by"], dtype="U16"),
        info=np.asarray(json.dumps(info)),
        **rng,
    )
    os.replace(tmp, _stage_file(path, b))


def _load_stage(path, b):
    """The state written by :func:`_save_stage` and the seconds spent, or None."""
    if not _stage_file(path, b).exists():
        return None
    with np.load(_stage_file(path, b), allow_pickle=False) as z:
        info = json.loads(str(z["info"]))
        state = {"stage": info["stage"], "counts": info["counts"],
                 "x_adv": torch.from_numpy(z["x_adv"]), "robust": torch.from_numpy(z["robust"]),
                 "best_loss": torch.from_numpy(z["best_loss"]),
                 "broken_by": [str(s) for s in z["broken_by"]],
                 "rng": {k: torch.from_numpy(z[f"rng_{i}"]) for i, k in enumerate(info["rng"])}}
    return state, float(info["seconds"])


def _drop_stage(path, b):
    _stage_file(path, b).unlink(missing_ok=True)
