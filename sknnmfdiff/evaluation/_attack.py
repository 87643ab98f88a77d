"""Running an attack over a whole input set, in batches, with checkpoints."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time

import numpy as np
import torch

from ._autoattack import _attack_batch, _attack_stages
from ._checkpoint import (
    _CHECKPOINT_FORMAT,
    _batch_file,
    _data_digest,
    _drop_stage,
    _load_batch,
    _load_stage,
    _open_checkpoint,
    _save_batch,
    _save_stage,
)
from ._common import _check_inputs, _module_device, _seed_int, _state_digest
from ._config import resolve_attack_config

_log = logging.getLogger(__name__)


def run_attack(
    module,
    x,
    y,
    *,
    eps=0.10,
    norm="Linf",
    protocol="paper",
    n_eot=None,
    n_restarts=None,
    n_iter=None,
    square_queries=None,
    square_n_eot=None,
    eot_batch=None,
    schedule=None,
    batch_size=250,
    random_state=0,
    device=None,
    checkpoint_dir=None,
    progress=True,
    return_details=False,
):
    """Attack a classifier with AutoAttack's APGD and Square under a chosen protocol.

    Batches are attacked independently, each with its own seed derived from
    ``random_state`` and the batch index (the module's generator is rewound with
    ``module.manual_seed`` when present), so a resumed run gives the same result as
    an uninterrupted one. The result depends on ``batch_size`` (the seeds and
    AutoAttack's random starts are drawn per batch), which is part of the attack's
    configuration. The caller's global RNG states are left untouched.

    Parameters
    ----------
    module : torch.nn.Module
        Classifier in eval mode returning logits ``(N, n_classes)`` for float32
        input in [0, 1].
    x : ndarray or Tensor of shape (N, C, H, W), float in [0, 1]
        Clean inputs (pixels ``(N, 1, H, W)``; features ``(N, 1, 1, k)``).
    y : ndarray or Tensor of shape (N,), int
        True class indices ``0 .. n_classes - 1``.
    eps : float, default=0.10
        Budget in input units (L-inf: per coordinate; L2: Euclidean norm).
    norm : {"Linf", "L2"}, default="Linf"
        Norm of the perturbation ball.
    protocol : {"paper", "adaptive"}, default="paper"
        See :mod:`sknnmfdiff.evaluation`.
    n_eot, n_restarts, n_iter, square_queries, square_n_eot, eot_batch : int or None
        Attack strength; ``None`` takes the protocol default
        (:data:`PAPER_DEFAULTS`, :data:`ADAPTIVE_DEFAULTS`). EOT settings apply
        to the adaptive protocol on randomized models only.
    schedule : {"screened", "sequential"} or None
        Order of the APGD runs; ``None``: ``"screened"`` (adaptive) or
        ``"sequential"`` (paper). See :func:`resolve_attack_config`.
    batch_size : int, default=250
        Samples attacked together. Changing it changes the random draws, and so the
        adversarial inputs found (not the attack's strength).
    random_state : int, default=0
        Seed of every random choice of the attack.
    device : str or torch.device, optional
        Defaults to the module's device.
    checkpoint_dir : str or Path, optional
        Directory receiving ``manifest.json`` (config hash over settings, model
        weights and data), one ``batch_#####.npz`` per finished batch and, inside the
        batch being attacked, ``stage_#####.npz`` after each finished stage of the
        cascade (an APGD run or restart; the screening run, or all the replicated
        restarts, of the ``"screened"`` schedule; Square), random states included.
        On a rerun with the same configuration finished batches are loaded and an
        interrupted batch continues after its last finished stage, with the result
        of an uninterrupted run: an interrupt loses at most one stage. A different
        configuration raises ``ValueError`` (a checkpoint written before schedules
        existed is of another configuration).
    progress : bool, default=True
        Show a tqdm progress bar over the stages of every batch (APGD restarts,
        Square), with an ETA.
    return_details : bool, default=False
        Also return a dict with the config, per-sample ``broken_by``
        (``"clean"``, an attack name or ``""``), per-attack counts, per-batch
        seconds, how many batches were loaded from the checkpoint, and ``stages``:
        one record per stage run in this call (``batch``, ``stage`` (its label,
        e.g. ``"apgd-ce screen"``), ``samples`` entering it, ``replicas`` of each
        (side-by-side restarts or targets) and wall-clock ``seconds``, judging and
        checkpointing included).

    Returns
    -------
    x_adv : same type as ``x``, float32 of shape (N, C, H, W)
        Adversarial inputs within ``eps`` of ``x`` and inside [0, 1]. Samples no
        attack broke hold the clean input (paper) or their highest-loss point
        (adaptive).
    details : dict
        Only when ``return_details=True``.

    Raises
    ------
    ValueError, TypeError
        Malformed inputs or settings; a checkpoint of another configuration.
    """
    from tqdm.auto import tqdm

    dev = _module_device(module, device)
    xt, yt = _check_inputs(x, y, device=dev)
    if module.training:
        _log.warning("module is in training mode; evaluating it as it is (call .eval()).")
    cfg = resolve_attack_config(
        module, xt, eps=eps, norm=norm, protocol=protocol, n_eot=n_eot,
        n_restarts=n_restarts, n_iter=n_iter, square_queries=square_queries,
        square_n_eot=square_n_eot, eot_batch=eot_batch, schedule=schedule, batch_size=batch_size,
        random_state=random_state,
    )
    if int(yt.max()) >= cfg["n_classes"]:
        raise ValueError(f"y holds class {int(yt.max())} but the module has {cfg['n_classes']} classes.")
    n = xt.shape[0]
    n_batches = math.ceil(n / batch_size)
    path = None
    if checkpoint_dir is not None:
        digest = hashlib.sha256(
            json.dumps(cfg, sort_keys=True).encode()
            + _state_digest(module).encode()
            + _data_digest(xt, yt).encode()
        ).hexdigest()
        manifest = {
            "format": _CHECKPOINT_FORMAT,
            "config_hash": digest,
            "config": cfg,
            "n_samples": n,
            "n_batches": n_batches,
        }
        path = _open_checkpoint(checkpoint_dir, manifest)

    x_adv = torch.empty_like(xt)
    broken_by = [""] * n
    counts = {a: 0 for a in ["clean"] + cfg["attacks"]}
    seconds = []
    stage_log = []  # one record per stage that ran in this call
    n_loaded = 0
    # The bar counts stages (APGD restarts, Square), so its ETA moves inside long batches.
    stages = _attack_stages(cfg)
    n_stages = max(len(stages), 1)
    bar = tqdm(total=n_batches * n_stages, desc=f"{protocol} attack", unit="stage",
               disable=not progress)

    def advance(to):
        if to > bar.n:
            bar.update(to - bar.n)

    for b in range(n_batches):
        lo, hi = b * batch_size, min((b + 1) * batch_size, n)
        if path is not None and _batch_file(path, b).exists():
            xa, bb, info = _load_batch(path, b)
            if tuple(xa.shape) != tuple(xt[lo:hi].shape):
                raise ValueError(f"checkpoint batch {b} in {str(path)!r} has shape {tuple(xa.shape)}.")
            x_adv[lo:hi] = xa.to(dev)
            n_loaded += 1
            sec = info["seconds"]
            bcounts = info["counts"]
        else:
            t0 = time.perf_counter()
            seed = _seed_int(random_state, b)
            saved = _load_stage(path, b) if path is not None else None
            resume, before = saved if saved is not None else (None, 0.0)
            if resume is not None:
                if tuple(resume["x_adv"].shape) != tuple(xt[lo:hi].shape):
                    raise ValueError(f"checkpoint stage of batch {b} in {str(path)!r} has shape "
                                     f"{tuple(resume['x_adv'].shape)}.")
                _log.info("batch %d/%d: resuming after stage %d (checkpoint)", b + 1, n_batches,
                          resume["stage"])

            def on_stage(stage, n_left, b=b):
                now = time.perf_counter()
                if stage_log and stage_log[-1]["batch"] == b:
                    stage_log[-1]["seconds"] = now - stage_log[-1].pop("_t0")
                stage_log.append({"batch": b, "stage": stage.label, "samples": int(n_left),
                                  "replicas": stage.replicas, "_t0": now})
                advance(b * n_stages + stages.index(stage))
                bar.set_postfix_str(f"batch {b + 1}/{n_batches}: {stage.label}, {n_left} left")
                _log.debug("batch %d: %s on %d samples", b + 1, stage.label, n_left)

            def on_stage_done(state, b=b, t0=t0, before=before):
                _save_stage(path, b, state, before + time.perf_counter() - t0)

            xa, bb, bcounts = _attack_batch(
                module, xt[lo:hi], yt[lo:hi], cfg, seed, dev, on_stage, resume=resume,
                on_stage_done=on_stage_done if path is not None else None)
            sec = before + time.perf_counter() - t0
            if stage_log and "_t0" in stage_log[-1]:
                stage_log[-1]["seconds"] = time.perf_counter() - stage_log[-1].pop("_t0")
            x_adv[lo:hi] = xa
            if path is not None:
                _save_batch(path, b, xa, bb, bcounts, sec)
                _drop_stage(path, b)
            _log.info("batch %d/%d attacked in %.1f s: %s", b + 1, n_batches, sec, bcounts)
        broken_by[lo:hi] = bb
        seconds.append(sec)
        for k, v in bcounts.items():
            counts[k] = counts.get(k, 0) + int(v)
        advance((b + 1) * n_stages)
        bar.set_postfix(broken=sum(1 for s in broken_by[:hi] if s))
    bar.close()
    out = x_adv.detach().cpu() if isinstance(x, np.ndarray) else x_adv.detach()
    if isinstance(x, np.ndarray):
        out = out.numpy()
    if not return_details:
        return out
    return out, {
        "config": cfg,
        "broken_by": broken_by,
        "counts": counts,
        "batch_seconds": seconds,
        "stages": stage_log,
        "n_batches_loaded": n_loaded,
    }
