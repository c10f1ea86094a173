"""Training runs: run folder, resume after kill -9, fine-tuning, bad input, odd batch sizes, data-parallel."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from conftest import SMALL_UNET, SMALL_UNET_FLAGS, cli, read_history, run_cli
from frcunet.core.errors import UserError
from frcunet.models.registry import build_model
from frcunet.training.callbacks import AtomicBestCheckpoint
from frcunet.training.trainer import TrainConfig, train

TINY = {"width": 0.125, "middle_units": 1}
TINY_FLAGS = ["--model", "frcunet-lite", "--width", 0.125, "--middle-units", 1]


@pytest.mark.agnostic
def test_training_writes_a_complete_run_folder(prepared, tmp_path):
    # The small U-Net: the run folder does not depend on the network (conftest's tiny_run trains frcunet-lite
    # on both backends), and it compiles in a fraction of the time.
    config = TrainConfig(data=str(prepared), run=str(tmp_path / "run"), model="unet", model_options=SMALL_UNET,
                         epochs=2, batch_size=8, lr=1e-3, verbose=0)
    run, history = train(config)
    assert sorted(p.name for p in run.iterdir() if p.name != "logs") == [
        "best.weights.h5", "config.json", "history.csv", "model.keras", "resume"]
    rows = read_history(run)
    assert [r["epoch"] for r in rows] == ["0", "1"]
    assert {"loss", "dice", "val_loss", "val_dice", "learning_rate"} <= set(rows[0])
    recorded = json.loads((run / "config.json").read_text())
    assert recorded["model"] == "unet" and recorded["size"] == [32, 32] and recorded["lr"] == 1e-3
    assert len(recorded["data_manifest_sha1"]) == 40 and recorded["versions"]["keras"] == keras.__version__
    assert recorded["versions"]["keras_backend"] == keras.backend.backend()

    loaded = keras.saving.load_model(run / "model.keras")
    images = np.load(prepared / "data_test.npy")[:2]
    reference = build_model("unet", (32, 32, 3), **SMALL_UNET)
    reference.load_weights(run / "best.weights.h5")
    np.testing.assert_allclose(loaded.predict(images, verbose=0), reference.predict(images, verbose=0), atol=1e-5)

    again, nothing = train(config)  # finished runs are not trained again
    assert nothing is None and len(read_history(run)) == 2


UNET = dict(model="unet", model_options=SMALL_UNET)


def _config(prepared, run, **changes):
    settings = dict(data=str(prepared), run=str(run), model="frcunet-lite", model_options=TINY, epochs=1,
                    batch_size=8, lr=1e-3, verbose=0)
    settings.update(changes)
    return TrainConfig(**settings)


@pytest.mark.long
def test_fine_tuning_starts_from_earlier_weights_and_checks_them(prepared, tiny_run, tmp_path):
    source = tiny_run / "run"
    # lr 1e-9: one epoch barely moves the trainable weights (batch-norm statistics move regardless),
    # so they must have started from the source run's.
    tuned = cli("train", "--data", prepared, "--run", tmp_path / "ph2", *TINY_FLAGS, "--epochs", 1,
                "--batch-size", 8, "--lr", 1e-9, "--init-weights", source / "best.weights.h5", "--quiet")
    assert tuned.returncode == 0, tuned.stderr[-3000:]
    from frcunet.models.registry import build_model

    before, after = (build_model("frcunet-lite", (32, 32, 3), **TINY) for _ in range(2))
    before.load_weights(source / "best.weights.h5")
    after.load_weights(tmp_path / "ph2" / "best.weights.h5")
    for a, b in zip(before.trainable_weights, after.trainable_weights, strict=True):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b), atol=1e-5)
    assert json.loads((tmp_path / "ph2" / "config.json").read_text())["init_weights"] == str(source / "best.weights.h5")

    with pytest.raises(UserError, match="holds frcunet-lite .* weights, not unet"):
        train(_config(prepared, tmp_path / "u", model="unet", model_options={"base_filters": 4},
                      init_weights=str(source / "best.weights.h5")))
    (tmp_path / "loose.weights.h5").write_bytes((source / "best.weights.h5").read_bytes())  # no config beside it
    with pytest.raises(UserError, match="does not fit frcunet-lite"):
        train(_config(prepared, tmp_path / "u2", model_options={}, init_weights=str(tmp_path / "loose.weights.h5")))


def test_training_input_mistakes_are_one_line_errors(prepared, tiny_run, tmp_path):
    missing = cli("train", "--data", tmp_path / "data" / "isic2018", "--model", "frcunet-lite")
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [
        f"error: no prepared train split in {tmp_path / 'data' / 'isic2018'} (data_train.npy missing); "
        f"run frcunet prepare isic2018 --out {tmp_path / 'data' / 'isic2018'} first"]
    with pytest.raises(UserError, match=r"does not match the prepared arrays \(32x32\)"):
        train(_config(prepared, tmp_path / "r", size=(64, 64)))
    with pytest.raises(UserError, match="--lr positive"):
        train(_config(prepared, tmp_path / "r", lr=0))
    with pytest.raises(UserError, match=r"other settings \(data_manifest_sha1, batch_size\)"):
        train(_config(prepared, tiny_run / "run", epochs=2))


def test_a_run_recorded_before_a_setting_existed_resumes_with_its_default(tiny_run, tmp_path):
    from frcunet.training.trainer import _check_resumable

    record = json.loads((tiny_run / "run" / "config.json").read_text())
    older = dict(record)
    del older["bn_recalibration"]  # config.json as written before --bn-recalibration
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text(json.dumps(older))
    assert record["bn_recalibration"] == 0
    assert _check_resumable(tmp_path / "run", record) is None  # the same run: no error (and no resume state)
    with pytest.raises(UserError, match=r"other settings \(bn_recalibration\)"):
        _check_resumable(tmp_path / "run", dict(record, bn_recalibration=256))


def test_a_failed_training_leaves_the_callers_dtype_policy(prepared, tmp_path):
    garbage = tmp_path / "garbage.weights.h5"
    garbage.write_bytes(b"not weights")
    assert keras.config.dtype_policy().name == "float32"
    with pytest.raises(UserError, match="does not fit"):
        train(_config(prepared, tmp_path / "r", precision="mixed_bfloat16", init_weights=str(garbage), **UNET))
    assert keras.config.dtype_policy().name == "float32"
    run, _ = train(_config(prepared, tmp_path / "r2", precision="mixed_bfloat16", **UNET))
    assert keras.config.dtype_policy().name == "float32"
    assert json.loads((run / "config.json").read_text())["precision_used"] == "mixed_bfloat16"


def test_diverging_loss_stops_with_a_clear_message(prepared, tmp_path):
    with pytest.raises(UserError, match="loss became NaN at epoch 1"):
        train(_config(prepared, tmp_path / "run", epochs=3, lr=1e38, **UNET))
    assert not list((tmp_path / "run").glob(".*"))  # no temporary file left behind


def test_best_checkpoint_ignores_non_finite_epochs(tmp_path):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    checkpoint = AtomicBestCheckpoint(tmp_path / "best.weights.h5", "val_loss")
    checkpoint.set_model(model)
    checkpoint.on_epoch_end(0, {"loss": 1.0, "val_loss": 0.5})
    saved = (tmp_path / "best.weights.h5").read_bytes()
    model.layers[0].kernel.assign(np.full((2, 1), 7.0, np.float32))
    checkpoint.on_epoch_end(1, {"loss": float("nan"), "val_loss": 0.1})
    checkpoint.on_epoch_end(2, {"loss": 1.0, "val_loss": float("nan")})
    assert (tmp_path / "best.weights.h5").read_bytes() == saved and checkpoint.best_epoch == 1


# Not in the JAX pass: the crash was TensorFlow's, and eager JAX compiles every operation on its own.
@pytest.mark.parametrize("batch", [1, 3, 5])
def test_narrow_models_train_on_odd_batch_sizes(batch):
    # TensorFlow 2.21's oneDNN kernel for strided 1x1 convs crashed here; the encoder avoids it. Eager
    # execution runs the same kernels at the exact batch size, without the half minute of graph tracing.
    model = build_model("frcunet-lite", (32, 32, 3), **TINY)
    model.compile("adam", "binary_crossentropy", run_eagerly=True)
    rng = np.random.default_rng(batch)
    images = rng.integers(0, 256, (batch, 32, 32, 3)).astype("float32")
    masks = (rng.random((batch, 32, 32, 1)) > 0.5).astype("float32")
    assert np.isfinite(model.train_on_batch(images, masks))


def _loss_falls(run):
    losses = [float(r["loss"]) for r in read_history(run)]
    return losses[-1] < losses[0]


@pytest.mark.long
def test_data_parallel_on_two_tensorflow_cpu_devices(prepared, tmp_path):
    done = run_cli("train", "--data", prepared, "--run", tmp_path / "run", *SMALL_UNET_FLAGS, "--epochs", 2,
                   "--batch-size", 8, "--lr", 1e-3, "--distribute", "data-parallel", "--cpu-replicas", 2,
                   "--bn-recalibration", 8, "--quiet")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "data-parallel over 2 replicas, 4 images each per step" in done.stdout
    assert _loss_falls(tmp_path / "run")


@pytest.mark.long
def test_data_parallel_on_two_jax_cpu_devices(prepared, tmp_path):
    env = dict(os.environ, KERAS_BACKEND="jax",
               XLA_FLAGS=os.environ["XLA_FLAGS"] + " --xla_force_host_platform_device_count=2")
    args = ["train", "--data", prepared, "--run", tmp_path / "run", *SMALL_UNET_FLAGS, "--epochs", 2, "--batch-size", 8,
            "--lr", 1e-3, "--distribute", "data-parallel", "--bn-recalibration", 8, "--quiet"]
    done = subprocess.run([sys.executable, "-m", "frcunet", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "data-parallel over 2 replicas" in done.stdout
    assert _loss_falls(tmp_path / "run")
