"""Adversarial training through the purifier: clean and robust balanced accuracy on real MRI.

On the leakage-free paper split (seed 0) of a real image folder (default: the shared
Kaggle copy), fits on the train part the undefended baseline
(``make_baseline_pipeline``), the paper's defended pipeline (``make_paper_pipeline``)
and adversarially trained pipelines (``make_adversarial_pipeline``), then evaluates
each one with

    evaluate_robustness(pipe, X, y, eps=0.10, space="feature", protocol="adaptive")

(AutoAttack's APGD-CE with EOT over the purifier's noise, log-mean-probability loss,
and Square with EOT; add ``--light`` for fewer restarts, iterations, queries and draws
while exploring; ``--space pixel --eps E`` for the pixel threat model) on the test
part, or on the validation part with ``--part val`` (pick settings there, not on the
test part). In feature space it first prints an upper bound on the robust accuracy
that any classifier of the baseline's features can reach on the train and evaluated
parts (conflicting pairs of the two classes, maximum matching; see
``_robust_upper_bound``). Prints, per model, the clean and robust balanced
accuracy of the mean-probability rule with 95 % intervals (stratified percentile
bootstrap over the two classes, 2,000 resamples), the worst-case rule's robust
accuracy, the training cost (fit seconds and attack gradient evaluations), the
evaluation's seconds and its failed sanity checks (with ``--checks``).

Variants are named ``baseline``, ``defended`` or ``METHOD-PUR-EPS`` with METHOD
``pgd`` or ``trades``, PUR ``pur`` (purifier in the loop) or ``nopur``, EPS the training
radius in feature units (``trades-pur-0.10``), or with ``-pixel`` the radius in pixel
units of pixel-space training (``pgd-nopur-0.01-pixel``); ``@key=value,...`` after a name sets
``make_adversarial_pipeline`` arguments or ``step__param`` parameters
(``pgd-nopur-0.05@adv__classifier__max_epochs=200,k=15``).

    python benchmarks/adversarial_training.py [--data DIR] [--part test|val]
        [--n-eval N] [--variants baseline defended trades-pur-0.10 ...] [--light]
        [--checks [VARIANT ...]] [--space feature|pixel] [--eps 0.10] [--json FILE]
"""

import argparse
import ast
import json
import time

import numpy as np
import torch

#: The adversarial variants' network and training length: a wider CNN trained longer
#: (chosen on the validation part: more clean accuracy at the same robust accuracy).
WIDE = "@adv__classifier__width=64,adv__classifier__patience=20,adv__classifier__max_epochs=300"
DEFAULT_VARIANTS = ["baseline", "defended"] + [
    f"{m}-{p}-{e}{WIDE}" for p in ("nopur", "pur") for m in ("pgd", "trades")
    for e in ("0.05", "0.10")] + [f"pgd-nopur-0.08{WIDE}"]
LIGHT_ATTACK = {"n_restarts": 2, "n_iter": 100, "square_queries": 1000, "n_eot": 10,
                "square_n_eot": 4}


def _parse_variant(spec):
    """(name, factory name, kwargs) of a variant spec."""
    name, _, extra = spec.partition("@")
    kwargs = {}
    for item in filter(None, extra.split(",")):
        key, _, value = item.partition("=")
        try:
            kwargs[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            kwargs[key] = value
    if name in ("baseline", "defended"):
        return spec, name, kwargs
    method, pur, eps, *space = name.split("-")
    if method not in ("pgd", "trades") or pur not in ("pur", "nopur") or space not in ([], ["pixel"]):
        raise SystemExit(f"unknown variant {spec!r}: use baseline, defended or "
                         "METHOD-PUR-EPS[-pixel]")
    return spec, "adversarial", dict(method=method, purify=pur == "pur", eps=float(eps),
                                     space=(space or ["feature"])[0], **kwargs)


def _robust_upper_bound(Z, y, eps):
    """Upper bound on the L-inf robust accuracy of any classifier on the sample (Z, y).

    Two points of different classes within ``2 eps`` of each other (L-inf) share a point
    of their eps-balls, which a classifier gives one label: at most one of the two can be
    robustly correct. The fewest points that must be lost is the minimum vertex cover of
    that bipartite conflict graph, which equals its maximum matching (Konig's theorem);
    the bound is ``1 - matching / n`` (Bhagoji et al., 2019, "Lower bounds on adversarial
    robustness from optimal transport", NeurIPS; Pydi and Jog, 2020). A sample bound:
    a larger sample gives a tighter one.
    """
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import maximum_bipartite_matching

    A, B = Z[y == 0], Z[y == 1]
    close = np.abs(A[:, None, :] - B[None, :, :]).max(axis=2) <= 2 * eps
    matched = int((maximum_bipartite_matching(csr_matrix(close), perm_type="column") >= 0).sum())
    return 1 - matched / len(y)


def _balanced_ci(y, correct, seed=0):
    """Balanced accuracy of per-sample correctness and its 95 % stratified bootstrap CI."""
    from scipy.stats import bootstrap

    y, correct = np.asarray(y), np.asarray(correct, dtype=float)
    parts = [correct[y == c] for c in np.unique(y)]
    value = float(np.mean([p.mean() for p in parts]))
    if all(np.ptp(p) == 0 for p in parts):
        return value, (value, value)
    res = bootstrap(parts, lambda *a, axis=-1: np.mean([p.mean(axis=axis) for p in a], axis=0),
                    n_resamples=2000, method="percentile", random_state=seed, vectorized=True)
    return value, (float(res.confidence_interval.low), float(res.confidence_interval.high))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/brain-tumor-mri")
    ap.add_argument("--part", choices=["test", "val"], default="test")
    ap.add_argument("--n-eval", type=int, default=0,
                    help="first N/2 images of each class of the part (0: all)")
    ap.add_argument("--variants", nargs="+", default=DEFAULT_VARIANTS)
    ap.add_argument("--light", action="store_true", help=f"lighter attack: {LIGHT_ATTACK}")
    ap.add_argument("--checks", nargs="*", default=None, metavar="VARIANT",
                    help="run the evaluation's sanity checks (on these variants; all if none named)")
    ap.add_argument("--json", default=None, help="write the figures to this file")
    ap.add_argument("--space", choices=["feature", "pixel"], default="feature",
                    help="threat model of the evaluation")
    ap.add_argument("--eps", type=float, default=0.10, help="radius of the evaluation")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cache", default="/tmp/sknnmfdiff-adv-cache")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from joblib import Memory

    from sknnmfdiff import (make_adversarial_pipeline, make_baseline_pipeline,
                            make_paper_pipeline)
    from sknnmfdiff.datasets import find_duplicates, load_mri_folder, paper_split
    from sknnmfdiff.evaluation import evaluate_robustness

    memory = Memory(args.cache, verbose=0)
    t0 = time.perf_counter()
    bunch = memory.cache(load_mri_folder)(args.data, image_size=128, task="binary")
    split = paper_split(bunch, groups=find_duplicates(bunch, kind="near"), random_state=0)
    X, y = bunch.data, bunch.target
    idx = split.test if args.part == "test" else split.val
    if args.n_eval:  # the first n_eval / 2 images of each class, in split order
        idx = np.sort(np.concatenate([idx[y[idx] == c][: args.n_eval // 2] for c in (0, 1)]))
    print(f"data: {args.data}, {len(split.train)} train, {len(idx)} {args.part} images "
          f"({np.bincount(y[idx]).tolist()} per class), loaded in {time.perf_counter() - t0:.0f} s; "
          f"attack: adaptive, {args.space} space, eps {args.eps:.2f}"
          f"{', light ' + str(LIGHT_ATTACK) if args.light else ''}"
          f"; checks {'off' if args.checks is None else args.checks or 'all'}", flush=True)
    if args.space == "feature":  # the sample bound, on the baseline's features
        front = make_baseline_pipeline(random_state=0, memory=memory)[:-1]
        front.fit(X[split.train], y[split.train])
        bounds = {part: _robust_upper_bound(front.transform(X[i]), y[i], args.eps)
                  for part, i in (("train", split.train), (args.part, idx))}
        print("upper bound on robust accuracy at eps %.2f of any classifier of these features "
              "(conflicting pairs, maximum matching): %s" % (args.eps, ", ".join(
                  f"{p} {100 * b:.1f} %" for p, b in bounds.items())), flush=True)
    factories = {"baseline": make_baseline_pipeline, "defended": make_paper_pipeline,
                 "adversarial": make_adversarial_pipeline}
    attack = LIGHT_ATTACK if args.light else {}
    rows = []
    print(f"{'variant':>24} | {'clean bal. acc. [95% CI]':>24} | {'robust bal. acc. [95% CI]':>25}"
          f" | {'worst':>5} | {'fit s':>6} {'att. grads':>10} | {'eval s':>6} | failed checks",
          flush=True)
    for spec in args.variants:
        name, factory, kwargs = _parse_variant(spec)
        pipe = factories[factory](random_state=0, memory=memory, **kwargs)
        t_fit = time.perf_counter()
        pipe.fit(X[split.train], y[split.train])
        fit_s = time.perf_counter() - t_fit
        cost = getattr(pipe.steps[-1][1], "training_cost_", {})
        checks = args.checks is not None and (not args.checks or spec in args.checks)
        t_ev = time.perf_counter()
        rep = evaluate_robustness(pipe, X[idx], y[idx], eps=args.eps, space=args.space,
                                  protocol="adaptive", checks=checks, progress=False,
                                  random_state=0, **attack)
        ev_s = time.perf_counter() - t_ev
        yy = rep.per_sample["y"]
        clean, clean_ci = _balanced_ci(yy, rep.per_sample["clean_correct"]["mean_probability"])
        rob, rob_ci = _balanced_ci(yy, rep.per_sample["robust_correct"]["mean_probability"])
        worst = rep.robust["worst_case"]["balanced_accuracy"]
        failed = rep.failed_checks if checks else ["(not run)"]
        print(f"{name.replace(WIDE, ' w64'):>24} | {100 * clean:5.1f} [{100 * clean_ci[0]:5.1f}, {100 * clean_ci[1]:5.1f}] "
              f"      | {100 * rob:5.1f} [{100 * rob_ci[0]:5.1f}, {100 * rob_ci[1]:5.1f}]        | "
              f"{100 * worst:5.1f} | {fit_s:6.0f} {cost.get('attack_gradients', 0):>10} | "
              f"{ev_s:6.0f} | {', '.join(failed) or 'none'}", flush=True)
        for c in rep.checks if checks else []:
            print(f"{'':>26} check {c['name']}: {c['status']} (value {c['value']})", flush=True)
        rows.append(dict(
            variant=name, clean_balanced_accuracy=clean, clean_ci=clean_ci,
            robust_balanced_accuracy=rob, robust_ci=rob_ci, robust_worst_case=worst,
            robust_accuracy_wilson_ci=rep.robust["mean_probability"]["accuracy_ci"],
            fit_seconds=fit_s, training_cost=cost, eval_seconds=ev_s,
            threat_model=rep.threat_model, checks=rep.checks if checks else None,
            failed_checks=failed))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(part=args.part, n_eval=len(idx), light=args.light, rows=rows), f,
                      indent=1, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))


if __name__ == "__main__":
    main()
