"""The paper's study end to end: data -> split -> fit -> attack -> report.

:func:`run_paper_study` is what ``sknnmfdiff paper`` runs. It reproduces the table
of arXiv 2603.13182 (clean and AutoAttack L-inf robust figures of the baseline and
the defended pipeline) on a leakage-free split, in both threat models (feature
space, as the paper most plausibly ran it, and pixel space, as a clinic faces
it), under the paper's attack protocol and an adaptive one, with the sanity
checks of the evaluation checklist, and writes ``results.json``, ``report.md``,
figures and the fitted models to one folder.

Finished work is never lost: every fitted model is written to ``<out>/models/`` and
every finished evaluation to ``<out>/evaluations/`` at once (and attacks checkpoint
their batches, and the stages inside a batch), and a rerun with the same settings in
the same folder reuses what is there (a model whose settings or training data changed
is refitted, and the log says why).
"""

import dataclasses
import datetime as _dt
import hashlib
import json
import logging
import time
from pathlib import Path

import numpy as np

from . import _runs
from . import _study_defences as _defences
from .paper import PAPER_PROTOCOL, PAPER_TABLE

logger = logging.getLogger(__name__)

__all__ = ["StudyConfig", "PAPER_TABLE", "run_paper_study"]


@dataclasses.dataclass
class StudyConfig:
    """Settings of :func:`run_paper_study` (all written into ``results.json``).

    Parameters
    ----------
    data : str or None
        Image folder in any layout :func:`~sknnmfdiff.datasets.load_mri_folder`
        reads; None runs on synthetic phantom slices
        (:func:`~sknnmfdiff.datasets.make_phantom_mri`).
    out : str
        Output folder.
    image_size : int
        Side of the square images, pixels (the paper: 128).
    n_per_class : int or None
        Unique images drawn per class (the paper: 1,100 + 1,100); None (with
        ``max_images``): the paper's, or as many as the subset holds if fewer.
    max_images : int or None
        A seeded, class-stratified subset of this many images of ``data`` (a quicker
        run on real data); None: all images. Ignored for phantom data.
    phantom_samples : int
        Number of phantom images generated when ``data`` is None.
    n_components, k, t, n_eot : int
        NMF rank (15), selected components, purifier timestep (41), EOT draws (8).
    antithetic, train_on_purified : bool
        The purifier's noise draws come in antithetic pairs, and the classifier trains
        on purified features (both ``True``: our defaults; both ``False``: the paper's
        protocol literally). See :class:`~sknnmfdiff.purification.DiffusionPurifier`.
    eps : float
        L-inf budget (0.10), in the input units of each threat model (pixel
        intensity in [0, 1], or feature value in [0, 1]).
    eps_grid : tuple of float
        Extra budgets attacked for the robustness curves and sanity checks.
    spaces : tuple of {"feature", "pixel"}
    protocols : tuple of {"paper", "adaptive"}
    seed : int
        Seeds the sample, the split, every estimator and every attack.
    device : str
        Torch device ("cpu", "cuda", "auto").
    near_duplicates : bool
        Also keep near-duplicate groups (perceptual hash) inside one split part.
    on_error : {"raise", "warn"}
        Unreadable images stop the run ("raise") or are skipped with a warning.
    attack : dict
        Overrides of the attack settings (``n_restarts``, ``n_iter``,
        ``square_queries``, ``n_eot``), applied to both protocols.
    grid_attack : dict
        Attack settings for the extra eps budgets (lighter by default).
    n_draws : int
        Draws used to re-score the randomized defended model.
    plateau : {True, "full", "auto", False}
        The attack-strength plateau check of every evaluation (checklist item 6;
        ``plateau`` of :func:`~sknnmfdiff.evaluation.evaluate_robustness`). ``True``
        (default): the samples each attack left correct, at most 32, get one more
        APGD restart with twice the iterations and EOT draws, for the baseline and
        the defended model alike, so every robust figure of the report says
        whether a stronger attack still lowers it.
    nmf_max_iter : int
        Iterations of the NMF.
    clf_max_epochs : int or "auto"
        Epochs of the classifier; "auto": the classifier's default for its
        architecture (see :class:`~sknnmfdiff.SkorchCNNClassifier`).
    defences : tuple of {"none", "purifier", "adversarial", "smoothing"}
        Rows of the defences table (adaptive attack in every space; certified accuracy
        of the smoothed pipeline), made only when ``protocols`` has "adaptive". "none" and "purifier" are the baseline and the
        defended pipeline above; the others are fitted with
        :func:`~sknnmfdiff.pipeline.make_defence_pipeline`. Empty: no table.
    defence_params : dict
        Per defence, arguments of :func:`~sknnmfdiff.pipeline.make_defence_pipeline`
        (default: 10,000 estimation draws for the smoothed pipeline's certificate).
    defence_attack : dict
        Per defence, attack settings that override ``attack`` for its evaluations.
        Default: 160 EOT draws per gradient (40 per Square query) for the smoothed
        pipeline, whose compiled module draws one noise vector per call: the same
        number of denoiser passes per gradient as the purifier's attack (20 calls of
        8 draws). With 20 the attack on the smoothed pipeline was visibly too weak
        (35.0 % robust against 26.4 % with 160 on the paper split, feature space).
    """

    data: str = None
    out: str = "sknnmfdiff-out"
    image_size: int = PAPER_PROTOCOL["image_size"]
    n_per_class: int = PAPER_PROTOCOL["n_per_class"]
    max_images: int = None
    phantom_samples: int = 800
    n_components: int = PAPER_PROTOCOL["n_components"]
    k: int = 10
    t: int = PAPER_PROTOCOL["t"]
    n_eot: int = PAPER_PROTOCOL["n_eot"]
    antithetic: bool = True
    train_on_purified: bool = True
    eps: float = PAPER_PROTOCOL["eps"]
    eps_grid: tuple = (0.0, 0.02, 0.05, 0.2, 0.5)
    spaces: tuple = ("feature", "pixel")
    protocols: tuple = ("paper", "adaptive")
    seed: int = 0
    device: str = "cpu"
    near_duplicates: bool = True
    on_error: str = "raise"
    attack: dict = dataclasses.field(default_factory=dict)
    grid_attack: dict = dataclasses.field(
        default_factory=lambda: {"n_restarts": 1, "n_iter": 100, "square_queries": 500}
    )
    n_draws: int = 100
    plateau: object = True
    nmf_max_iter: int = 200
    clf_max_epochs: object = "auto"
    defences: tuple = ("none", "purifier", "adversarial", "smoothing")
    defence_params: dict = dataclasses.field(
        default_factory=lambda: {"smoothing": {"smooth__n": 10_000}})
    defence_attack: dict = dataclasses.field(
        default_factory=lambda: {"smoothing": {"n_eot": 160, "square_n_eot": 40}})


def _metrics(pipe, X, y):
    from .evaluation import classification_metrics

    proba = pipe.predict_proba(X)
    return classification_metrics(y, proba, n_classes=proba.shape[1])


class _ModelStore:
    """The fitted models of a study folder (``<out>/models/<name>.joblib``), reused by a
    rerun when nothing that made them changed.

    Beside each model, ``<name>.json`` holds its fingerprint: the unfitted pipeline's
    every parameter (defaults included), the digest of the training data and the
    package's version and source. :meth:`fit` loads the saved model when the fingerprint
    matches and otherwise fits it, says why, and saves it at once (so an interrupt
    later in the run, even while the next model is fitted, keeps it).
    """

    def __init__(self, folder, Xtr, ytr, log, timings, describe=None):
        from . import __version__

        self.folder, self.Xtr, self.ytr = Path(folder), Xtr, ytr
        # synthetic, image_size, class_names, source: for the training record in <name>.json
        self.describe = describe
        self.log, self.timings, self.notes = log, timings, {}
        self.common = {"train_data": _runs.digest_arrays(Xtr, ytr),
                       "sknnmfdiff": [__version__, _runs.source_digest()]}

    def fit(self, name, pipe):
        """The model ``name``: the saved one if its fingerprint matches, else ``pipe`` fitted."""
        from joblib import dump, load

        settings = {"model": _runs.model_settings(pipe), **self.common}
        settings = json.loads(json.dumps(settings, default=str))
        fingerprint = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()
        path, meta = self.folder / f"{name}.joblib", self.folder / f"{name}.json"
        old = json.loads(meta.read_text()) if meta.exists() and path.exists() else None
        if old is not None and old.get("fingerprint") == fingerprint:
            try:
                model = load(path)
            except Exception as exc:  # noqa: BLE001 - an unreadable file is refitted
                why = f"{path} could not be read ({type(exc).__name__}: {exc})"
            else:
                self.log(f"[fit {name}] reusing {path} (same settings and training data)")
                self.timings[f"fit {name} (reused; time of the original run)"] = old.get("seconds")
                self.notes[name] = "reused"
                return model
        elif old is not None:
            was = old.get("settings", {})
            names = {"model": "model parameters", "train_data": "training data",
                     "sknnmfdiff": "package version or source"}
            diff = [v for k, v in names.items() if was.get(k) != settings[k]] or ["settings"]
            if was.get("model") != settings["model"]:
                diff[0] += f" ({_changed_params(was.get('model') or [], settings['model'])})"
            why = f"{path} was fitted with other {', '.join(diff)}"
        elif path.exists():
            why = f"{path} has no fingerprint ({meta.name})"
        else:
            why = None
        if why:
            self.log(f"[fit {name}] {why}: refitting")
        self.notes[name] = f"fitted ({why})" if why else "fitted"
        with _runs.Timer(self.timings, f"fit {name}", self.log):
            model = pipe.fit(self.Xtr, self.ytr)
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{name}.joblib.tmp")
        dump(model, tmp)
        tmp.replace(path)
        record = {"fingerprint": fingerprint, "settings": settings,
                  "seconds": self.timings[f"fit {name}"]}
        if self.describe is not None:  # read by `sknnmfdiff predict` and `evaluate`
            from ._input_checks import training_record

            record["training"] = training_record(model, self.Xtr, self.ytr, **self.describe)
        _runs.write_json(meta, record)
        return model

    def seconds(self, name):
        """Fit time of ``name``: this run's, or the original run's when reused."""
        t = self.timings
        return t.get(f"fit {name}", t.get(f"fit {name} (reused; time of the original run)")) or 0


def _changed_params(old, new):
    """``step.param`` names that differ between two :func:`_runs.model_settings` lists."""
    def flat(settings):
        return {f"{step}.{k}": v for step, cls, params in settings
                for k, v in {"(class)": cls, **params}.items()}
    a, b = flat(old), flat(new)
    names = sorted(k for k in set(a) | set(b) if a.get(k, "?") != b.get(k, "?"))
    return ", ".join(names[:6]) + (", ..." if len(names) > 6 else "") or "steps"


def _fit_models(cfg, store, cache_dir):
    from joblib import Memory

    from .pipeline import make_baseline_pipeline, make_paper_pipeline

    memory = Memory(str(cache_dir), verbose=0)
    common = dict(
        n_components=cfg.n_components,
        k=cfg.k,
        random_state=cfg.seed,
        device=cfg.device,
        memory=memory,
        nmf__max_iter=cfg.nmf_max_iter,
        clf__max_epochs=cfg.clf_max_epochs,
    )
    base = store.fit("baseline", make_baseline_pipeline(**common))
    deff = store.fit("defended", make_paper_pipeline(
        t=cfg.t, n_eot=cfg.n_eot, purify__antithetic=cfg.antithetic,
        purify__train_on_purified=cfg.train_on_purified, **common,
    ))
    return base, deff


def _evaluate_all(cfg, base, deff, Xte, yte, out, log, timings, quiet, fingerprint):
    from . import __version__
    from .evaluation import RobustnessReport, evaluate_robustness

    # Finished evaluations are reused only by a rerun with identical settings: the
    # study's, and the ``fingerprint`` of the models (every parameter, defaults
    # included) and of the training and test data; and the package (version and
    # source), so that changed images, a changed default or changed code never reuse
    # a stale evaluation or checkpoint.
    settings = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "out"}
    settings.update(fingerprint)
    settings["sknnmfdiff"] = [__version__, _runs.source_digest()]
    digest = hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()
    evdir = out / "evaluations" / digest[:12]
    evdir.mkdir(parents=True, exist_ok=True)
    reports = {}
    for space in cfg.spaces:
        for protocol in cfg.protocols:
            for name, pipe in (("baseline", base), ("defended", deff)):
                key = f"{space}-{protocol}-{name}"
                path = evdir / f"{key}.json"
                if path.exists():
                    log(f"[{key}] reusing finished evaluation {path}")
                    reports[key] = RobustnessReport.from_json(path)
                    timings[f"attack {key} (reused; time of the original run)"] = (
                        reports[key].timings.get("total"))
                    continue
                with _runs.Timer(timings, f"attack {key}", log):
                    rep = evaluate_robustness(
                        pipe,
                        Xte,
                        yte,
                        eps=cfg.eps,
                        protocol=protocol,
                        space=space,
                        n_draws=cfg.n_draws if name == "defended" else None,
                        eps_grid=cfg.eps_grid,
                        grid_attack_kwargs=dict(cfg.grid_attack),
                        plateau=cfg.plateau,
                        random_state=cfg.seed,
                        device=cfg.device,
                        checkpoint_dir=out / "checkpoints" / digest[:12] / key,
                        progress=not quiet,
                        **cfg.attack,
                    )
                rep.to_json(path)
                reports[key] = rep
                log(f"[{key}] {rep.summary()}")
    return reports, evdir, out / "checkpoints" / digest[:12]


def _figures(cfg, base, deff, bunch, split, reports, out, certificate=None):
    from . import plots

    figdir = out / "figures"
    figdir.mkdir(parents=True, exist_ok=True)
    nmf = base.named_steps["nmf"]
    sel = base.named_steps["select"]
    pur = deff.named_steps["purify"]
    X = bunch.data
    files = {}

    synthetic = cfg.data is None

    def save(name, fig):
        if synthetic:
            _mark_synthetic(fig)
        files[name] = str(plots.save_figure(fig, figdir / f"{name}.png").relative_to(out))

    side = cfg.image_size
    save("nmf_basis", plots.plot_nmf_basis(nmf.components_, (side, side)))
    W = nmf.transform(X[split.train])
    save(
        "class_activation",
        plots.plot_class_activation_heatmap(
            W, bunch.target[split.train], target_names=list(bunch.target_names)
        ),
    )
    save("feature_scores", plots.plot_feature_scores(sel))
    Z = sel.transform(nmf.transform(X[split.test]))
    ts = np.unique(np.clip(np.array([1, 5, 10, 20, 41, 60, 100, 200]), 1, pur.n_steps - 1))
    err = pur.denoising_error(Z, t=ts)
    save("denoising_error", plots.plot_denoising_error(err["noisy"], err["denoised"], t=ts))
    for space in cfg.spaces:
        curves, cis = {}, {}
        for protocol in cfg.protocols:
            for name in ("baseline", "defended"):
                rep = reports.get(f"{space}-{protocol}-{name}")
                if rep is None:
                    continue
                main = rep.robust[rep.primary_rule]
                pts = sorted(
                    [(g["eps"], g["accuracy"], g.get("accuracy_ci")) for g in rep.eps_grid]
                    + [(rep.threat_model["eps"], main["accuracy"], main.get("accuracy_ci"))],
                    key=lambda p: p[0],
                )
                label = f"{name} / {protocol}" + _defences.failed_note(rep)
                eps_axis = np.array([p[0] for p in pts])
                curves[label] = np.array([p[1] for p in pts])
                if all(p[2] for p in pts):
                    cis[label] = (np.array([p[2][0] for p in pts]), np.array([p[2][1] for p in pts]))
        if curves:
            unit = "pixel intensity" if space == "pixel" else "feature value"
            save(
                f"robustness_curve_{space}",
                plots.plot_robustness_curve(
                    eps_axis,
                    curves,
                    title=f"{space} space, L-inf (eps in {unit} units)",
                    xlabel=f"eps ({unit})",
                    ci=cis or None,
                    eps_marks=_defences.main_eps_mark(cfg),
                ),
            )
    _defences.defences_figures(cfg, reports, certificate, save)
    return files


def _mark_synthetic(fig):
    """Mark a figure of phantom data, below everything else in space the layout keeps
    free (a constrained-layout figure's ``supxlabel``), so it never covers a label."""
    fig.supxlabel("SYNTHETIC phantom data (make_phantom_mri), not MRI", fontsize=8,
                  color="firebrick")
    return fig


def _attack_summary(cfg):
    """The attack settings of a :func:`~sknnmfdiff.evaluation.run_attack` config, briefly."""
    text = f"APGD {cfg['apgd_n_restarts']} x {cfg['apgd_n_iter']} it."
    if cfg.get("apgd_screen_n_iter"):
        text += f" after a {cfg['apgd_screen_n_iter']}-it. screen"
    if cfg["n_eot"] > 1:
        text += f", EOT {cfg['n_eot']}"
    text += f"; Square {cfg['square_queries']} queries"
    if cfg["square_n_eot"] > 1:
        text += f" x {cfg['square_n_eot']} draws"
    return text


def _adversarial_examples(cfg, models, Xte, yte, target_names, out):
    """Pixel-space adversarial images of the baseline and the defended pipeline for the
    figure: the attack of the tables (the adaptive protocol when the study ran it, else
    the paper's; the same eps, settings and seed), rerun on four test images that both
    pipelines classify correctly; predictions scored as in the tables (the mean
    probability over ``cfg.n_draws`` draws for a randomized pipeline)."""
    import torch

    from . import plots
    from .evaluation import predict_proba_draws, run_attack
    from .torch_adapter import to_torch_module

    protocol = "adaptive" if "adaptive" in cfg.protocols else "paper"
    side = cfg.image_size
    classes = models["baseline"].classes_
    y_idx = np.searchsorted(classes, yte)
    ok = np.flatnonzero(np.logical_and.reduce([m.predict(Xte) == yte for m in models.values()]))
    pick = np.concatenate([ok[y_idx[ok] == c][:2] for c in range(len(classes))])[:4]
    if pick.size == 0:
        pick = np.arange(min(4, len(Xte)))
    n = len(pick)
    x = torch.as_tensor(Xte[pick], dtype=torch.float32).reshape(n, 1, side, side)
    y = torch.as_tensor(y_idx[pick])
    names = np.asarray(target_names, dtype=object)
    advs, p_clean, p_adv, lines = {}, {}, {}, []
    for name, pipe in models.items():
        module = to_torch_module(pipe, device=cfg.device)
        x_adv, det = run_attack(module, x, y, eps=cfg.eps, protocol=protocol,
                                random_state=cfg.seed, device=cfg.device, progress=False,
                                return_details=True, **cfg.attack)
        draws = cfg.n_draws if det["config"]["randomized"] else 1

        def predict(z, module=module, draws=draws):
            proba = predict_proba_draws(module, z, n_draws=draws, random_state=cfg.seed,
                                        device=cfg.device)
            return names[proba.mean(0).argmax(1)]

        advs[name] = torch.as_tensor(x_adv).detach().cpu().numpy()  # may come from a GPU
        p_clean[name], p_adv[name] = predict(x), predict(torch.as_tensor(advs[name]))
        lines.append(f"{name}: {_attack_summary(det['config'])}"
                     + (f"; predictions: mean probability over {draws} draws" if draws > 1 else ""))
    fig = plots.plot_adversarial_examples(
        x.numpy(), advs, y=names[y.numpy()], pred_clean=p_clean, pred_adv=p_adv,
        image_shape=(side, side), n=n,
    )
    fig.suptitle(f"Pixel space, L-inf eps = {cfg.eps:g}, {protocol} protocol with the "
                 f"tables' settings, rerun on {n} test images\n" + "\n".join(lines),
                 fontsize=9)
    if cfg.data is None:
        _mark_synthetic(fig)
    figdir = out / "figures"
    return str(plots.save_figure(fig, figdir / "adversarial_examples.png").relative_to(out))


def run_paper_study(config=None, *, quiet=False, log=None, **overrides):
    """Run the whole study and write its output folder.

    Stages: load the images (or make phantom data) and report duplicates ->
    the paper's balanced, leakage-free 70/20/10 split -> fit the baseline and
    the defended pipeline on the train part -> clean metrics on the validation
    and test parts -> AutoAttack on the test part for every threat model and
    protocol, with sanity checks -> figures -> ``report.md``.

    Parameters
    ----------
    config : StudyConfig or None, default=None
        Settings; None uses the defaults.
    quiet : bool, default=False
        No progress bars and no stage messages.
    log : callable or None, default=None
        Receives one message string per stage event; default: the module
        logger at INFO level.
    **overrides
        Fields of :class:`StudyConfig` that replace those of ``config``.

    Returns
    -------
    results : dict
        What ``results.json`` holds: configuration, versions, machine, data
        summary, clean metrics, every evaluation, timings, output files.

    Raises
    ------
    FileNotFoundError, ValueError, ImageLoadError
        Bad data folder or images (from the loader), or bad settings.
    """
    from joblib import Memory

    from ._persistence import package_versions
    from .evaluation import paper_table

    cfg = dataclasses.replace(config or StudyConfig(), **overrides)
    if log is None:
        def log(msg):  # noqa: E306
            logger.info(msg)
    if quiet:
        def log(msg):  # noqa: E306,F811
            logger.debug(msg)
    out = Path(cfg.out)
    timings = {}
    results = {
        "config": dataclasses.asdict(cfg),
        "versions": package_versions(),
        "machine": _runs.machine_info(),
        "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "timings": timings,
    }
    res_path = out / "results.json"
    t_all = time.perf_counter()

    with _runs.Timer(timings, "load data", log):
        bunch, split, data_summary, _ = _runs.load_data(cfg, log)
    results["data"] = data_summary
    out.mkdir(parents=True, exist_ok=True)  # only once the data loaded: a bad folder leaves nothing
    _runs.write_json(res_path, results)
    X, y = bunch.data, bunch.target
    Xtr, ytr = X[split.train], y[split.train]
    Xva, yva = X[split.val], y[split.val]
    Xte, yte = X[split.test], y[split.test]

    # Fitted models are saved at once and reused by a rerun with the same settings and data.
    store = _ModelStore(out / "models", Xtr, ytr, log, timings, describe=dict(
        synthetic=cfg.data is None, image_size=cfg.image_size,
        class_names=[str(n) for n in bunch.target_names], source=cfg.data or "phantom"))
    base, deff = _fit_models(cfg, store, out / "cache")
    extra = _defences.fit_defences(cfg, Xtr, ytr, Memory(str(out / "cache"), verbose=0), log,
                                   timings, fit=store.fit)
    results["models"] = store.notes
    results["model_params"] = {"baseline": _runs.model_settings(base), "defended": _runs.model_settings(deff)}
    results["model_params"].update({name: _runs.model_settings(m) for name, m in extra.items()})

    with _runs.Timer(timings, "clean metrics", log):
        results["clean"] = {
            part: {"baseline": _metrics(base, Xp, yp), "defended": _metrics(deff, Xp, yp)}
            for part, Xp, yp in (("validation", Xva, yva), ("test", Xte, yte))
        }
    _runs.write_json(res_path, results)

    fingerprint = {"models": results["model_params"], "data": _runs.digest_arrays(Xtr, ytr, Xte, yte)}
    reports, evdir, checkpoints = _evaluate_all(cfg, base, deff, Xte, yte, out, log, timings,
                                                quiet, fingerprint)
    more, certificate = _defences.evaluate_defences(cfg, extra, Xte, yte, evdir, checkpoints,
                                                    log, timings, quiet)
    reports.update(more)
    results["evaluations"] = {k: r.to_dict() for k, r in reports.items()}
    if cfg.defences and "adaptive" in cfg.protocols:
        results["defences"] = {"rows": _defences.defence_rows(cfg, reports, certificate),
                               "certificate": certificate}
    tables = {}
    for space in cfg.spaces:
        for protocol in cfg.protocols:
            b = reports.get(f"{space}-{protocol}-baseline")
            d = reports.get(f"{space}-{protocol}-defended")
            if b is not None and d is not None:
                rows, md = paper_table(b, d)
                tables[f"{space}-{protocol}"] = {"rows": rows, "markdown": md}
    results["tables"] = tables
    _runs.write_json(res_path, results)

    with _runs.Timer(timings, "figures", log):
        files = _figures(cfg, base, deff, bunch, split, reports, out, certificate)
        if "pixel" in cfg.spaces:
            files["adversarial_examples"] = _adversarial_examples(
                cfg, {"baseline": base, "defended": deff}, Xte, yte, bunch.target_names, out)
    results["figures"] = files
    timings["total"] = round(time.perf_counter() - t_all, 2)
    fit = store.seconds("baseline") + store.seconds("defended")
    paper = [r for k, r in reports.items() if "-paper-" in k]
    core = sum(r.timings.get(p, 0) or 0 for r in paper for p in ("attack", "clean_scoring", "robust_scoring"))
    timings["paper protocol: fit both + attack and score the test part"] = round(fit + core, 2)
    timings["paper protocol: the same + sanity checks and eps grid"] = round(
        fit + sum(r.timings.get("total", 0) or 0 for r in paper), 2
    )
    results["finished"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    _runs.write_json(res_path, results)
    from .report import write_report

    write_report(results, out / "report.md")
    log(f"Wrote {out / 'report.md'} and {res_path}")
    return results
