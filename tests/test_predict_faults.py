"""predict and frcunet.predict: where masks may go, what they read, and the inputs they take (issue 27)."""

import math

import numpy as np
import pytest
from PIL import Image

import frcunet
from conftest import cli
from frcunet.core.errors import UserError


def _photos(folder, count=2, size=(40, 52)):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(folder / f"p{i}.png")
    return folder


def _one_error_line(done, words):
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith("error:") and words in lines[0], lines


def test_predict_refuses_an_out_that_an_evaluation_or_a_run_owns(tiny_run, tmp_path):
    photos = _photos(tmp_path / "in")
    evaluation = tmp_path / "ev"
    done = cli("evaluate", "--run", tiny_run / "run", "--data", tiny_run / "prepared", "--out", evaluation, "--quiet")
    assert done.returncode == 0, done.stderr[-2000:]
    before = sorted(p.name for p in evaluation.iterdir())
    _one_error_line(cli("predict", "--input", photos, "--out", evaluation), "evaluation output folder")
    _one_error_line(cli("predict", "--input", photos, "--out", evaluation / "extra"), "lies inside")
    assert sorted(p.name for p in evaluation.iterdir()) == before
    _one_error_line(cli("predict", "--input", photos, "--out", tiny_run / "run" / "masks"), "a run folder")
    assert not (tiny_run / "run" / "masks").exists()
    _one_error_line(cli("predict", "--input", photos, "--out", tiny_run / "prepared"), "prepared")


def test_predict_refuses_an_out_inside_its_input_and_skips_its_own_masks(tmp_path):
    photos = _photos(tmp_path / "in")
    _one_error_line(cli("predict", "--input", photos, "--out", photos), "inside it")
    _one_error_line(cli("predict", "--input", photos, "--out", photos / "masks"), "inside it")
    assert sorted(p.name for p in photos.iterdir()) == ["p0.png", "p1.png"]
    # A folder that received masks by single-file predictions is read again without them.
    for photo in ("p0.png", "p1.png"):
        assert cli("predict", "--input", photos / photo, "--out", photos, "--quiet").returncode == 0
    done = cli("predict", "--input", photos, "--out", tmp_path / "o", "--quiet")
    assert done.returncode == 0 and "wrote 2 masks" in done.stdout
    assert sorted(p.name for p in (tmp_path / "o").iterdir() if p.name[0] != ".") == [
        "p0_segmentation.png", "p1_segmentation.png"]


def test_a_fifo_as_input_is_named_for_what_it_is(tmp_path):
    import os

    os.mkfifo(tmp_path / "pipe")
    _one_error_line(cli("predict", "--input", tmp_path / "pipe", "--out", tmp_path / "o"), "neither an image file")


def test_two_predicts_into_one_out_at_once_are_refused(tmp_path):
    from frcunet.core.locks import exclusive_lock

    photos = _photos(tmp_path / "in")
    out = tmp_path / "o"
    # Another predict holds the folder (this process, standing in for it): the second must wait its turn.
    with exclusive_lock(tmp_path / ".o.lock", out, "written"):
        _one_error_line(cli("predict", "--input", photos, "--out", out), "is being written by process")
    assert not out.exists()
    assert cli("predict", "--input", photos, "--out", out, "--quiet").returncode == 0


@pytest.mark.parametrize("threshold", [math.nan, 2, 0, 1, -0.5])
def test_the_api_refuses_a_threshold_outside_zero_and_one(threshold):
    with pytest.raises(UserError, match="strictly between 0 and 1"):
        frcunet.predict(None, np.zeros((20, 20, 3), np.uint8), threshold=threshold)


def test_the_api_reads_image_arrays_as_prepare_reads_files():
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    expected = frcunet.predict(None, rgb)
    same = {
        "float 0..1": rgb / 255.0,
        "float 0..255": rgb.astype(np.float32),
        "RGBA": np.concatenate([rgb, np.full((30, 40, 1), 7, np.uint8)], axis=2),
        "uint16 (16-bit)": rgb.astype(np.uint16) * 257,
    }
    for name, image in same.items():
        np.testing.assert_allclose(frcunet.predict(None, image), expected, atol=1e-6, err_msg=name)
    grey = rgb[..., 0]
    np.testing.assert_allclose(frcunet.predict(None, grey), frcunet.predict(None, np.stack([grey] * 3, axis=2)),
                               atol=1e-6)
    assert frcunet.predict(None, grey[..., None]).shape == (30, 40)
    for image, words in ((rgb > 100, "numbers"), (np.zeros((30, 40, 5), np.uint8), "shape"),
                         (np.zeros((0, 40, 3), np.uint8), "empty"), (np.full((4, 4, 3), np.nan), "finite"),
                         (np.full((4, 4, 3), 300.0), "0..255")):
        with pytest.raises(UserError, match=words):
            frcunet.predict(None, image)


@pytest.mark.parametrize("failure", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_a_predict_stopped_by_a_failed_write_or_an_interrupt_can_be_run_again(tmp_path, monkeypatch, failure):
    from frcunet.inference import prediction

    photos = _photos(tmp_path / "in", count=12)
    real_save, calls = prediction.save_mask_png, []

    def failing_save(mask, path):
        calls.append(path)
        if len(calls) == 5:
            raise failure
        real_save(mask, path)

    monkeypatch.setattr(prediction, "save_mask_png", failing_save)
    with pytest.raises(type(failure)):
        prediction.predict_files(None, photos, tmp_path / "o", batch_size=2, workers=2, progress=False)
    monkeypatch.undo()
    assert 0 < len(list((tmp_path / "o").glob("*_segmentation.png"))) < 12
    done = cli("predict", "--input", photos, "--out", tmp_path / "o", "--quiet")
    assert done.returncode == 0 and "wrote 12 masks" in done.stdout, done.stderr
