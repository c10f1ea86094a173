import json

import keras
import numpy as np
import pytest
from scipy import ndimage

from frcunet.models.frequency_attention import (
    FrequencyRecalibration,
    LaplacianPyramid,
    gaussian_kernel_1d,
    gaussian_kernel_2d,
    reference_sigmas,
)
from frcunet.models.preprocessing import FixedScaling, MinMaxNormalization
from frcunet.training.losses import PooledDice, bce_dice_loss, soft_dice_loss

pytestmark = pytest.mark.agnostic


def test_reference_sigmas_follow_the_released_formula():
    np.testing.assert_allclose(reference_sigmas(), [2.016, 2.540, 3.200, 4.032], atol=1e-3)


def test_the_first_blur_has_the_released_taps():
    # The released code's 3-tap kernel (sigma 2.016), as printed from it: 0.319, 0.361, 0.319.
    np.testing.assert_allclose(gaussian_kernel_1d(3, reference_sigmas()[0]), [0.319, 0.361, 0.319], atol=1e-3)


@pytest.mark.parametrize("size, sigma", zip((3, 5, 7, 9), reference_sigmas(), strict=True))
def test_gaussian_kernels_sum_to_one_and_are_symmetric(size, sigma):
    kernel = gaussian_kernel_2d(size, sigma)
    assert kernel.shape == (size, size)
    assert kernel.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(kernel, kernel.T)
    np.testing.assert_allclose(kernel, kernel[::-1, ::-1])
    assert kernel[size // 2, size // 2] == kernel.max()


def _blur_like_reference(x, size, sigma):
    """Independent zero-padded 'same' blur of every channel, with scipy."""
    kernel = gaussian_kernel_2d(size, sigma)
    return np.stack(
        [[ndimage.correlate(x[n, :, :, c], kernel, mode="constant") for c in range(x.shape[-1])]
         for n in range(x.shape[0])]
    ).transpose(0, 2, 3, 1)


def test_reference_bands_match_an_independent_blur_and_telescope():
    x = np.random.default_rng(0).normal(size=(2, 12, 16, 5)).astype("float32")
    bands = [keras.ops.convert_to_numpy(b) for b in LaplacianPyramid()(x)]
    assert len(bands) == 5
    np.testing.assert_allclose(bands[0], x)
    g4 = _blur_like_reference(x.astype("float64"), 9, reference_sigmas()[3])
    np.testing.assert_allclose(sum(bands[1:]), x - g4, atol=1e-5)
    g1 = _blur_like_reference(x.astype("float64"), 3, reference_sigmas()[0])
    np.testing.assert_allclose(bands[1], x - g1, atol=1e-5)


def test_pyramid_has_no_weights():
    layer = LaplacianPyramid()
    layer(np.zeros((1, 8, 8, 4), "float32"))
    assert layer.weights == []


@pytest.mark.parametrize("shape", [(2, 16, 16, 3), (1, 12, 16, 4), (1, 3, 5, 2)])
def test_multiscale_bands_keep_the_input_resolution_and_vanish_on_constant_maps(shape):
    bands = LaplacianPyramid(mode="multiscale")(np.full(shape, 3.0, "float32"))
    assert [tuple(b.shape) for b in bands] == [shape] * 5
    for band in bands[1:]:
        np.testing.assert_allclose(keras.ops.convert_to_numpy(band), 0.0, atol=1e-5)


def test_multiscale_detail_bands_vanish_on_a_ramp_and_reconstruct_it():
    # A Laplacian pyramid's detail is ~0 wherever the map is linear. With the coarse samples taken half a
    # pixel off (every second pixel instead of 2x2 means), L1 and L2 were constants of 0.5 and 1 times
    # the slope.
    slope = 0.1
    ramp = (slope * np.tile(np.arange(64, dtype="float32"), (64, 1)))[None, :, :, None]
    layer = LaplacianPyramid(mode="multiscale")
    bands = [keras.ops.convert_to_numpy(b)[0, :, :, 0] for b in layer(ramp)]
    for band in bands[1:4]:  # the coarsest band is all border at this size
        np.testing.assert_allclose(band[16:48, 16:48], 0.0, atol=1e-3 * slope * 64)
    details, low = layer.multiscale_levels(ramp)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.reconstruct(details, low)), ramp, atol=1e-4)


def test_multiscale_levels_stay_aligned_when_a_level_has_an_odd_side():
    # 160x120 halves to 20x15 at the third level, 10x8 at the fourth. 'same' pooling of an odd side left the
    # last sample off its block's centre: a level-4 interior error of 5.87 on this ramp (0 at even sizes).
    rows, columns = np.mgrid[0:160, 0:120].astype("float32")
    ramp = (0.3 * rows - 0.7 * columns + 5.0)[None, :, :, None]
    layer = LaplacianPyramid(mode="multiscale")
    details, low = layer.multiscale_levels(ramp)
    assert [tuple(d.shape[1:3]) for d in details] == [(160, 120), (80, 60), (40, 30), (20, 15)]
    for level, detail in enumerate(details):
        interior = keras.ops.convert_to_numpy(detail)[0, 5:-5, 5:-5, 0]
        np.testing.assert_allclose(interior, 0.0, atol=1e-3, err_msg=f"level {level + 1}")
    for level, band in enumerate(layer(ramp)[1:]):
        margin = 6 * 2 ** level
        interior = keras.ops.convert_to_numpy(band)[0, margin:-margin, margin:-margin, 0]
        np.testing.assert_allclose(interior, 0.0, atol=1e-3, err_msg=f"band {level + 1}")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.reconstruct(details, low)), ramp, atol=1e-3)


def test_multiscale_detail_differs_from_reference_detail():
    x = np.random.default_rng(1).normal(size=(1, 16, 16, 2)).astype("float32")
    reference = LaplacianPyramid()(x)
    multiscale = LaplacianPyramid(mode="multiscale")(x)
    assert not np.allclose(keras.ops.convert_to_numpy(reference[4]), keras.ops.convert_to_numpy(multiscale[4]))


def test_invalid_pyramid_settings_are_rejected():
    with pytest.raises(ValueError, match="mode"):
        LaplacianPyramid(mode="wavelet")
    with pytest.raises(ValueError, match="odd"):
        LaplacianPyramid(kernel_sizes=(3, 4))


def test_gates_lie_in_zero_one_and_output_has_requested_channels():
    x = np.random.default_rng(2).normal(size=(3, 8, 8, 16)).astype("float32")
    bands = LaplacianPyramid()(x)
    recalibration = FrequencyRecalibration(24, squeeze_units=4)
    fused = recalibration(bands)
    assert tuple(fused.shape) == (3, 8, 8, 24)
    assert float(keras.ops.min(fused)) >= 0.0  # ReLU fusion
    for gate in recalibration.gates(bands):
        gate = keras.ops.convert_to_numpy(gate)
        assert gate.shape == (3, 16)
        assert np.all((gate > 0) & (gate < 1))
    # The MLP is shared by the bands: 16*16 + 16*4 + 4*16 weights, plus the 5*16 -> 24 fusion.
    assert recalibration.count_params() == 16 * 16 + 16 * 4 + 4 * 16 + 5 * 16 * 24


def _json_round_trip(obj):
    """Through JSON text, the way a .keras file stores it (keras-hub's run_serialization_test does the same)."""
    serialized = keras.saving.serialize_keras_object(obj)
    return keras.saving.deserialize_keras_object(json.loads(json.dumps(serialized)))


def test_layers_round_trip_through_json():
    x = np.random.default_rng(4).normal(size=(1, 8, 8, 4)).astype("float32")
    for layer in (LaplacianPyramid(mode="multiscale", kernel_sizes=(3, 5), sigmas=(1.0, 2.0)),
                  FrequencyRecalibration(8, 2), MinMaxNormalization(0.0, 1.0), FixedScaling()):
        clone = _json_round_trip(layer)
        assert type(clone) is type(layer) and clone.get_config() == layer.get_config()
    pyramid = LaplacianPyramid(mode="multiscale")
    for got, want in zip(_json_round_trip(pyramid)(x), pyramid(x), strict=True):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(got), keras.ops.convert_to_numpy(want))


def test_losses_and_the_dice_metric_round_trip_through_json():
    truth = np.array([[1.0, 0.0, 1.0, 1.0]])
    predicted = np.array([[0.9, 0.2, 0.6, 0.1]])
    for loss in (soft_dice_loss, bce_dice_loss):
        assert _json_round_trip(loss) is loss
    metric = PooledDice(name="dice")
    clone = _json_round_trip(metric)
    assert type(clone) is PooledDice and clone.get_config() == metric.get_config()
    metric.update_state(truth, predicted)
    clone.update_state(truth, predicted)
    assert float(clone.result()) == pytest.approx(float(metric.result()))


def test_min_max_normalization_spans_the_range_per_image():
    images = np.stack([np.linspace(10, 200, 48).reshape(4, 4, 3), np.full((4, 4, 3), 7.0)]).astype("float32")
    out = keras.ops.convert_to_numpy(MinMaxNormalization()(images))
    assert out[0].min() == pytest.approx(-1.0) and out[0].max() == pytest.approx(1.0)
    np.testing.assert_allclose(out[1], -1.0)  # a constant image does not divide by zero
