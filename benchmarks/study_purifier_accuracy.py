"""Clean-accuracy study of the feature-space diffusion purifier.

Question: the classifier of the paper is trained on clean features, and purification at
``t = 41`` adds noise of standard deviation ``sqrt(1 - alpha_bar_41) ~ 0.14`` per feature
to L2-normalised NMF features before denoising. How much clean accuracy does the defended
pipeline lose, and which choice (training the classifier on purified features, the
denoiser's parameterisation and capacity, its training t-distribution, epochs) keeps the
loss within 2 points of the undefended baseline?

Features are built quickly from the real data (not the package's NMF stage, which another
engineer writes): 1,100 ``notumor`` + 1,100 tumour images (seeded draw; exact duplicates
are *not* collapsed here, this is a study, not the paper protocol), grayscale 128 x 128 in
[0, 1]; ``sklearn.decomposition.NMF`` (KL, multiplicative updates, rank 15) fitted on a
stratified 70 % train part; every image projected by exact NNLS onto the fixed basis and
L2-normalised; the top 10 components by ``|ROC-AUC - 0.5|`` on train kept. A logistic
regression and a small MLP stand in for the CNN. The features are cached in ``/tmp``.

Findings (2026-11-29, 1540 train / 660 test rows, logistic regression / MLP stand-ins;
clean-accuracy change of the defended pipeline against the undefended baseline, points,
mean over purifier seeds 0-2 unless said otherwise, "(0-5)" = seeds 0-5; denoiser
128 x 3, 200 epochs unless said; baselines 77.6 % / 88.6 % (seeds 0-5: 77.6 / 87.7)):

==========================================  =============  ==============
option                                      logreg         MLP
==========================================  =============  ==============
clean clf, direct x0 MLP, uniform t         -4.0           -13.9
clean clf, preconditioned, uniform t        -2.0           -6.2
clean clf, preconditioned, t focus 0.5      -2.1           -6.9
clean clf, preconditioned, 50 epochs        -2.9           -8.0
clean clf, preconditioned, 400 epochs (0-5) -2.2           -6.6 (worst -13.8)
clean clf, preconditioned, 256 x 4          -2.2           -6.1
purified clf, direct x0 MLP, uniform t      -0.2           -4.7
purified clf, preconditioned, uniform t     0.0 (+0.1)     +0.4 (-2.1)
  200 epochs; in brackets seeds 3-5;
  seeds 0-5: +0.05 / -0.9, worst -0.3 / -4.6
purified clf, preconditioned, t focus 0.5   -0.4 (0.0)     -7.0 (-5.1)
purified clf, as above, n_eot 32 (0-5)      0.0            -2.3 (worst -6.8)
purified clf, 256 x 4, 200 epochs (0-5)     -0.6           -0.8 (worst -3.9)
purified clf, 256 x 4, 400 epochs (0-5)     -0.4           +0.1 (worst -0.8)
purified clf, 128 x 3, 400 epochs (0-5)     -0.03          -0.03 (worst -1.4)
  = the chosen default
==========================================  =============  ==============

Held-out denoising error ||x0_hat - x0|| at t = 10, 41, 100, 300 (against ||x_t - x0||
0.134, 0.44, 0.98, 2.41): direct MLP 0.31, 0.36, 0.44, 0.50 (worse than no denoising at
t = 10); preconditioned 0.13, 0.32, 0.44, 0.50; preconditioned with t focus 0.12, 0.28,
0.42, 0.50; 400 epochs 0.13, 0.31, 0.43, 0.50. Training the classifier on purified
features is what keeps clean accuracy; training the denoiser longer (400 epochs) is what
makes it stable from seed to seed (the MLP stand-in itself varies by about a point).

Run::

    .venv/bin/python benchmarks/study_purifier_accuracy.py            # all options
    .venv/bin/python benchmarks/study_purifier_accuracy.py --quick    # defaults only
    .venv/bin/python benchmarks/study_purifier_accuracy.py --seeds 6 --only default

Not run as a test.
"""

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import torch

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "brain-tumor-mri"
CACHE = Path("/tmp/sknnmfdiff_study_features.npz")
TUMOUR = ("glioma", "meningioma", "pituitary")


def _load_images(seed=0, n_per_class=1100, size=128):
    from PIL import Image

    rng = np.random.default_rng(seed)
    root = DATA / "Training"
    neg = sorted((root / "notumor").glob("*.jpg"))
    pos = sorted(p for c in TUMOUR for p in (root / c).glob("*.jpg"))
    neg = [neg[i] for i in rng.choice(len(neg), n_per_class, replace=False)]
    pos = [pos[i] for i in rng.choice(len(pos), n_per_class, replace=False)]
    paths = neg + pos
    y = np.r_[np.zeros(n_per_class, int), np.ones(n_per_class, int)]
    X = np.empty((len(paths), size * size), np.float32)
    for i, p in enumerate(paths):
        with Image.open(p) as im:
            im = im.convert("L").resize((size, size), Image.BILINEAR)
            X[i] = np.asarray(im, np.float32).ravel() / 255.0
    return X, y


def build_features(seed=0, n_select=10):
    """Images -> KL-NMF(15) on train -> NNLS projection -> L2 norm -> top-10 by AUC."""
    from scipy.optimize import nnls
    from sklearn.decomposition import NMF
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split

    if CACHE.exists():
        d = np.load(CACHE)
        return d["Z_train"], d["Z_test"], d["y_train"], d["y_test"]
    t0 = time.perf_counter()
    X, y = _load_images(seed)
    logging.info("loaded %s images in %.1f s", X.shape, time.perf_counter() - t0)
    idx_tr, idx_te = train_test_split(
        np.arange(len(y)), train_size=0.7, stratify=y, random_state=seed
    )
    nmf = NMF(
        n_components=15, beta_loss="kullback-leibler", solver="mu", max_iter=100,
        init="nndsvda", random_state=seed,
    )
    nmf.fit(X[idx_tr])
    logging.info("NMF fitted in %.1f s", time.perf_counter() - t0)
    H = nmf.components_.astype(np.float64).T  # (n_pixels, 15)
    W = np.stack([nnls(H, x.astype(np.float64))[0] for x in X])
    norm = np.linalg.norm(W, axis=1, keepdims=True)
    W = np.divide(W, norm, out=np.zeros_like(W), where=norm > 0)
    auc = np.array([roc_auc_score(y[idx_tr], W[idx_tr, j]) for j in range(W.shape[1])])
    keep = np.sort(np.argsort(-np.abs(auc - 0.5))[:n_select])
    Z = W[:, keep].astype(np.float32)
    logging.info("features built in %.1f s; kept %s", time.perf_counter() - t0, keep)
    np.savez(
        CACHE, Z_train=Z[idx_tr], Z_test=Z[idx_te], y_train=y[idx_tr], y_test=y[idx_te]
    )
    return Z[idx_tr], Z[idx_te], y[idx_tr], y[idx_te]


def _classifiers(seed):
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return {
        "logreg": make_pipeline(StandardScaler(), LogisticRegression(C=10.0, max_iter=2000)),
        "mlp": make_pipeline(
            StandardScaler(),
            MLPClassifier((64, 64), max_iter=2000, early_stopping=True, random_state=seed),
        ),
    }


def run_option(name, Z_tr, Z_te, y_tr, y_te, seeds=(0, 1, 2), **purifier_params):
    """Fit the purifier on train features, then compare clean test accuracies.

    The classifiers' baseline is trained and tested on clean features; the defended
    classifier is trained on ``fit_transform``'s output (clean or purified features,
    following ``train_on_purified``) and tested on purified test features. Repeated for
    every purifier/classifier seed; returns {classifier: (baselines, defended)}.
    """
    from sklearn.base import clone

    from sknnmfdiff.purification import DiffusionPurifier

    acc = {}
    fit_s = []
    for seed in seeds:
        t0 = time.perf_counter()
        pur = DiffusionPurifier(random_state=seed, **purifier_params).fit(Z_tr)
        fit_s.append(time.perf_counter() - t0)
        Z_te_p = pur.transform(Z_te)
        # == pur.fit_transform(Z_tr) without refitting
        Z_tr_fit = pur.transform(Z_tr) if pur.train_on_purified else Z_tr
        for cname, clf in _classifiers(seed).items():
            a = clone(clf).fit(Z_tr, y_tr).score(Z_te, y_te)
            b = clone(clf).fit(Z_tr_fit, y_tr).score(Z_te_p, y_te)
            acc.setdefault(cname, ([], []))
            acc[cname][0].append(a)
            acc[cname][1].append(b)
    for cname, (a, b) in acc.items():
        a, b = 100 * np.array(a), 100 * np.array(b)
        print(
            f"{name:40s} {cname:6s} baseline {a.mean():6.2f}  defended {b.mean():6.2f}"
            f"  delta {np.mean(b - a):+6.2f} (min {np.min(b - a):+6.2f})"
            f"  [fit {np.mean(fit_s):4.1f} s]"
        )
    err = pur.denoising_error(Z_te, [10, 41, 100, 300], n_draws=4)
    print(
        f"{'':40s} ||x0_hat - x0|| at t={err['t'].tolist()}: "
        f"{np.round(err['denoised'], 3).tolist()} vs ||x_t - x0|| "
        f"{np.round(err['noisy'], 3).tolist()}",
        flush=True,
    )
    return acc


E200 = {"max_epochs": 200}  # the table's rows were measured at 200 epochs unless said
OPTIONS = {
    # name: DiffusionPurifier params
    "default": {},
    "clean clf, direct x0 MLP, uniform t": {
        **E200, "parameterization": "direct", "train_on_purified": False
    },
    "clean clf, precond, uniform t": {**E200, "train_on_purified": False},
    "clean clf, precond, focus t": {**E200, "small_t_fraction": 0.5, "train_on_purified": False},
    "clean clf, precond, 400 epochs": {"train_on_purified": False},
    "clean clf, precond, 50 epochs": {"max_epochs": 50, "train_on_purified": False},
    "clean clf, precond, hidden 256x4": {
        **E200, "hidden": 256, "n_layers": 4, "train_on_purified": False
    },
    "purified clf, direct x0 MLP, uniform t": {**E200, "parameterization": "direct"},
    "purified clf, precond, uniform t": {**E200},
    "purified clf, precond, focus t": {**E200, "small_t_fraction": 0.5},
    "purified clf, n_eot 32": {**E200, "n_eot": 32},
    "purified clf, 256x4, 200 epochs": {**E200, "hidden": 256, "n_layers": 4},
    "purified clf, 256x4, 400 epochs": {"hidden": 256, "n_layers": 4, "max_epochs": 400},
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the defaults")
    parser.add_argument("--only", nargs="*", help="names of options to run")
    parser.add_argument("--seeds", type=int, default=3, help="purifier seeds 0 .. n-1")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(1)  # tiny matmuls: 1 thread is fastest on a shared machine
    Z_tr, Z_te, y_tr, y_te = build_features()
    print(f"train {Z_tr.shape}, test {Z_te.shape}, positives {y_tr.mean():.2f}")
    names = ["default"] if args.quick else (args.only or list(OPTIONS))
    for name in names:
        run_option(name, Z_tr, Z_te, y_tr, y_te, seeds=range(args.seeds), **OPTIONS[name])


if __name__ == "__main__":
    main()
