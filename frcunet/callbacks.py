"""Callbacks that make a run safe to kill: atomic best weights and a resumable state.

Keras' ModelCheckpoint and BackupAndRestore write in place, so a kill during
a write leaves a broken file, and BackupAndRestore does not keep the state of
ReduceLROnPlateau or EarlyStopping. These write to a temporary name and rename.
"""

import json
import math
import os
from pathlib import Path

import frcunet._startup  # noqa: F401 - quiet backend import, before keras
import keras

from frcunet.saving import atomic_path, save_weights_atomic

STATE_FILE = "state.json"


def _finite(logs, key):
    value = (logs or {}).get(key)
    return value is not None and math.isfinite(float(value))


class NonFiniteLoss(Exception):
    """Training stopped because the loss stopped being a finite number."""


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops at the first batch whose loss is NaN or infinite, and remembers where."""

    def __init__(self):
        super().__init__()
        self.where = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.where is None and not _finite(logs, "loss"):
            self.where = (self.epoch + 1, batch + 1)
            self.model.stop_training = True


class AtomicBestCheckpoint(keras.callbacks.Callback):
    """Saves the weights whenever `monitor` improves, atomically.

    Args:
        path: the `.weights.h5` file.
        monitor: a logged value, e.g. "val_loss" or "val_dice".
        mode: "min" or "max"; "last" saves after every epoch (a final model fitted without validation).
    """

    def __init__(self, path, monitor="val_loss", mode="min", best=None):
        super().__init__()
        self.path, self.monitor, self.mode = Path(path), monitor, mode
        self.best = best
        self.best_epoch = None

    def improved(self, value):
        if self.best is None or self.mode == "last":
            return True
        return value < self.best if self.mode == "min" else value > self.best

    def on_epoch_end(self, epoch, logs=None):
        if not _finite(logs, self.monitor) or not _finite(logs, "loss"):
            return
        value = float(logs[self.monitor])
        if self.improved(value):
            self.best, self.best_epoch = value, epoch + 1
            save_weights_atomic(self.model, self.path)


class ResumableState(keras.callbacks.Callback):
    """After every finished epoch, saves what a resumed run needs, atomically.

    `resume/epoch-NNNN.weights.h5` holds the model and optimizer variables
    (learning rate included); `resume/state.json` names that file and holds the
    epoch and the state of the other callbacks. state.json is replaced only
    after its weights file is complete, so it always points to a whole file.
    """

    def __init__(self, folder, stateful_callbacks, restore=None, nan_guard=None):
        super().__init__()
        self.folder = Path(folder)
        self.stateful = stateful_callbacks  # name -> callback whose counters must survive a restart
        self.restore = restore or {}
        self.nan_guard = nan_guard

    def on_train_begin(self, logs=None):
        # Placed after the stateful callbacks, so this runs after their own resets.
        for name, values in self.restore.items():
            for field, value in values.items():
                if value is not None:
                    setattr(self.stateful[name], field, value)

    def on_epoch_end(self, epoch, logs=None):
        if not _finite(logs, "loss"):
            return  # never make a diverged epoch the one to resume from
        self.folder.mkdir(parents=True, exist_ok=True)
        weights_name = f"epoch-{epoch + 1:04d}.weights.h5"
        save_weights_atomic(self.model, self.folder / weights_name)
        state = {"epochs_done": epoch + 1, "weights": weights_name,
                 "callbacks": {name: callback_state(cb) for name, cb in self.stateful.items()}}
        with atomic_path(self.folder / STATE_FILE) as temporary:
            temporary.write_text(json.dumps(state, indent=1))
        for old in self.folder.glob("epoch-*.weights.h5"):
            if old.name != weights_name:
                os.unlink(old)

    def on_train_end(self, logs=None):
        """Marks the run finished (all epochs, or stopped early), unless it diverged."""
        state = read_resume_state(self.folder)
        if state is None or (self.nan_guard is not None and self.nan_guard.where):
            return
        state["finished"] = True
        state["stopped_early"] = bool(getattr(self.model, "stop_training", False))
        with atomic_path(self.folder / STATE_FILE) as temporary:
            temporary.write_text(json.dumps(state, indent=1))


_STATE_FIELDS = {
    keras.callbacks.ReduceLROnPlateau: ("wait", "best", "cooldown_counter"),
    keras.callbacks.EarlyStopping: ("wait", "best", "best_epoch"),
    AtomicBestCheckpoint: ("best", "best_epoch"),
}


def callback_state(callback):
    fields = getattr(callback, "STATE_FIELDS", None) or next(
        f for cls, f in _STATE_FIELDS.items() if isinstance(callback, cls))
    return {name: _plain(getattr(callback, name, None)) for name in fields}


def _plain(value):
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def read_resume_state(folder):
    """The saved state of an interrupted run, or None."""
    path = Path(folder) / STATE_FILE
    if not path.is_file():
        return None
    state = json.loads(path.read_text())
    if not (Path(folder) / state["weights"]).is_file():
        return None
    return state
