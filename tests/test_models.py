import keras
import numpy as np
import pytest

from frcunet.models import InputShapeError, build_model

pytestmark = pytest.mark.agnostic

# Measured with build_model("frcunet") at 256x256 and written in the README.
FRCUNET_PARAMETERS = 68_798_757
SMALL = {"unet": {"base_filters": 8}, "attention-unet": {"base_filters": 8}, "frcunet-lite": {}}


def _images(batch, height, width, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (batch, height, width, 3)).astype("uint8")


def test_frcunet_has_the_published_size():
    model = build_model("frcunet")
    assert abs(model.count_params() - FRCUNET_PARAMETERS) / FRCUNET_PARAMETERS < 0.03
    assert model.output_shape == (None, 256, 256, 1)
    names = {layer.name for layer in model.layers}
    assert "middle_flow_unit_16_separable_conv3_pointwise_BN" in names
    assert "exit_flow_block2_separable_conv3_pointwise" in names


def test_full_frcunet_takes_non_square_sizes_and_predicts_probabilities():
    assert build_model("frcunet", (192, 256, 3)).output_shape == (None, 192, 256, 1)
    model = build_model("frcunet", (32, 48, 3))
    probabilities = model.predict(_images(1, 32, 48), verbose=0)
    assert probabilities.shape == (1, 32, 48, 1)
    assert np.all((probabilities >= 0) & (probabilities <= 1))


def test_lite_fits_a_cpu_and_its_size_is_overridable():
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


def test_removing_the_frequency_block_removes_its_layers():
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
    from frcunet.saving import save_model_atomic

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
