"""The trained model shipped inside the package: frcunet-lite trained on ISIC 2018 (see its MODEL_CARD.md).

The weights are stored as float16 arrays in one `.npz` (half the size of a
float32 `.weights.h5`, and readable without Keras), beside a JSON record of the
architecture, input size and held-out test ids. Loading rebuilds the model in
float32 and assigns the arrays in the model's own weight order, checked by name
and shape, so it works on every Keras backend and needs no network.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from frcunet.core.errors import UserError
from frcunet.core.saving import read_json

if TYPE_CHECKING:
    import keras

PRETRAINED_DIR = Path(__file__).resolve().parents[1] / "pretrained"
WEIGHTS_FILE = "frcunet_lite_isic2018.npz"
RECORD_FILE = "frcunet_lite_isic2018.json"
ONNX_FILE = "frcunet_lite_isic2018.onnx"  # the same weights as an ONNX model: prediction without TensorFlow
MODEL_CARD = "MODEL_CARD.md"
# What `--init-weights` / `init_weights=` takes to start a training from the shipped model.
PRETRAINED_NAME = "pretrained"


@dataclass(frozen=True)
class ShippedRecord:
    """The shipped model's record (its JSON file): the network, its input size, how it was trained and on
    what, its test scores, and the ids it saw (which evaluate refuses to score it on)."""

    model: str
    size: tuple[int, int]
    model_options: dict[str, Any] = field(default_factory=dict)
    threshold: float = 0.5
    training: dict[str, Any] = field(default_factory=dict)  # the recipe's settings and the epochs run
    data: dict[str, Any] = field(default_factory=dict)  # dataset, source, split protocol, counts, manifest hash
    test_metrics: dict[str, Any] = field(default_factory=dict)  # as metrics.json has them
    test_evaluation: dict[str, Any] = field(default_factory=dict)  # tta, threshold
    held_out_test_ids: list[str] = field(default_factory=list)
    seen_ids: dict[str, list[str]] = field(default_factory=dict)  # {"train": ids, "val": ids}
    versions: dict[str, str] = field(default_factory=dict)
    git_commit: str | None = None
    onnx: dict[str, str] | None = None  # {"file", "sha1"} of the ONNX export

    @classmethod
    def from_dict(cls, values: dict, source: Path | str) -> ShippedRecord:
        try:
            known = {key: values[key] for key in cls.__dataclass_fields__ if key in values}
            return cls(**{**known, "size": tuple(int(v) for v in values["size"])})
        except (KeyError, TypeError, ValueError):
            raise UserError(f"{source} is not a valid shipped-model record; reinstall frcunet") from None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "size": list(self.size)}


def pretrained_record(folder: Path | str = PRETRAINED_DIR) -> ShippedRecord:
    """The shipped model's record (see ShippedRecord)."""
    path = Path(folder) / RECORD_FILE
    if not path.is_file() or not (Path(folder) / WEIGHTS_FILE).is_file():
        raise UserError(f"no trained model is shipped in {folder}; reinstall frcunet, or pass --run with a run "
                        "folder you trained")
    return ShippedRecord.from_dict(read_json(path, "reinstall frcunet"), path)


def _stored_weights(folder):
    """(names, float16 arrays) of the shipped weights, in the order the model was saved."""
    with np.load(Path(folder) / WEIGHTS_FILE) as stored:
        names = [str(n) for n in stored["names"]]
        return names, [stored[f"w{i:04d}"] for i in range(len(names))]


def load_pretrained_weights(model: keras.Model, folder: Path | str = PRETRAINED_DIR) -> None:
    """Assigns the shipped weights to `model`, checked by name and shape (any input size: the network is
    fully convolutional, no weight depends on it)."""
    record = pretrained_record(folder)
    names, values = _stored_weights(folder)
    expected = [w.path for w in model.weights]
    if names != expected or any(tuple(v.shape) != tuple(w.shape) for v, w in zip(values, model.weights, strict=True)):
        raise UserError(f"{Path(folder) / WEIGHTS_FILE} does not fit {record.model} as this version builds "
                        "it; reinstall frcunet")
    model.set_weights([v.astype(np.float32) for v in values])


@contextlib.contextmanager
def _float32_policy() -> Iterator[None]:
    """Keras' global dtype policy set to float32 for the block, the caller's restored after."""
    import keras

    caller = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(caller)


def load_pretrained_model(folder: Path | str = PRETRAINED_DIR) -> tuple[keras.Model, ShippedRecord]:
    """(model, record) of the shipped model: a float32 keras.Model taking raw RGB images, and its record.

    Float32 whatever the caller's dtype policy (a mixed-precision notebook, say): the weights are float32.
    """
    from frcunet.models.registry import build_model_to_load

    record = pretrained_record(folder)
    with _float32_policy():
        model = build_model_to_load(record.model, (*record.size, 3),
                                    lambda model: load_pretrained_weights(model, folder), **record.model_options)
    return model, record


def pretrained_source(folder: Path | str = PRETRAINED_DIR) -> dict[str, str]:
    """{"file", "sha1"} of the shipped weights: what a run started from them records."""
    from frcunet.core.provenance import file_sha1

    path = Path(folder) / WEIGHTS_FILE
    return {"file": path.name, "sha1": file_sha1(path)}


def pretrained_architecture(model: str | None, options: dict[str, Any],
                            folder: Path | str = PRETRAINED_DIR) -> tuple[str, dict[str, Any]]:
    """(model name, model options) of the shipped model, for a training that starts from it.

    `model` (None: not asked) and `options` are what the caller asked for; each must agree with the shipped
    network, compared on the values the builder would use, else one UserError names the shipped value.
    """
    from frcunet.models.registry import effective_model_options

    record = pretrained_record(folder)
    shipped_name, shipped_options = record.model, dict(record.model_options)
    if model not in (None, shipped_name):
        raise UserError(f"--model {model} would build another network than the shipped model, which is "
                        f"{shipped_name}; drop --model to fine-tune the shipped model")
    shipped = effective_model_options(shipped_name, shipped_options)
    for key, value in sorted(options.items()):
        flag = "--" + key.replace("_", "-")
        if key not in shipped:
            raise UserError(f"the shipped {shipped_name} has no {flag} option; drop {flag} to fine-tune it")
        if shipped[key] != value:
            raise UserError(f"{flag} {_flag_value(value)} would build another network than the shipped "
                            f"{shipped_name} ({flag} {_flag_value(shipped[key])}); drop {flag} to fine-tune the "
                            "shipped model")
    return shipped_name, shipped_options


def _flag_value(value):
    return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value


def write_pretrained(model: keras.Model, record: ShippedRecord, folder: Path | str) -> None:
    """Stores `model`'s weights as float16 and `record` as JSON in `folder`, each file atomically."""
    from frcunet.core.saving import atomic_path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {f"w{i:04d}": np.asarray(w.numpy(), np.float16) for i, w in enumerate(model.weights)}
    arrays["names"] = np.array([w.path for w in model.weights])
    with atomic_path(folder / WEIGHTS_FILE) as temporary:
        with open(temporary, "wb") as f:
            np.savez_compressed(f, **arrays)
    write_shipped_record(folder, record)


def write_shipped_record(folder: Path | str, record: ShippedRecord) -> None:
    """The record's one writer: its JSON file in `folder`, atomically."""
    from frcunet.core.saving import atomic_path

    with atomic_path(Path(folder) / RECORD_FILE) as temporary:
        temporary.write_text(json.dumps(record.as_dict(), indent=1))
