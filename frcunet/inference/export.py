"""Export a run's best model, or the shipped model, for serving: SavedModel, .keras, ONNX or LiteRT.

Every format but .keras takes a batch of uint8 RGB images at the model's size, (N, H, W, 3), with the input
scaling inside, and returns float32 probabilities (N, H, W, 1); the batch dimension is dynamic. SavedModel,
ONNX and LiteRT are written by TensorFlow's converters, so they need TensorFlow installed and, for ONNX and
LiteRT, the TensorFlow backend (the weights are backend-neutral: a run trained on JAX exports the same).
An ONNX model carries metadata (the network, its options and input size, and the SHA-1 of the weights it
came from) that `frcunet predict` reads.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import TYPE_CHECKING

from frcunet.core.errors import UserError
from frcunet.core.saving import atomic_folder, atomic_path, check_output_folder, save_model_atomic

if TYPE_CHECKING:
    import keras

    from frcunet.artifacts.runs import RunRecord

# The formats, and what each writes into an output folder.
FILE_NAMES = {"keras": "model.keras", "savedmodel": "savedmodel", "onnx": "model.onnx", "litert": "model.tflite"}


def _check_tools(fmt):
    import keras

    if fmt == "keras":
        return
    if importlib.util.find_spec("tensorflow") is None:
        raise UserError(f"{fmt} export needs TensorFlow: pip install tensorflow-cpu (or use --format keras)")
    if fmt in ("onnx", "litert") and keras.backend.backend() != "tensorflow":
        raise UserError(f"{fmt} export runs on the TensorFlow backend: run it with KERAS_BACKEND=tensorflow (the "
                        "weights are the same whichever backend trained them)")
    if fmt == "onnx" and importlib.util.find_spec("tf2onnx") is None:
        raise UserError("onnx export needs tf2onnx: pip install tf2onnx onnx")


def _weights_path(run, pretrained):
    from frcunet.artifacts.pretrained import PRETRAINED_DIR, WEIGHTS_FILE
    from frcunet.artifacts.runs import BEST_WEIGHTS

    return PRETRAINED_DIR / WEIGHTS_FILE if pretrained else Path(run) / BEST_WEIGHTS


def _source(run, pretrained):
    """(model, RunRecord, label) of what is exported: a run's best model, or the shipped one."""
    from frcunet.artifacts.runs import load_run_model

    model, record = load_run_model(None if pretrained else run)
    return model, record, "pretrained" if pretrained else str(run)


def export_model(fmt: str, out: Path | str | None = None, run: Path | str | None = None,
                 pretrained: bool = False) -> Path:
    """Writes the export; returns the path of what was written.

    `out` is a folder (replaced atomically when an earlier export wrote it). With `fmt` "onnx", a run and no
    `out`, the export goes into the run folder as its `model.onnx`, which `frcunet predict --run` then uses.
    """
    if fmt not in FILE_NAMES:
        raise UserError(f"--format must be one of {', '.join(FILE_NAMES)}")
    if pretrained and run:
        raise UserError("--pretrained exports the shipped model; drop --run (or --pretrained)")
    if not pretrained and not run:
        raise UserError("give --run RUN to export a run, or --pretrained for the model shipped in the package")
    _check_tools(fmt)
    if out is None:
        if not (fmt == "onnx" and run):
            raise UserError("give --out FOLDER (only --format onnx of a --run may go into the run folder itself)")
        return _export_into_run(fmt, Path(run))
    check_output_folder(Path(out), "export", keep_clear=(run,) if run else ())
    weights = _weights_path(run, pretrained)
    weights_sha1 = _sha1(weights) if weights.is_file() else None  # hashed before loading: what the export holds
    model, record, label = _source(run, pretrained)
    out = Path(out)
    with atomic_folder(out, "export", keep_clear=(run,) if run else ()) as staging:
        _write(fmt, model, record, staging / FILE_NAMES[fmt], weights_sha1, label)
    return out / FILE_NAMES[fmt]


def _sha1(path):
    from frcunet.core.provenance import file_sha1

    return file_sha1(path)


def _export_into_run(fmt, run):
    """The run's own model.onnx, written under the run's lock (one writer per run folder: not while it trains).

    The weights are hashed before they are loaded and again after the export: the SHA-1 written into the
    model is that of the weights it holds.
    """
    from frcunet.artifacts.runs import BEST_WEIGHTS, RUN_ONNX_FILE
    from frcunet.core.locks import exclusive_lock

    with exclusive_lock(run.parent / f".{run.name}.lock", run, "trained"):
        weights = run / BEST_WEIGHTS
        weights_sha1 = _sha1(weights) if weights.is_file() else None
        model, record, label = _source(str(run), False)
        with atomic_path(run / RUN_ONNX_FILE) as temporary:
            _write(fmt, model, record, temporary, weights_sha1, label)
            if _sha1(weights) != weights_sha1:
                raise UserError(f"{weights} changed while it was exported; export again")
    return run / RUN_ONNX_FILE


def _write(fmt, model, record, path, weights_sha1, label):
    if fmt == "keras":
        save_model_atomic(model, path)
    elif fmt == "savedmodel":
        _write_saved_model(model, record.size, path)
    elif fmt == "onnx":
        write_onnx(model, record, path, weights_sha1, label)
    else:
        _uint8_model(model, record.size).export(str(path), format="litert", verbose=False)


def _uint8_model(model, size):
    """`model` behind a uint8 input: what every serving format takes."""
    import keras
    import numpy as np

    images = keras.Input((*size, 3), dtype="uint8", name="images")
    wrapped = keras.Model(images, model(keras.ops.cast(images, "float32")), name=f"{model.name}_uint8")
    wrapped(np.zeros((1, *size, 3), np.uint8))  # Keras' ONNX export refuses a model that was never called
    return wrapped


def write_onnx(model: keras.Model, record: RunRecord, path: Path | str, weights_sha1: str | None,
               label: str) -> None:
    """An ONNX model of `model` (uint8 images in, "probabilities" out) with frcunet's metadata."""
    import warnings

    import onnx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # Keras' tf2onnx shim probes np.object
        _uint8_model(model, record.size).export(str(path), format="onnx", verbose=False)
    proto = onnx.load(str(path))
    produced = proto.graph.output[0].name
    for node in proto.graph.node:
        node.output[:] = ["probabilities" if name == produced else name for name in node.output]
    proto.graph.output[0].name = "probabilities"
    onnx.helper.set_model_props(proto, {
        "frcunet_model": record.model, "frcunet_model_options": json.dumps(record.model_options, sort_keys=True),
        "frcunet_size": f"{record.size[0]} {record.size[1]}", "frcunet_weights_sha1": weights_sha1,
        "frcunet_source": label})
    onnx.save(proto, str(path))


def _write_saved_model(model, size, path):
    import keras
    import tensorflow as tf

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name="serve",
        fn=lambda images: model(keras.ops.cast(images, "float32"), training=False),
        input_signature=[tf.TensorSpec((None, *size, 3), tf.uint8, name="images")],
    )
    archive.write_out(str(path), verbose=False)
