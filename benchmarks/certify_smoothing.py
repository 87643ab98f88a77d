"""Certified accuracy of randomized smoothing in feature space on the real MRI data.

The defended paper pipeline (seed 0: KL-NMF rank 15, k = 10 selected features, the
diffusion purifier, the CNN) is fitted on the paper split's 1,540 training images. Its NMF
and selector give the features z (N, 10); for every sigma a
:class:`~sknnmfdiff.SmoothedClassifier` smooths with the pipeline's own denoiser (frozen,
one-shot denoise at the step t* matching sigma) and a CNN trained on noisy-then-denoised
training features, and certifies the 220 test images (CERTIFY: n0 = 100 selection draws,
n = 1000 estimation draws, alpha = 0.001). Printed per sigma: the certified accuracy at
the given L2 radii and at the radius sqrt(k) eps of the L-inf budgets, with 95 %
Clopper-Pearson intervals over the test images; the largest L-inf eps with certified
accuracy >= 50 %; PREDICT's accuracy and abstentions on the clean test images.

Consistency check (checklist item 12): an L-inf PGD attack in feature space on the smoothed
soft classifier (cross-entropy of the mean probability over ``--attack-draws`` fresh noise
draws per step, the expectation over transformation of Salman et al. 2019's SmoothAdv),
clipped to [0, 1], its adversarial features scored by PREDICT with noise the attack never
saw (another random_state); :func:`sknnmfdiff.evaluation.check_certified_bound` compares
them with the certificates.

    python benchmarks/certify_smoothing.py [--data DIR] [--sigmas 0.12 0.25 0.5] [--n 1000]
        [--train-draws 1] [--out DIR]
"""

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

RADII = (0.0, 0.1, 0.25, 0.316, 0.5)
EPS = (0.02, 0.05, 0.10)


def smoothed_log_proba(smooth, z, eps):
    """log of the mean class probability of the base CNN over the noise draws ``eps``
    (m, k) around every row of ``z`` (N, k); differentiable in ``z``."""
    n, k = z.shape
    x0 = (z[:, None, :] + smooth.sigma * eps[None]).reshape(-1, k)
    if smooth.purifier_ is not None:
        ab = float(smooth.purifier_.alphas_cumprod_[smooth.timestep_ - 1])
        x0 = smooth.purifier_.denoiser_(math.sqrt(ab) * x0, smooth.timestep_)
    logp = torch.log_softmax(smooth.classifier_.net_.module_(x0), dim=1)
    return torch.logsumexp(logp.reshape(n, eps.shape[0], -1), dim=1) - math.log(eps.shape[0])


def pgd_linf(smooth, z, y_idx, eps, *, steps, draws, seed):
    """L-inf PGD (EOT over the smoothing noise) on the smoothed soft classifier; features
    kept in [0, 1]."""
    gen = torch.Generator().manual_seed(seed)
    z0 = torch.as_tensor(z)
    adv = z0.clone()
    step = 2.5 * eps / steps
    target = torch.as_tensor(y_idx)
    for _ in range(steps):
        adv.requires_grad_(True)
        noise = torch.randn((draws, z0.shape[1]), generator=gen)
        loss = torch.nn.functional.nll_loss(smoothed_log_proba(smooth, adv, noise), target)
        (grad,) = torch.autograd.grad(loss, adv)
        with torch.no_grad():
            adv = adv + step * grad.sign()
            adv = torch.clamp(torch.minimum(torch.maximum(adv, z0 - eps), z0 + eps), 0, 1)
    return adv.detach().numpy().astype(np.float32)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/brain-tumor-mri")
    ap.add_argument("--sigmas", type=float, nargs="+", default=[0.12, 0.25, 0.5])
    ap.add_argument("--n0", type=int, default=100)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--alpha", type=float, default=0.001)
    ap.add_argument("--train-draws", type=int, default=1)
    ap.add_argument("--attack-steps", type=int, default=20)
    ap.add_argument("--attack-draws", type=int, default=16)
    ap.add_argument("--no-attack", action="store_true")
    ap.add_argument("--no-denoiser", action="store_true",
                    help="ablation: Gaussian smoothing of a CNN trained on noisy features")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--cache", default="/tmp/sknnmfdiff-smoothing-cache")
    ap.add_argument("--out", default="/tmp/sknnmfdiff-smoothing-out")
    args = ap.parse_args()
    torch.set_num_threads(1)

    from joblib import Memory
    from sklearn.frozen import FrozenEstimator

    from sknnmfdiff import SkorchCNNClassifier, SmoothedClassifier, make_paper_pipeline
    from sknnmfdiff.datasets import find_duplicates, load_mri_folder, paper_split
    from sknnmfdiff.evaluation import (
        certified_accuracy,
        certified_accuracy_table,
        check_certified_bound,
        format_certified_table,
        max_certified_eps,
    )
    from sknnmfdiff.plots import plot_certified_accuracy, save_figure

    t0 = time.perf_counter()
    bunch = load_mri_folder(args.data, image_size=128, task="binary")
    split = paper_split(bunch, groups=find_duplicates(bunch, kind="near"), random_state=0)
    X, y = bunch.data, bunch.target
    pipe = make_paper_pipeline(random_state=0, device=args.device, memory=Memory(args.cache, verbose=0))
    pipe.fit(X[split.train], y[split.train])
    features = pipe[:2]
    z_train = features.transform(X[split.train])
    z_test = features.transform(X[split.test])
    y_train, y_test = y[split.train], y[split.test]
    k = z_test.shape[1]
    defended_acc = float(np.mean(pipe.predict(X[split.test]) == y_test))
    print(f"data, pipeline and features: {time.perf_counter() - t0:.0f} s; k = {k}; test n = "
          f"{len(y_test)}; defended pipeline test accuracy (one predict) {100 * defended_acc:.1f} %",
          flush=True)

    grid = np.linspace(0.0, 0.8, 161)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    curves, bands, results = {}, {}, {"args": vars(args), "defended_accuracy": defended_acc,
                                       "sigmas": {}}
    for sigma in args.sigmas:
        t1 = time.perf_counter()
        smooth = SmoothedClassifier(
            None if args.no_denoiser else FrozenEstimator(pipe.named_steps["purify"]),
            SkorchCNNClassifier(random_state=0),
            sigma=sigma, n0=args.n0, n=args.n, alpha=args.alpha, n_train_draws=args.train_draws,
            device=args.device, random_state=0,
        ).fit(z_train, y_train)
        t_fit = time.perf_counter() - t1
        labels, radius = smooth.certify(z_test)
        t_cert = time.perf_counter() - t1 - t_fit
        correct = labels == y_test
        pred = smooth.predict(z_test)
        rows = certified_accuracy_table(radius, correct, RADII, eps=EPS, n_features=k)
        eps50 = max_certified_eps(radius, correct, k, level=0.5)
        label = f"sigma = {sigma:g}" + ("" if args.no_denoiser else f" (t* = {smooth.timestep_})")
        curves[label] = certified_accuracy(radius, correct, grid)
        band = certified_accuracy_table(radius, correct, grid)
        bands[label] = ([r["ci_low"] for r in band], [r["ci_high"] for r in band])
        step = "no denoiser" if args.no_denoiser else (
            f"t* = {smooth.timestep_} (sigma_t* = {smooth.timestep_sigma_:.4f})")
        print(f"\n## sigma = {sigma:g}: {step}; fit {t_fit:.0f} s, certify {t_cert:.0f} s")
        print(format_certified_table(rows))
        print(f"abstained (certify): {int(np.sum(labels == -1))} / {len(y_test)}; PREDICT accuracy "
              f"{100 * np.mean(pred == y_test):.1f} %, abstained {int(np.sum(pred == -1))}; "
              f"largest L-inf eps with certified accuracy >= 50 %: {eps50:.4f} "
              f"(L2 radius {eps50 * math.sqrt(k):.4f})", flush=True)
        entry = {"timestep": smooth.timestep_, "timestep_sigma": smooth.timestep_sigma_,
                 "table": rows, "max_eps_50": eps50, "predict_accuracy": float(np.mean(pred == y_test)),
                 "predict_abstained": int(np.sum(pred == -1)),
                 "certify_abstained": int(np.sum(labels == -1)), "fit_s": t_fit, "certify_s": t_cert}
        if not args.no_attack:
            y_idx = np.searchsorted(smooth.classes_, y_test)
            scorer = smooth.set_params(random_state=1)  # noise the attack never saw
            attacked = []
            for e in EPS:
                adv = pgd_linf(smooth, z_test, y_idx, e, steps=args.attack_steps,
                               draws=args.attack_draws, seed=123)
                assert np.abs(adv - z_test).max() <= e + 1e-6 and adv.min() >= 0 and adv.max() <= 1
                attacked.append(scorer.predict(adv))
            check = check_certified_bound(y_test, labels, radius, np.stack(attacked), EPS,
                                          n_features=k, alpha=2 * args.alpha)
            print(f"attack (L-inf PGD, {args.attack_steps} steps, EOT {args.attack_draws}) and "
                  f"check {check.name}: {check.status} (margin {check.value:+.3f})")
            for r in check.details["per_eps"]:
                print(f"  eps {r['eps']:.2f} (L2 {r['radius']:.3f}): certified "
                      f"{100 * r['certified_accuracy']:.1f} % [{100 * r['certified_ci'][0]:.1f}, "
                      f"{100 * r['certified_ci'][1]:.1f}], attacked PREDICT accuracy "
                      f"{100 * r['attacked_accuracy']:.1f} % (not wrong "
                      f"{100 * r['attacked_non_error_rate']:.1f} %, abstained {r['abstained']}), "
                      f"violations {r['violations']} / {r['n_certified']}")
            entry["check"] = {"passed": check.passed, "value": check.value, **check.details}
        results["sigmas"][str(sigma)] = entry
        print(f"({time.perf_counter() - t1:.0f} s)", flush=True)

    fig = plot_certified_accuracy(
        grid, curves, ci=bands,
        radius_marks={f"L-inf eps = {e:g} (k = {k})": e * math.sqrt(k) for e in (0.05, 0.10)},
        title="Certified accuracy, feature space (L2), 220 test images",
    )
    print(f"\nfigure: {save_figure(fig, out / 'certified_accuracy.png')}")
    (out / "results.json").write_text(json.dumps(results, indent=1, default=float))
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
