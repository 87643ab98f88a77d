"""The sknnmfdiff command: help, errors with exit status 2, and each subcommand."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sknnmfdiff.cli import main


@pytest.mark.parametrize("sub", [[], ["paper"], ["fit"], ["evaluate"], ["predict"]])
def test_help(sub, capsys):
    with pytest.raises(SystemExit) as exc:
        main(sub + ["--help"])
    assert exc.value.code == 0
    assert "usage: sknnmfdiff" in capsys.readouterr().out


def test_python_dash_m_entry_point():
    out = subprocess.run(
        [sys.executable, "-m", "sknnmfdiff", "--version"], capture_output=True, text=True
    )
    assert out.returncode == 0 and out.stdout.startswith("sknnmfdiff ")


@pytest.mark.parametrize(
    "argv",
    [["paper", "--eps", "-1"], ["paper", "--image-size", "abc"],
     ["evaluate", "m.joblib", "--data", "d", "--max-images", "-3"], ["paper", "--nope"]],
)
def test_bad_flag_is_one_line_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "error:" in err[0]


def test_k_larger_than_rank_exit_2(capsys):
    assert main(["paper", "--rank", "5", "--k", "8", "--out", "unused"]) == 2
    assert "--k 8" in capsys.readouterr().err


def test_out_is_a_file_exit_2(tmp_path, capsys):
    f = tmp_path / "file.png"
    f.write_text("x")
    assert main(["paper", "--out", str(f), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "file.png" in err[0]


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="CUDA present")
@pytest.mark.parametrize("cmd", ["paper", "fit", "evaluate", "predict"])
def test_cuda_without_cuda_exit_2(cmd, tmp_path, capsys):
    (tmp_path / "m.joblib").write_text("x")  # the files exist: the device is what is wrong
    (tmp_path / "x.png").write_text("x")
    argv = {
        "paper": ["paper", "--out", str(tmp_path / "o")],
        "fit": ["fit", "--data", str(tmp_path), "--out", str(tmp_path / "o")],
        "evaluate": ["evaluate", str(tmp_path / "m.joblib"), "--data", str(tmp_path),
                     "--out", str(tmp_path / "o")],
        "predict": ["predict", str(tmp_path / "m.joblib"), str(tmp_path / "x.png")],
    }[cmd]
    assert main(argv + ["--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "CUDA is not available" in err[0]


def test_bad_path_is_one_line_exit_2(tmp_path, capsys):
    assert main(["paper", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope" in err[0] and "Traceback" not in err[0]


def test_empty_folder_is_one_line_exit_2(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    assert main(["fit", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "data" in err[0]


def test_bad_model_file_exit_2(tmp_path, capsys):
    bad = tmp_path / "model.joblib"
    bad.write_text("not a model")
    img = tmp_path / "a.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(img)
    assert main(["predict", str(bad), str(img)]) == 2
    err = capsys.readouterr().err
    assert "not a model file or joblib file written by sknnmfdiff" in err


class _Unknown:
    """A transformer sknnmfdiff does not know (module level, so the model file can name it)."""

    def fit(self, X, y=None):
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def transform(self, X):
        return np.asarray(X)

    def get_params(self, deep=True):
        return {}


def test_model_file_with_an_unknown_type_needs_trust(tmp_path, capsys):
    """The refusal names the type and the flag that loads it; --trust loads it."""
    import sknnmfdiff
    from sklearn.pipeline import Pipeline

    from sknnmfdiff import make_baseline_pipeline, make_phantom_mri

    b = make_phantom_mri(60, image_size=16, random_state=0)
    base = make_baseline_pipeline(n_components=6, k=4, nmf__max_iter=30, clf__max_epochs=3)
    pipe = Pipeline([("pre", _Unknown()), *base.steps]).fit(b.data, b.target)
    model = sknnmfdiff.save(pipe, tmp_path / "m.sknnmfdiff")
    img = tmp_path / "a.png"
    Image.fromarray((b.images[0] * 255).astype(np.uint8)).save(img)
    name = f"{__name__}._Unknown"
    assert main(["predict", str(model), str(img)]) == 2
    err = capsys.readouterr().err
    assert name in err and f"rerun with --trust {name}" in err and len(err.strip().splitlines()) == 1
    assert main(["predict", str(model), str(img), "--trust", name]) == 0
    cls = capsys.readouterr().out.split("\t")[1]
    assert cls == ("tumour" if pipe.predict(b.data[:1])[0] else "no tumour")
    import joblib  # --trust means nothing for joblib, which is not checked: say so

    joblib.dump(pipe, tmp_path / "m.joblib")
    assert main(["predict", str(tmp_path / "m.joblib"), str(img), "--trust", name]) == 0
    assert "--trust does not apply" in capsys.readouterr().err


@pytest.fixture(scope="module")
def phantom_folder(tmp_path_factory):
    """A yes/no folder of phantom slices written as PNG."""
    from sknnmfdiff import make_phantom_mri

    root = tmp_path_factory.mktemp("phantom")
    b = make_phantom_mri(80, image_size=32, random_state=0)
    for i, (img, label) in enumerate(zip(b.images, b.target)):
        d = root / ("yes" if label else "no")
        d.mkdir(exist_ok=True)
        Image.fromarray((img * 255).astype(np.uint8)).save(d / f"{i:03d}.png")
    return root


def test_fit_predict_evaluate(phantom_folder, tmp_path, capsys):
    model_dir = tmp_path / "model"
    args = ["fit", "--data", str(phantom_folder), "--image-size", "32", "--rank", "6",
            "--k", "4", "--t", "10", "--out", str(model_dir), "--quiet"]
    assert main(args) == 0
    model = model_dir / "model.sknnmfdiff"
    assert model.is_file()
    files = sorted(str(p) for p in (phantom_folder / "yes").glob("*.png"))[:3]
    assert main(["predict", str(model), *files]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    for line, f in zip(lines, files):
        name, cls, p = line.split("\t")
        assert name == f and cls in ("no tumour", "tumour") and 0.5 <= float(p) <= 1.0
    assert main(["predict", str(model), *files, "--out", str(tmp_path / "pred"), "--quiet"]) == 0
    assert capsys.readouterr().out == ""
    csv_lines = (tmp_path / "pred" / "predictions.csv").read_text().strip().splitlines()
    assert csv_lines[0] == "file,class,probability,out_of_distribution" and len(csv_lines) == 4
    assert [c.split(",")[1] for c in csv_lines[1:]] == [line.split("\t")[1] for line in lines]
    out = tmp_path / "eval"
    assert main(["evaluate", str(model), "--data", str(phantom_folder), "--max-images", "12",
                 "--space", "feature", "--protocol", "paper", "--out", str(out), "--quiet"]) == 0
    rep = json.loads((out / "evaluation.json").read_text())
    assert rep["threat_model"]["space"] == "feature"
    assert 0.0 <= rep["robust"][rep["primary_rule"]]["accuracy"] <= 1.0
    # evaluation.json names the full model attacked, the purifier's settings included
    assert rep["model"]["purifier"]["t"] == 10 and rep["model"]["purifier"]["n_steps"] == 1000
    assert {"n_eot", "antithetic"} <= set(rep["model"]["purifier"])
    assert [s["name"] for s in rep["model"]["steps"]] == ["nmf", "select", "purify", "clf"]


def test_fit_formats_and_clinical_inputs(phantom_folder, tmp_path, capsys):
    """fit writes the package's format by default and joblib on request; predict and
    evaluate read both (told apart by content, not suffix) and read DICOM and NIfTI."""
    from _clinical_helpers import write_dicom, write_nifti

    from sknnmfdiff.model_file import is_model_file

    models = {}
    for fmt in ("sknnmfdiff", "joblib"):
        out = tmp_path / fmt
        args = ["fit", "--data", str(phantom_folder), "--image-size", "32", "--rank", "6",
                "--k", "4", "--t", "10", "--out", str(out), "--quiet"]
        assert main(args + ([] if fmt == "sknnmfdiff" else ["--format", "joblib"])) == 0
        (models[fmt],) = out.iterdir()
    assert models["sknnmfdiff"].name == "model.sknnmfdiff" and is_model_file(models["sknnmfdiff"])
    assert models["joblib"].name == "model.joblib" and not is_model_file(models["joblib"])
    renamed = models["sknnmfdiff"].rename(tmp_path / "model.bin")  # content, not suffix
    png = sorted((phantom_folder / "yes").glob("*.png"))[0]
    pixels = np.asarray(Image.open(png))
    dcm = write_dicom(tmp_path / "scan.dcm", pixels.astype(np.uint16) * 16, bits_stored=12,
                      WindowCenter=2040, WindowWidth=4081)  # the 8-bit range, x 16
    nii = write_nifti(tmp_path / "scan.nii.gz", np.stack([pixels[::-1, ::-1].T] * 3, axis=2),
                      cal_min=0, cal_max=255)
    outputs = []
    for model in (renamed, models["joblib"]):
        capsys.readouterr()
        assert main(["predict", str(model), str(png), str(dcm), str(nii)]) == 0
        lines = capsys.readouterr().out.strip().splitlines()
        assert [line.split("\t")[0] for line in lines] == [str(png), str(dcm), str(nii)]
        outputs.append([line.split("\t")[1:] for line in lines])
        probs = [float(p) for _, p in outputs[-1]]
        # The DICOM and the NIfTI slice hold the PNG's pixels: the same prediction.
        assert outputs[-1][1][0] == outputs[-1][0][0] == outputs[-1][2][0]
        np.testing.assert_allclose(probs, probs[0], atol=1e-3)
    assert outputs[0] == outputs[1]  # both formats hold the same model
    assert main(["evaluate", str(renamed), "--data", str(phantom_folder), "--max-images", "6",
                 "--space", "feature", "--protocol", "paper", "--out", str(tmp_path / "e"),
                 "--quiet"]) == 0


def test_paper_on_phantom_writes_everything(tmp_path, capsys, monkeypatch):
    out = tmp_path / "study"
    args = ["paper", "--phantom-samples", "120", "--image-size", "32", "--rank", "6", "--k", "4",
            "--space", "feature", "--protocol", "paper", "--fast", "--out", str(out), "--quiet"]
    assert main(args) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["data"]["synthetic"] is True
    assert set(res["evaluations"]) == {"feature-paper-baseline", "feature-paper-defended"}
    for ev in res["evaluations"].values():  # every robust figure says if a stronger attack lowers it
        plateau = {c["name"]: c for c in ev["checks"]}["attack_strength_plateau"]
        assert plateau["status"] in ("passed", "failed") and plateau["details"]["form"] == "nested"
    report = (out / "report.md").read_text()
    assert "SYNTHETIC DATA" in report and "Sanity checks" in report
    assert "(antithetic noise draws; classifier trained on purified features)" in report
    for name in ("nmf_basis", "class_activation", "feature_scores", "denoising_error",
                 "robustness_curve_feature"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 0
    assert (out / "models" / "baseline.joblib").is_file()
    assert (out / "models" / "defended.joblib").is_file()
    # The models the study saves work with predict.
    img = tmp_path / "slice.png"
    Image.fromarray(np.full((40, 40), 90, np.uint8)).save(img)
    capsys.readouterr()
    assert main(["predict", str(out / "models" / "defended.joblib"), str(img)]) == 0
    out_err = capsys.readouterr()
    name, cls, p = out_err.out.strip().split("\t")
    assert cls in ("no tumour", "tumour")
    # ... and say what they were trained on: synthetic slices; a flat image is flagged.
    assert "SYNTHETIC phantom" in out_err.err and "only 1 grey levels" in out_err.err
    # A rerun in the same folder reuses the finished evaluations.
    (done,) = (out / "evaluations").glob("*/feature-paper-defended.json")
    before = done.read_text()
    assert main(args) == 0
    assert done.read_text() == before
    # Other settings in the same folder never reuse them.
    assert main(args + ["--eps", "0.05"]) == 0
    assert len(list((out / "evaluations").glob("*/feature-paper-defended.json"))) == 2
    # Nor does a model that differs in a parameter the study does not set (as after a
    # change of a default in the package).
    import sknnmfdiff.pipeline

    make = sknnmfdiff.pipeline.make_paper_pipeline
    monkeypatch.setattr(sknnmfdiff.pipeline, "make_paper_pipeline",
                        lambda **kw: make(**kw, clf__dropout=0.2))
    assert main(args) == 0
    assert len(list((out / "evaluations").glob("*/feature-paper-defended.json"))) == 3
    monkeypatch.undo()
    assert main(args + ["--independent-draws"]) == 0
    assert len(list((out / "evaluations").glob("*/feature-paper-defended.json"))) == 4
    assert "(independent noise draws;" in (out / "report.md").read_text()


def test_bad_image_stops_or_is_skipped(phantom_folder, tmp_path, capsys):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(phantom_folder, data)
    (data / "yes" / "broken.png").write_text("not an image")
    args = ["fit", "--data", str(data), "--image-size", "32", "--rank", "6", "--k", "4",
            "--t", "10", "--out", str(tmp_path / "m"), "--quiet"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "broken.png" in err[0] and "--skip-bad-images" in err[0]
    with pytest.warns(UserWarning, match="broken.png"):
        assert main(args + ["--skip-bad-images"]) == 0


@pytest.mark.parametrize(
    "flags, antithetic, train_on_purified",
    [([], True, True), (["--independent-draws"], False, True), (["--clean-train"], True, False),
     (["--paper-purifier"], False, False)],
)
def test_fit_purifier_flags(phantom_folder, tmp_path, flags, antithetic, train_on_purified):
    from sknnmfdiff import load

    out = tmp_path / "m"
    args = ["fit", "--data", str(phantom_folder), "--image-size", "32", "--rank", "6", "--k", "4",
            "--t", "10", "--out", str(out), "--quiet", *flags]
    assert main(args) == 0
    purify = load(out / "model.sknnmfdiff")["model"].named_steps["purify"]
    assert purify.antithetic is antithetic
    assert purify.train_on_purified is train_on_purified


def test_paper_rerun_after_data_or_code_change_does_not_reuse(phantom_folder, tmp_path, monkeypatch):
    """Same command, same folder path: other images, or other package code, must give
    new evaluations (and checkpoints), never the finished ones of the earlier run."""
    import shutil

    import sknnmfdiff._runs

    data = tmp_path / "data"
    shutil.copytree(phantom_folder, data)
    out = tmp_path / "out"
    args = ["paper", "--data", str(data), "--image-size", "32", "--rank", "6", "--k", "4",
            "--n-per-class", "30", "--space", "feature", "--protocol", "paper", "--fast",
            "--out", str(out), "--quiet"]

    def n_evaluations():
        return len(list((out / "evaluations").glob("*/feature-paper-defended.json")))

    assert main(args) == 0
    assert main(args) == 0
    assert n_evaluations() == 1  # identical rerun: reused
    # Other pixels behind the same file names.
    for path in sorted((data / "yes").glob("*.png")):
        img = np.asarray(Image.open(path))
        Image.fromarray((255 - img).astype(np.uint8)).save(path)
    assert main(args) == 0
    assert n_evaluations() == 2
    # Other package code (the version string alone does not change in development).
    monkeypatch.setattr(sknnmfdiff._runs, "source_digest", lambda: "changed")
    assert main(args) == 0
    assert n_evaluations() == 3


def test_fit_baseline_rejects_purifier_flags(phantom_folder, tmp_path, capsys):
    args = ["fit", "--data", str(phantom_folder), "--baseline", "--paper-purifier",
            "--out", str(tmp_path / "m"), "--quiet"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--baseline" in err[0]


@pytest.mark.parametrize("antithetic, word", [(True, "antithetic"), (np.False_, "independent"),
                                              (np.True_, "antithetic")])
def test_report_names_the_purifier_settings(antithetic, word):
    """Model parameters are recorded as JSON values (numpy booleans included) and the
    report's settings line reads them, as well as the strings of earlier results files."""
    from sknnmfdiff import make_paper_pipeline
    from sknnmfdiff.report import _purifier_note
    from sknnmfdiff._runs import model_settings

    pipe = make_paper_pipeline(purify__antithetic=antithetic, purify__train_on_purified=False)
    settings = model_settings(pipe)
    params = dict((name, p) for name, _, p in settings)["purify"]
    assert params["antithetic"] is bool(antithetic)
    assert json.loads(json.dumps(settings)) == settings
    note = _purifier_note({"model_params": {"defended": settings}})
    assert f"({word} noise draws; classifier trained on clean features" in note
    old = [["purify", "x", {"antithetic": str(bool(antithetic)), "train_on_purified": "True"}]]
    assert f"({word} noise draws; classifier trained on purified" in _purifier_note(
        {"model_params": {"defended": old}})
    assert _purifier_note({}) == ""


def test_source_digest_covers_subpackages(tmp_path, monkeypatch):
    """A change in any source file of the package, sub-packages included, makes
    finished evaluations stale (the digest is part of their key)."""
    import shutil

    import sknnmfdiff._runs as runs

    pkg = tmp_path / "sknnmfdiff"
    shutil.copytree(Path(runs.__file__).parent, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(runs, "__file__", str(pkg / "_runs.py"))
    files = [p.relative_to(pkg).as_posix() for p in runs.source_files()]
    assert "evaluation/_attack.py" in files and "nn/_nnls.py" in files
    before = runs.source_digest()
    assert runs.source_digest() == before
    with open(pkg / "evaluation" / "_attack.py", "a") as fh:
        fh.write("\n# changed\n")
    assert runs.source_digest() != before


@pytest.mark.parametrize("defence", ["none", "adversarial", "smoothing"])
def test_fit_each_defence_then_predict_and_evaluate(defence, phantom_folder, tmp_path, capsys):
    model_dir = tmp_path / "model"
    assert main(["fit", "--data", str(phantom_folder), "--image-size", "32", "--rank", "6",
                 "--k", "4", "--defence", defence, "--out", str(model_dir), "--quiet"]) == 0
    from sknnmfdiff.cli import _load_model

    model = model_dir / "model.sknnmfdiff"
    last = _load_model(model)["model"].steps[-1][0]
    assert last == {"none": "clf", "adversarial": "adv", "smoothing": "smooth"}[defence]
    files = sorted(str(p) for p in (phantom_folder / "no").glob("*.png"))[:2]
    assert main(["predict", str(model), *files, "--seed", "1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and all(0.5 <= float(line.split("\t")[2]) <= 1.0 for line in lines)
    out = tmp_path / "eval"
    assert main(["evaluate", str(model), "--data", str(phantom_folder), "--max-images", "8", "--space", "feature", "--out", str(out), "--quiet"]) == 0
    rep = json.loads((out / "evaluation.json").read_text())
    assert rep["threat_model"]["randomized"] is (defence == "smoothing")


def test_fit_defence_contradictions_are_refused(phantom_folder, tmp_path, capsys):
    base = ["fit", "--data", str(phantom_folder), "--out", str(tmp_path / "m"), "--quiet"]
    assert main(base + ["--baseline", "--defence", "smoothing"]) == 2
    assert main(base + ["--defence", "adversarial", "--clean-train"]) == 2
    assert main(base + ["--defence", "none", "--n-eot", "4"]) == 2  # purifier flags, no purifier
    assert main(base + ["--defence", "smoothing", "--t", "20"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and "--baseline" in err[0] and "--defence adversarial" in err[1]
    assert "--n-eot" in err[2] and "--defence none" in err[2] and "--defence smoothing" in err[3]
    assert not (tmp_path / "m").exists()


def test_paper_writes_the_defences_table(tmp_path):
    out = tmp_path / "study"
    args = ["paper", "--phantom-samples", "120", "--image-size", "32", "--rank", "6", "--k", "4",
            "--space", "feature", "--protocol", "adaptive", "--fast", "--out", str(out),
            "--quiet", "--defences", "none", "adversarial", "smoothing"]
    assert main(args) == 0
    res = json.loads((out / "results.json").read_text())
    rows = res["defences"]["rows"]
    assert [r["defence"] for r in rows] == ["none", "adversarial", "smoothing"]
    assert all(0 <= r["robust_feature"] <= r["clean"] <= 1 for r in rows)
    cert = res["defences"]["certificate"]
    assert cert["check"]["name"] == "certified_bound" and cert["check"]["passed"] is not False
    assert "certified" in rows[2] and "certified" not in rows[0]
    report = (out / "report.md").read_text()
    assert "## Defences under the adaptive attack" in report and "not certifiable" in report
    assert {"defences_feature", "certified_accuracy"} <= set(res["figures"])
    ev = res["evaluations"]
    assert {"feature-adaptive-adversarial", "feature-adaptive-smoothing"} <= set(ev)
    assert "certified_bound" in [c["name"] for c in ev["feature-adaptive-smoothing"]["checks"]]
