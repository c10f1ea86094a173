"""The trained model shipped inside the package: frcunet-lite trained on ISIC 2018 (see its MODEL_CARD.md).

The weights are stored as float16 arrays in one `.npz` (half the size of a
float32 `.weights.h5`, and readable without Keras), beside a JSON record of the
architecture, input size and held-out test ids. Loading rebuilds the model in
float32 and assigns the arrays in the model's own weight order, checked by name
and shape, so it works on every Keras backend and needs no network.
"""

import json
from pathlib import Path

import numpy as np

from frcunet.core.errors import UserError

PRETRAINED_DIR = Path(__file__).resolve().parents[1] / "pretrained"
WEIGHTS_FILE = "frcunet_lite_isic2018.npz"
RECORD_FILE = "frcunet_lite_isic2018.json"
ONNX_FILE = "frcunet_lite_isic2018.onnx"  # the same weights as an ONNX model: prediction without TensorFlow
MODEL_CARD = "MODEL_CARD.md"
# What `--init-weights` / `init_weights=` takes to start a training from the shipped model.
PRETRAINED_NAME = "pretrained"


def pretrained_record(folder=PRETRAINED_DIR):
    """The shipped model's record: model, model_options, size, recipe, test metrics, held-out test ids."""
    path = Path(folder) / RECORD_FILE
    if not path.is_file() or not (Path(folder) / WEIGHTS_FILE).is_file():
        raise UserError(f"no trained model is shipped in {folder}; reinstall frcunet, or pass --run with a run "
                        "folder you trained")
    return json.loads(path.read_text())


def _stored_weights(folder):
    """(names, float16 arrays) of the shipped weights, in the order the model was saved."""
    with np.load(Path(folder) / WEIGHTS_FILE) as stored:
        names = [str(n) for n in stored["names"]]
        return names, [stored[f"w{i:04d}"] for i in range(len(names))]


def load_pretrained_weights(model, folder=PRETRAINED_DIR):
    """Assigns the shipped weights to `model`, checked by name and shape (any input size: the network is
    fully convolutional, no weight depends on it)."""
    record = pretrained_record(folder)
    names, values = _stored_weights(folder)
    expected = [w.path for w in model.weights]
    if names != expected or any(tuple(v.shape) != tuple(w.shape) for v, w in zip(values, model.weights)):
        raise UserError(f"{Path(folder) / WEIGHTS_FILE} does not fit {record['model']} as this version builds "
                        "it; reinstall frcunet")
    model.set_weights([v.astype(np.float32) for v in values])


def load_pretrained_model(folder=PRETRAINED_DIR):
    """(model, record) of the shipped model: a float32 keras.Model taking raw RGB images, and its record."""
    from frcunet.models.registry import build_model_to_load

    record = pretrained_record(folder)
    model = build_model_to_load(record["model"], (*record["size"], 3),
                                lambda model: load_pretrained_weights(model, folder), **record["model_options"])
    return model, record


def pretrained_source(folder=PRETRAINED_DIR):
    """{"file", "sha1"} of the shipped weights: what a run started from them records."""
    from frcunet.core.provenance import file_sha1

    path = Path(folder) / WEIGHTS_FILE
    return {"file": path.name, "sha1": file_sha1(path)}


def pretrained_architecture(model, options, folder=PRETRAINED_DIR):
    """(model name, model options) of the shipped model, for a training that starts from it.

    `model` (None: not asked) and `options` are what the caller asked for; each must agree with the shipped
    network, compared on the values the builder would use, else one UserError names the shipped value.
    """
    from frcunet.models.registry import effective_model_options

    record = pretrained_record(folder)
    shipped_name, shipped_options = record["model"], dict(record["model_options"])
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


def write_pretrained(model, record, folder):
    """Stores `model`'s weights as float16 and `record` as JSON in `folder`, each file atomically."""
    from frcunet.core.saving import atomic_path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {f"w{i:04d}": np.asarray(w.numpy(), np.float16) for i, w in enumerate(model.weights)}
    arrays["names"] = np.array([w.path for w in model.weights])
    with atomic_path(folder / WEIGHTS_FILE) as temporary:
        with open(temporary, "wb") as f:
            np.savez_compressed(f, **arrays)
    with atomic_path(folder / RECORD_FILE) as temporary:
        temporary.write_text(json.dumps(record, indent=1))
