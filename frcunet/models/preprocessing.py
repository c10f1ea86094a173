"""Input normalisation as a layer, so that saved models take raw RGB images."""

from __future__ import annotations

from typing import Any

import keras
from keras import layers, ops

# A tensor of the backend, or a KerasTensor while a functional model is built.
Tensor = Any


class _OutputRange(layers.Layer):
    """A layer mapping images to [low, high]; keeps the range in its config."""

    low: float
    high: float

    def __init__(self, low: float = -1.0, high: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.low = float(low)
        self.high = float(high)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"low": self.low, "high": self.high})
        return config


@keras.saving.register_keras_serializable(package="frcunet")
class MinMaxNormalization(_OutputRange):
    """Per-image min-max scaling over all pixels and channels, inside the model.

    The reference scaled each image to 0..255 before feeding it; doing it in
    the model means a saved model takes raw RGB in any range. The output range
    defaults to [-1, 1], the range the DeepLab Xception weights were trained on.
    A constant image maps to the low end instead of dividing by zero.

    Args:
        low, high: the output range.

    Example:
    >>> import numpy as np
    >>> y = MinMaxNormalization()(np.array([[[[0, 128, 255]]]], "float32"))
    >>> [round(float(v), 3) for v in np.ravel(y)]
    [-1.0, 0.004, 1.0]
    """

    def call(self, images: Tensor) -> Tensor:
        images = ops.cast(images, self.compute_dtype)
        # Statistics in float32 even under mixed precision: bfloat16 min/max of
        # 0..255 values are exact, but the division is not.
        images32 = ops.cast(images, "float32")
        lowest = ops.min(images32, axis=(1, 2, 3), keepdims=True)
        highest = ops.max(images32, axis=(1, 2, 3), keepdims=True)
        unit = (images32 - lowest) / ops.maximum(highest - lowest, 1e-6)
        return ops.cast(self.low + (self.high - self.low) * unit, self.compute_dtype)


@keras.saving.register_keras_serializable(package="frcunet")
class FixedScaling(_OutputRange):
    """Maps 0..255 to [low, high] with the same constants for every image.

    Unlike the reference's per-image min-max, dark vignette corners and hair
    do not stretch the contrast of the lesion, and brightness and contrast
    augmentation survive it.

    Args:
        low, high: the output range for inputs 0 and 255.

    Example:
    >>> import numpy as np
    >>> y = FixedScaling()(np.array([[[[0, 51, 255]]]], "float32"))
    >>> [round(float(v), 3) for v in np.ravel(y)]
    [-1.0, -0.6, 1.0]
    """

    def call(self, images: Tensor) -> Tensor:
        images = ops.cast(images, self.compute_dtype)
        return self.low + (self.high - self.low) / 255.0 * images


NORMALIZATIONS = {"minmax": MinMaxNormalization, "fixed": FixedScaling}


def normalization_layer(kind: str) -> keras.layers.Layer:
    """The input layer for `kind`: "minmax" (the reference's per-image scaling) or "fixed" (x / 127.5 - 1)."""
    if kind not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {', '.join(NORMALIZATIONS)}, got {kind!r}")
    return NORMALIZATIONS[kind](name="normalize")
