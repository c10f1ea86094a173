"""Training faults of issue 27: non-finite settings, a kill while model.keras is written, a full disk, SIGTERM.

Each ends in one `error:` line (or a finished run), leaves nothing half-written, and a rerun of the same
command resumes. The small U-Net trains for an epoch or two: the faults do not depend on the network.
"""

import contextlib
import dataclasses
import errno
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest

from conftest import SMALL_UNET, SMALL_UNET_FLAGS, cli, read_history
from frcunet.core.errors import UserError
from frcunet.models.registry import build_model
from frcunet.training.trainer import TrainConfig, train

UNET_TRAIN = [*SMALL_UNET_FLAGS, "--batch-size", 8, "--lr", 1e-3, "--quiet"]


def _config(prepared, run, **changes):
    settings = dict(data=str(prepared), run=str(run), model="unet", model_options=SMALL_UNET, epochs=1,
                    batch_size=8, lr=1e-3, verbose=0)
    settings.update(changes)
    return TrainConfig(**settings)


def _one_error_line(result, code=2):
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == code, result.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-3000:]
    return lines[0]


def _resume_state(run):
    return json.loads((Path(run) / "resume" / "state.json").read_text())


# 1. Non-finite settings


@pytest.mark.parametrize("flag, value, extra", [
    ("--max-minutes", "nan", []), ("--max-minutes", "inf", []),
    ("--warmup-epochs", "nan", ["--schedule", "cosine"]), ("--warmup-epochs", "inf", ["--schedule", "cosine"]),
    ("--lr", "inf", []),
    ("--weight-decay", "nan", ["--optimizer", "adamw"]), ("--weight-decay", "inf", ["--optimizer", "adamw"]),
])
def test_a_non_finite_flag_is_one_error_line_before_anything_is_written(prepared, tmp_path, flag, value, extra):
    # Before: --max-minutes nan trained a whole epoch and ended in a traceback, with NaN in config.json;
    # --lr inf and --weight-decay nan trained to NaN.
    run = tmp_path / "run"
    result = cli("train", "--data", prepared, "--run", run, *UNET_TRAIN, "--epochs", 1, flag, value, *extra)
    line = _one_error_line(result)
    assert line.startswith(f"error: {flag} must be a finite number") and value in line
    assert not run.exists()


# The field types are strings where the module uses `from __future__ import annotations`.
FLOAT_SETTINGS = [item.name for item in dataclasses.fields(TrainConfig) if item.type in (float, "float")]


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("name", FLOAT_SETTINGS)
def test_every_float_setting_of_the_library_must_be_finite(prepared, tmp_path, name, value):
    assert {"lr", "weight_decay", "warmup_epochs", "max_minutes"} <= set(FLOAT_SETTINGS)
    run = tmp_path / "run"
    with pytest.raises(UserError, match=f"--{name.replace('_', '-')} "):
        train(_config(prepared, run, optimizer="adamw", schedule="cosine", **{name: value}))
    assert not run.exists()


def test_a_non_finite_model_option_is_refused(prepared, tmp_path):
    with pytest.raises(UserError, match="--width must be a finite number; got inf"):
        train(_config(prepared, tmp_path / "run", model="frcunet-lite", model_options={"width": math.inf}))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("setting", ["max_minutes", "warmup_epochs", "peak_lr"])
def test_the_budgeted_schedule_refuses_a_non_finite_setting(setting):
    from frcunet.training.schedules import BudgetedSchedule

    settings = dict(peak_lr=1e-3, epochs=10, steps_per_epoch=5, max_minutes=1.0, warmup_epochs=1.0)
    with pytest.raises(ValueError, match=f"{setting} must be a finite number"):
        BudgetedSchedule(**{**settings, setting: math.nan})


def test_a_diverged_loss_names_every_setting_that_can_cause_it(prepared, tmp_path):
    # Decoupled weight decay of 1e30 makes the weights explode at a harmless learning rate: the message used
    # to blame --lr alone.
    with pytest.raises(UserError) as decayed:
        train(_config(prepared, tmp_path / "decayed", optimizer="adamw", weight_decay=1e30))
    message = str(decayed.value)
    assert message.startswith("loss became NaN at epoch 1")
    assert "--lr (now 0.001) or --weight-decay (now 1e+30) can cause this" in message
    with pytest.raises(UserError) as fast:
        train(_config(prepared, tmp_path / "fast", lr=1e38))
    assert "--lr (now 1e+38) can cause this" in str(fast.value) and "weight-decay" not in str(fast.value)
    # No epoch was kept, so neither run left a folder.
    assert not (tmp_path / "decayed").exists() and not (tmp_path / "fast").exists()


# 2. A kill while model.keras is written


def test_a_run_killed_while_writing_model_keras_is_finished_by_the_rerun(prepared, tmp_path):
    run = tmp_path / "run"
    config = _config(prepared, run)
    train(config)
    # What kill -9 during the export leaves: no model.keras, atomic_path's temporaries, and a resume state
    # that says the run finished but not that its model was written.
    (run / "model.keras").unlink()
    for stale in (".model.k2x9_q1z.keras", ".best.weights.a8b7c6d5.weights.h5"):
        (run / stale).write_bytes(b"half a file")
    state = _resume_state(run)
    state.pop("model_exported", None)
    (run / "resume" / "state.json").write_text(json.dumps(state))
    (run / ".my-notes.keras").write_text("the user's")  # hidden, but no temporary of training's

    again, nothing = train(config)
    assert nothing is None
    assert sorted(p.name for p in run.iterdir() if p.name != "logs") == [
        ".my-notes.keras", "best.weights.h5", "config.json", "history.csv", "model.keras", "resume"]
    assert _resume_state(run)["model_exported"] is True
    images = np.load(prepared / "data_test.npy")[:2]
    reference = build_model("unet", (32, 32, 3), **SMALL_UNET)
    reference.load_weights(run / "best.weights.h5")
    loaded = keras.saving.load_model(run / "model.keras")
    np.testing.assert_allclose(loaded.predict(images, verbose=0), reference.predict(images, verbose=0), atol=1e-5)


# 3. A full disk


def _disk_fills_at(monkeypatch, name):
    """Makes the disk fill while the run file `name` is written: its temporary is written, then ENOSPC.

    Every writer of a run goes through frcunet.core.saving.atomic_path (imported by name where it is used).
    """
    from frcunet.core import saving
    from frcunet.training import callbacks
    from frcunet.training import trainer as training

    real = saving.atomic_path

    @contextlib.contextmanager
    def atomic_path(path):
        with real(path) as temporary:
            yield temporary
            if Path(path).name == name:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(temporary))

    for module in (saving, callbacks, training):
        monkeypatch.setattr(module, "atomic_path", atomic_path)


def test_a_full_disk_in_the_first_epoch_leaves_no_run_folder(prepared, tmp_path, monkeypatch):
    # Before: the file system's words about a temporary file, and config.json, an empty history.csv and
    # logs/ left behind (on a real full disk HDF5 also crashed the process: callbacks.save_weights_file).
    run = tmp_path / "run"
    _disk_fills_at(monkeypatch, "best-epoch-0001.weights.h5")
    line = _one_error_line(cli("train", "--data", prepared, "--run", run, *UNET_TRAIN, "--epochs", 2))
    assert line == (f"error: no space left on device writing {run / 'resume' / 'best-epoch-0001.weights.h5'}; "
                    "free space and rerun the same command to resume")
    assert not run.exists()

    monkeypatch.undo()
    done = cli("train", "--data", prepared, "--run", run, *UNET_TRAIN, "--epochs", 2)
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(read_history(run)) == 2


def test_a_full_disk_later_keeps_the_finished_epochs_and_the_rerun_resumes(prepared, tmp_path, monkeypatch):
    run = tmp_path / "run"
    _disk_fills_at(monkeypatch, "epoch-0002.weights.h5")
    line = _one_error_line(cli("train", "--data", prepared, "--run", run, *UNET_TRAIN, "--epochs", 3))
    assert line.startswith(f"error: no space left on device writing {run / 'resume' / 'epoch-0002.weights.h5'};")
    assert _resume_state(run)["epochs_done"] == 1
    assert not [p for p in run.rglob(".*")]  # no temporary left behind
    assert [row["epoch"] for row in read_history(run)] == ["0", "1"]  # whole rows only

    monkeypatch.undo()
    done = cli("train", "--data", prepared, "--run", run, *UNET_TRAIN, "--epochs", 3)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"resuming {run} after epoch 1" in done.stdout
    assert [row["epoch"] for row in read_history(run)] == ["0", "1", "2"]
    assert (run / "model.keras").is_file()


def test_a_full_disk_while_writing_model_keras_is_finished_by_the_rerun(prepared, tmp_path, monkeypatch):
    run = tmp_path / "run"
    _disk_fills_at(monkeypatch, "model.keras")
    line = _one_error_line(cli("train", "--data", prepared, "--run", run, *UNET_TRAIN, "--epochs", 1))
    assert line.startswith(f"error: no space left on device writing {run / 'model.keras'};")
    assert not (run / "model.keras").exists() and not list(run.glob(".*"))
    monkeypatch.undo()
    done = cli("train", "--data", prepared, "--run", run, *UNET_TRAIN, "--epochs", 1)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (run / "model.keras").is_file()


def test_errors_that_wrap_a_full_disk_are_recognised():
    from frcunet.training.callbacks import is_disk_full

    # h5py's words when HDF5 could not write (its exception type varies: OSError, RuntimeError...)
    h5py_style = RuntimeError("Can't decrement id ref count (file write failed: time = Wed Dec  2 07:40:01 2026\n"
                              ", filename = 'x.h5', file descriptor = 9, errno = 28, error message = 'No space "
                              "left on device', buf = 0x1, total write size = 4632)")
    assert is_disk_full(h5py_style)
    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as exc:
            raise ValueError("writing failed") from exc
    except ValueError as wrapped:
        assert is_disk_full(wrapped)
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))
    assert not is_disk_full(ValueError("shapes differ"))


def test_weights_written_through_memory_equal_keras_own_file(tmp_path):
    from frcunet.training.callbacks import save_weights_file

    model = build_model("unet", (32, 32, 3), **SMALL_UNET)
    model.compile("adam", "binary_crossentropy")
    model.optimizer.build(model.trainable_variables)
    save_weights_file(model, tmp_path / "ours.weights.h5")
    model.save_weights(tmp_path / "keras.weights.h5")

    def datasets(path):
        found = {}
        with h5py.File(path, "r") as f:
            f.visititems(lambda name, item: found.__setitem__(name, item[()]) if isinstance(item, h5py.Dataset)
                         else None)
        return found

    ours, theirs = datasets(tmp_path / "ours.weights.h5"), datasets(tmp_path / "keras.weights.h5")
    assert ours.keys() == theirs.keys() and len(ours) > 50
    for name in theirs:
        np.testing.assert_array_equal(ours[name], theirs[name], err_msg=name)
    assert list(tmp_path.iterdir()) and not list(tmp_path.glob(".*"))


# 4. SIGTERM


@pytest.mark.long
def test_sigterm_ends_training_like_ctrl_c_and_the_rerun_resumes(prepared, tmp_path, request):
    run = tmp_path / "run"
    # Many epochs of a fraction of a second each: the run is still going when the signal comes.
    command = [sys.executable, "-m", "frcunet", "train", "--data", str(prepared), "--run", str(run),
               *map(str, UNET_TRAIN)]
    with open(tmp_path / "out.log", "w") as out, open(tmp_path / "err.log", "w") as err:
        process = subprocess.Popen([*command, "--epochs", "300"], stdout=out, stderr=err)
    request.addfinalizer(process.kill)  # no orphan when an assertion below fails
    state = run / "resume" / "state.json"
    deadline = time.time() + 600  # a busy 2-core machine can take minutes to start TensorFlow
    while time.time() < deadline and process.poll() is None:
        if state.is_file() and (run / "history.csv").is_file() and read_history(run):
            break
        time.sleep(0.05)
    assert process.poll() is None, (tmp_path / "err.log").read_text()[-3000:]
    process.send_signal(signal.SIGTERM)
    status = process.wait(timeout=300)

    stderr = (tmp_path / "err.log").read_text()
    assert status not in (0, 143, -signal.SIGTERM), stderr[-3000:]
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error: terminated") and "run the same command again to resume" in last, stderr[-3000:]
    assert "Traceback" not in stderr
    kept = _resume_state(run)["epochs_done"]
    assert 1 <= kept < 300 and not list(run.rglob(".*"))

    # The same command, shortened to one more epoch (--epochs does not define a run, so it resumes).
    resumed = subprocess.run([*command, "--epochs", str(kept + 1)], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming {run} after epoch {kept}" in resumed.stdout
    assert [int(row["epoch"]) for row in read_history(run)] == list(range(kept + 1))


def test_the_command_line_puts_back_the_sigterm_handler_it_found(tmp_path):
    before = signal.getsignal(signal.SIGTERM)
    result = cli("train", "--data", tmp_path / "missing", "--model", "unet")
    assert result.returncode == 2 and signal.getsignal(signal.SIGTERM) is before
