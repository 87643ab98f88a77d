"""``sknnmfdiff sweep`` / run_sweep: outputs, nothing computed twice, resume after a
real kill, and the Dask backend on a real LocalCluster."""

import csv
import json
import os
import signal
import subprocess
import sys
import time


import pytest

from sknnmfdiff.cli import main
from sknnmfdiff.sweep import QUICK, pareto_front, run_sweep, summarise

# A smaller sweep than --quick, for the tests that run it more than once.
TINY = dict(QUICK, phantom_samples=240, n_per_class=100, n_components=(4, 6), k=(4,),
            t=(0, 10), eps_curve=(0.0, 0.1), curve_spaces=("feature",), clf_max_epochs=10,
            nmf_max_iter=50, attack={"n_restarts": 1, "n_iter": 5, "n_eot": 2,
                                     "square_queries": 10, "square_n_eot": 1, "n_draws": 4})
FIGURES = {"tradeoff", "robust_vs_t", "clean_vs_t", "robust_vs_eps_feature"}


def _strip(results):
    """The figures of a run, without timings, machine and paths."""
    cells = [{k: v for k, v in r.items() if k != "seconds"} for r in results["cells"]]
    return {"cells": cells, "summary": results["summary"], "pareto": results["pareto"],
            "curves": results["curves"]}


def test_quick_sweep_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "sw"
    assert main(["sweep", "--quick", "--out", str(out), "--quiet"]) == 0
    for name in ("sweep.json", "cells.csv", "summary.csv", "report.md"):
        assert (out / name).is_file(), name
    res = json.loads((out / "sweep.json").read_text())
    n_cfg = len(QUICK["n_components"]) * len(QUICK["t"])
    assert len(res["summary"]) == n_cfg and len(res["cells"]) == n_cfg * QUICK["cv"]
    with open(out / "cells.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(res["cells"]) and {"fold", "robust_balanced_accuracy"} <= set(rows[0])
    for r in res["cells"]:
        assert 0 <= r["robust_balanced_accuracy"] <= 1 and 0 <= r["clean_balanced_accuracy"] <= 1
    assert set(res["figures"]) == FIGURES | {"robust_vs_eps_pixel"}
    for f in res["figures"].values():
        assert (out / f).is_file()
    report = (out / "report.md").read_text()
    assert "SYNTHETIC" in report and "Pareto" in report
    # The paper's configuration always gets curves, in both threat models.
    assert {(c["n_components"], c["t"], c["space"]) for c in res["curves"]} >= {
        (15, 41, "feature"), (15, 41, "pixel")}


def test_nothing_is_computed_twice_and_a_rerun_recomputes_nothing(tmp_path, monkeypatch):
    import sknnmfdiff.purification as purification
    from sknnmfdiff import decomposition

    fits = []
    real_fit = decomposition.KLNMFTransformer.fit

    def counting_fit(self, X, y=None):
        fits.append(self.n_components)
        return real_fit(self, X, y)

    monkeypatch.setattr(decomposition.KLNMFTransformer, "fit", counting_fit)
    trainings0 = purification._N_TRAININGS
    res = run_sweep(out=str(tmp_path / "sw"), quiet=True, **TINY)
    cv, ranks = TINY["cv"], TINY["n_components"]
    curve_fits = len(res["curve_cells"])  # each fitted once on the development part
    assert len(fits) == len(ranks) * cv + curve_fits
    defended_curves = sum(1 for c in res["curve_cells"] if c["t"] > 0)
    assert purification._N_TRAININGS - trainings0 == len(ranks) * cv + defended_curves
    fits.clear()
    again = run_sweep(out=str(tmp_path / "sw"), quiet=True, **TINY)
    assert fits == []  # every cell and curve point reused
    assert _strip(again) == _strip(res)


def test_resume_after_a_real_kill(tmp_path):
    out = tmp_path / "sw"
    args = [sys.executable, "-m", "sknnmfdiff", "sweep", "--quick", "--out", str(out), "--quiet"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 240
    finished = []
    while time.monotonic() < deadline and proc.poll() is None:
        finished = list(out.glob("cells/*/r*-f*.json"))
        if len(finished) >= 2:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the sweep ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    kept = {p: p.stat().st_mtime_ns for p in out.glob("cells/*/r*-f*.json")}
    assert len(kept) >= 2
    assert main(["sweep", "--quick", "--out", str(out), "--quiet"]) == 0
    # Cells finished before the kill are reused as they were, not recomputed.
    assert all(p.stat().st_mtime_ns == t for p, t in kept.items())
    resumed = json.loads((out / "sweep.json").read_text())
    fresh = tmp_path / "fresh"
    assert main(["sweep", "--quick", "--out", str(fresh), "--quiet"]) == 0
    assert _strip(resumed) == _strip(json.loads((fresh / "sweep.json").read_text()))


def test_dask_local_cluster_gives_the_local_results(tmp_path, caplog):
    import logging

    pytest.importorskip("distributed")
    local = run_sweep(out=str(tmp_path / "local"), quiet=True, **TINY)
    level = logging.getLogger("distributed").level
    with caplog.at_level(logging.INFO):
        dask = run_sweep(out=str(tmp_path / "dask"), quiet=True, backend="dask", workers=2,
                         **TINY)
    assert _strip(dask) == _strip(local)
    assert dask["config"]["backend"] == "dask"
    # Quiet: none of the scheduler's INFO/WARNING lines; its logger's level restored.
    chatter = [r for r in caplog.records if r.name.startswith("distributed")
               and r.levelno < logging.ERROR]
    assert chatter == [], [r.getMessage() for r in chatter[:3]]
    assert logging.getLogger("distributed").level == level


def test_dask_backend_without_distributed_is_one_line_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import fails
    assert main(["sweep", "--quick", "--backend", "dask", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'sknnmfdiff[dask]'" in err[0]
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("argv, match", [
    (["--cv", "1"], "--cv"),
    (["--scheduler", "tcp://x:1"], "--scheduler"), (["--data", "nowhere"], "nowhere"),
    (["--rank", "8", "8"], "--rank 8 8"), (["--t", "0", "41", "0"], "--t 0 41 0"),
    (["--t", "0", "5000"], "--t: must be in 0 .. 1000, got 5000"), (["--max-eval", "1"], "--max-eval"),
    (["--eps", "inf"], "--eps"), (["--seed", "-1"], "--seed"),
    (["--data", "/no/such/dir"], "--data /no/such/dir"),
])
def test_bad_sweep_arguments(tmp_path, capsys, argv, match):
    try:
        status = main(["sweep", "--out", str(tmp_path / "o"), *argv])
    except SystemExit as exc:  # rejected by argparse itself
        status = exc.code
    assert status == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and match in err[0]


def test_summary_and_pareto_front():
    rows = [dict(n_components=r, k=2, t=t, n_eot=4, fold=f, clean_balanced_accuracy=c,
                 robust_balanced_accuracy=rb, n_robust_correct=n, n_eval=10)
            for (r, t, c, rb, n) in [(4, 0, 0.9, 0.1, 1), (4, 10, 0.8, 0.3, 3), (6, 0, 0.85, 0.05, 0)]
            for f in (0, 1)]
    s = summarise(rows)
    assert [x["robust_accuracy_pooled"] for x in s] == [0.1, 0.3, 0.0]
    assert s[0]["clean_balanced_accuracy_sd"] == 0.0
    lo, hi = s[1]["robust_accuracy_pooled_ci"]
    assert lo < 0.3 < hi
    assert pareto_front(s) == [0, 1]  # (6, 0) is beaten by (4, 0) in both scores


def test_bad_config_is_rejected_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="cv"):
        run_sweep(out=str(tmp_path / "a"), cv=1)
    with pytest.raises(ValueError, match="t must be"):
        run_sweep(out=str(tmp_path / "b"), t=(-1,))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_k_above_the_rank_keeps_every_component_once():
    from sknnmfdiff.sweep import _cells_of_rank

    cells = _cells_of_rank(5, (5, 10), (0, 20), (4, 8))
    assert {c["k"] for c in cells} == {5}
    assert len(cells) == 3  # t = 0 once; t = 20 with 4 and 8 draws
    assert [c["n_eot"] for c in cells if c["t"] == 0] == [4]


def test_best_configurations_are_all_within_tolerance_of_the_overall_best():
    """The n_best picks are ranked within one tolerance band of the best clean score,
    not re-banded around what is left after each pick."""
    from types import SimpleNamespace

    from sknnmfdiff.sweep import _best

    summary = [{"clean_balanced_accuracy": c, "robust_balanced_accuracy": r}
               for c, r in [(0.90, 0.10), (0.885, 0.30), (0.87, 0.50), (0.895, 0.20)]]
    cfg = SimpleNamespace(tolerance=0.02, n_best=3)
    # Within 0.02 of 0.90: rows 0, 1 and 3; row 2 (0.87) is out although it is the most
    # robust and would sit within 0.02 of row 1's 0.885 after two picks.
    assert _best(summary, cfg) == [1, 3, 0]
    assert _best(summary, SimpleNamespace(tolerance=0.0, n_best=2)) == [0]


def test_repeated_grid_values_and_too_large_t_are_rejected_up_front(tmp_path):
    from sknnmfdiff.sweep import SweepConfig, run_sweep

    with pytest.raises(ValueError, match="repeats a value"):
        run_sweep(SweepConfig(n_components=(8, 8)), out=str(tmp_path / "a"))
    with pytest.raises(ValueError, match="t must be <= 1000"):
        run_sweep(SweepConfig(t=(0, 5000)), out=str(tmp_path / "b"))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_quick_honours_explicit_cv_eps_and_n_per_class(monkeypatch, tmp_path):
    """--quick sets the small defaults; flags the user types win over them."""
    from sknnmfdiff import sweep

    seen = {}
    monkeypatch.setattr(sweep, "run_sweep", lambda config, **kw: seen.update(
        config=config, **kw) or {"summary": [], "selected": [], "config": {}})
    assert main(["sweep", "--quick", "--quiet", "--out", str(tmp_path / "a")]) == 0
    assert (seen["config"].cv, seen["config"].eps, seen["config"].n_per_class) == (
        QUICK["cv"], 0.1, QUICK["n_per_class"])
    assert main(["sweep", "--quick", "--quiet", "--cv", "3", "--eps", "0.05",
                 "--n-per-class", "100", "--out", str(tmp_path / "b")]) == 0
    assert (seen["config"].cv, seen["config"].eps, seen["config"].n_per_class) == (3, 0.05, 100)


def test_an_extended_grid_reuses_every_finished_cell(tmp_path):
    """Adding a value to the grid computes only the new cells; the finished ones (and
    their curves) are read back, so the results equal a fresh run of the larger grid."""
    out = tmp_path / "s"
    small = dict(TINY, n_components=(4,), t=(0,))
    run_sweep(out=str(out), quiet=True, **small)
    kept = {p: p.stat().st_mtime_ns for p in out.glob("cells/*/*.json")}
    assert kept
    grown = run_sweep(out=str(out), quiet=True, **dict(small, t=(0, 10)))
    assert len(list(out.glob("cells/*"))) == 1  # one folder of finished work
    assert all(p.stat().st_mtime_ns == t for p, t in kept.items())
    fresh = run_sweep(out=str(tmp_path / "fresh"), quiet=True, **dict(small, t=(0, 10)))
    assert _strip(grown) == _strip(fresh)
    # cells.csv keeps its leading columns after a resume from disk.
    with open(out / "cells.csv") as fh:
        header = next(csv.reader(fh))
    assert header[:5] == ["n_components", "k", "t", "n_eot", "fold"]


def test_loky_worker_recycling_notice_is_not_shown_other_warnings_are():
    """loky's generic "worker stopped ... memory leak" notice when it recycles a worker
    is held back during the local run; any other warning still reaches the user."""
    import types
    import warnings

    from joblib import delayed

    from sknnmfdiff.sweep import _run_tasks

    def task(msg):
        warnings.warn(msg, UserWarning)
        return 1

    cfg = types.SimpleNamespace(backend="local", n_jobs=1)
    calls = [delayed(task)("A worker stopped while some jobs were given to the executor. "
                           "This can be caused by a too short worker timeout or by a memory "
                           "leak."), delayed(task)("something else")]
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert sum(_run_tasks(cfg, calls, 2, "t", True)) == 2
    assert [str(w.message) for w in seen] == ["something else"]
