"""Input normalisation as a layer, so that saved models take raw RGB images."""

import frcunet._startup  # noqa: F401 - quiet backend import, before keras
import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="frcunet")
class MinMaxNormalization(layers.Layer):
    """Per-image min-max scaling over all pixels and channels, inside the model.

    The reference scaled each image to 0..255 before feeding it; doing it in
    the model means a saved model takes raw RGB in any range. The output range
    defaults to [-1, 1], the range the DeepLab Xception weights were trained on.
    A constant image maps to the low end instead of dividing by zero.

    Args:
        low, high: the output range.

    Example:
    >>> y = MinMaxNormalization()(np.array([[[[0, 128, 255]]]], "float32"))
    >>> [round(float(v), 3) for v in np.ravel(y)]
    [-1.0, 0.004, 1.0]
    """

    def __init__(self, low=-1.0, high=1.0, **kwargs):
        super().__init__(**kwargs)
        self.low = float(low)
        self.high = float(high)

    def call(self, images):
        images = ops.cast(images, self.compute_dtype)
        # Statistics in float32 even under mixed precision: bfloat16 min/max of
        # 0..255 values are exact, but the division is not.
        images32 = ops.cast(images, "float32")
        lowest = ops.min(images32, axis=(1, 2, 3), keepdims=True)
        highest = ops.max(images32, axis=(1, 2, 3), keepdims=True)
        unit = (images32 - lowest) / ops.maximum(highest - lowest, 1e-6)
        return ops.cast(self.low + (self.high - self.low) * unit, self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.update({"low": self.low, "high": self.high})
        return config
