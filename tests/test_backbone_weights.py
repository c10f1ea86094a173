"""Backbone initialisation from a DeepLabv3+ weight file in the Keras 2 HDF5 layout."""

import h5py
import numpy as np
import pytest

from conftest import cli
from frcunet.core.errors import UserError
from frcunet.models.backbone_weights import URL_ENV, XCEPTION_VOC, load_backbone_weights
from frcunet.models.registry import build_model


def write_keras2_weight_file(path, layer_arrays):
    """The layout of Keras 2's save_weights: a group per layer, weight_names listing its arrays."""
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [name.encode() for name in layer_arrays]
        f.attrs["backend"] = b"tensorflow"
        for name, arrays in layer_arrays.items():
            group = f.create_group(name)
            weight_names = [f"{name}/w{i}:0".encode() for i in range(len(arrays))]
            group.attrs["weight_names"] = weight_names
            for weight_name, array in zip(weight_names, arrays, strict=True):
                group.create_dataset(weight_name.decode(), data=array)


def _backbone_arrays(model, rng):
    return {
        layer.name: [rng.normal(size=w.shape).astype("float32") for w in layer.weights]
        for layer in model.layers
        if layer.weights and (layer.name.startswith(("entry_flow", "middle_flow", "exit_flow")))
    }


def test_matching_layers_load_and_others_are_reported(tmp_path):
    model = build_model("frcunet-lite", (32, 32, 3))
    arrays = _backbone_arrays(model, np.random.default_rng(0))
    in_file = dict(arrays)
    in_file["aspp0"] = [np.zeros((1, 1, 8, 8), "float32")]  # the file's decoder: not ours
    in_file["reduce_1"] = [np.zeros((3, 3, 1, 1), "float32")]  # our name, other shape
    path = tmp_path / XCEPTION_VOC
    write_keras2_weight_file(path, in_file)

    untouched = model.get_layer("decoder_1_8_conv1").get_weights()[0].copy()
    match = load_backbone_weights(model, path)
    assert sorted(match.loaded) == sorted(arrays)
    assert match.not_in_model == ["aspp0"]
    assert match.shape_mismatch == ["reduce_1"]
    for name, expected in arrays.items():
        for got, want in zip(model.get_layer(name).get_weights(), expected, strict=True):
            np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(model.get_layer("decoder_1_8_conv1").get_weights()[0], untouched)
    assert f"loaded {len(arrays)} layers" in match.summary()


def released_voc_layer_names():
    """The layers the released model (new_model.py) filled from the VOC file by name, written from its code:
    the Xception entry, middle (16 units) and exit flows, and two bottleneck BN layers."""
    names = ["entry_flow_conv1_1", "entry_flow_conv1_1_BN", "entry_flow_conv1_2", "entry_flow_conv1_2_BN"]

    def block(prefix, shortcut):
        layers = [f"{prefix}_separable_conv{i}_{part}" for i in (1, 2, 3)
                  for part in ("depthwise", "depthwise_BN", "pointwise", "pointwise_BN")]
        return layers + ([f"{prefix}_shortcut", f"{prefix}_shortcut_BN"] if shortcut else [])

    for number in (1, 2, 3):
        names += block(f"entry_flow_block{number}", shortcut=True)
    for unit in range(1, 17):
        names += block(f"middle_flow_unit_{unit}", shortcut=False)
    names += block("exit_flow_block1", shortcut=True) + block("exit_flow_block2", shortcut=False)
    return names + ["aspp0_BN", "concat_projection_BN"]


def test_every_layer_the_release_loaded_from_voc_is_loaded_here(tmp_path):
    from frcunet.models.backbone_weights import VOC_NAMES

    model = build_model("frcunet", (32, 32, 3))
    rng = np.random.default_rng(3)
    in_file = {name: [rng.normal(size=w.shape).astype("float32")
                      for w in model.get_layer(VOC_NAMES.get(name, name)).weights]
               for name in released_voc_layer_names()}
    write_keras2_weight_file(tmp_path / XCEPTION_VOC, in_file)
    match = load_backbone_weights(model, tmp_path / XCEPTION_VOC)
    assert sorted(match.loaded) == sorted(in_file) and not match.not_in_model and not match.shape_mismatch
    np.testing.assert_array_equal(model.get_layer("bottleneck_BN").get_weights()[0], in_file["concat_projection_BN"][0])


def test_weights_of_another_width_are_an_error(tmp_path):
    wide = build_model("frcunet-lite", (32, 32, 3), width=0.5, middle_units=1)
    path = tmp_path / "wide.h5"
    write_keras2_weight_file(path, _backbone_arrays(wide, np.random.default_rng(1)))
    with pytest.raises(UserError, match="no layer"):
        load_backbone_weights(build_model("frcunet-lite", (32, 32, 3)), path)


def test_unreadable_or_unknown_files_are_errors(tmp_path):
    model = build_model("frcunet-lite", (32, 32, 3))
    broken = tmp_path / "broken.h5"
    broken.write_bytes(b"not hdf5 at all")
    with pytest.raises(UserError, match="HDF5"):
        load_backbone_weights(model, broken)
    with pytest.raises(UserError, match="not found"):
        load_backbone_weights(model, tmp_path / "missing.h5")


def test_offline_known_name_names_the_file_to_put_in_place(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv(URL_ENV, "http://127.0.0.1:9/" + XCEPTION_VOC)  # nothing listens on port 9
    with pytest.raises(UserError) as raised:
        load_backbone_weights(build_model("frcunet-lite", (32, 32, 3)), XCEPTION_VOC)
    message = str(raised.value)
    assert XCEPTION_VOC in message and str(tmp_path / "keras" / "models") in message


def test_cached_known_name_is_used_without_network(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv(URL_ENV, "http://127.0.0.1:9/" + XCEPTION_VOC)
    model = build_model("frcunet-lite", (32, 32, 3))
    (tmp_path / "keras" / "models").mkdir(parents=True)
    arrays = _backbone_arrays(model, np.random.default_rng(2))
    write_keras2_weight_file(tmp_path / "keras" / "models" / XCEPTION_VOC, arrays)
    assert len(load_backbone_weights(model, XCEPTION_VOC).loaded) > 10


def test_cli_build_reports_size_and_bad_weights_as_one_error_line(tmp_path):
    out = tmp_path / "lite.keras"
    built = cli("build", "--model", "frcunet-lite", "--size", 32, 48, "--out", out)
    assert built.returncode == 0, built.stderr[-2000:]
    assert "parameters at 32x48" in built.stdout and out.is_file()

    failed = cli("build", "--model", "frcunet-lite", "--size", 32, 32, "--backbone-weights", tmp_path / "nope.h5")
    assert failed.returncode == 2
    assert failed.stderr.strip().splitlines()[-1].startswith("error:")
    assert "Traceback" not in failed.stderr

    bad_size = cli("build", "--model", "unet", "--size", 100, 96)
    assert bad_size.returncode == 2 and "multiple of 16" in bad_size.stderr
    assert "Traceback" not in bad_size.stderr
