"""Robustness-aware sweep over rank, selected components, timestep and EOT draws.

:func:`run_sweep` is what ``sknnmfdiff sweep`` runs: the ablations the paper lists as
missing (arXiv 2603.13182, Sec. 6: rank and t fixed "ad hoc", one eps).

1. **Grid, cross-validated.** On the development part of the paper split (train +
   validation; the test part is kept for step 2), ``cv`` stratified folds that keep
   every near-duplicate group in one fold. For every cell — one
   ``(n_components, k, t, n_eot)`` and one fold — the defended pipeline is fitted on
   the other folds and scored on the held-out fold: clean balanced accuracy, and
   robust balanced accuracy under the adaptive attack in feature space at ``eps``
   (:class:`~sknnmfdiff.model_selection.RobustnessScorer`, light settings by default).
   ``t = 0`` is the undefended pipeline. A ``k`` above the rank keeps every component
   (``k = n_components``; the cell is run once).
2. **Curves.** For the ``n_best`` most robust configurations whose clean score is
   within ``tolerance`` of the best clean score (the rule of
   :func:`~sknnmfdiff.model_selection.robust_refit`; fewer when fewer qualify) and the
   paper's configuration (rank 15, k 10, t 41, 8 draws), the pipeline is
   fitted on the whole development part and attacked on the test part at every eps of
   ``eps_curve``, in both threat models.

Nothing is computed twice: one task per ``(n_components, fold)`` fits the NMF once
and, through the pipeline's ``memory``, trains the purifier's denoiser once per
``(n_components, k, fold)`` (its training does not depend on ``t`` or ``n_eot``).
Every finished cell and curve point is written at once to ``<out>/cells/<key>/``; a
rerun with the same settings, data and package code skips them (the key digests all
three), so a killed sweep resumes with nothing lost.

Backends: ``"local"`` runs the tasks with joblib (``n_jobs`` processes); ``"dask"``
runs them on a Dask cluster through joblib's Dask backend (an existing scheduler at
``scheduler``, or a :class:`distributed.LocalCluster` of ``workers`` processes). Only
arrays and parameters cross to the workers; each task sets its torch threads to
``torch_threads`` itself (Dask workers default to one), and every draw is seeded from
``seed``, so both backends give identical results.
"""

import contextlib
import dataclasses
import hashlib
import itertools
import json
import logging
import time
import warnings
from pathlib import Path

import numpy as np

from . import _runs
from .model_selection import LIGHT_ATTACK, robust_refit
from .paper import PAPER_PROTOCOL

logger = logging.getLogger(__name__)

__all__ = ["SweepConfig", "pareto_front", "run_sweep", "summarise"]

#: The paper's configuration, always among the curves.
PAPER_CELL = {"n_components": PAPER_PROTOCOL["n_components"], "k": 10,
              "t": PAPER_PROTOCOL["t"], "n_eot": PAPER_PROTOCOL["n_eot"]}
_GRID_KEYS = ("n_components", "k", "t", "n_eot")


@dataclasses.dataclass
class SweepConfig:
    """Settings of :func:`run_sweep` (all written into ``sweep.json``).

    Parameters
    ----------
    data : str or None
        Image folder (any layout :func:`~sknnmfdiff.datasets.load_mri_folder` reads);
        None runs on SYNTHETIC phantom slices.
    out : str
        Output folder.
    image_size, n_per_class, phantom_samples : int
        Image side in pixels; unique images per class of the paper split; phantom
        images when ``data`` is None.
    n_components, k, t, n_eot : tuple of int
        The grid: NMF ranks, selected components (capped at the rank), purifier
        timesteps (0 = no purifier) and EOT draws.
    cv : int
        Folds of the development part (>= 2).
    eps : float
        L-inf budget of the per-cell robust score, feature units.
    eps_curve : tuple of float
        Budgets of the robustness curves (both threat models).
    curve_spaces : tuple of {"feature", "pixel"}
        Threat models of the curves.
    n_best : int
        Most robust configurations within ``tolerance`` that get curves.
    tolerance : float
        Clean balanced accuracy a configuration may give up to count as "best".
    attack : dict
        Attack settings of the cell scores and curves
        (:data:`~sknnmfdiff.model_selection.LIGHT_ATTACK` by default).
    max_eval : int or None
        Held-out samples attacked per cell (seeded, stratified); None attacks all.
    seed : int
        Seeds the sample, the split, the folds, every estimator and every attack.
    device : str
        Torch device of the fits and attacks.
    near_duplicates : bool
        Keep near-duplicate groups inside one split part and one fold.
    on_error : {"raise", "warn"}
        Unreadable images stop the run or are skipped.
    nmf_max_iter : int
        Iterations of the NMF.
    clf_max_epochs : int or "auto"
        Epochs of the classifier; "auto": the classifier's default for its
        architecture (see :class:`~sknnmfdiff.SkorchCNNClassifier`).
    backend : {"local", "dask"}
        Where the tasks run.
    n_jobs : int
        Local worker processes (``backend="local"``).
    scheduler : str or None
        Address of a running Dask scheduler (``backend="dask"``); None starts a
        local cluster of ``workers`` processes.
    workers : int
        Processes of the local Dask cluster.
    torch_threads : int
        Torch intra-op threads of every task.
    """

    data: str = None
    out: str = "sknnmfdiff-sweep"
    image_size: int = PAPER_PROTOCOL["image_size"]
    n_per_class: int = PAPER_PROTOCOL["n_per_class"]
    phantom_samples: int = 600
    n_components: tuple = (5, 10, 15, 30, 60)
    k: tuple = (10,)
    t: tuple = (0, 10, 20, 41, 80, 150, 300)
    n_eot: tuple = (PAPER_PROTOCOL["n_eot"],)
    cv: int = 3
    eps: float = PAPER_PROTOCOL["eps"]
    eps_curve: tuple = (0.0, 0.02, 0.05, 0.1, 0.2, 0.3)
    curve_spaces: tuple = ("feature", "pixel")
    n_best: int = 2
    tolerance: float = 0.02
    attack: dict = dataclasses.field(default_factory=lambda: dict(LIGHT_ATTACK))
    max_eval: int = None
    seed: int = 0
    device: str = "cpu"
    near_duplicates: bool = True
    on_error: str = "raise"
    nmf_max_iter: int = 200
    clf_max_epochs: object = "auto"
    backend: str = "local"
    n_jobs: int = 1
    scheduler: str = None
    workers: int = 2
    torch_threads: int = 1


#: Settings of ``sknnmfdiff sweep --quick``: phantom data at 32 px, a 2 x 2 grid, 2 folds.
QUICK = dict(data=None, image_size=32, phantom_samples=600, n_per_class=300,
             n_components=(8, 15), k=(8,), t=(0, 20), n_eot=(4,), cv=2,
             eps_curve=(0.0, 0.05, 0.1, 0.2), n_best=1, nmf_max_iter=100, clf_max_epochs=30,
             attack={"n_restarts": 1, "n_iter": 20, "n_eot": 4, "square_queries": 50,
                     "square_n_eot": 1, "n_draws": 8})

# Settings left out of the key of finished work: where and how the tasks run, and the
# grid itself (a cell's result depends on its own rank, k, t and draws only, which name
# its file; so a grid extended by a value reuses every finished cell), and which cells
# get curves (each curve's file is named by its cell and threat model).
_NOT_IN_KEY = ("out", "backend", "n_jobs", "scheduler", "workers", *_GRID_KEYS, "n_best",
               "tolerance")


def _check(cfg):
    for name in _GRID_KEYS:
        values = getattr(cfg, name)
        if not values or any(isinstance(v, bool) or not isinstance(v, (int, np.integer))
                             for v in values):
            raise ValueError(f"{name} must be a non-empty sequence of integers, got {values!r}.")
        if len(set(values)) != len(values):
            raise ValueError(f"{name} repeats a value ({list(values)}): each grid value once.")
    if min(cfg.n_components) < 1 or min(cfg.k) < 1 or min(cfg.t) < 0 or min(cfg.n_eot) < 1:
        raise ValueError("n_components, k and n_eot must be >= 1 and t >= 0.")
    from .purification import DiffusionPurifier

    n_steps = DiffusionPurifier().n_steps
    if max(cfg.t) > n_steps:
        raise ValueError(f"t must be <= {n_steps} (the purifier's n_steps), got {max(cfg.t)}.")
    if cfg.cv < 2:
        raise ValueError(f"cv must be >= 2, got {cfg.cv}.")
    if cfg.backend not in ("local", "dask"):
        raise ValueError(f"backend must be 'local' or 'dask', got {cfg.backend!r}.")
    if cfg.torch_threads < 1 or cfg.n_jobs < 1 or cfg.workers < 1:
        raise ValueError("torch_threads, n_jobs and workers must be >= 1.")


def _cell_key(cell, fold=None):
    key = "r{n_components}-k{k}-t{t}-e{n_eot}".format(**cell)
    return key if fold is None else f"{key}-f{fold}"


def _pipeline(cell, cfg, memory):
    from .pipeline import make_baseline_pipeline, make_paper_pipeline

    common = dict(n_components=cell["n_components"], k=cell["k"], random_state=cfg["seed"],
                  device=cfg["device"], memory=memory, nmf__max_iter=cfg["nmf_max_iter"],
                  clf__max_epochs=cfg["clf_max_epochs"])
    if cell["t"] == 0:
        return make_baseline_pipeline(**common)
    return make_paper_pipeline(t=cell["t"], n_eot=cell["n_eot"], **common)


def _fit_and_score(cell, cfg, X_fit, y_fit, X_eval, y_eval, memory):
    """Fit one pipeline and score it clean and under the light adaptive attack."""
    from sklearn.metrics import balanced_accuracy_score

    from .model_selection import RobustnessScorer

    t0 = time.perf_counter()
    pipe = _pipeline(cell, cfg, memory).fit(X_fit, y_fit)
    clean = float(balanced_accuracy_score(y_eval, pipe.predict(X_eval)))
    scorer = RobustnessScorer(eps=cfg["eps"], space="feature", protocol="adaptive",
                              attack=dict(cfg["attack"]), max_samples=cfg["max_eval"],
                              random_state=cfg["seed"], device=cfg["device"])
    report = scorer.evaluate(pipe, X_eval, y_eval)
    rob = report.robust[report.primary_rule]
    return pipe, {
        **cell,
        "clean_balanced_accuracy": clean,
        "robust_balanced_accuracy": float(rob["balanced_accuracy"]),
        "robust_accuracy": float(rob["accuracy"]),
        "n_robust_correct": int(round(float(rob["accuracy"]) * len(report.per_sample["y"]))),
        "n_eval": int(len(report.per_sample["y"])),
        "seconds": round(time.perf_counter() - t0, 2),
    }


def _write_row(path, row):
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(row, sort_keys=True))
    tmp.replace(path)


@contextlib.contextmanager
def _task_threads(n):
    """Torch and BLAS/OpenMP threads of a task set to ``n`` (restored after): the same
    in every backend, so results do not depend on where a task runs (Dask workers
    start with one thread; a local process with as many as there are cores)."""
    import scipy.linalg  # noqa: F401  (load every BLAS before limiting them all)
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with threadpool_limits(limits=n):
            yield
    finally:
        torch.set_num_threads(before)


def _cells_of_rank(rank, ks, ts, n_eots):
    """The distinct cells of one rank: ``k`` capped at the rank, one ``t = 0`` cell per
    ``k`` (it draws no noise, so ``n_eot`` does not matter; the first is recorded)."""
    cells = []
    for k, t, n_eot in itertools.product(ks, ts, n_eots):
        cell = {"n_components": rank, "k": min(k, rank), "t": t,
                "n_eot": n_eots[0] if t == 0 else n_eot}
        if cell not in cells:
            cells.append(cell)
    return cells


def _owned(*arrays):
    """Fresh, aligned copies: arrays deserialised on a Dask worker can start at any byte,
    and torch and BLAS kernels can round differently on unaligned data."""
    return [np.array(a, copy=True, order="C") for a in arrays]


def _grid_task(rank, fold, cfg, X_fit, y_fit, X_eval, y_eval, cell_dir, cache_dir):
    """All cells of one (rank, fold): the NMF once, the denoiser once per k."""
    X_fit, y_fit, X_eval, y_eval = _owned(X_fit, y_fit, X_eval, y_eval)
    with _task_threads(cfg["torch_threads"]):
        return _grid_cells(rank, fold, cfg, X_fit, y_fit, X_eval, y_eval, cell_dir, cache_dir)


def _grid_cells(rank, fold, cfg, X_fit, y_fit, X_eval, y_eval, cell_dir, cache_dir):
    from joblib import Memory

    memory = Memory(str(cache_dir), verbose=0)
    rows = []
    for cell in _cells_of_rank(rank, cfg["k"], cfg["t"], cfg["n_eot"]):
        path = Path(cell_dir) / f"{_cell_key(cell, fold)}.json"
        if path.exists():
            rows.append(json.loads(path.read_text()))
            continue
        _, row = _fit_and_score(cell, cfg, X_fit, y_fit, X_eval, y_eval, memory)
        row["fold"] = fold
        _write_row(path, row)
        rows.append(row)
    return rows


def _curve_task(cell, space, cfg, X_fit, y_fit, X_test, y_test, cell_dir, cache_dir):
    """Robust accuracy against eps on the test part for one configuration."""
    X_fit, y_fit, X_test, y_test = _owned(X_fit, y_fit, X_test, y_test)
    with _task_threads(cfg["torch_threads"]):
        return _curve(cell, space, cfg, X_fit, y_fit, X_test, y_test, cell_dir, cache_dir)


def _curve(cell, space, cfg, X_fit, y_fit, X_test, y_test, cell_dir, cache_dir):
    from joblib import Memory

    from .evaluation import evaluate_robustness

    path = Path(cell_dir) / f"curve-{_cell_key(cell)}-{space}.json"
    if path.exists():
        return json.loads(path.read_text())
    pipe = _pipeline(cell, cfg, Memory(str(cache_dir), verbose=0)).fit(X_fit, y_fit)
    settings = dict(cfg["attack"])
    n_draws = settings.pop("n_draws", None)
    points = []
    for eps in cfg["eps_curve"]:
        rep = evaluate_robustness(pipe, X_test, y_test, eps=eps, protocol="adaptive",
                                  space=space, n_draws=n_draws, eps_grid=(), checks=False,
                                  random_state=cfg["seed"], device=cfg["device"],
                                  progress=False, **settings)
        m = rep.robust[rep.primary_rule]
        points.append({"eps": float(eps), "balanced_accuracy": float(m["balanced_accuracy"]),
                       "accuracy": float(m["accuracy"]), "accuracy_ci": m.get("accuracy_ci")})
    out = {**cell, "space": space, "points": points}
    _write_row(path, out)
    return out


def _folds(y, groups, cfg):
    from sklearn.model_selection import StratifiedGroupKFold

    splitter = StratifiedGroupKFold(n_splits=cfg.cv, shuffle=True, random_state=cfg.seed)
    return list(splitter.split(np.zeros((len(y), 1)), y, groups))


def _group_labels(n_total, near_groups, dev_index):
    """A group label per development sample: its near-duplicate group, else itself."""
    label = np.arange(n_total)
    for g in near_groups:
        label[np.asarray(g)] = min(g)
    return label[dev_index]


def summarise(rows):
    """One row per configuration: fold means and standard deviations, and the robust
    accuracy pooled over folds with its 95 % Wilson interval (``scipy.stats.binomtest``).

    Parameters
    ----------
    rows : list of dict
        Cell rows of :func:`run_sweep` (one per configuration and fold).

    Returns
    -------
    summary : list of dict
        Sorted by ``(n_components, k, t, n_eot)``.
    """
    from scipy.stats import binomtest

    by = {}
    for r in rows:
        by.setdefault(tuple(r[k] for k in _GRID_KEYS), []).append(r)
    out = []
    for key in sorted(by):
        rs = by[key]
        clean = np.array([r["clean_balanced_accuracy"] for r in rs])
        rob = np.array([r["robust_balanced_accuracy"] for r in rs])
        k_ok, n = sum(r["n_robust_correct"] for r in rs), sum(r["n_eval"] for r in rs)
        ci = binomtest(k_ok, n).proportion_ci(0.95, method="wilson") if n else None
        out.append({
            **dict(zip(_GRID_KEYS, key)), "folds": len(rs),
            "clean_balanced_accuracy": float(clean.mean()),
            "clean_balanced_accuracy_sd": float(clean.std(ddof=1)) if len(rs) > 1 else 0.0,
            "robust_balanced_accuracy": float(rob.mean()),
            "robust_balanced_accuracy_sd": float(rob.std(ddof=1)) if len(rs) > 1 else 0.0,
            "robust_accuracy_pooled": k_ok / n if n else float("nan"),
            "robust_accuracy_pooled_ci": [float(ci.low), float(ci.high)] if ci else None,
        })
    return out


def pareto_front(summary):
    """Indices of the configurations no other beats in both clean and robust balanced
    accuracy (the clean-robust trade-off's Pareto front), by decreasing clean score.

    Parameters
    ----------
    summary : list of dict
        From :func:`summarise`.

    Returns
    -------
    front : list of int
    """
    c = np.array([s["clean_balanced_accuracy"] for s in summary])
    r = np.array([s["robust_balanced_accuracy"] for s in summary])
    front = [i for i in range(len(summary))
             if not np.any((c >= c[i]) & (r >= r[i]) & ((c > c[i]) | (r > r[i])))]
    return sorted(front, key=lambda i: (-c[i], -r[i]))


def _best(summary, cfg):
    """Indices of the ``n_best`` most robust configurations within ``tolerance`` of the
    best clean score, most robust first (ties: higher clean score, then grid order);
    the first is the one :func:`robust_refit` picks."""
    clean = np.array([s["clean_balanced_accuracy"] for s in summary], dtype=float)
    robust = np.array([s["robust_balanced_accuracy"] for s in summary], dtype=float)
    first = robust_refit("clean", "robust", cfg.tolerance)(
        {"mean_test_clean": clean, "mean_test_robust": robust})
    ok = np.flatnonzero(clean >= np.nanmax(clean) - cfg.tolerance)
    order = ok[np.lexsort((ok, -clean[ok], -np.where(np.isfinite(robust[ok]), robust[ok], -np.inf)))]
    rest = [int(i) for i in order if i != first]
    return [int(first)] + rest[: max(0, cfg.n_best - 1)]


def _curve_cells(summary, cfg):
    """The configurations that get curves: most robust within tolerance, and the paper's."""
    cells = [{k: summary[i][k] for k in _GRID_KEYS} for i in _best(summary, cfg)]
    paper = dict(PAPER_CELL)
    if paper not in cells:
        cells.append(paper)
    return cells


_LOKY_RECYCLED = "A worker stopped while some jobs were given to the executor"


def _run_tasks(cfg, calls, n_total, desc, quiet):
    """Run ``calls`` (delayed tasks) on the chosen backend; yields each task's result."""
    from joblib import Parallel, parallel_config
    from tqdm.auto import tqdm

    bar = tqdm(total=n_total, desc=desc, unit="cell", disable=quiet)
    try:
        if cfg.backend == "dask":
            # Dask's own INFO lines (workers starting, stopping) are not the sweep's
            # progress: warnings only, errors only when quiet; restored afterwards.
            dask_log = logging.getLogger("distributed")
            level = dask_log.level
            dask_log.setLevel(logging.ERROR if quiet else logging.WARNING)
            client = _dask_client(cfg)
            try:
                with parallel_config(backend="dask"):
                    for res in Parallel(n_jobs=-1, return_as="generator_unordered")(calls):
                        bar.update(len(res) if isinstance(res, list) else 1)
                        yield res
            finally:
                cluster = getattr(client, "_sknnmfdiff_cluster", None)
                client.close()
                if cluster is not None:
                    cluster.close()
                dask_log.setLevel(level)
        else:
            with warnings.catch_warnings():
                # loky recycles a worker whose memory grew (torch's do) and reports it
                # with a generic "worker stopped ... memory leak" UserWarning although
                # nothing is lost (joblib issue 883, loky pull request 641): not shown.
                warnings.filterwarnings("ignore", message=_LOKY_RECYCLED, category=UserWarning)
                for res in Parallel(n_jobs=cfg.n_jobs, return_as="generator_unordered")(calls):
                    bar.update(len(res) if isinstance(res, list) else 1)
                    yield res
    finally:
        bar.close()


def _require_dask():
    try:
        import distributed  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            "backend='dask' needs Dask's distributed scheduler: pip install 'sknnmfdiff[dask]' "
            "(or pip install 'dask[distributed]')."
        ) from exc


def _dask_client(cfg):
    _require_dask()
    from dask.distributed import Client, LocalCluster

    if cfg.scheduler:
        return Client(cfg.scheduler, timeout="10s")  # fail fast on a wrong address
    cluster = LocalCluster(n_workers=cfg.workers, threads_per_worker=1, processes=True,
                           dashboard_address=None,
                           silence_logs=logging.getLogger("distributed").level)
    client = Client(cluster)
    client._sknnmfdiff_cluster = cluster
    return client


def run_sweep(config=None, *, quiet=False, log=None, **overrides):
    """Run the sweep and write its output folder.

    Parameters
    ----------
    config : SweepConfig or None, default=None
        Settings; None uses the defaults.
    quiet : bool, default=False
        No progress bars and no stage messages.
    log : callable or None, default=None
        Receives one message per stage event; default: the module logger.
    **overrides
        Fields of :class:`SweepConfig` that replace those of ``config``.

    Returns
    -------
    results : dict
        What ``sweep.json`` holds: configuration, data summary, ``cells`` (one row per
        configuration and fold), ``summary`` (one row per configuration), ``pareto``
        (indices into ``summary``), ``curves`` and timings. Also written: ``cells.csv``,
        ``summary.csv``, ``report.md`` and ``figures/``.

    Raises
    ------
    ValueError
        Bad settings or data (from the loader).
    ImportError
        ``backend="dask"`` without ``dask[distributed]`` installed.
    """
    from joblib import delayed

    cfg = dataclasses.replace(config or SweepConfig(), **overrides)
    _check(cfg)
    if cfg.backend == "dask":
        _require_dask()  # before any work
    if log is None or quiet:
        def log(msg, _quiet=quiet):  # noqa: E306
            logger.log(logging.DEBUG if _quiet else logging.INFO, msg)
    out = Path(cfg.out)
    timings = {}
    t_all = time.perf_counter()
    with _runs.Timer(timings, "load data", log):
        bunch, split, data_summary, near = _runs.load_data(cfg, log)
    out.mkdir(parents=True, exist_ok=True)  # only once the data loaded: a bad folder leaves nothing
    dev = np.concatenate([split.train, split.val])
    X, y = bunch.data, bunch.target
    groups = _group_labels(len(y), near, dev)
    folds = _folds(y[dev], groups, cfg)

    settings = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in _NOT_IN_KEY}
    settings["data_digest"] = _runs.digest_arrays(X[dev], y[dev], X[split.test], y[split.test])
    settings["source"] = _runs.source_digest()
    key = hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:12]
    cell_dir = out / "cells" / key
    cell_dir.mkdir(parents=True, exist_ok=True)
    cache_dir = out / "cache"
    task_cfg = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(cfg).items()}

    n_cells = sum(len(_cells_of_rank(r, cfg.k, cfg.t, cfg.n_eot)) for r in cfg.n_components) * cfg.cv
    log(f"[grid] {n_cells} cells ({len(folds)} folds) in {cell_dir}")
    calls = [delayed(_grid_task)(rank, f, task_cfg, X[dev[tr]], y[dev[tr]], X[dev[te]],
                                 y[dev[te]], str(cell_dir), str(cache_dir))
             for rank in sorted(cfg.n_components, reverse=True)
             for f, (tr, te) in enumerate(folds)]
    t0 = time.perf_counter()
    rows = [r for res in _run_tasks(cfg, calls, n_cells, "grid", quiet) for r in res]
    timings["grid"] = round(time.perf_counter() - t0, 2)
    rows.sort(key=lambda r: (tuple(r[k] for k in _GRID_KEYS), r["fold"]))
    summary = summarise(rows)
    front = pareto_front(summary)

    curve_cells = _curve_cells(summary, cfg)
    log(f"[curves] {len(curve_cells)} configurations x {len(cfg.curve_spaces)} threat models")
    calls = [delayed(_curve_task)(cell, space, task_cfg, X[dev], y[dev], X[split.test],
                                  y[split.test], str(cell_dir), str(cache_dir))
             for cell in curve_cells for space in cfg.curve_spaces]
    t0 = time.perf_counter()
    curves = list(_run_tasks(cfg, calls, len(calls), "curves", quiet))
    timings["curves"] = round(time.perf_counter() - t0, 2)
    curves.sort(key=lambda c: (tuple(c[k] for k in _GRID_KEYS), c["space"]))
    timings["total"] = round(time.perf_counter() - t_all, 2)

    results = {"config": dataclasses.asdict(cfg), "key": key, "data": data_summary,
               "versions": _package_versions(), "machine": _runs.machine_info(),
               "cells": rows, "summary": summary, "pareto": front, "curves": curves,
               "selected": _best(summary, cfg), "curve_cells": curve_cells,
               "paper_cell": dict(PAPER_CELL), "timings": timings}
    from ._sweep_output import write_outputs

    write_outputs(results, out)
    log(f"Wrote {out / 'report.md'} and {out / 'sweep.json'}")
    return results


def _package_versions():
    from ._persistence import package_versions

    return package_versions()
