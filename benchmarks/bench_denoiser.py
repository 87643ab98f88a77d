"""Denoiser forward + backward: one shared time step (embedding folded into the bias)
against the per-row time-step path, side by side in one process.

The purifier calls its denoiser with one time step for every row (``DenoiserMLP(x, t)``
with an int ``t``); training calls it with a time step per row. Both give the same
output up to float rounding (``tests/test_purification.py``). This times both on the
rows of one adaptive APGD step of the study (220 test images x 20 EOT draws x 8
purifier draws = 35,200 rows, k = 10, the default denoiser) and prints the ratio.

    python benchmarks/bench_denoiser.py [--rows 35200] [--repeats 10] [--threads 1]
"""

import argparse
import time

import numpy as np
import torch


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=35200, help="denoiser rows per pass")
    ap.add_argument("--repeats", type=int, default=10, help="timed passes per path")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from sknnmfdiff.nn._diffusion import DenoiserMLP, linear_beta_schedule

    _, ab = linear_beta_schedule()
    torch.manual_seed(0)
    net = DenoiserMLP(10, alphas_cumprod=ab, data_mean=np.full(10, 0.1), data_scale=0.1)
    x = torch.rand(args.rows, 10, requires_grad=True)
    paths = {"per-row t": torch.full((args.rows,), 41), "shared t": 41}
    times = {name: [] for name in paths}
    for _ in range(args.repeats + 1):  # interleaved; the first round warms up
        for name, t in paths.items():
            t0 = time.perf_counter()
            (g,) = torch.autograd.grad(net(x, t).sum(), x)
            times[name].append(time.perf_counter() - t0)
    med = {name: float(np.median(v[1:])) for name, v in times.items()}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {args.rows} rows, "
          f"median of {args.repeats}")
    for name, sec in med.items():
        print(f"  {name:>10}: {1e3 * sec:7.1f} ms forward + backward")
    print(f"  speed-up: {med['per-row t'] / med['shared t']:.2f}x")


if __name__ == "__main__":
    main()
