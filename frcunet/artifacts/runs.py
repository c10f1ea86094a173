"""Opening a run folder: its record and its best model, with errors that say what to run.

This module is the only reader and the only writer of a run's config.json (`RunRecord`).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from frcunet.core.errors import UserError
from frcunet.core.saving import read_json

if TYPE_CHECKING:
    import keras

# The files of a run folder.
CONFIG_FILE = "config.json"
BEST_WEIGHTS = "best.weights.h5"
MODEL_FILE = "model.keras"  # the best weights in a fresh model, written when training ends
RUN_ONNX_FILE = "model.onnx"  # `frcunet export --run R --format onnx`, used by predict while it matches
HISTORY_FILE = "history.csv"
LOGS_DIR = "logs"  # TensorBoard
RESUME_DIR = "resume"
RUN_FILES = {CONFIG_FILE, BEST_WEIGHTS, MODEL_FILE, RUN_ONNX_FILE, HISTORY_FILE, LOGS_DIR, RESUME_DIR}


@dataclass(frozen=True)
class RunRecord:
    """What a run's config.json (or the shipped model's record) says.

    The fields that rebuild the model and that other commands check are typed; `setting(name)` reads any other
    recorded training setting (the resume check compares the run-defining ones, provenance copies some).
    """

    model: str
    size: tuple[int, int]  # (height, width) of the training arrays
    model_options: dict[str, Any] = field(default_factory=dict)
    data: str | None = None  # the prepared folder it trained on
    data_manifest_sha1: str | None = None
    seen_ids: dict[str, list[str]] | None = None  # {"train", "val", "init_weights"}: ids it fitted or validated on
    monitor: str = "val_loss"
    epochs: int | None = None  # planned
    _values: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: Path | str) -> RunRecord:
        try:
            epochs = values.get("epochs")
            return cls(str(values["model"]), tuple(int(v) for v in values["size"]),
                       dict(values.get("model_options") or {}), values.get("data"), values.get("data_manifest_sha1"),
                       values.get("seen_ids"), values.get("monitor") or "val_loss",
                       int(epochs) if epochs is not None else None, dict(values))
        except (AttributeError, KeyError, TypeError, ValueError):
            raise UserError(f"{source} lacks a valid model or size; train the run again with --restart") from None

    def setting(self, name: str, default: Any = None) -> Any:
        """A recorded setting by its TrainConfig name (or versions, git_commit...); `default` when not recorded."""
        return self._values.get(name, default)

    def has_setting(self, name: str) -> bool:
        return name in self._values


def write_run_record(run: Path | str, values: dict[str, Any]) -> RunRecord:
    """Writes a run's config.json atomically from the settings dict `values` (TrainConfig's fields and what
    training adds: size, seen ids, provenance); returns its RunRecord."""
    from frcunet.core.saving import atomic_path

    record = RunRecord.from_dict(values, Path(run) / CONFIG_FILE)
    with atomic_path(Path(run) / CONFIG_FILE) as temporary:
        temporary.write_text(json.dumps(values, indent=1))
    return record


def default_run_folder(data: Path | str, model: str = "frcunet") -> Path:
    """`weights/<data folder name>_<model>`: where train puts a run, and where evaluate looks for one."""
    return Path("weights") / f"{Path(data).name}_{model}"


def read_run_record(run: Path | str) -> RunRecord | None:
    """The RunRecord of a run folder, or None when it has no config.json."""
    path = Path(run) / CONFIG_FILE
    if not path.is_file():
        return None
    return RunRecord.from_dict(read_json(path, "train the run again with --restart"), path)


def read_run_config(run: Path | str) -> RunRecord:
    """The RunRecord of a run that has finished at least one epoch (it has best weights)."""
    run = Path(run)
    record = read_run_record(run)
    if record is None:
        raise UserError(f"no run in {run} ({CONFIG_FILE} missing); run frcunet train first, or pass "
                        "--run")
    if not (run / BEST_WEIGHTS).is_file():
        raise UserError(f"{run} has no {BEST_WEIGHTS} yet; let its training finish at least one epoch")
    return record


def load_weights_or_explain(model: keras.Model, path: Path | str, expected: str, remedy: str) -> None:
    """Loads a weights file into `model`; a file that does not fit becomes one UserError naming `remedy`."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # a mismatch is reported as one error below
            model.load_weights(path)
    except (ValueError, KeyError, OSError) as exc:
        first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
        raise UserError(f"{path} does not fit {expected} ({first}); {remedy}") from None


def load_run_model(run: Path | str | None) -> tuple[keras.Model, RunRecord]:
    """(model, RunRecord) of a run: its architecture rebuilt from config.json, its best weights loaded.

    `run` None means the trained model shipped inside the package (`frcunet.artifacts.pretrained`).
    """
    from frcunet.models.registry import build_model_to_load

    if run is None:
        from frcunet.artifacts.pretrained import load_pretrained_model

        model, shipped = load_pretrained_model()
        return model, RunRecord(shipped.model, shipped.size, dict(shipped.model_options), seen_ids=shipped.seen_ids,
                                _values=shipped.as_dict())

    record = read_run_config(run)
    expected = f"the {record.model} its {CONFIG_FILE} describes"
    model = build_model_to_load(
        record.model, (*record.size, 3),
        lambda model: load_weights_or_explain(model, Path(run) / BEST_WEIGHTS, expected, "train the run again"),
        **record.model_options)
    return model, record


def run_progress(run: Path | str) -> dict[str, Any]:
    """{"epochs_done", "epochs_planned", "finished", "best_epoch"} of a run folder, from its history and record.

    A run is finished once training wrote its model.keras. `best_epoch` (0-based, as history.csv numbers
    them) is the epoch whose weights best.weights.h5 holds: the best of the run's monitor, or the last.
    """
    import csv

    record = read_run_config(run)
    history = Path(run) / HISTORY_FILE
    rows = list(csv.DictReader(history.open(newline=""))) if history.is_file() else []
    monitor = record.monitor
    best = None
    if rows:
        values = [float(row.get(monitor) or "nan") if monitor != "last" else float(i) for i, row in enumerate(rows)]
        pick = min if monitor == "val_loss" else max
        finite = [(v, i) for i, v in enumerate(values) if v == v]
        best = int(rows[pick(finite)[1]]["epoch"]) if finite else None
    return {"epochs_done": len(rows), "epochs_planned": record.epochs if record.epochs is not None else len(rows),
            "finished": (Path(run) / MODEL_FILE).is_file(), "best_epoch": best}
