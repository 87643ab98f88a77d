"""Clean accuracy of the defended pipeline against the baseline, over seeds.

On the paper protocol split of a real image folder (default: the shared Kaggle copy),
fits the baseline and the defended pipeline for several seeds and for the two
training semantics of the purifier, and prints validation and test accuracy side by
side. The defended model is scored as the evaluation scores it: mean probability
over many fresh noise draws of the compiled module (not the single seeded draw of
``predict_proba``).

    python benchmarks/clean_accuracy_gap.py [--data DIR] [--seeds 5] [--draws 50]
"""

import argparse
import time

import numpy as np
import torch


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/brain-tumor-mri")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--draws", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from joblib import Memory

    from sknnmfdiff import make_baseline_pipeline, make_paper_pipeline, to_torch_module
    from sknnmfdiff.datasets import find_duplicates, load_mri_folder, paper_split
    from sknnmfdiff.evaluation import score

    bunch = load_mri_folder(args.data, image_size=128, task="binary")
    split = paper_split(bunch, groups=find_duplicates(bunch, kind="near"), random_state=0)
    X, y = bunch.data, bunch.target
    memory = Memory("/tmp/sknnmfdiff-bench-cache", verbose=0)

    def acc(pipe, idx, draws):
        module = to_torch_module(pipe)
        x = torch.as_tensor(X[idx]).reshape(-1, 1, 128, 128)
        s = score(module, x, torch.as_tensor(y[idx]), n_draws=draws)
        return s["rules"]["mean_probability"]["accuracy"]

    rows = []
    print(f"{'seed':>4} {'variant':>22} {'val':>7} {'test':>7} {'gap val':>8} {'gap test':>8}")
    for seed in range(args.seeds):
        t0 = time.perf_counter()
        base = make_baseline_pipeline(memory=memory, random_state=seed).fit(X[split.train], y[split.train])
        b = (acc(base, split.val, 1), acc(base, split.test, 1))
        print(f"{seed:>4} {'baseline':>22} {b[0]:7.4f} {b[1]:7.4f}", flush=True)
        for name, kw in (("defended, purified-train", {}),
                         ("defended, clean-train", {"purify__train_on_purified": False})):
            d = make_paper_pipeline(memory=memory, random_state=seed, **kw).fit(X[split.train], y[split.train])
            a = (acc(d, split.val, args.draws), acc(d, split.test, args.draws))
            rows.append((name, a[0] - b[0], a[1] - b[1]))
            print(f"{seed:>4} {name:>22} {a[0]:7.4f} {a[1]:7.4f} {100 * (a[0] - b[0]):+8.1f} "
                  f"{100 * (a[1] - b[1]):+8.1f}", flush=True)
        print(f"     ({time.perf_counter() - t0:.0f} s)", flush=True)
    print("\nmean gap (points) over seeds, defended - baseline:")
    for name in ("defended, purified-train", "defended, clean-train"):
        g = np.array([(r[1], r[2]) for r in rows if r[0] == name]) * 100
        print(f"  {name}: validation {g[:, 0].mean():+.1f} (sd {g[:, 0].std(ddof=1):.1f}), "
              f"test {g[:, 1].mean():+.1f} (sd {g[:, 1].std(ddof=1):.1f})")


if __name__ == "__main__":
    main()
