"""Classifier heads side by side on the same features, over seeds.

For each seed (it changes the paper split and the ``random_state`` of every estimator),
the NMF (rank 15), the selector (``k = 10``) and the purifier (``t = 41``, 8 antithetic
draws) are fitted once, exactly as :func:`~sknnmfdiff.make_paper_pipeline` fits them
(same classes, same defaults, same seeds, each step's ``fit_transform`` on the training
part). Every head is then trained twice:

- **baseline**: on the selected training features, scored on the selected validation
  and test features (what :func:`~sknnmfdiff.make_baseline_pipeline` does);
- **defended**: on the purifier's training output (``fit_transform``: each row
  purified with its own noise), scored on the purified validation and test features
  (``transform``: one call's seeded draws), as the defended pipeline does.

Heads: the product's ``SkorchCNNClassifier()`` (default ``architecture="mlp"``) and
``SkorchCNNClassifier(architecture="paper")`` (the 1-D CNN of earlier versions), against
scikit-learn's ``SVC(C=10)`` (RBF), ``HistGradientBoostingClassifier()`` and
``MLPClassifier((128, 128))``, all on the raw features, as the pipeline passes them.
Printed: balanced accuracy (%) per seed, then per pipeline and part the mean and
standard deviation over seeds, the gap of each mean to the best head's, the paired
standard deviation of that gap over seeds, and the median fit time (wall clock,
indicative only: rerun on an idle machine before quoting it). The last lines say
whether the default head is at least as accurate on validation, averaged over seeds,
as the best scikit-learn head.

``--factors`` adds variants of the paper CNN that change one thing each (inputs
standardised; feature order shuffled, which tests for locality; learning rate 1e-3; no
early stopping, i.e. trained on all samples for 100 or 300 epochs; balanced class
weights) and the default MLP with early stopping, to show why the paper CNN trails.
Usage::

    python benchmarks/bench_heads.py                 # paper split, 5 seeds (~3 min)
    python benchmarks/bench_heads.py --seeds 20 --first-seed 0
    python benchmarks/bench_heads.py --factors       # and the paper CNN's variants
    python benchmarks/bench_heads.py --quick         # phantom data, under a minute
"""

import argparse
import os
import time
import warnings
from pathlib import Path

import numpy as np
import torch

DATA = Path(os.environ.get("SKNNMFDIFF_DATA", Path(__file__).resolve().parents[2] / "shared"
                           / "data" / "brain-tumor-mri"))
DEFAULT_HEAD = "SkorchCNNClassifier()"


SKLEARN_HEADS = ("SVC(C=10)", "HistGradientBoostingClassifier()", "MLPClassifier((128, 128))")


def _permute_columns(X, order):
    return X[:, order]


def heads(seed, n_features, factors=False):
    """name -> unfitted head, every one seeded by ``seed`` where it draws.

    With ``factors``, variants of the paper CNN that each change one thing (and the
    default with early stopping), to see why it trails the other heads.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler
    from sklearn.svm import SVC

    from sknnmfdiff import SkorchCNNClassifier

    def paper(**kw):
        return SkorchCNNClassifier(architecture="paper", random_state=seed, **kw)

    out = {
        DEFAULT_HEAD: SkorchCNNClassifier(random_state=seed),
        'SkorchCNNClassifier(architecture="paper")': paper(),
        SKLEARN_HEADS[0]: SVC(C=10),
        SKLEARN_HEADS[1]: HistGradientBoostingClassifier(random_state=seed),
        SKLEARN_HEADS[2]: MLPClassifier((128, 128), random_state=seed),
    }
    if factors:
        order = np.random.default_rng(seed).permutation(n_features)
        out.update({
            "paper, features standardised": make_pipeline(StandardScaler(), paper()),
            "paper, feature order shuffled": make_pipeline(
                FunctionTransformer(_permute_columns, kw_args={"order": order}), paper()),
            "paper, lr=1e-3": paper(lr=1e-3),
            "paper, no early stopping (100 epochs)": paper(early_stopping=False),
            "paper, no early stopping, 300 epochs": paper(early_stopping=False,
                                                         max_epochs=300),
            'paper, class_weight="balanced"': paper(class_weight="balanced"),
            "default, early stopping (patience 10)": SkorchCNNClassifier(
                early_stopping=True, max_epochs=100, random_state=seed),
        })
    return out


def features(X, y, split, seed, rank, k):
    """{"baseline": (train, val, test), "defended": (...)} features of one seed."""
    from sknnmfdiff import make_paper_pipeline

    pipe = make_paper_pipeline(n_components=rank, k=k, random_state=seed)
    nmf, select, purify = (pipe.named_steps[s] for s in ("nmf", "select", "purify"))
    tr, va, te = split.train, split.val, split.test
    z_tr = select.fit_transform(nmf.fit_transform(X[tr]), y[tr])
    z_va, z_te = (select.transform(nmf.transform(X[idx])) for idx in (va, te))
    p_tr = purify.fit_transform(z_tr)
    return {"baseline": (z_tr, z_va, z_te),
            "defended": (p_tr, purify.transform(z_va), purify.transform(z_te))}


def load(args):
    from sknnmfdiff.datasets import find_duplicates, load_mri_folder, make_phantom_mri

    if args.quick:
        return make_phantom_mri(400, image_size=32, random_state=0), None
    bunch = load_mri_folder(args.data, image_size=args.image_size, task="binary")
    return bunch, find_duplicates(bunch, kind="near")


def split_for(args, bunch, groups, seed):
    from sknnmfdiff.datasets import paper_split

    if args.quick:
        return paper_split(bunch, n_per_class=150, random_state=seed)
    return paper_split(bunch, groups=groups, random_state=seed)


def summarize(scores, times, seeds):
    """Print the per-pipeline tables; return {pipeline: {head: val mean}}."""
    means = {}
    for pipe, by_head in scores.items():
        names = list(by_head)
        print(f"\n{pipe}: balanced accuracy (%), mean (sd) over {len(seeds)} seeds; gap to "
              "the best head's mean (paired sd of the gap over seeds)")
        print(f"  {'head':42s} {'validation':>13s} {'gap':>13s} {'test':>13s} {'gap':>13s}"
              f" {'fit s':>7s}")
        rows, best = {}, {}
        for part in (0, 1):
            arr = {h: 100 * np.array([by_head[h][s][part] for s in seeds]) for h in names}
            top = max(names, key=lambda h: arr[h].mean())
            best[part] = top
            for h in names:
                gap = arr[h] - arr[top]
                sd = arr[h].std(ddof=1) if len(seeds) > 1 else 0.0
                gsd = gap.std(ddof=1) if len(seeds) > 1 else 0.0
                rows.setdefault(h, []).append(
                    f"{arr[h].mean():6.2f} ({sd:4.2f}) {gap.mean():+6.2f} ({gsd:4.2f})")
        for h in names:
            print(f"  {h:42s} {rows[h][0]} {rows[h][1]} {np.median(times[pipe][h]):7.2f}")
        means[pipe] = {h: 100 * np.mean([by_head[h][s][0] for s in seeds]) for h in names}
    return means


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(DATA), help="image folder (default: the shared copy)")
    p.add_argument("--seeds", type=int, default=5, help="number of seeds (default 5)")
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--rank", type=int, default=15)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--quick", action="store_true", help="400 phantom images at 32 x 32")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--factors", action="store_true",
                   help="also variants of the paper CNN that change one thing each")
    args = p.parse_args()
    if args.seeds < 1:
        p.error(f"--seeds must be >= 1, got {args.seeds}")
    torch.set_num_threads(args.threads)
    from sklearn.base import clone
    from sklearn.metrics import balanced_accuracy_score

    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    t0 = time.perf_counter()
    bunch, groups = load(args)
    X, y = bunch.data, bunch.target
    print(f"data: {X.shape[0]} images ({time.perf_counter() - t0:.1f} s); seeds {seeds}; "
          f"torch threads {torch.get_num_threads()}; load average {os.getloadavg()[0]:.2f}",
          flush=True)
    scores = {"baseline": {}, "defended": {}}
    times = {"baseline": {}, "defended": {}}
    for seed in seeds:
        t0 = time.perf_counter()
        split = split_for(args, bunch, groups, seed)
        feats = features(X, y, split, seed, args.rank, args.k)
        line = f"seed {seed} (features {time.perf_counter() - t0:.1f} s):"
        y_tr, y_va, y_te = y[split.train], y[split.val], y[split.test]
        for pipe, (f_tr, f_va, f_te) in feats.items():
            for name, head in heads(seed, f_tr.shape[1], args.factors).items():
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # MLPClassifier's ConvergenceWarning
                    t1 = time.perf_counter()
                    fitted = clone(head).fit(f_tr, y_tr)
                    times[pipe].setdefault(name, []).append(time.perf_counter() - t1)
                acc = (balanced_accuracy_score(y_va, fitted.predict(f_va)),
                       balanced_accuracy_score(y_te, fitted.predict(f_te)))
                scores[pipe].setdefault(name, {})[seed] = acc
            line += f"  {pipe} default val/test {100 * scores[pipe][DEFAULT_HEAD][seed][0]:.1f}/" \
                    f"{100 * scores[pipe][DEFAULT_HEAD][seed][1]:.1f}"
        print(line, flush=True)
    means = summarize(scores, times, seeds)
    print()
    for pipe, m in means.items():
        others = {h: m[h] for h in SKLEARN_HEADS}
        top = max(others, key=others.get)
        gap = m[DEFAULT_HEAD] - others[top]
        print(f"{pipe}: default head {m[DEFAULT_HEAD]:.2f} % on validation, best scikit-learn "
              f"head {top} {others[top]:.2f} %: {gap:+.2f} points, target (>= 0) "
              f"{'met' if gap >= 0 else 'NOT met'}")


if __name__ == "__main__":
    main()
