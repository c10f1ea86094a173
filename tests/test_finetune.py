"""Fine-tuning from the model shipped in the package: `train --init-weights pretrained` and the README's sequence."""

import hashlib
import json
import shlex
from pathlib import Path

import keras
import numpy as np
import pytest

from conftest import ROOT, cli
from frcunet.artifacts.pretrained import PRETRAINED_DIR, WEIGHTS_FILE, pretrained_architecture, pretrained_record
from frcunet.core.errors import UserError

pytestmark = pytest.mark.agnostic


def _shipped_arrays():
    with np.load(PRETRAINED_DIR / WEIGHTS_FILE) as stored:
        names = [str(n) for n in stored["names"]]
        return {name: stored[f"w{i:04d}"].astype(np.float32) for i, name in enumerate(names)}


def test_training_from_the_shipped_model_builds_its_network_and_starts_from_its_weights(prepared, tmp_path):
    # lr 1e-12: one epoch leaves the trainable weights where they started, so they must be the shipped ones;
    # the prepared images are 32x32, not the shipped model's 128x128.
    # Through the Python API; the README test below goes through the command line.
    import frcunet

    frcunet.train(prepared, tmp_path / "tuned", recipe="finetune", init_weights="pretrained", epochs=1, lr=1e-12,
                  verbose=0)
    record = json.loads((tmp_path / "tuned" / "config.json").read_text())
    shipped = pretrained_record()
    assert (record["model"], record["model_options"]) == (shipped.model, shipped.model_options)
    assert record["size"] == [32, 32] and record["init_weights"] == "pretrained"
    assert record["init_weights_source"] == {
        "file": WEIGHTS_FILE, "sha1": hashlib.sha1((PRETRAINED_DIR / WEIGHTS_FILE).read_bytes()).hexdigest()}
    # What the shipped model saw counts as seen by the fine-tuned run too (evaluate refuses those images).
    shipped_seen = shipped.seen_ids
    assert record["seen_ids"]["init_weights"] == sorted(shipped_seen["train"] + shipped_seen["val"])

    from frcunet.artifacts.runs import load_run_model

    tuned, _ = load_run_model(tmp_path / "tuned")
    expected = _shipped_arrays()
    kernels = [w for w in tuned.trainable_weights if w.path.endswith("kernel")]
    assert len(kernels) > 40
    for weight in kernels:
        np.testing.assert_allclose(keras.ops.convert_to_numpy(weight), expected[weight.path], atol=1e-6)


@pytest.mark.parametrize("flags, shipped_value", [
    (["--model", "unet"], "which is frcunet-lite"),
    (["--model", "frcunet"], "which is frcunet-lite"),
    (["--width", 0.25], "--width 0.125"),
    (["--decoder-bn", "off"], "--decoder-bn on"),
    (["--normalization", "fixed"], "--normalization minmax"),
    (["--pyramid", "multiscale"], "--pyramid reference"),
    (["--middle-units", 4], "--middle-units 2"),
    (["--base-filters", 8], "frcunet-lite"),
])
def test_a_flag_that_would_build_another_network_is_one_error_naming_the_shipped_value(prepared, tmp_path,
                                                                                        flags, shipped_value):
    done = cli("train", "--data", prepared, "--run", tmp_path / "r", "--init-weights", "pretrained", *flags)
    assert done.returncode == 2 and not (tmp_path / "r").exists()
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and shipped_value in lines[0], lines


def test_flags_that_agree_with_the_shipped_network_are_accepted():
    model, options = pretrained_architecture("frcunet-lite", {"width": 0.125, "decoder_bn": True,
                                                              "normalization": "minmax", "middle_units": 2})
    assert (model, options) == (pretrained_record().model, pretrained_record().model_options)
    with pytest.raises(UserError, match="another network"):
        pretrained_architecture(None, {"squeeze_units": 16})


def test_a_size_the_network_cannot_take_is_an_error(tmp_path):
    folder = tmp_path / "p"
    folder.mkdir()
    for split in ("train", "val", "test"):
        np.save(folder / f"data_{split}.npy", np.zeros((2, 40, 40, 3), np.uint8))
        np.save(folder / f"mask_{split}.npy", np.zeros((2, 40, 40), np.uint8))
    done = cli("train", "--data", folder, "--run", tmp_path / "r", "--init-weights", "pretrained", "--epochs", 1)
    assert done.returncode == 2 and "multiple of 16" in done.stderr and len(done.stderr.splitlines()) == 1
    assert not (tmp_path / "r").exists()


def _readme_commands():
    """The commands of the README's "Fine-tune on your own images" block, in order."""
    text = (ROOT / "README.md").read_text()
    section = text.split("### Fine-tune on your own images", 1)[1]
    block = section.split("```", 2)[1]
    return [shlex.split(line) for line in block.splitlines() if line.startswith("frcunet ")]


def _user_folders(root):
    """A user's own data as the README describes it: images and masks in two folders, masks named <stem>_mask."""
    from frcunet.data.synthetic import write_synthetic_isic

    write_synthetic_isic(root / "syn", 24, seed=3, size=(48, 64), progress=False)
    images, masks, new = root / "my_images", root / "my_masks", root / "new_images"
    for folder in (images, masks, new):
        folder.mkdir()
    for path in sorted((root / "syn" / "ISIC2018_Task1-2_Training_Input").glob("*.jpg")):
        path.rename(images / f"lesion{path.stem[-3:]}.jpg")
    for path in sorted((root / "syn" / "ISIC2018_Task1_Training_GroundTruth").glob("*.png")):
        path.rename(masks / f"lesion{path.stem.split('_')[1][-3:]}_mask.png")
    for path in sorted(images.glob("*.jpg"))[:2]:
        (new / path.name).write_bytes(path.read_bytes())


@pytest.mark.long
def test_the_readme_sequence_fine_tunes_on_a_users_own_folders(tmp_path, monkeypatch):
    commands = _readme_commands()
    assert [c[1] for c in commands] == ["prepare", "train", "evaluate", "predict"]
    assert "--init-weights" in commands[1] and commands[1][commands[1].index("--init-weights") + 1] == "pretrained"
    _user_folders(tmp_path)
    monkeypatch.chdir(tmp_path)
    # The README's commands with small images and a tiny budget; everything else as written there.
    tiny = {"prepare": ["--quiet"], "train": ["--epochs", "1", "--epoch-images", "16", "--quiet"],
            "evaluate": ["--quiet"], "predict": ["--quiet"]}
    outputs = []
    for command in commands:
        argv = [a if a != "128" else "32" for a in command[1:]] + tiny[command[1]]
        done = cli(*argv)
        assert done.returncode == 0, (argv, done.stderr[-3000:])
        outputs.append(done.stdout)
    assert json.loads(Path("data/mine/manifest.json").read_text())["counts"]["train"] == 14  # 60 % of 24
    record = json.loads(next(Path("weights").glob("*/config.json")).read_text())
    assert record["init_weights"] == "pretrained" and record["model"] == pretrained_record().model
    assert "Dice" in outputs[2] and len(list(Path("new_masks").glob("*_segmentation.png"))) == 2


def test_the_python_api_trains_from_the_shipped_model_with_a_recipe(prepared, tmp_path):
    import frcunet

    with pytest.raises(UserError, match="--width 0.125"):
        frcunet.train(prepared, tmp_path / "r", init_weights="pretrained", recipe="finetune",
                      model_options={"width": 0.5})
    with pytest.raises(UserError, match="unknown recipe"):
        frcunet.train(prepared, tmp_path / "r", recipe="fast")
    assert not (tmp_path / "r").exists()


def test_frozen_batch_norm_keeps_the_shipped_statistics_and_scales(prepared, tmp_path):
    from frcunet.artifacts.runs import load_run_model
    from frcunet.training.trainer import TrainConfig, train

    with pytest.raises(UserError, match="choose one"):
        train(TrainConfig(data=str(prepared), run=str(tmp_path / "r"), init_weights="pretrained", freeze_bn=True,
                          bn_recalibration=256))
    train(TrainConfig(data=str(prepared), run=str(tmp_path / "frozen"), init_weights="pretrained", freeze_bn=True,
                      epochs=1, batch_size=8, lr=1e-3, verbose=0))
    tuned, _ = load_run_model(tmp_path / "frozen")
    expected = _shipped_arrays()
    norms = [w for layer in tuned.layers if isinstance(layer, keras.layers.BatchNormalization) for w in layer.weights]
    moved = [w for w in tuned.trainable_weights if w.path.endswith("kernel")]
    assert len(norms) > 40
    for weight in norms:
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(weight), expected[weight.path])
    assert any(not np.allclose(keras.ops.convert_to_numpy(w), expected[w.path], atol=1e-6) for w in moved)


def test_a_folder_as_init_weights_is_named_a_folder(prepared, tmp_path):
    (tmp_path / "some_run").mkdir()
    done = cli("train", "--data", prepared, "--run", tmp_path / "r", "--model", "unet", "--base-filters", 4,
               "--epochs", 1, "--init-weights", tmp_path / "some_run")
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "is a folder" in lines[0] and "best.weights.h5" in lines[0]
    assert not (tmp_path / "r").exists()


def test_frozen_batch_norm_without_trained_weights_is_refused(prepared, tmp_path):
    done = cli("train", "--data", prepared, "--run", tmp_path / "r", "--recipe", "finetune", "--model", "unet",
               "--base-filters", 4)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "--init-weights pretrained" in lines[0], lines
    assert not (tmp_path / "r").exists()
