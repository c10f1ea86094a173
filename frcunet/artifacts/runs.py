"""Opening a run folder: its record and its best model, with errors that say what to run.

This module is the only reader of a run's config.json.
"""

import warnings
from dataclasses import dataclass, field
from pathlib import Path

from frcunet.core.errors import UserError
from frcunet.core.saving import read_json

CONFIG_FILE = "config.json"
BEST_WEIGHTS = "best.weights.h5"


@dataclass(frozen=True)
class RunRecord:
    """What a run's config.json says: the fields that rebuild its model, and every setting as written."""

    model: str
    size: tuple  # (height, width) of the training arrays
    model_options: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)  # the whole config.json (training settings, versions...)

    @classmethod
    def from_dict(cls, values, source):
        try:
            return cls(str(values["model"]), tuple(int(v) for v in values["size"]),
                       dict(values.get("model_options") or {}), dict(values))
        except (KeyError, TypeError, ValueError):
            raise UserError(f"{source} lacks a valid model or size; train the run again with --restart") from None


def default_run_folder(data, model="frcunet"):
    """`weights/<data folder name>_<model>`: where train puts a run, and where evaluate looks for one."""
    return Path("weights") / f"{Path(data).name}_{model}"


def read_run_record(run):
    """The RunRecord of a run folder, or None when it has no config.json."""
    path = Path(run) / CONFIG_FILE
    if not path.is_file():
        return None
    return RunRecord.from_dict(read_json(path, "train the run again with --restart"), path)


def read_run_config(run):
    """The RunRecord of a run that has finished at least one epoch (it has best weights)."""
    run = Path(run)
    record = read_run_record(run)
    if record is None:
        raise UserError(f"no run in {run} ({CONFIG_FILE} missing); run python Train_Skin_Lesion_Segmentation.py "
                        "or frcunet train first, or pass --run")
    if not (run / BEST_WEIGHTS).is_file():
        raise UserError(f"{run} has no {BEST_WEIGHTS} yet; let its training finish at least one epoch")
    return record


def load_weights_or_explain(model, path, expected, remedy):
    """Loads a weights file into `model`; a file that does not fit becomes one UserError naming `remedy`."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # a mismatch is reported as one error below
            model.load_weights(path)
    except (ValueError, KeyError, OSError) as exc:
        first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
        raise UserError(f"{path} does not fit {expected} ({first}); {remedy}") from None


def load_run_model(run):
    """(model, RunRecord) of a run: its architecture rebuilt from config.json, its best weights loaded.

    `run` None means the trained model shipped inside the package (`frcunet.artifacts.pretrained`).
    """
    from frcunet.models.registry import build_model_to_load

    if run is None:
        from frcunet.artifacts.pretrained import PRETRAINED_DIR, RECORD_FILE, load_pretrained_model

        model, values = load_pretrained_model()
        return model, RunRecord.from_dict(values, PRETRAINED_DIR / RECORD_FILE)

    record = read_run_config(run)
    expected = f"the {record.model} its {CONFIG_FILE} describes"
    model = build_model_to_load(
        record.model, (*record.size, 3),
        lambda model: load_weights_or_explain(model, Path(run) / BEST_WEIGHTS, expected, "train the run again"),
        **record.model_options)
    return model, record


def run_progress(run):
    """{"epochs_done", "epochs_planned", "finished", "best_epoch"} of a run folder, from its history and record.

    A run is finished once training wrote its model.keras. `best_epoch` (0-based, as history.csv numbers
    them) is the epoch whose weights best.weights.h5 holds: the best of the run's monitor, or the last.
    """
    import csv

    record = read_run_config(run)
    history = Path(run) / "history.csv"
    rows = list(csv.DictReader(history.open(newline=""))) if history.is_file() else []
    monitor = record.settings.get("monitor", "val_loss")
    best = None
    if rows:
        values = [float(row.get(monitor) or "nan") if monitor != "last" else float(i) for i, row in enumerate(rows)]
        pick = min if monitor == "val_loss" else max
        finite = [(v, i) for i, v in enumerate(values) if v == v]
        best = int(rows[pick(finite)[1]]["epoch"]) if finite else None
    return {"epochs_done": len(rows), "epochs_planned": int(record.settings.get("epochs", len(rows))),
            "finished": (Path(run) / "model.keras").is_file(), "best_epoch": best}
