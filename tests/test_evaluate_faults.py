"""evaluate: no inflated score from images a run saw, no stretched masks, no silent unfinished run (issue 27)."""

import json
import shutil

import numpy as np
from PIL import Image

from conftest import SMALL_UNET, cli
from frcunet.data.prepare import PrepareConfig, prepare_dataset
from frcunet.training.trainer import TrainConfig, train


def _prepare(syn, folder, seed):
    prepare_dataset(PrepareConfig("isic2018", syn, folder, (32, 32), split=(0.5, 0.25, 0.25), seed=seed, workers=1,
                                  progress=False))


def test_a_test_split_holding_images_the_run_saw_is_refused(tiny_run, tmp_path):
    data = tmp_path / "prepared"
    _prepare(tiny_run / "syn", data, seed=0)
    train(TrainConfig(data=str(data), run=str(tmp_path / "run"), model="unet", model_options=SMALL_UNET, epochs=1,
                      batch_size=6, verbose=0))
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())["seen_ids"]
    assert len(recorded["train"]) == 12 and len(recorded["val"]) == 6
    ok = cli("evaluate", "--run", tmp_path / "run", "--data", data, "--out", tmp_path / "e0", "--quiet")
    assert ok.returncode == 0, ok.stderr[-2000:]

    _prepare(tiny_run / "syn", data, seed=1)  # the same folder prepared again: another split
    done = cli("evaluate", "--run", tmp_path / "run", "--data", data, "--out", tmp_path / "e1", "--quiet")
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "trained or validated on" in lines[0], lines
    assert "--allow-seen" in lines[0] and not (tmp_path / "e1").exists()
    forced = cli("evaluate", "--run", tmp_path / "run", "--data", data, "--out", tmp_path / "e1", "--quiet",
                 "--allow-seen")
    assert forced.returncode == 0, forced.stderr[-2000:]


def test_native_scoring_refuses_an_original_mask_that_changed_size(tiny_run, tmp_path):
    shutil.copytree(tiny_run / "syn", tmp_path / "syn")
    _prepare(tmp_path / "syn", tmp_path / "prepared", seed=0)
    test_id = json.loads((tmp_path / "prepared" / "manifest.json").read_text())["splits"]["test"][0]["id"]
    mask = tmp_path / "syn" / "ISIC2018_Task1_Training_GroundTruth" / f"{test_id}_segmentation.png"
    Image.fromarray(np.full((10, 10), 255, np.uint8)).save(mask)
    done = cli("evaluate", "--run", tiny_run / "run", "--data", tmp_path / "prepared", "--out", tmp_path / "e",
               "--native", "--quiet")
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "is 10x10, not 64x48" in lines[0], lines
    assert not (tmp_path / "e").exists()


def test_scoring_a_run_that_has_not_finished_says_so_and_records_the_epoch(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run / "run", run)
    (run / "model.keras").unlink()  # as while it trains: model.keras comes last
    done = cli("evaluate", "--run", run, "--data", tiny_run / "prepared", "--out", tmp_path / "e", "--quiet")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "has not finished training (1 of 1 epochs)" in done.stderr and "epoch 0" in done.stderr
    progress = json.loads((tmp_path / "e" / "metrics.json").read_text())["run_progress"]
    assert progress == {"epochs_done": 1, "epochs_planned": 1, "finished": False, "best_epoch": 0}
    finished = cli("evaluate", "--run", tiny_run / "run", "--data", tiny_run / "prepared", "--out", tmp_path / "f",
                   "--quiet")
    assert finished.returncode == 0 and "not finished" not in finished.stderr
    assert json.loads((tmp_path / "f" / "metrics.json").read_text())["run_progress"]["finished"] is True
