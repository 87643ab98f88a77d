"""Wall-clock time of training the pipelines, on an idle machine and under load.

Times, side by side in one run:

(a) fitting the baseline and the defended pipeline (``make_baseline_pipeline`` and
    ``make_paper_pipeline``: rank 15, ``k = 10``, seed 0, no cache, so each fits its own
    NMF) on the 1,540 training images of the paper split, with their clean accuracy on
    the validation and test parts (one ``predict``);
(b) the README's grid search, ``GridSearchCV(make_paper_pipeline(memory=...),
    {"nmf__n_components": [10, 15], "purify__t": [0, 20, 41]}, cv=3)``, on 210 training
    images (a stratified draw from the training part, seed 0; a fresh cache each time);
(c) on the training part's selected features (from the baseline fit of (a)):
    ``SkorchCNNClassifier.fit``, ``DiffusionPurifier.fit`` and scikit-learn's
    ``MLPClassifier.fit`` (defaults, ``random_state=0``), the reference library, with
    the ratios of the first two to it;
(d) with ``--whole-folder``: what ``sknnmfdiff fit --data DIR`` does, defended and
    ``--baseline``, on every image of the folder.

Each part runs twice: with no competing process of ours ("idle"; other users of the
machine are not controlled, so the load average is printed) and with one competing
CPU-bound process ("busy": a ``multiprocessing`` process spinning a one-thread numpy
matrix-product loop for the duration, killed after). The targets of issue 10 are printed
beside the figures. Torch's thread count is left at the process default (printed): the
estimators choose their own threads. Timings are wall clock and indicative: rerun on an
idle machine before quoting them. Usage::

    python benchmarks/bench_fit.py                  # paper split (about 5-10 minutes)
    python benchmarks/bench_fit.py --whole-folder   # plus the whole folder
    python benchmarks/bench_fit.py --quick          # phantom data, under a minute
    python benchmarks/bench_fit.py --conditions idle
"""

import argparse
import multiprocessing
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

DATA = Path(os.environ.get("SKNNMFDIFF_DATA", Path(__file__).resolve().parents[2] / "shared"
                           / "data" / "brain-tumor-mri"))
GRID = {"nmf__n_components": [10, 15], "purify__t": [0, 20, 41]}


def _spin(stop, parent):
    """Competing CPU-bound load: one thread of numpy matrix products until ``stop`` is set
    or the process ``parent`` is gone."""
    from threadpoolctl import threadpool_limits

    a = np.random.default_rng(0).random((256, 256))
    with threadpool_limits(1):
        while not stop.is_set() and os.getppid() == parent:
            for _ in range(20):
                a = a @ a
                a /= np.abs(a).max()


class Load:
    """Context manager: ``busy=True`` runs :func:`_spin` in a separate process."""

    def __init__(self, busy):
        self.busy = busy

    def __enter__(self):
        if self.busy:
            ctx = multiprocessing.get_context("spawn")
            self.stop = ctx.Event()
            self.proc = ctx.Process(target=_spin, args=(self.stop, os.getpid()), daemon=True)
            self.proc.start()
            time.sleep(1.0)  # let it start spinning
        return self

    def __exit__(self, *exc):
        if self.busy:
            self.stop.set()
            self.proc.join(5)
            if self.proc.is_alive():
                self.proc.kill()
                self.proc.join()


def timed(fn, label=None):
    """(seconds, result) of ``fn()``; prints the time at once when ``label`` is given."""
    t = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t
    if label:
        print(f"  {label}: {dt:.1f} s", flush=True)
    return dt, out


def load(args):
    """(X, y, train, val, test, X_all, y_all) of the real folder or of phantom data."""
    from sknnmfdiff.datasets import find_duplicates, load_mri_folder, make_phantom_mri, paper_split

    if args.quick:
        bunch = make_phantom_mri(400, image_size=64, random_state=args.seed)
        split = paper_split(bunch, n_per_class=150, random_state=args.seed)
    else:
        bunch = load_mri_folder(args.data, image_size=128, task="binary", random_state=args.seed)
        split = paper_split(bunch, groups=find_duplicates(bunch, kind="near"), random_state=0)
    return bunch.data, bunch.target, split.train, split.val, split.test


def run_condition(args, X, y, tr, va, te, busy):
    from joblib import Memory
    from sklearn.metrics import accuracy_score
    from sklearn.model_selection import GridSearchCV, train_test_split
    from sklearn.neural_network import MLPClassifier

    from sknnmfdiff import (DiffusionPurifier, SkorchCNNClassifier, make_baseline_pipeline,
                            make_paper_pipeline)

    res = {"load average before": os.getloadavg()[0]}
    common = dict(n_components=args.rank, k=args.k, random_state=args.seed)
    with Load(busy), tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MLPClassifier's ConvergenceWarning, skorch notices
        for name, make in (("baseline", make_baseline_pipeline),
                           ("defended", make_paper_pipeline)):
            key = f"fit {name} (paper split)"
            res[key], pipe = timed(lambda: make(**common).fit(X[tr], y[tr]), key)
            for part, idx in (("val", va), ("test", te)):
                res[f"acc {name} {part}"] = 100 * accuracy_score(y[idx], pipe.predict(X[idx]))
            if name == "baseline":
                F = pipe[:-1].transform(X[tr])
        for key, est in (("CNN fit on features", SkorchCNNClassifier(random_state=args.seed)),
                         ("purifier fit on features", DiffusionPurifier(random_state=args.seed)),
                         ("MLPClassifier fit on features", MLPClassifier(random_state=args.seed))):
            res[key], _ = timed(lambda: est.fit(F, y[tr]), key)
        small, _ = train_test_split(tr, train_size=min(210, len(tr) - 2), stratify=y[tr],
                                    random_state=0)
        grid = GridSearchCV(
            make_paper_pipeline(memory=Memory(Path(tmp) / "cache", verbose=0)), GRID, cv=3)
        key = "README GridSearchCV (210 images)"
        res[key], _ = timed(lambda: grid.fit(X[small], y[small]), key)
        if args.whole_folder:
            for name, make in (("defended", make_paper_pipeline),
                               ("baseline", make_baseline_pipeline)):
                key = f"whole folder fit {name}"
                res[key], _ = timed(lambda: make(**common).fit(X, y), key)
    return res


TARGETS = {
    "fit defended (paper split)": "<= 30 s idle; busy <= 2.5x idle",
    "README GridSearchCV (210 images)": "<= 300 s",
    "whole folder fit defended": "<= 180 s",
}


def report(results, n):
    conds = list(results)
    keys = [k for k in results[conds[0]] if not k.startswith(("acc ", "load "))]
    print(f"\n{'part':40s}" + "".join(f"{c + ' s':>10s}" for c in conds)
          + ("  busy/idle" if len(conds) == 2 else "") + "  target")
    for k in keys:
        row = f"{k:40s}" + "".join(f"{results[c][k]:10.1f}" for c in conds)
        if len(conds) == 2:
            row += f"  {results['busy'][k] / results['idle'][k]:9.2f}"
        print(row + ("  " + TARGETS[k] if k in TARGETS else ""))
    for c in conds:
        r = results[c]
        mlp = r["MLPClassifier fit on features"]
        print(f"\n{c}: CNN / MLPClassifier {r['CNN fit on features'] / mlp:.2f}, purifier / "
              f"MLPClassifier {r['purifier fit on features'] / mlp:.2f} (fit on {n} x k "
              f"features); load average before {r['load average before']:.2f}")
        print("  clean accuracy (%): " + ", ".join(
            f"{k[4:]} {v:.2f}" for k, v in r.items() if k.startswith("acc ")))
    if len(conds) == 2:
        ok = results["busy"]["fit defended (paper split)"] <= 2.5 * results["idle"][
            "fit defended (paper split)"]
        print(f"\ndefended fit busy <= 2.5x idle: {'met' if ok else 'NOT met'}")
    for k, target in TARGETS.items():
        if k in results.get("idle", {}):
            limit = float(target.split()[1])
            ok = results["idle"][k] <= limit
            print(f"{k} idle {results['idle'][k]:.1f} s, target {target}: "
                  f"{'met' if ok else 'NOT met'}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(DATA), help="image folder (default: the shared copy)")
    p.add_argument("--quick", action="store_true", help="400 phantom images at 64 x 64")
    p.add_argument("--whole-folder", action="store_true",
                   help="also time 'sknnmfdiff fit' (defended and baseline) on every image")
    p.add_argument("--conditions", default="idle,busy",
                   help="comma-separated subset of idle,busy (default both)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rank", type=int, default=15)
    p.add_argument("--k", type=int, default=10)
    args = p.parse_args()
    conds = [c for c in args.conditions.split(",") if c]
    if not set(conds) <= {"idle", "busy"} or not conds:
        p.error(f"--conditions must name idle and/or busy, got {args.conditions!r}")

    import sknnmfdiff

    t, (X, y, tr, va, te) = timed(lambda: load(args))
    print(f"sknnmfdiff {sknnmfdiff.__version__} from {Path(sknnmfdiff.__file__).parent}; "
          f"torch {torch.__version__}, torch threads {torch.get_num_threads()}, "
          f"{os.cpu_count()} CPUs")
    print(f"data: {'phantom (--quick)' if args.quick else args.data}: {X.shape[0]} images of "
          f"{X.shape[1]} pixels; train/val/test {len(tr)}/{len(va)}/{len(te)}; load {t:.1f} s")
    results = {}
    for c in conds:
        print(f"running '{c}' ...", flush=True)
        results[c] = run_condition(args, X, y, tr, va, te, busy=(c == "busy"))
    report(results, len(tr))


if __name__ == "__main__":
    main()
