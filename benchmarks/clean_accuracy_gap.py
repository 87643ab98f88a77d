"""Clean accuracy of the defended pipeline against the baseline, over seeds.

On the paper protocol split of a real image folder (default: the shared Kaggle copy),
fits the baseline and three defended pipelines for several seeds and prints their
validation and test accuracy side by side:

- ``antithetic, purified-train``: the defaults (antithetic EOT noise pairs; classifier
  trained on purified features);
- ``independent, purified-train``: independent EOT draws, as the paper describes them;
- ``independent, clean-train``: the paper's protocol literally (classifier trained on
  clean features, purification at inference only).

The defended pipelines are scored through the compiled module over ``--draws`` fresh
noise draws (each one call of the purifier, ``n_eot`` draws inside), two ways: the
accuracy of one call (mean over calls, and its standard deviation between calls, which
is what one ``predict`` on a test set is subject to) and the accuracy of the mean
probability over all calls (what the robustness evaluation reports).

    python benchmarks/clean_accuracy_gap.py [--data DIR] [--seeds 5] [--draws 20]
"""

import argparse
import time

import numpy as np
import torch

VARIANTS = {
    "antithetic, purified-train": {},
    "independent, purified-train": {"purify__antithetic": False},
    "independent, clean-train": {"purify__antithetic": False, "purify__train_on_purified": False},
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/brain-tumor-mri")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--draws", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from joblib import Memory

    from sknnmfdiff import make_baseline_pipeline, make_paper_pipeline, to_torch_module
    from sknnmfdiff.datasets import find_duplicates, load_mri_folder, paper_split
    from sknnmfdiff.evaluation import predict_proba_draws

    bunch = load_mri_folder(args.data, image_size=128, task="binary")
    split = paper_split(bunch, groups=find_duplicates(bunch, kind="near"), random_state=0)
    X, y = bunch.data, bunch.target
    memory = Memory("/tmp/sknnmfdiff-bench-cache", verbose=0)
    parts = {"val": split.val, "test": split.test}

    def accuracies(pipe, draws, seed):
        """(mean one-call accuracy, sd between calls, mean-probability accuracy) per part."""
        module = to_torch_module(pipe)
        out = {}
        for part, idx in parts.items():
            x = torch.as_tensor(X[idx]).reshape(-1, 1, 128, 128)
            P = predict_proba_draws(module, x, n_draws=draws, random_state=seed)
            per_call = (P.argmax(axis=2) == y[idx]).mean(axis=1)
            out[part] = (per_call.mean(), per_call.std(), (P.mean(0).argmax(1) == y[idx]).mean())
        return out

    gaps = {name: [] for name in VARIANTS}
    print(f"{'seed':>4} {'variant':>28} | one call: {'val':>5} {'(sd)':>5} {'test':>5} {'(sd)':>5}"
          f" | mean prob: {'val':>5} {'test':>5} | gap one call val/test | gap mean prob val/test")
    for seed in range(args.seeds):
        t0 = time.perf_counter()
        base = make_baseline_pipeline(memory=memory, random_state=seed).fit(X[split.train], y[split.train])
        b = accuracies(base, 1, seed)
        print(f"{seed:>4} {'baseline':>28} |           {100 * b['val'][0]:5.1f}       "
              f"{100 * b['test'][0]:5.1f}", flush=True)
        for name, kw in VARIANTS.items():
            pipe = make_paper_pipeline(memory=memory, random_state=seed, **kw)
            pipe.fit(X[split.train], y[split.train])
            a = accuracies(pipe, args.draws, seed)
            g = [100 * (a[p][i] - b[p][0]) for i in (0, 2) for p in ("val", "test")]
            gaps[name].append(g + [100 * a["val"][1], 100 * a["test"][1]])
            print(f"{seed:>4} {name:>28} |           {100 * a['val'][0]:5.1f} {100 * a['val'][1]:5.1f} "
                  f"{100 * a['test'][0]:5.1f} {100 * a['test'][1]:5.1f} |            "
                  f"{100 * a['val'][2]:5.1f} {100 * a['test'][2]:5.1f} | "
                  f"{g[0]:+6.1f} {g[1]:+6.1f}          | {g[2]:+6.1f} {g[3]:+6.1f}", flush=True)
        print(f"     ({time.perf_counter() - t0:.0f} s)", flush=True)

    print(f"\nDefended minus baseline, points, mean (sd) over {args.seeds} seeds; "
          "'call sd' is the mean standard deviation of one call's accuracy between calls:")
    for name, rows in gaps.items():
        g = np.array(rows)
        sd = g.std(axis=0, ddof=1) if len(g) > 1 else np.zeros(g.shape[1])
        print(f"  {name:>28}: one call val {g[:, 0].mean():+.1f} ({sd[0]:.1f}), "
              f"test {g[:, 1].mean():+.1f} ({sd[1]:.1f}); mean prob val {g[:, 2].mean():+.1f} "
              f"({sd[2]:.1f}), test {g[:, 3].mean():+.1f} ({sd[3]:.1f}); call sd val "
              f"{g[:, 4].mean():.1f}, test {g[:, 5].mean():.1f}; worst one-call gap "
              f"{g[:, :2].min():+.1f}")


if __name__ == "__main__":
    main()
