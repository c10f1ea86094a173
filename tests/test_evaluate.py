"""Evaluation folders and prediction on new images, on synthetic and real data."""

import csv
import json

import numpy as np
import pytest
from PIL import Image

from conftest import cli
from frcunet.core.errors import UserError
from frcunet.data.prepare import PrepareConfig, prepare_dataset
from frcunet.evaluation.evaluate import EvaluateConfig, evaluate
from frcunet.inference.prediction import predict_arrays, predict_files

IN18, GT18 = "ISIC2018_Task1-2_Training_Input", "ISIC2018_Task1_Training_GroundTruth"


@pytest.fixture(scope="module")
def trained(tiny_run):
    return tiny_run


@pytest.mark.long
@pytest.mark.agnostic
def test_evaluation_writes_every_output(trained, tmp_path):
    metrics, out = evaluate(EvaluateConfig(run=str(trained / "run"), data=str(trained / "prepared"),
                                           out=str(tmp_path / "out"), native=True, tta=True, progress=False))
    assert sorted(p.name for p in out.iterdir()) == [
        ".frcunet-output", "Precision_recall.png", "ROC.png", "masks", "metrics.json", "overlays.png",
        "per_image.csv", "report", "report.html", "results.md"]
    saved = json.loads((out / "metrics.json").read_text())
    assert set(saved["pooled"]) == {"f1", "se", "sp", "acc", "pc", "js", "auc_roc", "auc_pr"}
    assert saved["legacy_js_equals_accuracy"] == saved["pooled"]["acc"]
    assert set(saved["per_image_mean"]) == {"dice", "iou", "se", "sp", "acc", "hd95", "hd95_diag"}
    assert 0 <= saved["thresholded_jaccard"] <= 1 and saved["n_images"] == 6
    assert "native" in saved and saved["settings"]["tta"] is True
    with open(out / "per_image.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6 and rows[0]["id"].startswith("ISIC_")
    masks = sorted((out / "masks").iterdir())
    assert len(masks) == 6 and masks[0].name.endswith("_segmentation.png")
    mask = np.asarray(Image.open(masks[0]))
    assert mask.shape == (48, 64) and set(np.unique(mask)) <= {0, 255}  # back at the original size
    assert "| F1 | SE | SP | ACC | PC | JS |" in (out / "results.md").read_text()


@pytest.mark.agnostic
def test_predict_arrays_returns_each_image_at_its_own_size(trained):
    from frcunet.artifacts.runs import load_run_model

    model, _ = load_run_model(trained / "run")
    images = [np.zeros((50, 70, 3), np.uint8), np.full((33, 32, 3), 200, np.uint8)]
    maps = predict_arrays(model, images)
    assert [m.shape for m in maps] == [(50, 70), (33, 32)]
    assert all(((m >= 0) & (m <= 1)).all() for m in maps)


@pytest.mark.agnostic
def test_predict_files_handles_modes_sizes_and_corrupt_files(trained, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (50, 70, 4), dtype=np.uint8), "RGBA").save(inputs / "a.png")
    Image.fromarray(rng.integers(0, 256, (41, 37), dtype=np.uint8)).save(inputs / "b.bmp")
    Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)).save(inputs / "c.jpg")
    (inputs / "d.jpg").write_bytes(b"broken")
    (inputs / "notes.txt").write_text("not an image")
    written, failed = predict_files(trained / "run", inputs, tmp_path / "out", probabilities=True, progress=False)
    assert written == 3 and len(failed) == 1 and failed[0].startswith("d.jpg")
    sizes = {p.name: Image.open(p).size for p in (tmp_path / "out").iterdir() if p.name != ".frcunet-predicted"}
    assert sizes == {"a_segmentation.png": (70, 50), "a_probability.png": (70, 50), "b_segmentation.png": (37, 41),
                     "b_probability.png": (37, 41), "c_segmentation.png": (400, 300), "c_probability.png": (400, 300)}


def test_predict_cli_reports_skipped_files_with_a_non_zero_exit(trained, tmp_path):
    (tmp_path / "in").mkdir()
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "in" / "ok.png")
    (tmp_path / "in" / "bad.png").write_bytes(b"\x89PNG broken")
    done = cli("predict", "--run", trained / "run", "--input", tmp_path / "in", "--out", tmp_path / "out")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("error: 1 of 2 inputs could not be read")
    assert (tmp_path / "out" / "ok_segmentation.png").is_file()


def test_evaluation_mistakes_are_clear_errors(trained, tmp_path):
    missing_run = cli("evaluate", "--run", tmp_path / "nothing", "--data", trained / "prepared")
    assert missing_run.returncode == 2
    assert missing_run.stderr.strip().splitlines() == [
        f"error: no run in {tmp_path / 'nothing'} (config.json missing); run frcunet train first, or pass "
        "--run"]
    no_data = cli("evaluate", "--run", trained / "run", "--data", tmp_path / "data" / "ph2")
    assert no_data.returncode == 2
    assert f"run frcunet prepare ph2 --out {tmp_path / 'data' / 'ph2'} first" in no_data.stderr

    prepare_dataset(PrepareConfig("isic2018", trained / "syn", tmp_path / "big", (48, 64),
                                  split=(0.5, 0.25, 0.25), workers=1,
                                  progress=False))
    with pytest.raises(UserError, match="pass --resize"):
        evaluate(EvaluateConfig(run=str(trained / "run"), data=str(tmp_path / "big"), out=str(tmp_path / "o"),
                                progress=False))
    metrics, _ = evaluate(EvaluateConfig(run=str(trained / "run"), data=str(tmp_path / "big"),
                                         out=str(tmp_path / "o"), resize=True, progress=False))
    assert metrics.grid == (48, 64)

    broken = tmp_path / "broken_run"
    broken.mkdir()
    config = json.loads((trained / "run" / "config.json").read_text())
    config["model_options"] = {"width": 0.25, "middle_units": 1}
    (broken / "config.json").write_text(json.dumps(config))
    (broken / "best.weights.h5").write_bytes((trained / "run" / "best.weights.h5").read_bytes())
    with pytest.raises(UserError, match="does not fit"):
        evaluate(EvaluateConfig(run=str(broken), data=str(trained / "prepared"), out=str(tmp_path / "o2"),
                                progress=False))
    assert not (tmp_path / "o2").exists()


def test_evaluating_on_the_real_isic2018_test_split(shared_data, trained, tmp_path):
    data = tmp_path / "isic"
    (data / IN18).mkdir(parents=True)
    (data / GT18).mkdir(parents=True)
    for image in sorted((shared_data / "ISIC2018" / IN18).glob("ISIC_*.jpg"))[:40]:
        (data / IN18 / image.name).symlink_to(image)
        mask = f"{image.stem}_segmentation.png"
        (data / GT18 / mask).symlink_to(shared_data / "ISIC2018" / GT18 / mask)
    prepare_dataset(PrepareConfig("isic2018", data, tmp_path / "prepared", (32, 32), split=(0.5, 0.25, 0.25), workers=1,
                    progress=False))
    # --allow-seen: the synthetic training images carry real ISIC ids (ISIC_0000000...), not these images.
    done = cli("evaluate", "--run", trained / "run", "--data", tmp_path / "prepared", "--out", tmp_path / "out",
               "--native", "--quiet", "--allow-seen")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| F1 | SE | SP | ACC | PC | JS |" in done.stdout
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["n_images"] == 10 and metrics["native"]["pooled"]["acc"] > 0
    masks = sorted((tmp_path / "out" / "masks").iterdir())
    with Image.open(data / IN18 / masks[0].name.replace("_segmentation.png", ".jpg")) as original:
        assert Image.open(masks[0]).size == original.size
