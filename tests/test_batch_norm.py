"""Re-estimating batch norm statistics (frcunet.models.batch_norm) against NumPy's means and variances."""

import keras
import numpy as np
import pytest

from frcunet.models.batch_norm import batch_norm_layers, recalibrate_batch_norm


def _model_with_nested_batch_norm():
    inputs = keras.Input((4, 4, 2))
    inner = keras.Sequential([keras.layers.Conv2D(3, 1, use_bias=False), keras.layers.BatchNormalization()])
    outputs = keras.layers.BatchNormalization()(inner(keras.layers.BatchNormalization()(inputs)))
    return keras.Model(inputs, outputs)


@pytest.mark.agnostic
def test_statistics_become_the_mean_of_the_batch_statistics():
    model = _model_with_nested_batch_norm()
    first = batch_norm_layers(model)[0]
    assert len(batch_norm_layers(model)) == 3
    rng = np.random.default_rng(0)
    batches = [rng.normal(loc, scale, (5, 4, 4, 2)).astype("float32") for loc, scale in ((3, 2), (-1, 0.5), (0, 1))]
    gamma_before = keras.ops.convert_to_numpy(first.gamma)

    assert recalibrate_batch_norm(model, iter(batches)) == 3

    # The first layer sees the images themselves: its mean is the mean of the per-batch channel means, its
    # variance the mean of the per-batch (biased) channel variances, as training's moving average estimates it.
    expected_mean = np.mean([batch.mean(axis=(0, 1, 2)) for batch in batches], axis=0)
    expected_variance = np.mean([batch.var(axis=(0, 1, 2)) for batch in batches], axis=0)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(first.moving_mean), expected_mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(first.moving_variance), expected_variance, rtol=1e-5)
    # Every layer, the nested one included, left its start values (0 and 1), its momentum is back, and the
    # weights did not move.
    for layer in batch_norm_layers(model):
        assert not np.allclose(keras.ops.convert_to_numpy(layer.moving_variance), 1.0)
        assert layer.momentum == 0.99
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(first.gamma), gamma_before)


@pytest.mark.agnostic
def test_a_model_without_batch_norm_is_left_alone():
    model = keras.Sequential([keras.Input((4, 4, 2)), keras.layers.Conv2D(1, 1)])
    before = [keras.ops.convert_to_numpy(weight) for weight in model.weights]
    assert recalibrate_batch_norm(model, [np.ones((2, 4, 4, 2), "float32")]) == 0
    for weight, old in zip(model.weights, before, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(weight), old)


@pytest.mark.agnostic
def test_dropout_is_off_while_statistics_are_taken():
    """Statistics after a dropout layer are those of inference (no dropout), and the rate comes back."""
    inputs = keras.Input((4, 4, 2))
    model = keras.Model(inputs, keras.layers.BatchNormalization()(keras.layers.Dropout(0.5)(inputs)))
    batches = [np.random.default_rng(seed).normal(2, 3, (8, 4, 4, 2)).astype("float32") for seed in (1, 2)]
    recalibrate_batch_norm(model, batches)
    norm, dropout = batch_norm_layers(model)[0], model.layers[1]
    # Dropout at 0.5 would double the variance of what the batch norm sees, and differ at every call.
    expected_variance = np.mean([batch.var(axis=(0, 1, 2)) for batch in batches], axis=0)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(norm.moving_variance), expected_variance, rtol=1e-5)
    assert dropout.rate == 0.5
