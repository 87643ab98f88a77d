"""The training record saved with a model and the warnings on images unlike the training
data (sknnmfdiff._input_checks; `sknnmfdiff predict` and `evaluate`)."""

import csv
import json

import numpy as np
import pytest
from PIL import Image

from sknnmfdiff import make_baseline_pipeline, make_phantom_mri, save
from sknnmfdiff._input_checks import (
    check_data_kind,
    check_images,
    check_inputs,
    training_record,
)
from sknnmfdiff.cli import main

SIDE = 32


@pytest.fixture(scope="module")
def phantom_model():
    """A baseline pipeline fitted on 120 phantom slices of 32 x 32, and its record."""
    b = make_phantom_mri(120, image_size=SIDE, random_state=0)
    pipe = make_baseline_pipeline(n_components=6, k=4, random_state=0,
                                  clf__max_epochs=5).fit(b.data, b.target)
    record = training_record(pipe, b.data, b.target, synthetic=True, image_size=SIDE,
                             class_names=["no tumour", "tumour"], source="phantom")
    return pipe, record


def _odd_images():
    """A nearly black phantom and one quantised to 3 grey levels."""
    img = make_phantom_mri(2, image_size=SIDE, random_state=7).data
    dark = img[0] * 0.02
    three = np.digitize(img[1], [0.2, 0.5]).astype(np.float32) / 2
    return dark, three


def test_record_is_small_json_and_describes_the_data(phantom_model):
    _, record = phantom_model
    assert json.loads(json.dumps(record, allow_nan=False)) == record
    assert record["synthetic"] is True and record["n_images"] == 120
    assert record["image_size"] == SIDE and record["class_names"] == ["no tumour", "tumour"]
    assert len(record["data_digest"]) == 40
    ref = record["reference"]
    for name in ("reconstruction_error", "mean_intensity", "grey_levels"):
        lo, med, hi = ref[name]
        assert 0 <= lo <= med <= hi
    assert ref["reconstruction_error"][2] < 1 and ref["grey_levels"][0] > 5


def test_held_out_images_pass_odd_ones_are_flagged_with_reasons(phantom_model):
    pipe, record = phantom_model
    held_out = make_phantom_mri(200, image_size=SIDE, random_state=1).data
    flagged = sum(bool(r) for r in check_images(record, pipe, held_out))
    assert flagged <= 2  # false alarms on images of the training kind stay rare
    dark, three = _odd_images()
    black = np.zeros(SIDE * SIDE, np.float32)
    rd, r3, rb = check_images(record, pipe, np.stack([dark, three, black]))
    assert any(r.startswith("nearly black: mean intensity") for r in rd), rd
    assert any(r.startswith("only 3 grey levels") for r in r3), r3
    assert any(r.startswith("nearly black") for r in rb) and all("nan" not in r for r in rb)
    # an image of another kind: a bright noise texture the phantom basis cannot explain
    noise = np.random.default_rng(0).uniform(0.2, 0.5, SIDE * SIDE).astype(np.float32)
    (rn,) = check_images(record, pipe, noise[None])
    assert any(r.startswith("reconstruction error") for r in rn), rn


def test_data_kind():
    rec = {"synthetic": True, "image_size": 32, "class_names": ["a", "b"], "source": "phantom"}
    assert "SYNTHETIC" in check_data_kind(rec)[0]
    assert check_data_kind(rec, synthetic=True, class_names=["a", "b"], image_size=32) == []
    (line,) = check_data_kind({**rec, "synthetic": False}, synthetic=False,
                              class_names=["a", "c"])
    assert "classes ['a', 'c'] differ" in line
    assert "SYNTHETIC" in check_data_kind({**rec, "synthetic": False}, synthetic=True)[0]
    assert check_data_kind(None) == []


def _write_png(path, pixels):
    Image.fromarray(np.round(pixels.reshape(SIDE, SIDE) * 255).astype(np.uint8)).save(path)
    return str(path)


def test_predict_warns_per_file_and_marks_the_csv(phantom_model, tmp_path, capsys):
    pipe, record = phantom_model
    model = save({"model": pipe, "image_size": SIDE, "target_names": ["no tumour", "tumour"],
                  "training": record}, tmp_path / "m.sknnmfdiff")
    dark, three = _odd_images()
    good = make_phantom_mri(3, image_size=SIDE, random_state=3).data
    files = [_write_png(tmp_path / f"good{i}.png", g) for i, g in enumerate(good)]
    files += [_write_png(tmp_path / "dark.png", dark), _write_png(tmp_path / "three.png", three)]
    assert main(["predict", str(model), *files, "--out", str(tmp_path / "o")]) == 0
    out, err = capsys.readouterr()
    assert len(out.strip().splitlines()) == 5  # the predictions themselves unchanged
    lines = err.strip().splitlines()
    assert "SYNTHETIC phantom" in lines[0]  # once: the model's kind
    flagged = [ln for ln in lines if "out of the training distribution" in ln]
    assert [ln.split(": ")[2] for ln in flagged] == files[3:]
    assert "nearly black" in flagged[0] and "grey levels" in flagged[1]
    rows = list(csv.DictReader(open(tmp_path / "o" / "predictions.csv")))
    assert [bool(r["out_of_distribution"]) for r in rows] == [False] * 3 + [True] * 2


def test_model_without_record_works_and_says_so(phantom_model, tmp_path, capsys):
    pipe, _ = phantom_model
    model = save({"model": pipe, "image_size": SIDE, "target_names": ["no tumour", "tumour"]},
                 tmp_path / "old.sknnmfdiff")
    dark, _ = _odd_images()
    assert main(["predict", str(model), _write_png(tmp_path / "d.png", dark)]) == 0
    out, err = capsys.readouterr()
    assert len(out.strip().splitlines()) == 1
    (line,) = err.strip().splitlines()
    assert "no record of its training data" in line


def test_fit_records_and_evaluate_summarises(tmp_path, capsys):
    b = make_phantom_mri(40, image_size=SIDE, random_state=0)
    data = tmp_path / "data"
    for i, (img, label) in enumerate(zip(b.images, b.target)):
        (data / ("yes" if label else "no")).mkdir(parents=True, exist_ok=True)
        _write_png(data / ("yes" if label else "no") / f"{i:02d}.png", img)
    assert main(["fit", "--data", str(data), "--image-size", str(SIDE), "--rank", "6",
                 "--k", "4", "--baseline", "--format", "joblib", "--out",
                 str(tmp_path / "m"), "--quiet"]) == 0
    import joblib

    record = joblib.load(tmp_path / "m" / "model.joblib")["training"]
    assert record["synthetic"] is False and record["n_images"] == 40
    assert record["source"] == str(data.resolve())
    dark, three = _odd_images()
    _write_png(data / "no" / "zz_dark.png", dark)
    _write_png(data / "yes" / "zz_three.png", three)
    capsys.readouterr()
    out = tmp_path / "ev"
    assert main(["evaluate", str(tmp_path / "m" / "model.joblib"), "--data", str(data),
                 "--max-images", "42", "--space", "feature", "--protocol", "paper",
                 "--out", str(out), "--quiet"]) == 0
    trained, line = [ln for ln in capsys.readouterr().err.splitlines() if "warning" in ln]
    # the folder it was trained on: said in one line, the 40 training images counted
    assert "40 of 42 images were in this model's training data" in trained
    assert "2 of 42 images lie out of the training distribution" in line
    checks = json.loads((out / "evaluation.json").read_text())["input_checks"]
    assert checks["n_out_of_distribution"] == 2 and checks["data_kind"] == []
    assert checks["n_in_training_data"] == 40 and "image_hashes" not in checks["training_record"]
    assert len(record["image_hashes"]) == 40
    assert sorted(checks["out_of_distribution"]) == sorted(
        str(data / d / f) for d, f in (("no", "zz_dark.png"), ("yes", "zz_three.png")))


@pytest.mark.realdata
def test_phantom_model_warns_on_real_mri(phantom_model, real_data_dir, tmp_path, capsys):
    """A model fitted on phantom slices, given real MRI, says so once and flags each
    image (reconstruction error and intensity far outside the phantoms')."""
    pipe, record = phantom_model
    model = save({"model": pipe, "image_size": SIDE, "target_names": ["no tumour", "tumour"],
                  "training": record}, tmp_path / "m.sknnmfdiff")
    files = sorted(str(p) for p in (real_data_dir / "Testing").glob("*/*.jpg"))[::100]
    assert main(["predict", str(model), *files, "--quiet"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert "SYNTHETIC phantom" in err[0]
    flagged = [ln for ln in err if "out of the training distribution" in ln]
    assert len(flagged) >= 0.75 * len(files), err  # 12 of 14 when written


def test_images_of_the_training_data_are_counted(phantom_model):
    """check_inputs names the images a model was trained on (same pixels), and only those."""
    pipe, record = phantom_model
    train = make_phantom_mri(120, image_size=SIDE, random_state=0).data  # the fixture's data
    other = make_phantom_mri(10, image_size=SIDE, random_state=5).data
    X = np.concatenate([train[:5], other])
    files = [f"f{i}.png" for i in range(len(X))]
    lines, _, summary = check_inputs(record, pipe, X, files, per_file=False)
    assert summary["in_training_data"] == files[:5] and summary["n_in_training_data"] == 5
    assert any(line.startswith("5 of 15 images were in this model's training data (first: "
                               "f0.png)") for line in lines)
    _, _, clean = check_inputs(record, pipe, other, files[5:], per_file=False)
    assert clean["n_in_training_data"] == 0
