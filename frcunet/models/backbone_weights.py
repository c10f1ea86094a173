"""Initialise the Xception encoder from a DeepLabv3+ weight file, by layer name.

The public DeepLabv3+ Xception release (PASCAL VOC) is a Keras 2 HDF5 weights
file: one group per layer, each with a `weight_names` attribute listing its
arrays in Keras order. Layers of our model whose name and shapes match take
those arrays; everything else (our decoder, the file's ASPP head) is left as is.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import keras

from frcunet.core.errors import UserError

XCEPTION_VOC = "deeplabv3_xception_tf_dim_ordering_tf_kernels.h5"
KNOWN_WEIGHTS = {
    XCEPTION_VOC: "https://github.com/bonlime/keras-deeplab-v3-plus/releases/download/1.1/" + XCEPTION_VOC,
}
URL_ENV = "FRCUNET_XCEPTION_URL"  # a mirror of the known file
# The released network named two of its bottleneck BN layers after DeepLabv3+ layers, so its by-name load
# filled them from the VOC file too. This project names them after what they do; the file's names map here.
VOC_NAMES = {"aspp0_BN": "reduce_BN", "concat_projection_BN": "bottleneck_BN"}


@dataclass
class WeightMatch:
    """How a weight file met a model: which layers took weights and which did not."""

    path: str
    loaded: list[str] = field(default_factory=list)
    shape_mismatch: list[str] = field(default_factory=list)
    not_in_model: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"loaded {len(self.loaded)} layers from {self.path}; "
            f"{len(self.shape_mismatch)} with other shapes, {len(self.not_in_model)} not in the model"
        )


def resolve_weights(source: Path | str) -> Path:
    """A local path, or a known file name fetched into the Keras cache."""
    path = Path(source).expanduser()
    if path.is_file():
        return path
    name = path.name
    if name not in KNOWN_WEIGHTS:
        raise UserError(f"backbone weights {source} not found; give an .h5 path or the name {XCEPTION_VOC}")
    # Read KERAS_HOME now, not when keras was imported, so a changed setting counts.
    keras_home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    url = os.environ.get(URL_ENV, KNOWN_WEIGHTS[name])
    try:
        return Path(keras.utils.get_file(name, url, cache_dir=str(keras_home), cache_subdir="models"))
    except Exception as exc:  # any network failure: offline, proxy, HTTP error
        raise UserError(
            f"could not download {name} from {url} ({exc.__class__.__name__}); download it by hand and put it "
            f"at {keras_home / 'models' / name}, or pass its path"
        ) from None


def _layer_groups(h5_file):
    """Layer name -> list of arrays, from a Keras 2 weights or full-model file."""
    root = h5_file["model_weights"] if "model_weights" in h5_file else h5_file
    if "layer_names" not in root.attrs:
        raise UserError(f"{h5_file.filename} is not a Keras HDF5 weight file (no layer_names attribute)")
    groups = {}
    for raw in root.attrs["layer_names"]:
        name = raw.decode() if isinstance(raw, bytes) else str(raw)
        group = root[name]
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in group.attrs.get("weight_names", [])]
        if names:
            groups[name] = [group[n][()] for n in names]
    return groups


def load_backbone_weights(model: keras.Model, source: Path | str) -> WeightMatch:
    """Copies matching layers' weights from `source` into `model`; returns a WeightMatch.

    Raises UserError when the file is unreadable or no layer matches.
    """
    path = resolve_weights(source)
    try:
        with h5py.File(path, "r") as h5_file:
            groups = _layer_groups(h5_file)
    except OSError as exc:
        raise UserError(f"cannot read {path} as HDF5 ({exc}); is the download complete?") from None

    match = WeightMatch(str(path))
    model_layers = {layer.name: layer for layer in model.layers if layer.weights}
    for name, arrays in groups.items():
        layer = model_layers.get(VOC_NAMES.get(name, name))
        if layer is None:
            match.not_in_model.append(name)
        elif [tuple(a.shape) for a in arrays] != [tuple(w.shape) for w in layer.weights]:
            match.shape_mismatch.append(name)
        else:
            layer.set_weights(arrays)
            match.loaded.append(name)
    if not match.loaded:
        raise UserError(
            f"no layer of {path} fits model {model.name!r} ({len(match.shape_mismatch)} names matched with "
            "other shapes); backbone weights fit the full-width frcunet"
        )
    return match
