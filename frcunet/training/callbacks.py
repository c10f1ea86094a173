"""Callbacks that make a run safe to kill: atomic best weights and a resumable state.

Keras' ModelCheckpoint and BackupAndRestore write in place, so a kill during
a write leaves a broken file, and BackupAndRestore does not keep the state of
ReduceLROnPlateau or EarlyStopping; CSVLogger appends in place. These write to a
temporary name and rename, and a full disk ends in one UserError (reporting_full_disk).
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras
import numpy as np

from frcunet.core.errors import UserError
from frcunet.core.saving import atomic_path
from frcunet.models.batch_norm import recalibrate_batch_norm

if TYPE_CHECKING:
    from frcunet.data.pipeline import SegmentationBatches

STATE_FILE = "state.json"


@dataclass(frozen=True)
class ResumeState:
    """What `resume/state.json` holds: the last finished epoch, its weights file, the stateful callbacks'
    counters (the schedule's plan included), the layers' random-seed states, and how far the run got after it."""

    epochs_done: int
    weights: str  # the file in resume/ that holds the model and optimizer variables after that epoch
    callbacks: dict[str, dict[str, Any]]
    seed_states: list[Any] | None = None
    best_staged: str | None = None  # a new best checkpoint staged but not yet published (see publish_staged_best)
    finished: bool = False
    stopped_early: bool = False
    model_exported: bool | None = None  # None: not recorded (runs from before the flag had exported it)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ResumeState:
        known = {key: values[key] for key in cls.__dataclass_fields__ if key in values}
        return cls(**{**known, "epochs_done": int(values["epochs_done"]), "weights": str(values["weights"]),
                      "callbacks": dict(values["callbacks"])})


def is_disk_full(exc: BaseException | None) -> bool:
    """True when `exc`, or an exception it wraps, is the file system's "no space left on device".

    h5py and TensorFlow report it in exception types of their own, with the errno only in the message.
    """
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        text = str(exc)
        if getattr(exc, "errno", None) == errno.ENOSPC or "errno = 28" in text or os.strerror(errno.ENOSPC) in text:
            return True
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    return False


@contextlib.contextmanager
def reporting_full_disk(path: Path | str) -> Iterator[None]:
    """Turns a full disk while writing `path` into one UserError that says how to go on."""
    try:
        yield
    except UserError:
        raise  # already says what to do (an inner writer's own report)
    except Exception as exc:
        if not is_disk_full(exc):
            raise
        raise UserError(f"no space left on device writing {path}; free space and rerun the same command to "
                        "resume") from None


def _weights_file_image(model):
    """The bytes `model.save_weights` would write, built in memory by Keras' own writer (no public way)."""
    from keras.src.saving import saving_lib

    image = io.BytesIO()
    store = saving_lib.H5IOStore(image, mode="w")
    try:
        saving_lib._save_state(model, store, None, "", set())
    finally:
        store.close()
    return image


def save_weights_file(model: keras.Model, path: Path | str) -> None:
    """`model.save_weights(path)`, atomically, and with a full disk reported as a UserError.

    HDF5 crashed the process (a segmentation fault as it closed the file) when the disk filled while it
    wrote, so the file is built in memory and written with plain file I/O, where a full disk is an ordinary
    OSError. It costs one file's size of memory while it is written.
    """
    image = _weights_file_image(model)
    with reporting_full_disk(path), atomic_path(path) as temporary:
        temporary.write_bytes(image.getbuffer())


def _write_json(path, value):
    with reporting_full_disk(path), atomic_path(path) as temporary:
        temporary.write_text(json.dumps(value, indent=1))


def _finite(logs, key):
    value = (logs or {}).get(key)
    return value is not None and math.isfinite(float(value))


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops at the first batch whose loss is NaN or infinite, and remembers where."""

    def __init__(self) -> None:
        super().__init__()
        self.where: tuple[int, int] | None = None  # (epoch, batch), counted from 1

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self.where is None and not _finite(logs, "loss"):
            self.where = (self.epoch + 1, batch + 1)
            self.model.stop_training = True


class AtomicHistory(keras.callbacks.Callback):
    """Writes history.csv after every epoch, whole and atomically, in CSVLogger's columns.

    CSVLogger appends to an open file: a kill or a full disk could leave half a row, and a run that never
    finishes an epoch leaves an empty file. This file appears with the first epoch and only ever holds
    whole rows. A resumed run continues the rows already there (frcunet.training.trainer trims them first).

    Args:
        path: the `.csv` file.
    """

    def __init__(self, path: Path | str) -> None:
        super().__init__()
        self.path = Path(path)
        self.header: list[str] | None = None
        self.rows: list[list[Any]] = []

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.header, self.rows = None, []
        if self.path.is_file():
            with open(self.path, newline="") as f:
                earlier = [row for row in csv.reader(f) if row]
            self.header, self.rows = (earlier[0], earlier[1:]) if earlier else (None, [])

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        if self.header is None:
            self.header = ["epoch", *_history_columns(logs)]
        self.rows.append([epoch, *(logs.get(key, "NA") for key in self.header[1:])])
        with reporting_full_disk(self.path), atomic_path(self.path) as temporary, \
                open(temporary, "w", newline="") as f:
            csv.writer(f).writerows([self.header, *self.rows])


def _history_columns(logs):
    """CSVLogger's columns: the logged names, sorted, with `val_` twins when nothing was validated."""
    names = sorted(logs)
    if not any(name.startswith("val_") for name in names):
        names += [f"val_{name}" for name in names]
    return names


class RecalibrateBatchNorm(keras.callbacks.Callback):
    """Before every validation, re-estimates batch norm's statistics on the same training batches.

    Validation, the best checkpoint and the resume state then all see statistics of the weights being
    validated (frcunet.models.batch_norm). Placed after SwapEMAWeights, it re-estimates them for the averaged weights.

    Args:
        batches: a SegmentationBatches of the training images, unaugmented, in a fixed order.
        count: how many of its batches to use.
    """

    def __init__(self, batches: SegmentationBatches, count: int) -> None:
        super().__init__()
        self.batches, self.count = batches, count

    def on_test_begin(self, logs: dict[str, Any] | None = None) -> None:
        recalibrate_batch_norm(self.model, (self.batches[index][0] for index in range(self.count)))


class AtomicBestCheckpoint(keras.callbacks.Callback):
    """Saves the weights whenever `monitor` improves, atomically.

    Args:
        path: the `.weights.h5` file.
        monitor: a logged value, e.g. "val_loss" or "val_dice".
        mode: "min" or "max"; "last" saves after every epoch (a final model fitted without validation).
    """

    def __init__(self, path: Path | str, monitor: str = "val_loss", mode: str = "min", best: float | None = None,
                 staging: Path | str | None = None) -> None:
        """With `staging` (a folder), an improvement is saved there and published by ResumableState."""
        super().__init__()
        self.path, self.monitor, self.mode = Path(path), monitor, mode
        self.best = best
        self.best_epoch: int | None = None
        self.staging = Path(staging) if staging else None
        self.staged: Path | None = None

    def improved(self, value: float) -> bool:
        if self.best is None or self.mode == "last":
            return True
        return value < self.best if self.mode == "min" else value > self.best

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if not _finite(logs, self.monitor) or not _finite(logs, "loss"):
            return
        value = float(logs[self.monitor])
        if self.improved(value):
            self.best, self.best_epoch = value, epoch + 1
            if self.staging is None:
                save_weights_file(self.model, self.path)
                return
            self.staging.mkdir(parents=True, exist_ok=True)
            self.staged = self.staging / f"{STAGED_BEST_PREFIX}{epoch + 1:04d}.weights.h5"
            save_weights_file(self.model, self.staged)


STAGED_BEST_PREFIX = "best-epoch-"


def seed_state_variables(model: keras.Model) -> list[keras.Variable]:
    """The random-seed states of the model's layers (dropout); `save_weights` leaves them out."""
    return [v for v in model.variables if v.path.endswith("seed_generator_state")]


def publish_staged_best(folder: Path | str, state: ResumeState | None, best_path: Path | str) -> None:
    """Finishes what a kill interrupted: the staged best weights that `state` names become `best_path`.

    Staged files of epochs that `state` does not name (an epoch that is redone) are removed.
    """
    staged = state.best_staged if state is not None else None
    if staged and (Path(folder) / staged).is_file():
        os.replace(Path(folder) / staged, best_path)
    for old in Path(folder).glob(f"{STAGED_BEST_PREFIX}*.weights.h5"):
        old.unlink()
    for temporary in Path(folder).glob(".*"):  # atomic writes cut short by a kill
        temporary.unlink()


class ResumableState(keras.callbacks.Callback):
    """After every finished epoch, saves what a resumed run needs, atomically. Must be the last callback.

    `resume/epoch-NNNN.weights.h5` holds the model and optimizer variables
    (learning rate included); `resume/state.json` names that file and holds the
    epoch, the layers' random-seed states and the state of the other callbacks.
    state.json is replaced only after its weights file is complete, so it always
    points to a whole file. Since it runs last, the history row is written before
    it; a new best checkpoint, staged by the checkpoint callback, is published
    only after state.json records it, so a kill at any moment leaves
    `best.weights.h5` and the recorded best value in agreement.
    """

    def __init__(self, folder: Path | str, stateful_callbacks: Mapping[str, keras.callbacks.Callback],
                 restore: Mapping[str, Mapping[str, Any]] | None = None, nan_guard: StopOnNonFiniteLoss | None = None,
                 seed_states: list[Any] | None = None, best: AtomicBestCheckpoint | None = None) -> None:
        super().__init__()
        self.folder = Path(folder)
        self.stateful = stateful_callbacks  # name -> callback whose counters must survive a restart
        self.restore = restore or {}
        self.nan_guard = nan_guard
        self.seed_states = seed_states
        self.best = best  # the AtomicBestCheckpoint whose staged file this publishes

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        # Placed after the stateful callbacks, so this runs after their own resets.
        for name, values in self.restore.items():
            for field, value in values.items():
                if value is not None:
                    setattr(self.stateful[name], field, value)
        # strict=False: a state saved without seed states (None) restores none of them.
        for variable, value in zip(seed_state_variables(self.model), self.seed_states or [], strict=False):
            variable.assign(np.asarray(value, dtype=variable.dtype))

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if not _finite(logs, "loss"):
            return  # never make a diverged epoch the one to resume from
        self.folder.mkdir(parents=True, exist_ok=True)
        weights_name = f"epoch-{epoch + 1:04d}.weights.h5"
        save_weights_file(self.model, self.folder / weights_name)
        staged = self.best.staged if self.best is not None else None
        state = ResumeState(epoch + 1, weights_name,
                            {name: callback_state(cb) for name, cb in self.stateful.items()},
                            [np.asarray(v).tolist() for v in seed_state_variables(self.model)],
                            staged.name if staged else None)
        _write_state(self.folder, state)
        if staged:
            os.replace(staged, self.best.path)
            self.best.staged = None
        for old in self.folder.glob("epoch-*.weights.h5"):
            if old.name != weights_name:
                os.unlink(old)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        """Marks the run finished (all epochs, or stopped early), unless it diverged."""
        if self.nan_guard is not None and self.nan_guard.where:
            return
        update_resume_state(self.folder, finished=True,
                            stopped_early=bool(getattr(self.model, "stop_training", False)))


def _write_state(folder: Path | str, state: ResumeState) -> None:
    """state.json's one writer (atomic)."""
    _write_json(Path(folder) / STATE_FILE, asdict(state))


def update_resume_state(folder: Path | str, **fields: Any) -> None:
    """Sets `fields` of the saved resume state (e.g. that the run finished, or wrote its model.keras)."""
    state = read_resume_state(folder)
    if state is not None:
        _write_state(folder, replace(state, **fields))


_STATE_FIELDS = {
    keras.callbacks.ReduceLROnPlateau: ("wait", "best", "cooldown_counter"),
    keras.callbacks.EarlyStopping: ("wait", "best", "best_epoch"),
    AtomicBestCheckpoint: ("best", "best_epoch"),
}


def callback_state(callback: keras.callbacks.Callback) -> dict[str, Any]:
    fields = getattr(callback, "STATE_FIELDS", None) or next(
        f for cls, f in _STATE_FIELDS.items() if isinstance(callback, cls))
    return {name: _json_value(getattr(callback, name, None)) for name in fields}


def _json_value(value):
    """A callback's state field as JSON: None, a flag, an integer, a finite float (else None), or a list."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (list, tuple)):
        return [_json_value(item) for item in value]
    if isinstance(value, int):
        return value
    value = float(value)
    return value if math.isfinite(value) else None


def read_resume_state(folder: Path | str) -> ResumeState | None:
    """state.json's one reader: the saved state of an interrupted run, or None (none, or its weights are gone)."""
    path = Path(folder) / STATE_FILE
    if not path.is_file():
        return None
    try:
        state = ResumeState.from_dict(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError, AttributeError):
        raise UserError(f"{path} is damaged; run the same command with --restart to train from the start") from None
    return state if (Path(folder) / state.weights).is_file() else None
