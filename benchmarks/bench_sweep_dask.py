"""Wall time of one sweep on a Dask LocalCluster with 1 and with 2 workers, side by side.

Runs the same sweep (``--quick`` settings, phantom data, or ``--data DIR`` at a small
image size) twice on fresh output folders, once per cluster size, checks that both give
identical figures, and prints the wall times and their ratio. Each task runs on one
torch thread, so on a 2-core machine the ideal ratio is 2; the cluster's start-up and
the unequal cost of the tasks (a rank-60 NMF takes longer than a rank-5 one) keep it
lower.

    python benchmarks/bench_sweep_dask.py             # phantom data, --quick grid
    python benchmarks/bench_sweep_dask.py --grid 4 8 15 --t 0 20 41
"""

import argparse
import tempfile
import time


def _strip(res):
    cells = [{k: v for k, v in r.items() if k != "seconds"} for r in res["cells"]]
    return cells, res["summary"], res["curves"]


def main():
    from sknnmfdiff.sweep import QUICK, run_sweep

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", type=int, nargs="+", default=[4, 8, 15, 30],
                    help="NMF ranks (default: %(default)s)")
    ap.add_argument("--t", type=int, nargs="+", default=[0, 20, 41],
                    help="timesteps (default: %(default)s)")
    args = ap.parse_args()
    settings = dict(QUICK, n_components=tuple(args.grid), k=(4,), t=tuple(args.t))
    times, results = {}, {}
    for workers in (1, 2):
        with tempfile.TemporaryDirectory() as out:
            t0 = time.perf_counter()
            results[workers] = run_sweep(out=out, quiet=True, backend="dask", workers=workers,
                                         **settings)
            times[workers] = time.perf_counter() - t0
    n = len(results[1]["cells"])
    same = _strip(results[1]) == _strip(results[2])
    print(f"sweep: {n} cells, ranks {args.grid}, t {args.t}, {QUICK['cv']} folds, phantom data")
    print(f"{'workers':>8} {'wall s':>8}")
    for w in (1, 2):
        print(f"{w:>8} {times[w]:>8.1f}")
    print(f"speed-up 2 vs 1 workers: {times[1] / times[2]:.2f}x; identical results: {same}")


if __name__ == "__main__":
    main()
