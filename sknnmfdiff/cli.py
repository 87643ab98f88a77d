"""The ``sknnmfdiff`` command: ``paper``, ``sweep``, ``fit``, ``evaluate``, ``predict``,
``export``.

Exit status 0 on success, 2 on bad input (a bad path, flag, image or model
file), with one line on standard error instead of a traceback; 130 after Ctrl-C and 143
after SIGTERM, with one line saying what was kept. The command line is checked before
torch is imported and before any output folder is made; the flags live in
:mod:`sknnmfdiff._cli_parser`.
"""

import argparse
import json
import logging
import os
import re
import signal
import sys
import threading
from pathlib import Path

from ._cli_parser import FAST_ATTACK as _FAST_ATTACK, FAST_GRID as _FAST_GRID
from ._cli_parser import build_parser

__all__ = ["main", "build_parser"]

logger = logging.getLogger("sknnmfdiff")


class _BadInput(Exception):
    """A user error reported as one line and exit status 2."""


class _Terminated(BaseException):
    """Raised by the SIGTERM handler: unwinds like KeyboardInterrupt (files closed, partial
    checkpoints discarded), then ``main`` exits 143."""


# -- checks of the command line, run before any heavy import and before anything is made --

def _check_dir(path, flag="--data"):
    if path is not None and not Path(path).is_dir():
        what = "not a folder" if Path(path).exists() else "no such folder"
        raise _BadInput(f"{flag} {path}: {what}")


def _check_file(path, what="model file"):
    p = Path(path)
    if not p.is_file():
        raise _BadInput(f"no such {what}: {path}" if not p.exists() else f"{what} {path} is a folder")
    if not os.access(p, os.R_OK):
        raise _BadInput(f"{what} {path} is not readable (permission denied)")


def _check_out_path(path, flag="--out"):
    """``path`` is a folder or can be made as one; nothing is created here."""
    p = Path(path)
    if p.exists():
        if not p.is_dir():
            raise _BadInput(f"{flag} {path} is a file; give a folder")
        return
    parent = p.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise _BadInput(f"cannot create output folder {path}: {parent} is not a writable folder")


def _check_out(path):
    """Make the output folder (once the input is checked and the work is done or begins)."""
    p = Path(path)
    _check_out_path(p)
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


def _check_scheduler(address, timeout=5.0):
    """A Dask scheduler address: well formed, and something listens there (``timeout`` s)."""
    import socket

    m = re.fullmatch(r"(?:(tcp|tls)://)?\[?([^\[\]/]+?)\]?:(\d{1,5})/?", address)
    if not m:
        if re.match(r"[a-z]+://", address):  # inproc://, ucx:// ...: Dask checks those
            return
        raise _BadInput(f"--scheduler {address}: expected an address like tcp://HOST:8786")
    host, port = m.group(2), int(m.group(3))
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise _BadInput(f"--scheduler {address}: cannot connect within {timeout:g} s ({reason}); "
                        "is the scheduler running there? (without --scheduler, --backend dask "
                        "starts a local cluster)") from None


def _validate_paper(args):
    _check_dir(args.data)
    _check_rank(args)
    if args.max_images is not None and args.data is None:
        raise _BadInput("--max-images takes a subset of a --data folder; phantom data has "
                        "--phantom-samples")
    if args.max_images is not None and args.n_per_class is not None \
            and 2 * args.n_per_class > args.max_images:
        raise _BadInput(f"--n-per-class {args.n_per_class} needs at least "
                        f"{2 * args.n_per_class} images, more than --max-images {args.max_images}")
    _check_out_path(args.out)


def _validate_sweep(args):
    _check_dir(args.data)
    if args.backend == "dask":
        if args.n_jobs is not None:
            raise _BadInput("--n-jobs sets local worker processes (--backend local); with "
                            "--backend dask give --workers (local cluster) or --scheduler")
        if args.scheduler and args.workers is not None:
            raise _BadInput("--workers sets the local Dask cluster, which --scheduler replaces; "
                            "give one of them")
    else:
        if args.scheduler:
            raise _BadInput("--scheduler needs --backend dask")
        if args.workers is not None:
            raise _BadInput("--workers sets the local Dask cluster (--backend dask); the local "
                            "backend's processes are --n-jobs")
    if args.quick and args.data:
        raise _BadInput("--quick runs on phantom data; leave out --data")
    for flag in ("rank", "k", "t", "n_eot"):
        values = getattr(args, flag)
        if values is not None and len(set(values)) != len(values):
            raise _BadInput(f"--{flag.replace('_', '-')} {' '.join(map(str, values))}: "
                            "give each value once")
    _check_out_path(args.out)
    if args.backend == "dask":
        import importlib.util

        if importlib.util.find_spec("distributed") is None:
            raise _BadInput("--backend dask needs Dask's distributed scheduler: "
                            "pip install 'sknnmfdiff[dask]'")
        if args.scheduler:
            _check_scheduler(args.scheduler)


def _validate_fit(args):
    _check_dir(args.data)
    _check_rank(args)
    defence = "none" if args.baseline else args.defence
    if args.baseline and args.defence not in ("none", "purifier"):
        raise _BadInput(f"--baseline is --defence none; it contradicts --defence {args.defence}")
    if defence != "purifier" and (args.independent_draws or args.clean_train
                                  or args.paper_purifier):
        what = "--baseline" if args.baseline else f"--defence {defence}"
        raise _BadInput("--independent-draws, --clean-train and --paper-purifier set the "
                        f"paper's purifier, which {what} does not use")
    from .paper import PAPER_PROTOCOL

    if defence != "purifier" and (args.t != PAPER_PROTOCOL["t"]
                                  or args.n_eot != PAPER_PROTOCOL["n_eot"]):
        what = "--baseline" if args.baseline else f"--defence {defence}"
        raise _BadInput(f"--t and --n-eot set the paper's purifier, which {what} does not use")
    _check_out_path(args.out)


def _validate_evaluate(args):
    _check_file(args.model)
    _check_dir(args.data)
    _check_out_path(args.out)


def _validate_predict(args):
    _check_file(args.model)
    for f in args.images:
        _check_file(f, "image file")
    if args.out is not None:
        _check_out_path(args.out)


def _validate_export(args):
    import importlib.util

    for name in ("onnx", "onnxscript") + (("onnxruntime",) if args.check_data else ()):
        if importlib.util.find_spec(name) is None:
            raise _BadInput(f"ONNX export needs the onnx extra ({name} is missing): "
                            "pip install 'sknnmfdiff[onnx]'")
    _check_file(args.model)
    target = Path(args.onnx)
    if target.is_dir() or not target.absolute().parent.is_dir():
        raise _BadInput(f"--onnx {args.onnx}: give a file in an existing folder")
    _check_dir(args.check_data, "--check-data")


def _purifier_params(args):
    return dict(antithetic=not (args.independent_draws or args.paper_purifier),
                train_on_purified=not (args.clean_train or args.paper_purifier))


def _binary_names(classes):
    from .datasets import BINARY_TARGET_NAMES

    cl = [int(c) if str(c).lstrip("-").isdigit() else c for c in classes]
    if list(cl) == [0, 1]:
        return list(BINARY_TARGET_NAMES)
    return [str(c) for c in classes]


def _cmd_paper(args):
    from .paper import PAPER_PROTOCOL
    from .study import StudyConfig, run_paper_study

    _check_device(args.device)
    image_size = args.image_size or (PAPER_PROTOCOL["image_size"] if args.data else 64)
    fast = args.fast or (args.data is None and not args.full_attacks)
    n_per_class = args.n_per_class
    if n_per_class is None:  # the paper's, or what the subset allows (capped by the study)
        n_per_class = PAPER_PROTOCOL["n_per_class"]
        if args.max_images is not None:
            n_per_class = min(n_per_class, args.max_images // 2)
    cfg = StudyConfig(
        data=args.data,
        out=args.out,
        image_size=image_size,
        n_per_class=n_per_class,
        max_images=args.max_images,
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
    from .paper import PAPER_PROTOCOL
    from .sweep import QUICK, SweepConfig, run_sweep

    _check_device(args.device)
    grid = {"n_components": args.rank, "k": args.k, "t": args.t, "n_eot": args.n_eot}
    settings = dict(QUICK) if args.quick else {}
    settings.update({name: tuple(v) for name, v in grid.items() if v is not None})
    if args.image_size or not args.quick:
        settings["image_size"] = args.image_size or (PAPER_PROTOCOL["image_size"] if args.data else 64)
    # Flags given explicitly win over --quick's settings; unset ones keep them or the defaults.
    settings.update({name: getattr(args, name) for name in ("cv", "eps", "n_per_class")
                     if getattr(args, name) is not None})
    if not args.quick:
        settings["data"] = args.data
    results = run_sweep(
        SweepConfig(**settings), out=args.out, max_eval=args.max_eval, seed=args.seed,
        device=args.device, on_error="warn" if args.skip_bad_images else "raise",
        backend=args.backend, n_jobs=args.n_jobs or 1, scheduler=args.scheduler,
        workers=args.workers or 2, torch_threads=args.torch_threads,
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


def _load_folder(path, image_size, seed, skip_bad=False, max_images=None, flag="--data"):
    """The images of a folder; ``max_images``: a seeded, class-stratified subset."""
    from ._runs import stratified_subset
    from .datasets import load_mri_folder

    _check_dir(path, flag)
    bunch = load_mri_folder(path, image_size=image_size, task="binary", random_state=seed,
                            on_error="warn" if skip_bad else "raise")
    if max_images is not None and max_images < len(bunch.target):
        bunch = stratified_subset(bunch, max_images, seed)
    return bunch


def _cmd_fit(args):
    _check_device(args.device)
    _say(f"Loading the images of {args.data} ({args.image_size} x {args.image_size} px) ...",
         args.quiet)
    bunch = _load_folder(args.data, args.image_size, args.seed, args.skip_bad_images,
                         args.max_images)
    counts = ", ".join(f"{int((bunch.target == i).sum())} {name}"
                       for i, name in enumerate(bunch.target_names))
    _say(f"Loaded {len(bunch.target)} images ({counts})", args.quiet)
    import joblib

    from ._persistence import package_versions
    from .model_file import save
    from .pipeline import make_defence_pipeline

    defence = "none" if args.baseline else args.defence
    common = dict(n_components=args.rank, k=args.k, random_state=args.seed, device=args.device)
    if defence == "purifier":
        common.update(t=args.t, n_eot=args.n_eot,
                      **{f"purify__{k}": v for k, v in _purifier_params(args).items()})
    pipe = make_defence_pipeline(defence, **common)
    _fit_in_stages(pipe, bunch.data, bunch.target, args.quiet)
    blob = {"model": pipe, "image_size": args.image_size,
            "target_names": [str(n) for n in bunch.target_names]}
    from ._input_checks import training_record  # predict and evaluate warn on other data
    blob["training"] = training_record(pipe, bunch.data, bunch.target, synthetic=False,
                                       image_size=args.image_size, source=str(Path(args.data).resolve()),
                                       class_names=blob["target_names"])
    out = _check_out(args.out)
    if args.format == "joblib":  # package versions inside; the new format's manifest has them
        path = out / "model.joblib"
        joblib.dump({**blob, "versions": package_versions()}, path)
    else:
        path = save(blob, out / "model.sknnmfdiff")
    _say(f"Saved {path}", args.quiet)
    return 0


_STAGE_NAMES = {"nmf": "KL-NMF basis", "select": "feature selection", "purify": "diffusion purifier",
                "clf": "classifier", "adv": "adversarially trained classifier",
                "smooth": "smoothed classifier"}


def _fit_in_stages(pipe, X, y, quiet):
    """``pipe.fit(X, y)``, one step at a time with a message per stage (as Pipeline.fit)."""
    import time

    n = len(pipe.steps)
    Xt = X
    t_all = time.perf_counter()
    for i, (name, step) in enumerate(pipe.steps):
        label = _STAGE_NAMES.get(name, name)
        _say(f"[{i + 1}/{n}] fitting the {label} on {Xt.shape[0]} x {Xt.shape[1]} ...", quiet)
        t0 = time.perf_counter()
        if i < n - 1:
            Xt = step.fit_transform(Xt, y) if hasattr(step, "fit_transform") \
                else step.fit(Xt, y).transform(Xt)
        else:
            step.fit(Xt, y)
        _say(f"[{i + 1}/{n}] {label}: {time.perf_counter() - t0:.1f} s", quiet)
    _say(f"Fitted in {time.perf_counter() - t_all:.1f} s", quiet)


def _load_model(path, trusted=None):
    """A model file of ``sknnmfdiff fit`` (a dict) or a pipeline saved by ``paper``: the
    package's format (a zip archive with a manifest) or joblib, told apart by content.
    ``trusted``: the ``--trust`` names (types or functions the package format may load)."""
    import joblib
    from sklearn.pipeline import Pipeline

    from .model_file import ModelFileError, UntrustedTypeError, is_model_file, load

    p = Path(path)
    if not p.is_file():
        raise _BadInput(f"no such model file: {path}")
    if is_model_file(p):
        try:
            blob = load(p, trusted=list(trusted or []))
        except UntrustedTypeError as exc:
            flags = " ".join(f"--trust {t}" for t in exc.types)
            raise _BadInput(
                f"{path} holds {len(exc.types)} type(s) or function(s) that sknnmfdiff does "
                f"not load by default: {', '.join(exc.types)}. Loading one runs its code; if "
                f"you trust the file and that code, rerun with {flags}") from None
        except ModelFileError as exc:
            raise _BadInput(f"cannot read model file: {exc}") from None
    else:
        if trusted:
            print(f"sknnmfdiff: warning: --trust does not apply to {path}: a joblib file is "
                  "not checked at all (loading it runs any code it holds)", file=sys.stderr,
                  flush=True)
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
    blob = _load_model(args.model, args.trust)
    pipe = blob["model"]
    _say(f"Loading the images of {args.data} ...", args.quiet)
    bunch = _load_folder(args.data, blob["image_size"], args.seed, args.skip_bad_images)
    X, y, files = bunch.data, bunch.target, bunch.filenames
    if args.max_images is not None and args.max_images < len(y):
        idx = np.sort(np.random.default_rng(args.seed).permutation(len(y))[: args.max_images])
        X, y, files = X[idx], y[idx], files[idx]
    _, input_checks = _warn_input_checks(
        blob, X, "evaluate", files, per_file=False, synthetic=bunch.layout == "phantom",
        class_names=[str(n) for n in bunch.target_names])
    out = _check_out(args.out)
    _say(f"Clean predictions on {len(y)} images ...", args.quiet)
    clean = classification_metrics(y, pipe.predict_proba(X))
    _say(f"Attacking ({args.protocol} protocol, {args.space} space, eps {args.eps:g}), then "
         f"the {args.checks} sanity checks; checkpoints in {out / 'checkpoints'} ...", args.quiet)
    rep = evaluate_robustness(pipe, X, y, eps=args.eps, space=args.space, protocol=args.protocol,
                              random_state=args.seed, device=args.device, progress=not args.quiet,
                              checkpoint_dir=out / "checkpoints", **_CHECK_OPTIONS[args.checks])
    _say(f"Writing {out / 'evaluation.json'} ...", args.quiet)
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


#: ``evaluate --checks`` as options of :func:`~sknnmfdiff.evaluation.evaluate_robustness`.
_CHECK_OPTIONS = {"full": {}, "light": {"eps_grid": (0.0,), "plateau": False},
                  "none": {"checks": False}}


def _cmd_predict(args):
    import numpy as np

    from .datasets import load_images

    _check_device(args.device)
    blob = _load_model(args.model, args.trust)
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
    blob = _load_model(args.model, args.trust)
    side = int(blob["image_size"])
    if args.check_data is not None:  # the images first: a bad folder stops before the export
        X = _load_folder(args.check_data, side, 0, flag="--check-data").data
        if len(X) > args.max_images:
            X = X[np.sort(np.random.default_rng(0).permutation(len(X))[: args.max_images])]
    target = Path(args.onnx)
    path = export_onnx(blob["model"], target, noise=args.noise, seed=args.seed,
                       nnls_max_iter=args.nnls_max_iter, image_shape=(side, side))
    _say(f"Wrote {path} (pixels (N, 1, {side}, {side}) -> probabilities of "
         f"{list(blob.get('target_names') or blob['model'].classes_)}; noise: {args.noise})",
         args.quiet)
    if args.check_data is not None:
        res = check_onnx_export(blob["model"], path, X)
        _say(f"onnxruntime vs torch on {res['n_images']} images: max |difference| of the "
             f"probabilities {res['max_abs_diff']:.3g}, predictions "
             f"{'identical' if res['same_predictions'] else 'differ on %d' % res['n_disagreements']}, "
             f"NNLS converged on {100 * res['nnls_converged_fraction']:.1f} %", args.quiet)
    return 0


def _say(msg, quiet=False):
    if not quiet:
        print(msg, flush=True)


_VALIDATE = {"paper": _validate_paper, "sweep": _validate_sweep, "fit": _validate_fit,
             "evaluate": _validate_evaluate, "predict": _validate_predict,
             "export": _validate_export}
_COMMANDS = {"paper": _cmd_paper, "sweep": _cmd_sweep, "fit": _cmd_fit,
             "evaluate": _cmd_evaluate, "predict": _cmd_predict, "export": _cmd_export}


def _options(parser, command):
    """The option strings of one subcommand."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {o for a in sub.choices[command]._actions for o in a.option_strings}


def _as_flags(text, command, options):
    """An error of the library, in the terms of the command line of ``command``: its hints
    name flags of that command only."""
    skip = ("(remove or fix them, or pass --skip-bad-images)" if "--skip-bad-images" in options
            else "(remove or fix them)")
    text = text.replace("(pass on_error='warn' to skip them)", skip)
    if "--n-per-class" in options:
        text = re.sub(r"\bn_per_class=(\d+)", r"--n-per-class \1", text)
    return text


def _on_sigterm(signum, frame):
    raise _Terminated()


def _interrupted(args, how):
    out = getattr(args, "out", None)
    if out is not None and args.command in ("paper", "sweep", "evaluate"):
        return (f"sknnmfdiff {args.command}: interrupted ({how}); finished work is kept in "
                f"{out}, rerun the same command to resume")
    if args.command == "fit":
        return f"sknnmfdiff fit: interrupted ({how}); no model was saved"
    return f"sknnmfdiff {args.command}: interrupted ({how})"


def main(argv=None):
    """Run the ``sknnmfdiff`` command line.

    The command line is checked first (flags, their ranges, paths, files), before any
    heavy module (torch) is imported and before anything is written; then the command
    runs. SIGTERM and Ctrl-C stop it with one line on standard error.

    Parameters
    ----------
    argv : list of str or None, default=None
        Arguments; None reads ``sys.argv[1:]``.

    Returns
    -------
    status : int
        0 on success, 2 on bad input, 130 after Ctrl-C (SIGINT), 143 after SIGTERM.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        _VALIDATE[args.command](args)
        return _COMMANDS[args.command](args)
    except (_BadInput, OSError, ValueError) as exc:  # ImageLoadError is a ValueError
        text = _as_flags(str(exc), args.command, _options(parser, args.command))
        msg = text.strip().splitlines()
        text = msg[0] if len(msg) <= 1 else msg[0] + " " + " ".join(m.strip() for m in msg[1:6])
        print(f"sknnmfdiff {args.command}: error: {text}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(_interrupted(args, "Ctrl-C"), file=sys.stderr)
        return 130
    except _Terminated:
        print(_interrupted(args, "SIGTERM"), file=sys.stderr)
        return 143
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
