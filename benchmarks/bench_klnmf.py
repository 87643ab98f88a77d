"""Side-by-side speed of our KL-NMF fit and NNLS projection against the references.

(a) Fit: time for our torch multiplicative updates (float32, fused row-block sweep) to
    reach the KL loss that scikit-learn's ``NMF(beta_loss="kullback-leibler",
    solver="mu")`` reaches in 200 iterations, from the same NNDSVDa initialisation,
    against scikit-learn in float64 and in float32 (200 iterations, tol=0). The init is
    computed once and excluded from every timing.
(b) Projection: exact NNLS of 2,200 images onto the fitted basis, our batched solver
    against a loop of ``scipy.optimize.nnls``, with the largest per-sample relative
    difference.

Data: the paper-sized matrix, 1,540 training images of the shared MRI data (grayscale,
128 x 128, pixels in [0, 1], loaded with Pillow), or ``--synthetic`` low-rank data of the
same shape. Everything runs on 2 threads (torch and BLAS). Usage::

    python benchmarks/bench_klnmf.py            # full size (about 4 minutes)
    python benchmarks/bench_klnmf.py --quick    # 400 images at 64 x 64, 50 iterations
    python benchmarks/bench_klnmf.py --synthetic
"""

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy.optimize import nnls as scipy_nnls
from sklearn.decomposition import NMF
from sklearn.decomposition._nmf import _initialize_nmf
from threadpoolctl import threadpool_limits

from sknnmfdiff.nn import NNLSProjection
from sknnmfdiff.decomposition import _fit_kl_mu, _kl_divergence

DATA = Path(os.environ.get("SKNNMFDIFF_DATA", Path(__file__).resolve().parents[2] / "shared"
                           / "data" / "brain-tumor-mri"))


def load_images(n, side, seed):
    """``n`` Training images drawn with ``seed``, grayscale, side x side, in [0, 1]."""
    files = sorted((DATA / "Training").glob("*/*.jpg"))
    if len(files) < n:
        raise SystemExit(f"need {n} images under {DATA / 'Training'}, found {len(files)}; "
                         "use --synthetic")
    pick = np.random.default_rng(seed).choice(len(files), n, replace=False)
    return np.stack([
        np.asarray(Image.open(files[i]).convert("L").resize((side, side), Image.BILINEAR),
                   dtype=np.float32).ravel() / np.float32(255.0)
        for i in sorted(pick)
    ])


def synthetic(n, side, seed):
    rng = np.random.default_rng(seed)
    f = side * side
    X = rng.random((n, 15)) @ rng.random((15, f)) / 15 + 0.05 * rng.random((n, f))
    X[X < np.quantile(X, 0.25)] = 0.0
    return (X / X.max()).astype(np.float32)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes, seconds not minutes")
    p.add_argument("--synthetic", action="store_true", help="random data, not the MRI images")
    p.add_argument("--rank", type=int, default=15)
    p.add_argument("--relaxation", type=float, default=1.5,
                   help="safeguarded over-relaxation exponent of our fit (1 = plain MU)")
    args = p.parse_args()
    torch.set_num_threads(2)
    n_fit, n_proj, side, n_iter = (400, 500, 64, 50) if args.quick else (1540, 2200, 128, 200)
    get = synthetic if args.synthetic else load_images
    t = time.perf_counter()
    Xp = get(n_proj, side, 0)
    X = Xp[:n_fit]
    print(f"data: {'synthetic' if args.synthetic else DATA}  fit {X.shape}, project "
          f"{Xp.shape}, zeros {np.mean(X == 0):.1%}, load {time.perf_counter() - t:.1f} s")

    with threadpool_limits(2):
        W0, H0 = _initialize_nmf(X.astype(np.float64), args.rank, init="nndsvda", eps=1e-6,
                                 random_state=0)
        res = {}
        for name, dt in (("sklearn float64", np.float64), ("sklearn float32", np.float32)):
            nmf = NMF(args.rank, init="custom", beta_loss="kullback-leibler", solver="mu",
                      max_iter=n_iter, tol=0)
            Xd = X.astype(dt)
            t = time.perf_counter()
            nmf.fit(Xd, W=W0.astype(dt), H=H0.astype(dt))
            res[name] = (time.perf_counter() - t, nmf.reconstruction_err_ ** 2 / 2, nmf.n_iter_)
            print(f"{name:>22}: {res[name][0]:8.2f} s  {n_iter} it  KL {res[name][1]:.6e}")
    target = res["sklearn float64"][1]

    Xt = torch.from_numpy(X)
    runs = {}
    for label, kw in (("ours to target", dict(max_iter=4 * n_iter, tol=0.0, eval_every=5,
                                              omega=args.relaxation, target_loss=target)),
                      (f"ours {n_iter} it plain MU", dict(max_iter=n_iter, tol=0.0,
                                                         eval_every=n_iter))):
        W = torch.tensor(W0, dtype=torch.float32)
        H = torch.tensor(H0, dtype=torch.float32)
        t = time.perf_counter()
        W, H, it, curve = _fit_kl_mu(Xt, W, H, **kw)
        runs[label] = (time.perf_counter() - t, curve[-1][1], it, W, H)
        print(f"{label:>22}: {runs[label][0]:8.2f} s  {it} it  KL {curve[-1][1]:.6e}")
    t_ours, loss_ours, _, W, H = runs["ours to target"]
    reached = loss_ours <= target
    print(f"(a) fit to sklearn's {n_iter}-iteration KL ({'reached' if reached else 'NOT reached'}"
          f", ours/target = {loss_ours / target:.6f}):")
    for name in ("sklearn float64", "sklearn float32"):
        print(f"    speed-up vs {name}: {res[name][0] / t_ours:6.2f}x")
    t200, loss200 = runs[f"ours {n_iter} it plain MU"][:2]
    print(f"    plain MU, equal iterations ({n_iter}): "
          f"{res['sklearn float64'][0] / t200:6.2f}x vs float64, "
          f"KL ratio ours/sklearn64 = {loss200 / target:.6f}")
    assert abs(_kl_divergence(Xt, W, H) - loss_ours) <= 1e-6 * loss_ours  # loss is honest

    # (b) projection of n_proj images onto the fitted basis
    Hn = H.numpy()
    proj = NNLSProjection(Hn, normalize=False)
    Xpt = torch.from_numpy(Xp)
    with torch.no_grad():
        proj(Xpt[:10])
        t = time.perf_counter()
        Wp = proj(Xpt).numpy()
        t_ours = time.perf_counter() - t
    A = Hn.astype(np.float64).T
    with threadpool_limits(2):
        t = time.perf_counter()
        ref = np.stack([scipy_nnls(A, x.astype(np.float64))[0] for x in Xp])
        t_sc = time.perf_counter() - t
    err = np.linalg.norm(Wp - ref, axis=1) / np.maximum(np.linalg.norm(ref, axis=1), 1e-300)
    print(f"(b) projection of {len(Xp)} images: ours {t_ours:.3f} s, scipy.optimize.nnls loop "
          f"{t_sc:.2f} s, speed-up {t_sc / t_ours:.1f}x, max rel. diff {err.max():.2e}, "
          f"zeros in codes {np.mean(ref == 0):.1%}")


if __name__ == "__main__":
    main()
