import keras
import numpy as np
import pytest

from frcunet.models.registry import InputShapeError, ModelOptionError, build_model, build_model_to_load

pytestmark = pytest.mark.agnostic

# Measured with build_model("frcunet") at 256x256 and written in docs/usage.md, "Models".
FRCUNET_PARAMETERS = 68_798_757
SMALL = {"unet": {"base_filters": 8}, "attention-unet": {"base_filters": 8}, "frcunet-lite": {}}


def _images(batch, height, width, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (batch, height, width, 3)).astype("uint8")


@pytest.fixture
def unset_variables():
    """Models built in the test leave their variables unset: tests of structure skip the initializers
    (under JAX, one compiled program per weight shape)."""
    with keras.StatelessScope(initialize_variables=False):
        yield
    keras.backend.clear_session()  # forgets the unset variables, which a later scope would initialise


def test_frcunet_has_the_published_size(unset_variables):
    model = build_model("frcunet")
    assert abs(model.count_params() - FRCUNET_PARAMETERS) / FRCUNET_PARAMETERS < 0.03
    assert model.output_shape == (None, 256, 256, 1)
    names = {layer.name for layer in model.layers}
    assert "middle_flow_unit_16_separable_conv3_pointwise_BN" in names
    assert "exit_flow_block2_separable_conv3_pointwise" in names
    assert build_model("frcunet", (192, 256, 3)).output_shape == (None, 192, 256, 1)


@pytest.mark.long
def test_full_frcunet_predicts_probabilities_at_a_non_square_size():
    model = build_model("frcunet", (32, 48, 3))
    probabilities = model.predict(_images(1, 32, 48), verbose=0)
    assert probabilities.shape == (1, 32, 48, 1)
    assert np.all((probabilities >= 0) & (probabilities <= 1))


def test_lite_fits_a_cpu_and_its_size_is_overridable(unset_variables):
    lite = build_model("frcunet-lite")
    assert lite.count_params() <= 3_000_000
    assert build_model("frcunet-lite", width=0.125, middle_units=1).count_params() < lite.count_params() / 2
    deeper = build_model("frcunet-lite", middle_units=4)
    assert "middle_flow_unit_4_add" in {layer.name for layer in deeper.layers}


@pytest.mark.parametrize("name", sorted(SMALL))
@pytest.mark.parametrize("size", [(48, 32), (32, 64)])
def test_every_model_maps_images_to_probabilities(name, size):
    model = build_model(name, (*size, 3), **SMALL[name])
    probabilities = model.predict(_images(2, *size), verbose=0)
    assert probabilities.shape == (2, *size, 1)
    assert probabilities.dtype == np.float32
    assert np.all((probabilities >= 0) & (probabilities <= 1))


@pytest.mark.parametrize("pyramid", ["reference", "multiscale"])
def test_both_pyramid_modes_build_and_predict(pyramid):
    model = build_model("frcunet-lite", (48, 64, 3), pyramid=pyramid)
    assert model.get_layer("laplacian_pyramid").mode == pyramid
    assert model.predict(_images(1, 48, 64), verbose=0).shape == (1, 48, 64, 1)


def test_removing_the_frequency_block_removes_its_layers(unset_variables):
    names = {layer.name for layer in build_model("frcunet-lite", (32, 32, 3), frequency_block=False).layers}
    assert "laplacian_pyramid" not in names and "frequency_recalibration" not in names


@pytest.mark.parametrize("name", ["frcunet", "frcunet-lite", "unet", "attention-unet"])
@pytest.mark.parametrize("size", [(250, 256), (256, 100), (8, 8)])
def test_sizes_not_divisible_by_16_are_rejected_clearly(name, size):
    with pytest.raises(InputShapeError, match="multiple of 16"):
        build_model(name, (*size, 3))


def test_unknown_model_and_wrong_channels_are_rejected():
    with pytest.raises(ValueError, match="unknown model"):
        build_model("segformer")
    with pytest.raises(InputShapeError, match="3 channels"):
        build_model("unet", (32, 32, 1))
    # A negative width would otherwise build the narrowest network without a word.
    with pytest.raises(ModelOptionError, match="width"):
        build_model("frcunet", (32, 32, 3), width=-0.5)


def test_scale_of_the_input_does_not_matter():
    model = build_model("frcunet-lite", (32, 32, 3))
    images = _images(2, 32, 32).astype("float32")
    np.testing.assert_allclose(
        model.predict(images, verbose=0), model.predict(images / 255.0, verbose=0), atol=1e-5
    )


def test_mixed_bfloat16_keeps_float32_probabilities():
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = build_model("frcunet-lite", (32, 32, 3))
    finally:
        keras.config.set_dtype_policy("float32")
    probabilities = model.predict(_images(1, 32, 32), verbose=0)
    assert probabilities.dtype == np.float32
    assert np.all((probabilities >= 0) & (probabilities <= 1))


@pytest.mark.parametrize("pyramid", ["reference", "multiscale"])
def test_keras_file_round_trip_predicts_the_same(tmp_path, pyramid):
    from frcunet.core.saving import save_model_atomic

    model = build_model("frcunet-lite", (32, 48, 3), pyramid=pyramid)
    path = tmp_path / "model.keras"
    save_model_atomic(model, path)
    assert [p.name for p in tmp_path.iterdir()] == ["model.keras"]
    loaded = keras.saving.load_model(path)
    images = _images(2, 32, 48)
    np.testing.assert_allclose(loaded.predict(images, verbose=0), model.predict(images, verbose=0), atol=1e-6)
    assert loaded.get_layer("laplacian_pyramid").mode == pyramid


@pytest.mark.parametrize("seed", [0, 1])
def test_with_decoder_batch_norm_the_head_can_raise_a_pixel_above_the_prior_at_any_seed(seed):
    # The logit reads two ReLU channels; with both read-out weights negative (Glorot's draw for seed 1) no
    # pixel could exceed sigmoid(bias) and training stayed at a constant background.
    keras.utils.set_random_seed(seed)
    model = build_model("frcunet-lite", (64, 64, 3), decoder_bn=True)
    readout = keras.ops.convert_to_numpy(model.get_layer("head_logits").kernel).ravel()
    assert readout[0] > 0 > readout[1]
    images = np.random.default_rng(seed).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    prior = 1 / (1 + np.exp(1.4))
    assert keras.ops.convert_to_numpy(model(images, training=True)).max() > prior


def test_without_decoder_batch_norm_the_head_is_initialised_as_released():
    # The faithful network keeps Glorot's random read-out (a fixed one let its lesion channel die).
    readouts = []
    for seed in (0, 1):
        keras.utils.set_random_seed(seed)
        kernel = build_model("frcunet-lite", (64, 64, 3)).get_layer("head_logits").kernel
        readouts.append(keras.ops.convert_to_numpy(kernel).ravel())
    assert not np.allclose(readouts[0], readouts[1])
    assert not any(np.allclose(r, [1.0, -1.0]) for r in readouts)


def test_a_model_built_to_load_weights_holds_them_and_leaves_nothing_unset(tmp_path):
    small = dict(base_filters=4, depth=2)
    source = build_model("unet", (32, 32, 3), **small)
    source.save_weights(tmp_path / "w.weights.h5")
    loaded = build_model_to_load("unet", (32, 32, 3), lambda m: m.load_weights(tmp_path / "w.weights.h5"), **small)
    for got, want in zip(loaded.weights, source.weights, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(got), keras.ops.convert_to_numpy(want))

    # A load that fails leaves nothing unset behind it: the error comes through, and the next model works.
    def fail(model):
        raise OSError("no such file")

    with pytest.raises(OSError, match="no such file"):
        build_model_to_load("unet", (32, 32, 3), fail, **small)
    # A load that sets no weight gives an initialised model.
    fresh = build_model_to_load("unet", (32, 32, 3), lambda m: None, **small)
    assert np.all(np.isfinite(fresh.predict(_images(1, 32, 32), verbose=0)))
    assert loaded.predict(_images(1, 32, 32), verbose=0).shape == (1, 32, 32, 1)
