"""Check the package on CUDA: fit, attack, CPU parity, loading without CUDA, speed.

One script for a machine with a GPU (under 5 minutes on one modern GPU). Steps:

1. fit the baseline and the defended pipeline (the package's factories, seed 0) on
   the device, on the paper split of the shared data (128 x 128; 1540 train / 220
   test images), or on synthetic phantom slices of the same sizes when the data are
   absent (``--phantom`` forces them);
2. the paper protocol (``evaluate_robustness``, eps 0.10, feature and pixel space,
   checks off) for both pipelines on the device;
3. the adaptive protocol for both pipelines in feature space on the device, with the
   sanity checks (a check that *raises* is a failure here; a check's verdict is
   reported);
4. parity: the device-fitted models run on the device and on the CPU
   (``predict_proba`` and the compiled torch module), see TOLERANCE below;
5. the device-fitted pipelines saved with joblib (and with ``sknnmfdiff.save`` when
   the package has it) and loaded in a child process with ``CUDA_VISIBLE_DEVICES=""``;
   its CPU predictions must equal this process's CPU predictions;
6. time: the paper-protocol part (both fits + step 2) on the device against the same
   on the CPU of this machine (all its cores); the target on one modern GPU is
   <= 10 s (the paper: 116.6 s on its GPU, 201.5 s on CPU).

It prints a table and exits with status 1 if any step failed, 0 otherwise. Without
CUDA it says so and exits 0. ``--device cpu`` is a dry run of every step on the CPU
(parity then compares the CPU with itself), ``--tiny`` makes it fast (small phantom
data, light attacks; for tests).

Tolerance of the CUDA-CPU parity: 1e-4 on every class probability, with TF32 off
(``torch.backends.cuda.matmul.allow_tf32`` and ``torch.backends.cudnn.allow_tf32``
False). The NNLS runs in float64 on both devices, the rest in float32, where CUDA and
the CPU differ only in the order of their sums (relative rounding ~1e-7 per operation,
amplified by the depth of the denoiser and the CNN); the purifier's noise is drawn on
the CPU for both (the same numbers), so the defended model is compared like the
baseline. Predictions must agree except on inputs whose two class probabilities lie
within 2e-4 of each other on the CPU. With torch's default TF32 setting for cuDNN
(convolutions in TF32: 10-bit mantissa, relative rounding ~5e-4) the difference is
reported on its own row against a looser 1e-2.

    python benchmarks/gpu_check.py [--data DIR] [--phantom] [--out docs/results/gpu.md]
    python benchmarks/gpu_check.py --device cpu --tiny          # dry run, no GPU needed
"""

import argparse
import copy
import datetime as _dt
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TOL, TOL_TF32, MARGIN = 1e-4, 1e-2, 2e-4
TARGET_S = 10.0

_CHILD = r"""
import json, sys, warnings
import numpy as np, torch
assert not torch.cuda.is_available(), "CUDA is visible in the child process"
kind, model_path, x_path, out_path = sys.argv[1:5]
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    if kind == "joblib":
        import joblib
        model = joblib.load(model_path)
    else:
        import sknnmfdiff
        model = sknnmfdiff.load(model_path)
    np.save(out_path, model.predict_proba(np.load(x_path)))
print(json.dumps(sorted({f"{w.category.__name__}: {str(w.message)[:80]}" for w in caught})))
"""


class Checks:
    """The table: one row per step (name, status, seconds, detail)."""

    def __init__(self):
        self.rows = []

    def run(self, name, fn, *args, **kw):
        t0 = time.perf_counter()
        try:
            status, detail = fn(*args, **kw)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a row
            status, detail = "FAIL", f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            traceback.print_exc()
        self.rows.append((name, status, time.perf_counter() - t0, detail))
        print(f"[{status}] {name} ({self.rows[-1][2]:.1f} s): {detail}", flush=True)
        return status

    def table(self):
        lines = ["| step | status | seconds | detail |", "|---|---|---|---|"]
        lines += [f"| {n} | {s} | {t:.1f} | {d} |" for n, s, t, d in self.rows]
        return "\n".join(lines)

    @property
    def failed(self):
        return [r[0] for r in self.rows if r[1] == "FAIL"]


def _data(args, log):
    from sklearn.model_selection import train_test_split

    from sknnmfdiff.datasets import find_duplicates, load_mri_folder, make_phantom_mri, paper_split

    data = Path(args.data) if args.data else None
    if args.tiny:
        b = make_phantom_mri(160, image_size=24, random_state=0)
        Xtr, Xte, ytr, yte = train_test_split(b.data, b.target, test_size=40, stratify=b.target,
                                              random_state=0)
        return Xtr, ytr, Xte, yte, "SYNTHETIC phantom data (tiny: 120 train / 40 test, 24 px)"
    if not args.phantom and data is not None and (data / "Training").is_dir():
        bunch = load_mri_folder(data, image_size=128, task="binary")
        split = paper_split(bunch, groups=find_duplicates(bunch, kind="near"), random_state=0)
        X, y = bunch.data, bunch.target
        return (X[split.train], y[split.train], X[split.test], y[split.test],
                f"shared MRI data {data}, paper split, 128 px")
    if not args.phantom:
        log(f"real data not found at {data}: SYNTHETIC phantom data instead")
    b = make_phantom_mri(1760, image_size=128, random_state=0)
    Xtr, Xte, ytr, yte = train_test_split(b.data, b.target, test_size=220, stratify=b.target,
                                          random_state=0)
    return Xtr, ytr, Xte, yte, "SYNTHETIC phantom data (1540 train / 220 test, 128 px)"


def _settings(args):
    """Pipeline parameters and attack settings (light ones with --tiny)."""
    if not args.tiny:
        return {}, {}, {"n_restarts": 1, "n_iter": 50, "square_queries": 200}
    fast = {"nmf__max_iter": 30, "clf__max_epochs": 10, "purify__max_epochs": 5}
    light = {"n_restarts": 1, "n_iter": 5, "square_queries": 20, "square_n_eot": 2}
    return fast, light, light


def _fit_both(dev, Xtr, ytr, fast, only=None):
    """The baseline and the defended pipeline (package defaults, seed 0) fitted on
    ``dev``: ``{name: (pipeline, seconds)}`` (only ``only`` when given)."""
    from sknnmfdiff import make_baseline_pipeline, make_paper_pipeline

    size = {} if not fast else {"n_components": 6, "k": 4}
    pipes = {"baseline": make_baseline_pipeline(random_state=0, device=dev, **size),
             "defended": make_paper_pipeline(random_state=0, device=dev, **size)}
    out = {}
    for name, pipe in pipes.items():
        if only is not None and name != only:
            continue
        pipe.set_params(**{k: v for k, v in fast.items() if k.split("__")[0] in pipe.named_steps})
        t0 = time.perf_counter()
        out[name] = (pipe.fit(Xtr, ytr), time.perf_counter() - t0)
    return out


def _paper_evals(models, dev, Xte, yte, attack):
    from sknnmfdiff import evaluate_robustness

    reps = {}
    for space in ("feature", "pixel"):
        for name, pipe in models.items():
            t0 = time.perf_counter()
            rep = evaluate_robustness(pipe, Xte, yte, eps=0.10, protocol="paper", space=space,
                                      checks=False, device=dev, progress=False, random_state=0,
                                      **attack)
            reps[(name, space)] = (rep, time.perf_counter() - t0)
    return reps


def _warm_up(dev, Xtr, ytr, Xte, yte):
    """A tiny fit and evaluation on ``dev``, so that the timed runs do not pay for
    imports, the CUDA context or the first call of each kernel."""
    from sknnmfdiff import evaluate_robustness

    tiny = {"nmf__max_iter": 2, "clf__max_epochs": 1, "purify__max_epochs": 1}
    idx = np.concatenate([np.flatnonzero(ytr == c)[:30] for c in np.unique(ytr)])
    models = _fit_both(dev, Xtr[idx], ytr[idx], tiny)
    for pipe, _ in models.values():
        evaluate_robustness(pipe, Xte[:4], yte[:4], protocol="paper", space="pixel", checks=False,
                            device=dev, progress=False, n_restarts=1, n_iter=2, square_queries=2)


def _acc(rep):
    r = rep.primary_rule
    return rep.clean[r]["accuracy"], rep.robust[r]["accuracy"]


def _proba_on(pipe, dev, X):
    """predict_proba of a deep copy of ``pipe`` run on ``dev``: every ``device``
    parameter set to it and the classifier's fitted net moved there (skorch predicts
    on the device of its net, not on that of the parameter)."""
    p = copy.deepcopy(pipe)
    p.set_params(**{f"{n}__device": dev for n, e in p.steps if "device" in e.get_params()})
    net = p.steps[-1][1].net_
    net.module_.to(dev)
    net.device = dev
    return p.predict_proba(X)


def _module_proba(pipe, dev, X, side):
    import torch

    from sknnmfdiff import to_torch_module

    module = to_torch_module(pipe, device=dev).eval()
    module.manual_seed(0)
    with torch.no_grad():
        x = torch.as_tensor(X, dtype=torch.float32).reshape(-1, 1, side, side).to(dev)
        return torch.softmax(module(x), dim=1).cpu().numpy()


def _compare(p_ref, p_dev, tol):
    diff = float(np.abs(p_ref - p_dev).max())
    flips = p_ref.argmax(1) != p_dev.argmax(1)
    srt = np.sort(p_ref, axis=1)
    margin = srt[:, -1] - srt[:, -2]
    bad_flips = int(np.sum(flips & (margin > MARGIN)))
    ok = diff <= tol and bad_flips == 0
    return ok, f"max abs diff {diff:.2e} (tol {tol:g}), {int(flips.sum())} prediction(s) differ " \
               f"({bad_flips} outside the {MARGIN:g} margin)"


def _parity(pipe, dev, X, side, tol, tf32):
    import torch

    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    if not tf32:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        ok1, d1 = _compare(_proba_on(pipe, "cpu", X), _proba_on(pipe, dev, X), tol)
        ok2, d2 = _compare(_module_proba(pipe, "cpu", X, side), _module_proba(pipe, dev, X, side), tol)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old
    return ("PASS" if ok1 and ok2 else "FAIL"), f"predict_proba: {d1}; torch module: {d2}"


def _load_in_child(kind, pipe, X, tmp):
    import joblib

    tmp = Path(tmp)
    model = tmp / f"model-{kind}"
    if kind == "joblib":
        joblib.dump(pipe, model)
    else:
        import sknnmfdiff

        sknnmfdiff.save(pipe, model)
    np.save(tmp / "X.npy", X)
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", _CHILD, kind, str(model), str(tmp / "X.npy"),
                          str(tmp / "p.npy")], capture_output=True, text=True, env=env, timeout=300)
    if out.returncode != 0:
        return "FAIL", "child failed: " + (out.stderr.strip().splitlines() or ["?"])[-1][:200]
    expected = _proba_on(pipe, "cpu", X)
    diff = float(np.abs(np.load(tmp / "p.npy") - expected).max())
    warned = json.loads(out.stdout.strip().splitlines()[-1])
    status = "PASS" if diff <= 1e-5 else "FAIL"
    return status, (f"max abs diff to this process's CPU predict_proba {diff:.2e} (tol 1e-5); "
                    f"warnings in the child: {'; '.join(warned) or 'none'}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.environ.get(
        "SKNNMFDIFF_DATA", str(ROOT.parent / "shared" / "data" / "brain-tumor-mri")))
    ap.add_argument("--phantom", action="store_true", help="synthetic phantom data")
    ap.add_argument("--tiny", action="store_true", help="tiny phantom data, light attacks")
    ap.add_argument("--device", default="cuda", help="device checked (default: cuda)")
    ap.add_argument("--out", default=None, help="also write the report (Markdown) here")
    args = ap.parse_args(argv)

    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("CUDA is not available on this machine: nothing to check (a dry run of every "
              "step on the CPU: --device cpu --tiny).")
        return 0
    import sknnmfdiff
    from sknnmfdiff._runs import machine_info

    dev = args.device
    log = print
    checks = Checks()
    t_all = time.perf_counter()
    Xtr, ytr, Xte, yte, what = _data(args, log)
    side = int(round(Xtr.shape[1] ** 0.5))
    fast, attack, grid = _settings(args)
    log(f"{what}; device {dev}; sknnmfdiff {sknnmfdiff.__version__}, torch {torch.__version__}")
    for d in dict.fromkeys([dev, "cpu"]):  # imports, CUDA context, kernels: not timed
        _warm_up(d, Xtr, ytr, Xte, yte)

    state = {}

    fast_all = dict(fast)
    models, fit_seconds = {}, {}

    def fit(name):
        t0 = time.perf_counter()
        models[name] = _fit_both(dev, Xtr, ytr, fast_all, only=name)[name][0]
        fit_seconds[name] = time.perf_counter() - t0
        return "PASS", f"on {dev}, {fit_seconds[name]:.1f} s"

    for name in ("baseline", "defended"):
        checks.run(f"fit {name}", fit, name)
    if len(models) < 2:
        print(checks.table())
        return 1
    state["t_fit"] = sum(fit_seconds.values())

    def paper(name, space):
        rep, sec = state["paper"][(name, space)]
        clean, rob = _acc(rep)
        ok = np.isfinite([clean, rob]).all()
        return ("PASS" if ok else "FAIL"), f"clean {clean:.4f}, robust {rob:.4f} ({sec:.1f} s)"

    def run_paper():
        t0 = time.perf_counter()
        state["paper"] = _paper_evals(models, dev, Xte, yte, attack)
        state["t_paper"] = time.perf_counter() - t0
        return "PASS", f"4 evaluations in {state['t_paper']:.1f} s"

    if checks.run("paper protocol, both spaces", run_paper) == "PASS":
        for space in ("feature", "pixel"):
            for name in models:
                checks.run(f"paper protocol, {name}, {space} space", paper, name, space)

    def adaptive(name):
        from sknnmfdiff import evaluate_robustness

        rep = evaluate_robustness(models[name], Xte, yte, eps=0.10, protocol="adaptive",
                                  space="feature", device=dev, progress=False, random_state=0,
                                  grid_attack_kwargs=grid, **attack)
        clean, rob = _acc(rep)
        errors = [c["name"] for c in rep.checks if c.get("status") == "error"]
        verdict = {s: sum(c.get("status") == s for c in rep.checks)
                   for s in ("passed", "failed", "skipped")}
        status = "FAIL" if errors or not np.isfinite([clean, rob]).all() else "PASS"
        return status, (f"clean {clean:.4f}, robust {rob:.4f}; checks {verdict}"
                        + (f"; raised: {errors}" if errors else "")
                        + (f"; failed: {rep.failed_checks}" if rep.failed_checks else ""))

    for name in models:
        checks.run(f"adaptive protocol, {name}, feature space (with checks)", adaptive, name)
    for name, pipe in models.items():
        checks.run(f"parity {name}, {dev} vs cpu", _parity, pipe, dev, Xte, side, TOL, False)
    if dev.startswith("cuda"):
        checks.run(f"parity defended, {dev} vs cpu, torch's default TF32",
                   _parity, models["defended"], dev, Xte, side, TOL_TF32, True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, pipe in models.items():
            checks.run(f"load joblib without CUDA, {name}", _load_in_child, "joblib", pipe, Xte,
                       tmp)
            if hasattr(sknnmfdiff, "save") and hasattr(sknnmfdiff, "load"):
                checks.run(f"load new format without CUDA, {name}", _load_in_child, "new", pipe,
                           Xte, tmp)
            else:
                checks.rows.append((f"load new format without CUDA, {name}", "not available", 0.0,
                                    "this sknnmfdiff has no save/load"))
                print(f"[not available] load new format without CUDA, {name}")

    def timing():
        t_dev = state["t_fit"] + state["t_paper"]
        t0 = time.perf_counter()
        cpu_models = {n: m for n, (m, _) in _fit_both("cpu", Xtr, ytr, fast).items()}
        t_cpu_fit = time.perf_counter() - t0
        t0 = time.perf_counter()
        cpu_paper = _paper_evals(cpu_models, "cpu", Xte, yte, attack)
        t_cpu = t_cpu_fit + time.perf_counter() - t0
        state["cpu"] = (cpu_models, cpu_paper)
        accs = "; ".join(f"{n}/{s}: robust {_acc(state['paper'][(n, s)][0])[1]:.4f} on {dev}, "
                         f"{_acc(r)[1]:.4f} on cpu" for (n, s), (r, _) in cpu_paper.items())
        target = ("n/a (not a GPU)" if not dev.startswith("cuda")
                  else "met" if t_dev <= TARGET_S else "missed")
        return "PASS", (f"{dev} {t_dev:.1f} s (fit {state['t_fit']:.1f} + attacks "
                        f"{state['t_paper']:.1f}), cpu {t_cpu:.1f} s ({torch.get_num_threads()} "
                        f"threads), cpu/{dev} = {t_cpu / t_dev:.2f}x; target <= {TARGET_S:g} s on "
                        f"a GPU: {target}; {accs}")

    if "t_paper" in state:
        checks.run("time paper protocol (fit both + attack and score, both spaces)", timing)

    def nmf_fit():
        cpu_models, _ = state["cpu"]
        a = models["baseline"].named_steps["nmf"].transform(Xte)
        b = cpu_models["baseline"].named_steps["nmf"].transform(Xte)
        diff = float(np.abs(a - b).max())
        return ("PASS" if np.allclose(a, b, rtol=1e-3, atol=1e-3) else "FAIL"), (
            f"features of the NMF fitted on {dev} vs on cpu: max abs diff {diff:.2e} "
            "(tol 1e-3: the multiplicative updates sum in another order)")

    if "cpu" in state:
        checks.run(f"NMF fit, {dev} vs cpu", nmf_fit)

    info = machine_info()
    report = "\n".join([
        "# GPU check", "",
        f"`python benchmarks/gpu_check.py {' '.join(argv if argv is not None else sys.argv[1:])}`"
        f", {_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds')}", "",
        f"- data: {what}",
        f"- device: {dev} ({info['cuda'] or 'no CUDA'}); CPU: {info['processor']}, "
        f"{info['cpu_count']} cores, {info['torch_threads']} torch threads",
        f"- sknnmfdiff {sknnmfdiff.__version__}, torch {torch.__version__}"
        + (f", CUDA {torch.version.cuda}" if torch.version.cuda else ""),
        f"- parity tolerance {TOL:g} on probabilities with TF32 off ({TOL_TF32:g} with torch's "
        f"default TF32), flips allowed only within a {MARGIN:g} margin",
        f"- total {time.perf_counter() - t_all:.1f} s", "",
        checks.table(), "",
        f"Result: {'FAILED: ' + ', '.join(checks.failed) if checks.failed else 'all steps passed'}",
    ])
    print("\n" + report)
    if args.out:
        Path(args.out).write_text(report + "\n")
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
