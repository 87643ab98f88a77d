"""The ``sknnmfdiff`` command's flags: one parser per subcommand, every flag with its help
text, its default and its range, and a short examples epilog per subcommand.

Every numeric flag is checked here, by its argparse type, so an error names the flag the
user typed (``--rank: must be >= 1, got 0``), never a parameter of an estimator. Nothing
here imports more than the standard library and :mod:`sknnmfdiff.paper`, so a bad
command line fails at once.
"""

import argparse
import math

from .paper import PAPER_PROTOCOL

__all__ = ["build_parser", "FAST_ATTACK", "FAST_GRID", "N_STEPS", "CHECKS"]

#: Lighter attack settings of ``--fast`` (and of phantom runs without ``--full-attacks``).
FAST_ATTACK = {"n_restarts": 2, "n_iter": 100, "square_queries": 1000, "square_n_eot": 4}
FAST_GRID = {"n_restarts": 1, "n_iter": 50, "square_queries": 200, "square_n_eot": 2}
#: The purifier's diffusion steps (``DiffusionPurifier().n_steps``): ``--t`` lies in 0 .. N_STEPS.
N_STEPS = 1000
#: ``evaluate --checks``: the sanity checks run after the attack.
CHECKS = {
    "full": "every check of the evaluation checklist, with extra attacks at eps 0 and 0.5 and, "
            "for a randomized model, the plateau check (a stronger attack on the samples left "
            "correct)",
    "light": "the same checks without the extra attacks: no attack at eps 0.5 (that check is "
             "reported skipped) and no plateau check",
    "none": "no sanity checks (the robust figure is then unchecked)",
}

_EXAMPLES = {
    "paper": ["sknnmfdiff paper                          # synthetic phantom data, light attacks",
              "sknnmfdiff paper --data DIR --out study-real",
              "sknnmfdiff paper --data DIR --max-images 400 --fast --space feature --out study-small"],
    "sweep": ["sknnmfdiff sweep --quick",
              "sknnmfdiff sweep --data DIR --out sweep-real --n-jobs 2",
              "sknnmfdiff sweep --data DIR --backend dask --scheduler tcp://HOST:8786",
              "sknnmfdiff sweep --data DIR --rank 10 15 30 --t 0 20 41 --cv 5"],
    "fit": ["sknnmfdiff fit --data DIR --out model",
            "sknnmfdiff fit --data DIR --max-images 300 --rank 10 --k 8 --out model-small",
            "sknnmfdiff fit --data DIR --defence smoothing --out model-smoothed"],
    "evaluate": ["sknnmfdiff evaluate model/model.sknnmfdiff --data DIR --out eval",
                 "sknnmfdiff evaluate model/model.sknnmfdiff --data DIR --max-images 20 "
                 "--space feature --checks light --out eval-quick"],
    "predict": ["sknnmfdiff predict model/model.sknnmfdiff scan1.png scan2.dcm",
                "sknnmfdiff predict model/model.sknnmfdiff slice.nii.gz --out predictions"],
    "export": ["sknnmfdiff export model/model.sknnmfdiff --onnx model.onnx",
               "sknnmfdiff export model/model.sknnmfdiff --onnx model.onnx --noise input "
               "--check-data DIR"],
}


class _Parser(argparse.ArgumentParser):
    """argparse, with errors on one line (``sknnmfdiff CMD: error: ...``) and exit 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _int_in(low, high=None):
    """An argparse type: an integer in ``low .. high`` (``high`` None: no upper end)."""

    def parse(text):
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if v < low or (high is not None and v > high):
            where = f">= {low}" if high is None else f"in {low} .. {high}"
            raise argparse.ArgumentTypeError(f"must be {where}, got {text}")
        return v

    return parse


def _float_in(low, high=None):
    """An argparse type: a finite number in ``low .. high``."""

    def parse(text):
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not (math.isfinite(v) and v >= low and (high is None or v <= high)):
            where = f">= {low:g}" if high is None else f"in {low:g} .. {high:g}"
            raise argparse.ArgumentTypeError(f"must be a finite number {where}, got {text}")
        return v

    return parse


_positive_int = _int_in(1)
_non_negative_int = _int_in(0)
_eps = _float_in(0.0, 1.0)  # L-inf budgets: pixels and features both lie in [0, 1]
_image_size = _int_in(8)  # the phantom slices and the perceptual hash need 8 x 8
_timestep = _int_in(0, N_STEPS)
_n_per_class = _int_in(10)  # every part of the 70/20/10 split gets both classes


def _sub(sub, name, *, help, description):
    return sub.add_parser(name, help=help, description=description,
                          epilog="examples:\n  " + "\n  ".join(_EXAMPLES[name]),
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def _common(p, *, out_default):
    p.add_argument("--skip-bad-images", action="store_true",
                   help="skip unreadable image files with a warning instead of stopping")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"],
                   help="torch device (default: %(default)s)")
    p.add_argument("--seed", type=_non_negative_int, default=0,
                   help="seed of every random draw, >= 0 (default: %(default)s)")
    p.add_argument("--out", default=out_default,
                   help="output folder, made only once the input is checked "
                   "(default: %(default)s)")
    p.add_argument("--quiet", "-q", action="store_true",
                   help="no progress bars or stage messages")


def _purifier_flags(p):
    p.add_argument("--independent-draws", action="store_true",
                   help="independent purifier noise draws, as in the paper (default: antithetic pairs)")
    p.add_argument("--clean-train", action="store_true",
                   help="train the classifier on clean features, as in the paper (default: on "
                   "purified features)")
    p.add_argument("--paper-purifier", action="store_true",
                   help="the paper's purifier protocol literally: --independent-draws --clean-train")


def _model_flags(p):
    """--rank, --k, --t, --n-eot of ``paper`` and ``fit``."""
    p.add_argument("--rank", type=_positive_int, default=PAPER_PROTOCOL["n_components"],
                   help="NMF rank: basis images of the KL-NMF, >= 1 (default: %(default)s)")
    p.add_argument("--k", type=_positive_int, default=10,
                   help="components kept by the statistical selection, 1 .. --rank "
                   "(default: %(default)s)")
    p.add_argument("--t", type=_timestep, default=PAPER_PROTOCOL["t"],
                   help=f"purifier timestep: how far the features are noised, 0 .. {N_STEPS} "
                   "(default: %(default)s)")
    p.add_argument("--n-eot", type=_positive_int, default=PAPER_PROTOCOL["n_eot"],
                   help="purifier noise draws averaged per prediction, >= 1 (default: %(default)s)")


def _max_images(p, what):
    p.add_argument("--max-images", type=_positive_int, default=None,
                   help=f"{what} (default: all images)")


def _model_arg(p):
    p.add_argument("model", help="model file written by 'sknnmfdiff fit': .sknnmfdiff, or "
                   ".joblib from trusted sources only (joblib executes code from the file)")
    p.add_argument("--trust", action="append", default=None, metavar="MODULE.NAME",
                   help="load this type or function from a .sknnmfdiff file although "
                   "sknnmfdiff does not know it (repeatable; loading it runs its code, so "
                   "only for files and code you trust; default: none)")


def build_parser():
    """The argument parser of the ``sknnmfdiff`` command.

    Returns
    -------
    parser : argparse.ArgumentParser
    """
    from . import __version__

    parser = _Parser(
        prog="sknnmfdiff",
        description="KL-NMF + diffusion-purified features for robust brain-tumour MRI "
        "classification (arXiv 2603.13182), with an honest AutoAttack evaluation.",
        epilog="examples:\n  sknnmfdiff paper\n  sknnmfdiff fit --data DIR --out model\n"
        "  sknnmfdiff predict model/model.sknnmfdiff scan.png",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"sknnmfdiff {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = _sub(sub, "paper", help="reproduce the paper's study and write a report",
             description="Load -> leakage-free split -> fit baseline and defended pipelines -> "
             "AutoAttack (paper and adaptive protocols, feature and pixel space) -> report. "
             "Without --data it runs on synthetic phantom slices and says so.")
    p.add_argument("--data", help="image folder (Kaggle Training/Testing/<class>, <class>/, or "
                   "yes/ + no/) (default: synthetic phantom data)")
    _max_images(p, "use a seeded, class-stratified subset of this many images of --data, "
                "for a quicker run on real data (with --n-per-class at most half of it)")
    p.add_argument("--image-size", type=_image_size, default=None,
                   help="image side in pixels, >= 8 (default: 128 with --data, 64 for phantom data)")
    p.add_argument("--n-per-class", type=_n_per_class, default=None,
                   help=f"unique images per class of the paper split, >= 10 (default: "
                   f"{PAPER_PROTOCOL['n_per_class']}, or what --max-images allows)")
    p.add_argument("--phantom-samples", type=_int_in(20), default=600,
                   help="phantom images when no --data, >= 20 (default: %(default)s)")
    _model_flags(p)
    _purifier_flags(p)
    p.add_argument("--eps", type=_eps, default=PAPER_PROTOCOL["eps"],
                   help="L-inf budget, 0 .. 1, in pixel or feature units (default: %(default)s)")
    p.add_argument("--space", choices=["feature", "pixel", "both"], default="both",
                   help="threat model (default: %(default)s)")
    p.add_argument("--protocol", choices=["paper", "adaptive", "both"], default="both",
                   help="attack protocol (default: %(default)s)")
    p.add_argument("--fast", action="store_true",
                   help="lighter attacks (2 restarts x 100 iterations, 1000 Square queries, "
                   "4 EOT draws per Square query) for a quick look; the default without --data")
    p.add_argument("--full-attacks", action="store_true",
                   help="full-strength attacks also on phantom data")
    p.add_argument("--defences", nargs="*", choices=["none", "purifier", "adversarial", "smoothing"],
                   default=["none", "purifier", "adversarial", "smoothing"], metavar="DEFENCE",
                   help="rows of the defences table (adaptive protocol; none, purifier, "
                   "adversarial, smoothing; default: all four; give the flag alone for no table)")
    _common(p, out_default="sknnmfdiff-out")

    p = _sub(sub, "sweep", help="cross-validated grid over rank, k, t and EOT draws with robust scores",
             description="Cross-validated grid over NMF rank, selected components, purifier "
             "timestep and EOT draws on the development part of the paper split, scored clean "
             "and under the adaptive attack (feature space), then robust accuracy against eps on "
             "the test part for the best configurations and the paper's, in both threat models. "
             "Finished cells are kept; a rerun resumes.")
    p.add_argument("--data", help="image folder (default: synthetic phantom data)")
    p.add_argument("--quick", action="store_true",
                   help="small phantom-data sweep (2 x 2 grid, 2 folds, 32 px), under a minute "
                        "on 2 cores")
    p.add_argument("--image-size", type=_image_size, default=None,
                   help="image side in pixels, >= 8 (default: 128 with --data, 64 for phantom "
                        "data, 32 with --quick)")
    p.add_argument("--n-per-class", type=_n_per_class, default=None,
                   help=f"unique images per class of the paper split, >= 10 (default: "
                        f"{PAPER_PROTOCOL['n_per_class']}; 300 with --quick)")
    p.add_argument("--rank", type=_positive_int, nargs="+", default=None,
                   help="NMF ranks, >= 1 (default: 5 10 15 30 60)")
    p.add_argument("--k", type=_positive_int, nargs="+", default=None,
                   help="selected components, >= 1 (default: 10; a k above the rank keeps all "
                   "components)")
    p.add_argument("--t", type=_timestep, nargs="+", default=None,
                   help=f"purifier timesteps, 0 .. {N_STEPS}, 0 = no purifier "
                   "(default: 0 10 20 41 80 150 300)")
    p.add_argument("--n-eot", type=_positive_int, nargs="+", default=None,
                   help="purifier noise draws, >= 1 (default: 8)")
    p.add_argument("--cv", type=_int_in(2), default=None,
                   help="folds, >= 2 (default: 3; 2 with --quick)")
    p.add_argument("--eps", type=_eps, default=None,
                   help=f"L-inf budget of the per-cell robust score, feature units, 0 .. 1 "
                        f"(default: {PAPER_PROTOCOL['eps']})")
    p.add_argument("--max-eval", type=_int_in(2), default=None,
                   help="held-out samples attacked per cell, >= 2 (default: all)")
    p.add_argument("--backend", choices=["local", "dask"], default="local",
                   help="run the cells locally (joblib) or on a Dask cluster (default: %(default)s)")
    p.add_argument("--n-jobs", type=_positive_int, default=None,
                   help="local worker processes, --backend local only (default: 1)")
    p.add_argument("--scheduler", default=None,
                   help="address of a running Dask scheduler, tcp://HOST:PORT, --backend dask "
                   "only (default: start a local cluster)")
    p.add_argument("--workers", type=_positive_int, default=None,
                   help="workers of the local Dask cluster, --backend dask without --scheduler "
                   "only (default: 2)")
    p.add_argument("--torch-threads", type=_positive_int, default=1,
                   help="torch threads of every task (default: %(default)s)")
    _common(p, out_default="sknnmfdiff-sweep")

    p = _sub(sub, "fit", help="train a pipeline on a folder and save it",
             description="Fit a pipeline (the paper's defended one, or another --defence) on "
             "the images of a folder and save it as model.sknnmfdiff (loads without running "
             "code; --format joblib for a joblib pickle).")
    p.add_argument("--data", required=True, help="image folder (required)")
    _max_images(p, "train on a seeded, class-stratified subset of this many images")
    p.add_argument("--image-size", type=_image_size, default=PAPER_PROTOCOL["image_size"],
                   help="image side in pixels, >= 8 (default: %(default)s)")
    p.add_argument("--defence", choices=["none", "purifier", "adversarial", "smoothing"],
                   default="purifier",
                   help="none: the undefended pipeline; purifier: the paper's diffusion "
                   "purifier; adversarial: TRADES adversarial training (eps 0.10 feature units); "
                   "smoothing: randomized smoothing with the denoiser (certifiable) "
                   "(default: %(default)s)")
    p.add_argument("--baseline", action="store_true", help="the same as --defence none")
    _model_flags(p)
    p.add_argument("--format", choices=["sknnmfdiff", "joblib"], default="sknnmfdiff",
                   help="model file: 'sknnmfdiff' (skops + safetensors, loads without running "
                   "code) or 'joblib' (a pickle: loading it runs code from the file) "
                   "(default: %(default)s)")
    _purifier_flags(p)
    _common(p, out_default="sknnmfdiff-model")

    p = _sub(sub, "evaluate", help="evaluate a saved model on a folder",
             description="Clean metrics and an AutoAttack evaluation of a saved model, with "
             "sanity checks of the attack (--checks full, the default, for reported figures).")
    _model_arg(p)
    p.add_argument("--data", required=True, help="image folder (required)")
    p.add_argument("--eps", type=_eps, default=PAPER_PROTOCOL["eps"],
                   help="L-inf budget, 0 .. 1, in the units of --space: pixel intensity or "
                   "feature value (default: %(default)s)")
    p.add_argument("--space", choices=["feature", "pixel"], default="pixel",
                   help="threat model: attack the pixels, or the NMF features after the "
                   "projection (default: %(default)s)")
    p.add_argument("--protocol", choices=["paper", "adaptive"], default="adaptive",
                   help="attack protocol (default: %(default)s; 'paper' over-credits randomized "
                   "defences)")
    p.add_argument("--checks", choices=list(CHECKS), default="full",
                   help="sanity checks after the attack: " + "; ".join(
                       f"{k}: {v}" for k, v in CHECKS.items()) + " (default: %(default)s; "
                   "use full for figures you report)")
    _max_images(p, "evaluate on at most this many images (a seeded random subset)")
    _common(p, out_default="sknnmfdiff-eval")

    p = _sub(sub, "predict", help="classify image files with a saved model",
             description="Print one line per image: file, class, probability of that class.")
    _model_arg(p)
    p.add_argument("images", nargs="+", help="image files (JPEG, PNG, TIFF, BMP, DICOM .dcm, "
                   "NIfTI .nii/.nii.gz: its middle axial slice)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"],
                   help="torch device (default: %(default)s)")
    p.add_argument("--seed", type=_non_negative_int, default=None,
                   help="seed of the purifier's noise draws, >= 0 (default: the one saved with "
                   "the model)")
    p.add_argument("--out", default=None,
                   help="also write predictions.csv (file, class, probability) into this folder "
                   "(default: print only)")
    p.add_argument("--quiet", "-q", action="store_true", help="do not print the predictions")

    p = _sub(sub, "export", help="write a saved model as an ONNX graph",
             description="Write a saved model as one ONNX graph: pixels (N, 1, H, W) float32 in "
             "[0, 1] -> class probabilities (N, n_classes), batch size dynamic. Needs the onnx "
             "extra (pip install 'sknnmfdiff[onnx]').")
    _model_arg(p)
    p.add_argument("--onnx", required=True, metavar="FILE",
                   help="ONNX file to write, in an existing folder (required)")
    p.add_argument("--noise", choices=["fixed", "input"], default="fixed",
                   help="the purifier's noise: constants of the graph, the noise of the "
                   "model's own predictions ('fixed'), or a graph input the caller "
                   "draws for every call ('input') (default: %(default)s)")
    p.add_argument("--seed", type=_non_negative_int, default=None,
                   help="seed of the fixed noise, >= 0 (default: the one saved with the model)")
    p.add_argument("--nnls-max-iter", type=_positive_int, default=None,
                   help="cap on the NNLS pivoting steps in the graph, >= 1 (default: 10 * rank + 20)")
    p.add_argument("--check-data", metavar="DIR", default=None,
                   help="image folder: compare the graph (onnxruntime) with the torch module "
                   "on its images and print the largest difference of the probabilities "
                   "(default: no comparison)")
    p.add_argument("--max-images", type=_positive_int, default=200,
                   help="images of --check-data compared (a seeded random subset; default: "
                   "%(default)s)")
    p.add_argument("--quiet", "-q", action="store_true", help="print nothing but errors")
    return parser
