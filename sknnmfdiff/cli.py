"""The ``sknnmfdiff`` command: ``paper``, ``sweep``, ``fit``, ``evaluate``, ``predict``,
``export``.

Exit status 0 on success, 2 on bad input (a bad path, flag, image or model
file), with one line on standard error instead of a traceback.
"""

import argparse
import json
import logging
import math
import sys
from pathlib import Path

from .paper import PAPER_PROTOCOL

__all__ = ["main", "build_parser"]

logger = logging.getLogger("sknnmfdiff")


#: Lighter attack settings of ``--fast`` (and of phantom runs without ``--full-attacks``).
_FAST_ATTACK = {"n_restarts": 2, "n_iter": 100, "square_queries": 1000, "square_n_eot": 4}
_FAST_GRID = {"n_restarts": 1, "n_iter": 50, "square_queries": 200, "square_n_eot": 2}


class _Parser(argparse.ArgumentParser):
    """argparse, with errors on one line (``sknnmfdiff CMD: error: ...``) and exit 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


class _BadInput(Exception):
    """A user error reported as one line and exit status 2."""


def _common(p, *, out_default):
    p.add_argument("--skip-bad-images", action="store_true",
                   help="skip unreadable image files with a warning instead of stopping")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"],
                   help="torch device (default: %(default)s)")
    p.add_argument("--seed", type=_int_at_least(0), default=0,
                   help="seed of every random draw, >= 0 (default: %(default)s)")
    p.add_argument("--out", default=out_default, help="output folder (default: %(default)s)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars or stage messages")


def _purifier_flags(p):
    p.add_argument("--independent-draws", action="store_true",
                   help="independent purifier noise draws, as in the paper (default: antithetic pairs)")
    p.add_argument("--clean-train", action="store_true",
                   help="train the classifier on clean features, as in the paper (default: on "
                   "purified features)")
    p.add_argument("--paper-purifier", action="store_true",
                   help="the paper's purifier protocol literally: --independent-draws --clean-train")


def _purifier_params(args):
    return dict(antithetic=not (args.independent_draws or args.paper_purifier),
                train_on_purified=not (args.clean_train or args.paper_purifier))


def _int_at_least(low):
    """An argparse type: an integer >= ``low``."""

    def parse(text):
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if v < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {text}")
        return v

    return parse


_positive_int = _int_at_least(1)
_non_negative_int = _int_at_least(0)


def _positive_float(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (v >= 0 and math.isfinite(v)):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return v


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
    )
    parser.add_argument("--version", action="version", version=f"sknnmfdiff {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser(
        "paper",
        help="reproduce the paper's study and write a report",
        description="Load -> leakage-free split -> fit baseline and defended pipelines -> "
        "AutoAttack (paper and adaptive protocols, feature and pixel space) -> report. "
        "Without --data it runs on synthetic phantom slices and says so.",
    )
    p.add_argument("--data", help="image folder (Kaggle Training/Testing/<class>, <class>/, or yes/ + no/); "
                   "default: synthetic phantom data")
    p.add_argument("--image-size", type=_positive_int, default=None,
                   help="image side in pixels (default: 128 with --data, 64 for phantom data)")
    p.add_argument("--n-per-class", type=int, default=PAPER_PROTOCOL["n_per_class"], help="unique images per class (default: %(default)s)")
    p.add_argument("--phantom-samples", type=int, default=600,
                   help="phantom images when no --data (default: %(default)s)")
    p.add_argument("--rank", type=int, default=PAPER_PROTOCOL["n_components"], help="NMF rank (default: %(default)s)")
    p.add_argument("--k", type=int, default=10, help="components kept (default: %(default)s)")
    p.add_argument("--t", type=int, default=PAPER_PROTOCOL["t"], help="purifier timestep (default: %(default)s)")
    p.add_argument("--n-eot", type=int, default=PAPER_PROTOCOL["n_eot"], help="purifier draws averaged (default: %(default)s)")
    _purifier_flags(p)
    p.add_argument("--eps", type=_positive_float, default=PAPER_PROTOCOL["eps"], help="L-inf budget (default: %(default)s)")
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

    p = sub.add_parser(
        "sweep",
        help="cross-validated grid over rank, k, t and EOT draws with robust scores",
        description="Cross-validated grid over NMF rank, selected components, purifier "
        "timestep and EOT draws on the development part of the paper split, scored clean "
        "and under the adaptive attack (feature space), then robust accuracy against eps on "
        "the test part for the best configurations and the paper's, in both threat models. "
        "Finished cells are kept; a rerun resumes.",
        epilog="examples:\n  sknnmfdiff sweep --quick\n"
        "  sknnmfdiff sweep --data DIR --out sweep-real --n-jobs 2\n"
        "  sknnmfdiff sweep --data DIR --backend dask --scheduler tcp://HOST:8786\n"
        "  sknnmfdiff sweep --data DIR --rank 10 15 30 --t 0 20 41 --cv 5",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", help="image folder (default: synthetic phantom data)")
    p.add_argument("--quick", action="store_true",
                   help="small phantom-data sweep (2 x 2 grid, 2 folds, 32 px), under a minute "
                        "on 2 cores")
    p.add_argument("--image-size", type=_positive_int, default=None,
                   help="image side in pixels (default: 128 with --data, 64 for phantom "
                        "data, 32 with --quick)")
    p.add_argument("--n-per-class", type=_positive_int, default=None,
                   help=f"unique images per class of the paper split (default: "
                        f"{PAPER_PROTOCOL['n_per_class']}; 300 with --quick)")
    p.add_argument("--rank", type=_positive_int, nargs="+", default=None,
                   help="NMF ranks (default: 5 10 15 30 60)")
    p.add_argument("--k", type=_positive_int, nargs="+", default=None,
                   help="selected components (default: 10; a k above the rank keeps all components)")
    p.add_argument("--t", type=_non_negative_int, nargs="+", default=None,
                   help="purifier timesteps, 0 = no purifier (default: 0 10 20 41 80 150 300)")
    p.add_argument("--n-eot", type=_positive_int, nargs="+", default=None,
                   help="purifier noise draws (default: 8)")
    p.add_argument("--cv", type=_positive_int, default=None,
                   help="folds, >= 2 (default: 3; 2 with --quick)")
    p.add_argument("--eps", type=_positive_float, default=None,
                   help=f"L-inf budget of the per-cell robust score, feature units "
                        f"(default: {PAPER_PROTOCOL['eps']})")
    p.add_argument("--max-eval", type=_int_at_least(2), default=None,
                   help="held-out samples attacked per cell, >= 2 (default: all)")
    p.add_argument("--backend", choices=["local", "dask"], default="local",
                   help="run the cells locally (joblib) or on a Dask cluster (default: %(default)s)")
    p.add_argument("--n-jobs", type=_positive_int, default=1,
                   help="local worker processes (default: %(default)s)")
    p.add_argument("--scheduler", default=None,
                   help="address of a running Dask scheduler (default: start a local cluster)")
    p.add_argument("--workers", type=_positive_int, default=2,
                   help="workers of the local Dask cluster (default: %(default)s)")
    p.add_argument("--torch-threads", type=_positive_int, default=1,
                   help="torch threads of every task (default: %(default)s)")
    _common(p, out_default="sknnmfdiff-sweep")

    p = sub.add_parser("fit", help="train a pipeline on a folder and save it",
                       description="Fit a pipeline (the paper's defended one, or another "
                       "--defence) on all images of a folder and save it as model.sknnmfdiff "
                       "(loads without running code; --format joblib for a joblib pickle).")
    p.add_argument("--data", required=True, help="image folder")
    p.add_argument("--image-size", type=_positive_int, default=PAPER_PROTOCOL["image_size"],
                   help="image side in pixels")
    p.add_argument("--defence", choices=["none", "purifier", "adversarial", "smoothing"],
                   default="purifier",
                   help="none: the undefended pipeline; purifier: the paper's diffusion "
                   "purifier; adversarial: TRADES adversarial training (eps 0.10 feature units); "
                   "smoothing: randomized smoothing with the denoiser (certifiable) "
                   "(default: %(default)s)")
    p.add_argument("--baseline", action="store_true", help="the same as --defence none")
    p.add_argument("--rank", type=int, default=PAPER_PROTOCOL["n_components"])
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--t", type=int, default=PAPER_PROTOCOL["t"])
    p.add_argument("--n-eot", type=int, default=PAPER_PROTOCOL["n_eot"])
    p.add_argument("--format", choices=["sknnmfdiff", "joblib"], default="sknnmfdiff",
                   help="model file: 'sknnmfdiff' (skops + safetensors, loads without running "
                   "code) or 'joblib' (a pickle: loading it runs code from the file) "
                   "(default: %(default)s)")
    _purifier_flags(p)
    _common(p, out_default="sknnmfdiff-model")

    p = sub.add_parser("evaluate", help="evaluate a saved model on a folder",
                       description="Clean metrics and an AutoAttack evaluation of a saved model.")
    p.add_argument("model", help="model file written by 'sknnmfdiff fit': .sknnmfdiff, or "
                   ".joblib from trusted sources only (joblib executes code from the file)")
    p.add_argument("--data", required=True, help="image folder")
    p.add_argument("--eps", type=_positive_float, default=PAPER_PROTOCOL["eps"])
    p.add_argument("--space", choices=["feature", "pixel"], default="pixel")
    p.add_argument("--protocol", choices=["paper", "adaptive"], default="adaptive",
                   help="attack protocol (default: %(default)s; 'paper' over-credits randomized "
                   "defences)")
    p.add_argument("--max-images", type=_positive_int, default=None,
                   help="evaluate on at most this many images (a seeded random subset)")
    _common(p, out_default="sknnmfdiff-eval")

    p = sub.add_parser("predict", help="classify image files with a saved model",
                       description="Print one line per image: file, class, probability of that class.")
    p.add_argument("model", help="model file written by 'sknnmfdiff fit': .sknnmfdiff, or "
                   ".joblib from trusted sources only (joblib executes code from the file)")
    p.add_argument("images", nargs="+", help="image files (JPEG, PNG, TIFF, BMP, DICOM .dcm, "
                   "NIfTI .nii/.nii.gz: its middle axial slice)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"], help="torch device")
    p.add_argument("--seed", type=int, default=None,
                   help="seed of the purifier's noise draws (default: the one saved with the model)")
    p.add_argument("--out", default=None,
                   help="also write predictions.csv (file, class, probability) into this folder")
    p.add_argument("--quiet", "-q", action="store_true", help="do not print the predictions")

    p = sub.add_parser(
        "export", help="write a saved model as an ONNX graph",
        description="Write a saved model as one ONNX graph: pixels (N, 1, H, W) float32 in "
        "[0, 1] -> class probabilities (N, n_classes), batch size dynamic. Needs the onnx "
        "extra (pip install 'sknnmfdiff[onnx]').")
    p.add_argument("model", help="model file written by 'sknnmfdiff fit' (trusted files only)")
    p.add_argument("--onnx", required=True, metavar="FILE", help="ONNX file to write")
    p.add_argument("--noise", choices=["fixed", "input"], default="fixed",
                   help="the purifier's noise: constants of the graph, the noise of the "
                   "model's own predictions ('fixed', default), or a graph input the caller "
                   "draws for every call ('input')")
    p.add_argument("--seed", type=_non_negative_int, default=None,
                   help="seed of the fixed noise (default: the one saved with the model)")
    p.add_argument("--nnls-max-iter", type=_positive_int, default=None,
                   help="cap on the NNLS pivoting steps in the graph (default: 10 * rank + 20)")
    p.add_argument("--check-data", metavar="DIR", default=None,
                   help="image folder: compare the graph (onnxruntime) with the torch module "
                   "on its images and print the largest difference of the probabilities")
    p.add_argument("--max-images", type=_positive_int, default=200,
                   help="images of --check-data compared (a seeded random subset; default: "
                   "%(default)s)")
    p.add_argument("--quiet", "-q", action="store_true", help="print nothing but errors")
    return parser


def _check_dir(path, flag="--data"):
    if path is not None and not Path(path).exists():
        raise _BadInput(f"{flag} {path}: no such folder")


def _check_out(path):
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise _BadInput(f"--out {path} is a file; give a folder")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _BadInput(f"cannot create output folder {path}: {exc.strerror or exc}") from None
    return p


def _check_device(device):
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise _BadInput("device 'cuda' was requested but CUDA is not available on this machine")


def _check_rank(args):
    if args.k > args.rank:
        raise _BadInput(f"--k {args.k} keeps more components than --rank {args.rank} makes")


def _binary_names(classes):
    from .datasets import BINARY_TARGET_NAMES

    cl = [int(c) if str(c).lstrip("-").isdigit() else c for c in classes]
    if list(cl) == [0, 1]:
        return list(BINARY_TARGET_NAMES)
    return [str(c) for c in classes]


def _cmd_paper(args):
    from .study import StudyConfig, run_paper_study

    _check_dir(args.data)
    _check_device(args.device)
    _check_rank(args)
    _check_out(args.out)
    image_size = args.image_size or (PAPER_PROTOCOL["image_size"] if args.data else 64)
    fast = args.fast or (args.data is None and not args.full_attacks)
    cfg = StudyConfig(
        data=args.data,
        out=args.out,
        image_size=image_size,
        n_per_class=args.n_per_class,
        phantom_samples=args.phantom_samples,
        n_components=args.rank,
        k=args.k,
        t=args.t,
        n_eot=args.n_eot,
        **_purifier_params(args),
        eps=args.eps,
        spaces=("feature", "pixel") if args.space == "both" else (args.space,),
        protocols=("paper", "adaptive") if args.protocol == "both" else (args.protocol,),
        seed=args.seed,
        device=args.device,
        on_error="warn" if args.skip_bad_images else "raise",
        attack=dict(_FAST_ATTACK) if fast else {},
        grid_attack=dict(_FAST_GRID) if fast else StudyConfig().grid_attack,
        defences=tuple(dict.fromkeys(args.defences)),
    )
    results = run_paper_study(cfg, quiet=args.quiet, log=None if args.quiet else _say)
    if not args.quiet:
        for key, table in results.get("tables", {}).items():
            _say(f"\n{key}:\n{table['markdown']}")
        _say(f"\nReport: {Path(args.out) / 'report.md'}")
    return 0


def _cmd_sweep(args):
    from .sweep import QUICK, SweepConfig

    _check_dir(args.data)
    _check_device(args.device)
    if args.cv is not None and args.cv < 2:
        raise _BadInput(f"--cv {args.cv}: need at least 2 folds")
    if args.backend == "dask":
        try:
            import distributed  # noqa: F401
        except ImportError:
            raise _BadInput("--backend dask needs Dask's distributed scheduler: "
                            "pip install 'sknnmfdiff[dask]'") from None
    elif args.scheduler:
        raise _BadInput("--scheduler needs --backend dask")
    if args.quick and args.data:
        raise _BadInput("--quick runs on phantom data; leave out --data")
    grid = {"--rank": ("n_components", args.rank), "--k": ("k", args.k), "--t": ("t", args.t),
            "--n-eot": ("n_eot", args.n_eot)}
    for flag, (_, values) in grid.items():
        if values is not None and len(set(values)) != len(values):
            raise _BadInput(f"{flag} {' '.join(map(str, values))}: give each value once")
    if args.t is not None and max(args.t) > 1000:
        raise _BadInput(f"--t {max(args.t)}: timesteps lie in 0 .. 1000 (the purifier's n_steps)")
    settings = dict(QUICK) if args.quick else {}
    settings.update({name: tuple(v) for name, v in grid.values() if v is not None})
    if args.image_size or not args.quick:
        settings["image_size"] = args.image_size or (PAPER_PROTOCOL["image_size"] if args.data else 64)
    # Flags given explicitly win over --quick's settings; unset ones keep them or the defaults.
    settings.update({name: getattr(args, name) for name in ("cv", "eps", "n_per_class")
                     if getattr(args, name) is not None})
    if not args.quick:
        settings["data"] = args.data
    _check_out(args.out)
    from .sweep import run_sweep

    results = run_sweep(
        SweepConfig(**settings), out=args.out, max_eval=args.max_eval, seed=args.seed,
        device=args.device, on_error="warn" if args.skip_bad_images else "raise",
        backend=args.backend, n_jobs=args.n_jobs, scheduler=args.scheduler,
        workers=args.workers, torch_threads=args.torch_threads,
        quiet=args.quiet, log=None if args.quiet else _say)
    if not args.quiet:
        if results.get("selected"):
            best = results["summary"][results["selected"][0]]
            _say("Most robust within {tol:g} of the best clean score: rank {n_components}, "
                 "k {k}, t {t}: clean {clean_balanced_accuracy:.3f}, robust "
                 "{robust_balanced_accuracy:.3f} (balanced accuracy)"
                 .format(tol=results["config"]["tolerance"], **best))
        _say(f"Report: {Path(args.out) / 'report.md'}")
    return 0


def _load_folder(path, image_size, seed, skip_bad=False):
    from .datasets import load_mri_folder

    _check_dir(path)
    return load_mri_folder(path, image_size=image_size, task="binary", random_state=seed,
                           on_error="warn" if skip_bad else "raise")


def _cmd_fit(args):
    import joblib

    from ._persistence import package_versions
    from .model_file import save
    from .pipeline import make_defence_pipeline

    _check_device(args.device)
    _check_rank(args)
    defence = "none" if args.baseline else args.defence
    if args.baseline and args.defence not in ("none", "purifier"):
        raise _BadInput(f"--baseline is --defence none; it contradicts --defence {args.defence}")
    if defence != "purifier" and (args.independent_draws or args.clean_train
                                  or args.paper_purifier):
        what = "--baseline" if args.baseline else f"--defence {defence}"
        raise _BadInput("--independent-draws, --clean-train and --paper-purifier set the "
                        f"paper's purifier, which {what} does not use")
    out = _check_out(args.out)
    bunch = _load_folder(args.data, args.image_size, args.seed, args.skip_bad_images)
    common = dict(n_components=args.rank, k=args.k, random_state=args.seed, device=args.device)
    if defence == "purifier":
        common.update(t=args.t, n_eot=args.n_eot,
                      **{f"purify__{k}": v for k, v in _purifier_params(args).items()})
    pipe = make_defence_pipeline(defence, **common)
    _say(f"Fitting on {len(bunch.target)} images from {args.data} ...", args.quiet)
    pipe.fit(bunch.data, bunch.target)
    blob = {"model": pipe, "image_size": args.image_size,
            "target_names": [str(n) for n in bunch.target_names]}
    from ._input_checks import training_record  # predict and evaluate warn on other data
    blob["training"] = training_record(pipe, bunch.data, bunch.target, synthetic=False,
                                       image_size=args.image_size, source=str(Path(args.data).resolve()),
                                       class_names=blob["target_names"])
    if args.format == "joblib":  # package versions inside; the new format's manifest has them
        path = out / "model.joblib"
        joblib.dump({**blob, "versions": package_versions()}, path)
    else:
        path = save(blob, out / "model.sknnmfdiff")
    _say(f"Saved {path}", args.quiet)
    return 0


def _load_model(path):
    """A model file of ``sknnmfdiff fit`` (a dict) or a pipeline saved by ``paper``: the
    package's format (a zip archive with a manifest) or joblib, told apart by content."""
    import joblib
    from sklearn.pipeline import Pipeline

    from .model_file import ModelFileError, is_model_file, load

    p = Path(path)
    if not p.is_file():
        raise _BadInput(f"no such model file: {path}")
    if is_model_file(p):
        try:
            blob = load(p)
        except ModelFileError as exc:
            raise _BadInput(f"cannot read model file: {exc}") from None
    else:
        try:
            blob = joblib.load(p)
        except Exception as exc:  # a wrong or damaged file
            raise _BadInput(
                f"cannot read model file {path}: not a model file or joblib file written "
                f"by sknnmfdiff ({type(exc).__name__})"
            ) from None
    if isinstance(blob, Pipeline):
        n = getattr(blob.steps[0][1], "n_features_in_", None)
        side = int(round(n ** 0.5)) if n else 0
        if not n or side * side != n:
            raise _BadInput(f"{path}: cannot tell the image size of this pipeline")
        blob = {"model": blob, "image_size": side, "target_names": _binary_names(blob.classes_)}
        from ._input_checks import record_beside  # a study's models/<name>.json
        blob["training"] = record_beside(p)
    if not isinstance(blob, dict) or "model" not in blob:
        raise _BadInput(
            f"{path} is not a model written by 'sknnmfdiff fit' or 'sknnmfdiff paper'"
        )
    return blob


def _set_device_and_seed(pipe, device, seed):
    """Move every step that has a ``device`` to ``device``; reseed the purifier."""
    params = {}
    for name, est in pipe.steps:
        if hasattr(est, "get_params") and "device" in est.get_params():
            params[f"{name}__device"] = device
    for step in ("purify", "smooth"):  # the steps that draw noise at prediction
        if seed is not None and step in pipe.named_steps:
            params[f"{step}__random_state"] = seed
    pipe.set_params(**params)


def _cmd_evaluate(args):
    import numpy as np

    from .evaluation import classification_metrics, evaluate_robustness

    _check_device(args.device)
    blob = _load_model(args.model)
    pipe = blob["model"]
    out = _check_out(args.out)
    bunch = _load_folder(args.data, blob["image_size"], args.seed, args.skip_bad_images)
    X, y, files = bunch.data, bunch.target, bunch.filenames
    if args.max_images is not None and args.max_images < len(y):
        idx = np.sort(np.random.default_rng(args.seed).permutation(len(y))[: args.max_images])
        X, y, files = X[idx], y[idx], files[idx]
    _, input_checks = _warn_input_checks(
        blob, X, "evaluate", files, per_file=False, synthetic=bunch.layout == "phantom",
        class_names=[str(n) for n in bunch.target_names])
    clean = classification_metrics(y, pipe.predict_proba(X))
    rep = evaluate_robustness(pipe, X, y, eps=args.eps, space=args.space, protocol=args.protocol,
                              random_state=args.seed, device=args.device, progress=not args.quiet,
                              checkpoint_dir=out / "checkpoints")
    (out / "evaluation.json").write_text(json.dumps(
        {**rep.to_dict(), "input_checks": input_checks}, indent=2, allow_nan=False))
    (out / "clean.json").write_text(json.dumps(
        {k: (float(v) if v == v else None) for k, v in clean.items()}, indent=2))
    _say(f"predict_proba (one seeded call): clean accuracy {clean['accuracy']:.4f}", args.quiet)
    _say(f"evaluation ({rep.threat_model.get('scoring_draws')} scoring draws): {rep.summary()}",
         args.quiet)
    _say(f"Wrote {out / 'evaluation.json'}", args.quiet)
    return 0


def _warn_input_checks(blob, X, command, files, per_file, **kind):
    """Warn once per difference in kind, then per flagged image or once in all."""
    from ._input_checks import check_inputs

    lines, reasons, summary = check_inputs(blob.get("training"), blob["model"], X, files,
                                           per_file=per_file, **kind)
    for line in lines:
        print(f"sknnmfdiff {command}: warning: {line}", file=sys.stderr, flush=True)
    return reasons, summary


def _cmd_predict(args):
    import numpy as np

    from .datasets import load_images

    _check_device(args.device)
    blob = _load_model(args.model)
    pipe = blob["model"]
    _set_device_and_seed(pipe, args.device, args.seed)
    X = load_images(args.images, image_size=blob["image_size"])
    proba = pipe.predict_proba(X)
    names = blob.get("target_names") or [str(c) for c in pipe.classes_]
    flags, _ = _warn_input_checks(blob, X, "predict", args.images, per_file=True)
    rows = []
    for f, p, why in zip(args.images, proba, flags):
        j = int(np.argmax(p))
        rows.append((f, names[j], f"{p[j]:.4f}", "; ".join(why)))
        _say("\t".join(rows[-1][:3]), args.quiet)
    if args.out is not None:
        import csv

        path = _check_out(args.out) / "predictions.csv"
        with open(path, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["file", "class", "probability", "out_of_distribution"])
            w.writerows(rows)
    return 0


def _cmd_export(args):
    import numpy as np

    try:
        from .onnx_export import check_onnx_export, export_onnx
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
        if args.check_data is not None:
            import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise _BadInput(f"ONNX export needs the onnx extra ({exc.name} is missing): "
                        "pip install 'sknnmfdiff[onnx]'") from None
    blob = _load_model(args.model)
    target = Path(args.onnx)
    if target.is_dir() or not target.parent.is_dir():
        raise _BadInput(f"--onnx {args.onnx}: give a file in an existing folder")
    side = int(blob["image_size"])
    path = export_onnx(blob["model"], target, noise=args.noise, seed=args.seed,
                       nnls_max_iter=args.nnls_max_iter, image_shape=(side, side))
    _say(f"Wrote {path} (pixels (N, 1, {side}, {side}) -> probabilities of "
         f"{list(blob.get('target_names') or blob['model'].classes_)}; noise: {args.noise})",
         args.quiet)
    if args.check_data is not None:
        bunch = _load_folder(args.check_data, side, 0)
        X = bunch.data
        if len(X) > args.max_images:
            X = X[np.sort(np.random.default_rng(0).permutation(len(X))[: args.max_images])]
        res = check_onnx_export(blob["model"], path, X)
        _say(f"onnxruntime vs torch on {res['n_images']} images: max |difference| of the "
             f"probabilities {res['max_abs_diff']:.3g}, predictions "
             f"{'identical' if res['same_predictions'] else 'differ on %d' % res['n_disagreements']}, "
             f"NNLS converged on {100 * res['nnls_converged_fraction']:.1f} %", args.quiet)
    return 0


def _say(msg, quiet=False):
    if not quiet:
        print(msg, flush=True)


def main(argv=None):
    """Run the ``sknnmfdiff`` command line.

    Parameters
    ----------
    argv : list of str or None, default=None
        Arguments; None reads ``sys.argv[1:]``.

    Returns
    -------
    status : int
        0 on success, 2 on bad input.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    commands = {"paper": _cmd_paper, "sweep": _cmd_sweep, "fit": _cmd_fit,
                "evaluate": _cmd_evaluate, "predict": _cmd_predict, "export": _cmd_export}
    from .datasets import ImageLoadError

    try:
        return commands[args.command](args)
    except (_BadInput, OSError, ImageLoadError, ValueError) as exc:
        text = str(exc).replace("(pass on_error='warn' to skip them)", "(remove or fix them, or pass --skip-bad-images)")
        msg = text.strip().splitlines()
        text = msg[0] if len(msg) <= 1 else msg[0] + " " + " ".join(m.strip() for m in msg[1:6])
        print(f"sknnmfdiff {args.command}: error: {text}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sknnmfdiff: interrupted; finished work is kept in the output folder", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
