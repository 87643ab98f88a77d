"""The command line as a new user meets it: hints that work, bad input refused before
torch is imported and before anything is written, errors that name the flags typed, help
for every flag, stage messages, subsets, lighter checks, and signals."""

import argparse
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from sknnmfdiff.cli import _CHECK_OPTIONS, _options, build_parser, main
from sknnmfdiff._cli_parser import CHECKS

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ["paper", "sweep", "fit", "evaluate", "predict", "export"]


def _subparsers(parser):
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices


def _write_folder(root, n=40, size=32, broken=False):
    from sknnmfdiff import make_phantom_mri

    b = make_phantom_mri(n, image_size=size, random_state=0)
    for i, (img, label) in enumerate(zip(b.images, b.target)):
        d = root / ("yes" if label else "no")
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray((img * 255).astype(np.uint8)).save(d / f"{i:03d}.png")
    if broken:
        (root / "yes" / "broken.png").write_text("not an image")
    return root


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("usability")
    good = _write_folder(root / "good", n=60)
    bad = _write_folder(root / "bad", n=20, broken=True)
    model_dir = root / "model"
    assert main(["fit", "--data", str(good), "--image-size", "32", "--rank", "6", "--k", "4",
                 "--defence", "none", "--out", str(model_dir), "--quiet"]) == 0
    return SimpleNamespace(root=root, good=good, bad=bad, model=model_dir / "model.sknnmfdiff")


# -- 1. every hint an error gives is valid for the command that printed it --------------

def _hint_cases(f, tmp):
    out = str(tmp / "o")
    return [
        ["paper", "--data", str(f.bad), "--image-size", "32", "--out", out],
        ["paper", "--max-images", "10", "--out", out],
        ["sweep", "--scheduler", "tcp://127.0.0.1:1", "--out", out],
        ["sweep", "--quick", "--data", str(f.good), "--out", out],
        ["sweep", "--backend", "dask", "--n-jobs", "2", "--out", out],
        ["sweep", "--workers", "3", "--out", out],
        ["fit", "--data", str(f.bad), "--image-size", "32", "--out", out],
        ["fit", "--data", str(f.good), "--baseline", "--defence", "smoothing", "--out", out],
        ["fit", "--data", str(f.good), "--rank", "0"],
        ["evaluate", str(f.model), "--data", str(f.bad), "--out", out],
        ["predict", str(f.model), str(f.bad / "yes" / "broken.png")],
        ["export", str(f.model), "--onnx", str(tmp / "m.onnx"), "--check-data", str(f.bad)],
    ]


def _run(argv, capsys):
    try:
        rc = main(argv)
    except SystemExit as exc:
        rc = exc.code
    return rc, capsys.readouterr().err


def _drop(argv, flag):
    i = argv.index(flag)
    return argv[:i] + argv[i + 2:]


def test_every_hint_is_valid_for_its_command(folders, tmp_path, capsys):
    parser = build_parser()
    checked = 0
    for argv in _hint_cases(folders, tmp_path):
        if argv[0] == "export":
            pytest.importorskip("onnxscript")
        rc, err = _run(argv, capsys)
        assert rc == 2, (argv, err)
        line = err.strip()
        assert len(line.splitlines()) == 1, err
        options = _options(parser, argv[0])
        for flag in re.findall(r"(?<![\w-])--[a-z][a-z-]*", line):
            assert flag in options, f"{argv[0]} error names {flag}, not a flag of it: {line}"
        hinted = []
        for flag in re.findall(r"pass (--[a-z-]+)", line):
            hinted.append(argv + [flag])
        if m := re.search(r"leave out (--[a-z-]+)", line):
            hinted.append(_drop(argv, m.group(1)))
        if "needs --backend dask" in line:
            hinted.append(argv + ["--backend", "dask"])
        if m := re.search(r"see '(sknnmfdiff [a-z]+ --help)'", line):
            with pytest.raises(SystemExit) as exc:
                parser.parse_args(m.group(1).split()[1:])
            assert exc.value.code == 0
            capsys.readouterr()
            checked += 1
        for new in hinted:  # the hinted command line parses
            assert parser.parse_args(new).command == argv[0]
            checked += 1
        if argv[0] in ("predict", "export"):  # no such flag there: no such hint
            assert "--skip-bad-images" not in line and "broken.png" in line
    assert checked >= 6


# -- 2. bad input: refused before torch is imported, and nothing is created --------------

def _bad_argvs(tmp):
    (tmp / "empty").mkdir()
    (tmp / "m.sknnmfdiff").write_text("x")
    out = str(tmp / "out")
    return [
        ["fit", "--data", str(tmp / "missing"), "--out", out],
        ["fit", "--data", str(tmp / "empty"), "--rank", "5", "--k", "8", "--out", out],
        ["paper", "--data", str(tmp / "missing"), "--out", out],
        ["paper", "--max-images", "10", "--out", out],
        ["sweep", "--backend", "local", "--workers", "3", "--out", out],
        ["sweep", "--quick", "--data", str(tmp / "empty"), "--out", out],
        ["evaluate", str(tmp / "missing.sknnmfdiff"), "--data", str(tmp / "empty"), "--out", out],
        ["evaluate", str(tmp / "m.sknnmfdiff"), "--data", str(tmp / "missing"), "--out", out],
        ["predict", str(tmp / "m.sknnmfdiff"), str(tmp / "missing.png"), "--out", out],
        ["export", str(tmp / "missing.sknnmfdiff"), "--onnx", str(tmp / "x.onnx")],
        ["export", str(tmp / "m.sknnmfdiff"), "--onnx", str(tmp / "nope" / "x.onnx")],
    ]


def test_bad_input_imports_no_torch_and_creates_nothing(tmp_path):
    argvs = _bad_argvs(tmp_path)
    script = textwrap.dedent(f"""
        import json, sys
        from sknnmfdiff.cli import main
        rows = []
        for argv in {argvs!r}:
            rows.append([main(argv), "torch" in sys.modules])
        print(json.dumps(rows))
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                         timeout=120)
    rows = json.loads(res.stdout.strip().splitlines()[-1])
    errors = res.stderr.strip().splitlines()
    assert len(errors) == len(argvs)
    for argv, (rc, torch_loaded), err in zip(argvs, rows, errors):
        assert rc == 2 and not torch_loaded, (argv, err)
    assert not (tmp_path / "out").exists()


def test_bad_images_leave_no_output_folder(folders, tmp_path, capsys):
    for argv in (["fit", "--data", str(folders.bad), "--image-size", "32"],
                 ["evaluate", str(folders.model), "--data", str(folders.bad)]):
        assert main(argv + ["--out", str(tmp_path / argv[0]), "--quiet"]) == 2
        assert not (tmp_path / argv[0]).exists()
    capsys.readouterr()


# -- 3. errors name the flags typed -------------------------------------------------------

@pytest.mark.parametrize("argv, flag", [
    (["fit", "--data", "d", "--rank", "0"], "--rank"),
    (["fit", "--data", "d", "--k", "0"], "--k"),
    (["fit", "--data", "d", "--t", "1001"], "--t"),
    (["fit", "--data", "d", "--n-eot", "0"], "--n-eot"),
    (["fit", "--data", "d", "--image-size", "4"], "--image-size"),
    (["fit", "--data", "d", "--max-images", "0"], "--max-images"),
    (["paper", "--n-per-class", "0"], "--n-per-class"),
    (["paper", "--image-size", "4"], "--image-size"),
    (["paper", "--phantom-samples", "3"], "--phantom-samples"),
    (["paper", "--rank", "-2"], "--rank"),
    (["paper", "--eps", "1.5"], "--eps"),
    (["sweep", "--cv", "1"], "--cv"),
    (["sweep", "--t", "5000"], "--t"),
    (["sweep", "--image-size", "4"], "--image-size"),
    (["evaluate", "m", "--data", "d", "--eps", "nan"], "--eps"),
    (["predict", "m", "x.png", "--seed", "-1"], "--seed"),
    (["export", "m", "--onnx", "x.onnx", "--nnls-max-iter", "0"], "--nnls-max-iter"),
])
def test_numeric_flag_errors_name_the_flag(argv, flag, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"argument {flag}" in err
    assert "parameter" not in err


def test_n_per_class_beyond_the_data_names_the_flag(folders, tmp_path, capsys):
    argv = ["paper", "--data", str(folders.good), "--image-size", "32", "--n-per-class", "100",
            "--out", str(tmp_path / "o"), "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--n-per-class 100" in err and "n_per_class" not in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("extra, words", [
    (["--backend", "dask", "--n-jobs", "2"], "--n-jobs"),
    (["--backend", "local", "--workers", "3"], "--workers"),
    (["--backend", "dask", "--scheduler", "tcp://127.0.0.1:1", "--workers", "3"], "--workers"),
])
def test_sweep_refuses_flags_its_backend_ignores(extra, words, tmp_path, capsys):
    assert main(["sweep", "--quick", "--out", str(tmp_path / "o"), *extra]) == 2
    assert words in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("address", ["tcp://127.0.0.1:1", "not an address"])
def test_sweep_bad_scheduler_fails_fast_naming_the_flag(address, tmp_path, capsys):
    pytest.importorskip("distributed")
    t0 = time.perf_counter()
    assert main(["sweep", "--quick", "--backend", "dask", "--scheduler", address,
                 "--out", str(tmp_path / "o")]) == 2
    assert time.perf_counter() - t0 < 20  # not the 30 s default connect timeout (loose bound)
    err = capsys.readouterr().err
    assert f"--scheduler {address}" in err
    assert not (tmp_path / "o").exists()


# -- 4. help: every flag explained with its default, examples that parse ------------------

def test_every_flag_has_help_and_default_and_every_command_examples():
    parser = build_parser()
    subs = _subparsers(parser)
    assert set(subs) == set(COMMANDS)
    for name, sub in subs.items():
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            label = f"{name} {action.dest}"
            assert action.help and len(action.help) > 10, label
            if action.option_strings and not isinstance(action, argparse._StoreTrueAction) \
                    and not action.required:
                assert "default" in action.help, f"{label}: no default shown"
        examples = [line.strip() for line in (sub.epilog or "").splitlines()
                    if line.strip().startswith("sknnmfdiff ")]
        assert sub.epilog.startswith("examples:") and examples, name
        for line in examples:
            words = shlex.split(line, comments=True)
            assert words[1] == name
            assert parser.parse_args(words[1:]).command == name
        text = sub.format_help()
        assert "examples:" in text and "(default: " in text


# -- 5. stage messages, subsets, lighter checks, a bar that moves per stage ---------------

def test_stratified_subset_is_seeded_and_keeps_class_shares():
    from sknnmfdiff._runs import stratified_subset
    from sklearn.utils import Bunch

    y = np.array([0] * 30 + [1] * 70)
    b = Bunch(data=np.arange(200).reshape(100, 2), target=y, filenames=np.arange(100).astype(str),
              target_names=np.array(["no", "yes"]))
    s = stratified_subset(b, 20, seed=3)
    assert len(s.target) == 20 and np.bincount(s.target).tolist() == [6, 14]
    np.testing.assert_array_equal(s.data[:, 0] // 2, s.subset)
    assert (s.filenames == s.subset.astype(str)).all()
    assert (stratified_subset(b, 20, seed=3).subset == s.subset).all()
    assert not (stratified_subset(b, 20, seed=4).subset == s.subset).all()
    assert stratified_subset(b, 100, seed=0) is b
    assert np.bincount(stratified_subset(b, 2, seed=0).target).tolist() == [1, 1]


def test_paper_max_images_takes_a_subset_of_the_folder(folders):
    from sknnmfdiff._runs import load_data

    cfg = SimpleNamespace(data=str(folders.good), image_size=32, phantom_samples=0,
                          n_per_class=None, near_duplicates=True, on_error="raise", seed=0,
                          max_images=30)
    bunch, split, summary, _ = load_data(cfg, log=lambda msg: None)
    assert summary["n_images"] == 30 and summary["max_images"] == 30
    assert summary["n_per_class"] == min(np.bincount(bunch.target))
    assert len(split.train) + len(split.val) + len(split.test) == 2 * summary["n_per_class"]


def test_fit_prints_stages_and_takes_max_images(folders, tmp_path, capsys):
    assert main(["fit", "--data", str(folders.good), "--image-size", "32", "--rank", "6",
                 "--k", "4", "--defence", "none", "--max-images", "30",
                 "--out", str(tmp_path / "m")]) == 0
    out = capsys.readouterr().out
    assert "Loaded 30 images" in out
    for stage in ("[1/3] fitting the KL-NMF basis", "[2/3] fitting the feature selection",
                  "[3/3] fitting the classifier", "Saved"):
        assert stage in out, out


def test_evaluate_checks_choice_and_stage_bar(folders, tmp_path, capsys):
    assert set(_CHECK_OPTIONS) == set(CHECKS)
    base = ["evaluate", str(folders.model), "--data", str(folders.good), "--max-images", "6",
            "--space", "feature"]
    assert main(base + ["--checks", "none", "--out", str(tmp_path / "none"), "--quiet"]) == 0
    assert json.loads((tmp_path / "none" / "evaluation.json").read_text())["checks"] == []
    capsys.readouterr()
    assert main(base + ["--checks", "light", "--out", str(tmp_path / "light")]) == 0
    cap = capsys.readouterr()
    rep = json.loads((tmp_path / "light" / "evaluation.json").read_text())
    assert [g["eps"] for g in rep["eps_grid"]] in ([0.0], [0.0, 0.1])
    plateau = {c["name"]: c for c in rep["checks"]}.get("attack_strength_plateau")
    assert plateau is None or plateau["status"] == "skipped"
    assert "Attacking (adaptive protocol, feature space" in cap.out
    assert "stage" in cap.err  # the bar counts attack stages, not batches


# -- 6. signals: one line, the conventional exit status -----------------------------------

@pytest.mark.parametrize("sig, status, how", [(signal.SIGTERM, 143, "SIGTERM"),
                                              (signal.SIGINT, 130, "Ctrl-C")])
def test_signal_prints_one_line_and_exits(sig, status, how, tmp_path):
    out = tmp_path / "sweep-out"
    script = textwrap.dedent(f"""
        import sys, time
        import sknnmfdiff.cli as cli
        def slow(args):
            print("ready", flush=True)
            time.sleep(60)
        cli._COMMANDS["sweep"] = slow
        sys.exit(cli.main(["sweep", "--quick", "--out", {str(out)!r}]))
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == status
    lines = err.strip().splitlines()
    assert len(lines) == 1 and f"interrupted ({how})" in lines[0]
    assert f"kept in {out}" in lines[0] and "rerun the same command" in lines[0]
