"""Adaptive attack speed: batched EOT draws against the reference loop, and the checks' cost.

Fits the defended pipeline of the study (``make_paper_pipeline(random_state=0)`` on the
train part of the leakage-free ``paper_split``, seed 0), compiles it in each threat
model and runs, side by side in one process, the adaptive evaluation of the test part
(``evaluate_robustness(..., protocol="adaptive", checks=False)``, every other setting at
its default) three ways:

- ``batched``: what the package runs by default: the compiled module as built
  (``batch_draws=True``: the EOT draws of a forward pass and the scoring draws run as
  one batched pass over draws x rows, on single-threaded worker threads, the
  evaluator's small tensor ops on one thread) and the ``"screened"`` schedule (a
  short APGD-CE run on every sample first; the samples it breaks leave the pool; the
  others get every restart, the later ones side by side as replicas);
- ``batched-sequential``: the same module with AutoAttack's ``"sequential"`` cascade
  (restart after restart): what batching the draws alone gives;
- ``reference``: the code path before both: ``batch_draws=False`` (one head call per
  draw; scoring: one full call per draw), torch's intra-op threads as set
  (``--threads``), and the ``"sequential"`` cascade.

All use the same seed; their robust accuracies (mean-probability rule over 100 scoring
draws) are printed with the speed ratio, and the seconds of each stage of the attack
(``timings["attack_stages"]``: where the time goes). Then a fully checked evaluation of the batched
module (``checks=True`` with the study's eps grid ``(0.0, 0.02, 0.05, 0.2, 0.5)`` and its
lighter grid settings ``{"n_restarts": 1, "n_iter": 100, "square_queries": 500}``),
printing the attack time, the checks time and their ratio, and every check's verdict;
and the same with the evaluator's own defaults (``checks=True``, ``eps_grid=(0.0, 0.5)``,
the grid attacked with the main attack's settings), what ``sknnmfdiff evaluate`` runs.
Both run the attack-strength plateau check as the evaluator does by default for a
randomized model (its nested form: one more APGD restart with twice the iterations and
EOT draws on the samples the main attack left correct, at most 32); its cost relative to
the bare evaluation is printed.

Wall-clock times depend on the machine and on what else runs on it (torch's intra-op
threads stall when other processes take the cores): compare the two paths of one run,
not runs of different machines.

    python benchmarks/bench_attack.py [--data DIR] [--spaces feature pixel]
        [--modes batched batched-sequential reference] [--no-checks] [--threads 2] [--n-test N]
    python benchmarks/bench_attack.py --quick      # synthetic phantoms: a smoke run
"""

import argparse
import os
import platform
import sys
import time

import numpy as np
import torch

STUDY_EPS_GRID = (0.0, 0.02, 0.05, 0.2, 0.5)
#: mode -> (batch_draws, schedule)
MODES = {"batched": (True, "screened"), "batched-sequential": (True, "sequential"),
         "reference": (False, "sequential")}
STUDY_GRID_ATTACK = {"n_restarts": 1, "n_iter": 100, "square_queries": 500}


def _load(args):
    """(X_train, y_train, X_test, y_test, description) of the paper split."""
    from sknnmfdiff.datasets import (
        find_duplicates,
        load_mri_folder,
        make_phantom_mri,
        paper_split,
    )

    if args.quick:
        bunch = make_phantom_mri(args.phantoms, image_size=args.image_size, random_state=0)
        n_per_class = int(min(np.bincount(bunch.target, minlength=2)))
        split = paper_split(bunch, n_per_class=n_per_class, random_state=0)
        what = f"{args.phantoms} SYNTHETIC phantoms, {args.image_size} px"
    else:
        bunch = load_mri_folder(args.data, image_size=args.image_size, task="binary")
        split = paper_split(bunch, groups=find_duplicates(bunch, kind="near"), random_state=0)
        what = f"{args.data}, {args.image_size} px"
    X, y = bunch.data, bunch.target
    test = split.test[: args.n_test] if args.n_test else split.test
    return X[split.train], y[split.train], X[test], y[test], what


def _evaluate(module, X, y, space, **kw):
    from sknnmfdiff.evaluation import evaluate_robustness

    t0 = time.perf_counter()
    rep = evaluate_robustness(module, X, y, eps=0.10, space=space, protocol="adaptive",
                              random_state=0, progress=False, **kw)
    return rep, time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/brain-tumor-mri",
                    help="image folder of the study (ignored with --quick)")
    ap.add_argument("--quick", action="store_true",
                    help="synthetic phantoms (64 px, the first 40 test images): a smoke run")
    ap.add_argument("--phantoms", type=int, default=800, help="phantom images with --quick")
    ap.add_argument("--image-size", type=int, default=None,
                    help="image side in pixels (default 128; 64 with --quick)")
    ap.add_argument("--n-test", type=int, default=None,
                    help="attack only the first N test images (default: the whole test part)")
    ap.add_argument("--spaces", nargs="+", default=["feature", "pixel"],
                    choices=["feature", "pixel"])
    ap.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    ap.add_argument("--no-checks", dest="checks", action="store_false",
                    help="skip the fully checked evaluations")
    ap.add_argument("--check-settings", nargs="+", default=["study", "default"],
                    choices=["study", "default"],
                    help="fully checked evaluations: the study's eps grid and lighter grid "
                         "attack, and/or the evaluator's defaults")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    args = ap.parse_args()
    if args.image_size is None:
        args.image_size = 64 if args.quick else 128
    if args.quick and args.n_test is None:
        args.n_test = 40
    torch.set_num_threads(args.threads)

    from sknnmfdiff import make_paper_pipeline, to_torch_module

    print("command: python " + " ".join(sys.argv))
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__}, {torch.get_num_threads()} torch threads, "
          f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    Xtr, ytr, Xte, yte, what = _load(args)
    print(f"data: {what}; train {len(ytr)}, test {len(yte)} images")
    t0 = time.perf_counter()
    pipe = make_paper_pipeline(random_state=0).fit(Xtr, ytr)
    print(f"fit defended pipeline: {time.perf_counter() - t0:.1f} s\n")
    y_idx = np.searchsorted(pipe.classes_, yte)

    rows = {}
    for space in args.spaces:
        for mode in args.modes:
            module = to_torch_module(pipe, device="cpu", space=space)
            module.batch_draws, schedule = MODES[mode]
            rep, sec = _evaluate(module, Xte, y_idx, space, checks=False, schedule=schedule)
            rows[space, mode] = (rep, sec)
            r = rep.robust["mean_probability"]
            print(f"{space:>7} {mode:>18}: {schedule:>10}  {sec:8.1f} s  "
                  f"(attack {rep.timings['attack']:.1f} s, scoring "
                  f"{rep.timings['clean_scoring'] + rep.timings['robust_scoring']:.1f} s)  "
                  f"robust accuracy {100 * r['accuracy']:.2f} % "
                  f"[{100 * r['accuracy_ci'][0]:.1f}, {100 * r['accuracy_ci'][1]:.1f}]  "
                  f"clean {100 * rep.clean['mean_probability']['accuracy']:.2f} %", flush=True)
            stages = rep.timings.get("attack_stages", {})
            print(f"{'':>27}stages: " + ", ".join(
                f"{k} {v:.1f} s" for k, v in stages.items()), flush=True)
        for fast, slow, what in (("batched", "reference", "batched draws + screened schedule"),
                                 ("batched-sequential", "reference", "batched draws alone"),
                                 ("batched", "batched-sequential", "screened schedule alone")):
            if (space, fast) not in rows or (space, slow) not in rows:
                continue
            (rf, tf), (rs, ts) = rows[space, fast], rows[space, slow]
            af = rf.robust["mean_probability"]["accuracy"]
            a_s = rs.robust["mean_probability"]["accuracy"]
            print(f"{space:>7}   speed-up {ts / tf:5.2f}x  {fast} vs {slow} ({what}): "
                  f"{ts:.1f} s / {tf:.1f} s; robust accuracy {100 * af:.2f} % vs "
                  f"{100 * a_s:.2f} % ({'equal or lower' if af <= a_s else 'HIGHER'})",
                  flush=True)
        print(flush=True)

    if not args.checks:
        return
    settings = {"study": dict(eps_grid=STUDY_EPS_GRID, grid_attack_kwargs=dict(STUDY_GRID_ATTACK)),
                "default": {}}
    for name in args.check_settings:
        print(f"fully checked evaluation (batched), {name} settings: "
              f"{settings[name] or 'evaluate_robustness defaults'}")
        for space in args.spaces:
            _checked(pipe, Xte, y_idx, space, settings[name])


def _checked(pipe, Xte, y_idx, space, kw):
    """One fully checked evaluation of the batched module; prints its costs and checks."""
    from sknnmfdiff import to_torch_module
    from sknnmfdiff.evaluation import _attack_checks

    _attack_checks._TRANSFER_CACHE.clear()  # each checked evaluation pays its transfer attack
    module = to_torch_module(pipe, device="cpu", space=space)
    rep, sec = _evaluate(module, Xte, y_idx, space, checks=True, **kw)
    t = rep.timings
    bare = t["attack"] + t["clean_scoring"] + t["robust_scoring"]
    print(f"{space:>7}: total {sec:.1f} s; bare evaluation (attack + scoring) {bare:.1f} s "
          f"(attack {t['attack']:.1f} s); checks {t['checks']:.1f} s; "
          f"checks / bare {t['checks'] / bare:.2f}; total / bare {t['total'] / bare:.2f}")
    print("         checks by part: " + ", ".join(
        f"{k} {v:.1f} s" for k, v in t.get("checks_parts", {}).items()))
    plateau = {c["name"]: c for c in rep.checks}.get("attack_strength_plateau", {})
    d = plateau.get("details") or {}
    if "plateau" in t.get("checks_parts", {}):
        print(f"         plateau check ({d.get('form')} form): {t['checks_parts']['plateau']:.1f} s, "
              f"plateau / bare {t['checks_parts']['plateau'] / bare:.2f}; samples left correct "
              f"{d.get('n_still_correct')}, attacked again {d.get('n_attacked')} (cap "
              f"{d.get('max_samples')}), broken by the stronger attack {d.get('n_broken')}")
    print(f"         robust accuracy {100 * rep.robust['mean_probability']['accuracy']:.2f} %;"
          " eps grid: " + ", ".join(f"{g['eps']:g}: {100 * g['accuracy']:.1f} %"
                                    for g in rep.eps_grid))
    for c in rep.checks:
        verdict = {True: "pass", False: "FAIL", None: "skipped"}[c["passed"]]
        print(f"         {c['name']:<42} {verdict:<7} value={c['value']}")
    print(flush=True)


if __name__ == "__main__":
    main()
