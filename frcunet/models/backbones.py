"""The DeepLabv3+ "modified aligned Xception" encoder (Xception-65, output stride 16).

Layer names follow the public DeepLabv3+ Xception weight release
(`entry_flow_conv1_1`, `middle_flow_unit_3_separable_conv2_pointwise_BN`, ...),
so its weights load by name; see `frcunet.models.backbone_weights`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import keras
from keras import layers

# Channel widths of the full-size network; a width multiplier scales them all.
STEM_FILTERS = (32, 64)
ENTRY_FILTERS = (128, 256, 728)
MIDDLE_FILTERS = 728
EXIT_FILTERS = ((728, 1024, 1024), (1536, 1536, 2048))
MIDDLE_UNITS = 16
BN_EPSILON = 1e-3


def scaled(filters: int, width: float) -> int:
    """Channels after a width multiplier, rounded to a multiple of 8 (at least 8)."""
    return max(8, int(round(filters * width / 8.0)) * 8)


@dataclass
class EncoderFeatures:
    """What the decoder needs from the encoder: three skips and the deep map."""

    skip_half: keras.KerasTensor  # 1/2 resolution, after the stem
    skip_quarter: keras.KerasTensor  # 1/4, after entry block 1
    skip_eighth: keras.KerasTensor  # 1/8, after entry block 2
    deep: keras.KerasTensor  # 1/16, after the exit flow


def _conv_same(x, filters, name, kernel_size=3, stride=1):
    """Bias-free conv whose strided form pads explicitly, as the TF reference does."""
    if stride == 1:
        return layers.Conv2D(filters, kernel_size, padding="same", use_bias=False, name=name)(x)
    if kernel_size == 1:
        # A strided 1x1 conv equals subsampling then a 1x1 conv (same weights). TensorFlow 2.21's
        # oneDNN CPU kernel for the strided form crashes (segfault) in training on odd batch
        # sizes with few channels, so the two steps are kept apart.
        x = layers.MaxPooling2D(pool_size=1, strides=stride, name=f"{name}_subsample")(x)
        return layers.Conv2D(filters, 1, use_bias=False, name=name)(x)
    pad_total = kernel_size - 1
    x = layers.ZeroPadding2D((pad_total // 2, pad_total - pad_total // 2), name=f"{name}_pad")(x)
    return layers.Conv2D(filters, kernel_size, strides=stride, padding="valid", use_bias=False, name=name)(x)


def separable_conv_bn(x: keras.KerasTensor, filters: int, name: str, stride: int = 1, rate: int = 1,
                      activate_inside: bool = False) -> keras.KerasTensor:
    """Depthwise 3x3 + BN + pointwise 1x1 + BN, DeepLab style.

    Without `activate_inside` a ReLU comes first (pre-activation); with it, a
    ReLU follows both the depthwise and the pointwise part (exit block 2).
    """
    if stride == 1:
        padding = "same"
    else:
        effective = 3 + 2 * (rate - 1)
        pad_total = effective - 1
        x = layers.ZeroPadding2D((pad_total // 2, pad_total - pad_total // 2), name=f"{name}_pad")(x)
        padding = "valid"
    if not activate_inside:
        x = layers.Activation("relu", name=f"{name}_preact")(x)
    x = layers.DepthwiseConv2D(
        3, strides=stride, dilation_rate=rate, padding=padding, use_bias=False, name=f"{name}_depthwise"
    )(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_depthwise_BN")(x)
    if activate_inside:
        x = layers.Activation("relu", name=f"{name}_depthwise_relu")(x)
    x = layers.Conv2D(filters, 1, padding="same", use_bias=False, name=f"{name}_pointwise")(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_pointwise_BN")(x)
    if activate_inside:
        x = layers.Activation("relu", name=f"{name}_pointwise_relu")(x)
    return x


def xception_block(x: keras.KerasTensor, filters: Sequence[int], name: str, shortcut: str, stride: int = 1,
                   rate: int = 1, activate_inside: bool = False) -> keras.KerasTensor:
    """Three separable convs with a "conv", "sum" or "none" shortcut."""
    residual = x
    for i, f in enumerate(filters):
        residual = separable_conv_bn(
            residual, f, f"{name}_separable_conv{i + 1}",
            stride=stride if i == 2 else 1, rate=rate, activate_inside=activate_inside,
        )
    if shortcut == "conv":
        skip = _conv_same(x, filters[-1], f"{name}_shortcut", kernel_size=1, stride=stride)
        skip = layers.BatchNormalization(name=f"{name}_shortcut_BN")(skip)
        return layers.Add(name=f"{name}_add")([residual, skip])
    if shortcut == "sum":
        return layers.Add(name=f"{name}_add")([residual, x])
    return residual


def aligned_xception(x: keras.KerasTensor, width: float = 1.0, middle_units: int = MIDDLE_UNITS) -> EncoderFeatures:
    """Encoder of normalised images `x`; returns its skips and 1/16 map.

    Args:
        width: multiplier on every channel count (1.0 = Xception-65).
        middle_units: residual units in the middle flow (16 in Xception-65).
    """
    w = lambda f: scaled(f, width)  # noqa: E731 - a local shorthand keeps the flow readable
    x = _conv_same(x, w(STEM_FILTERS[0]), "entry_flow_conv1_1", stride=2)
    x = layers.BatchNormalization(name="entry_flow_conv1_1_BN")(x)
    x = layers.Activation("relu", name="entry_flow_conv1_1_relu")(x)
    x = _conv_same(x, w(STEM_FILTERS[1]), "entry_flow_conv1_2")
    x = layers.BatchNormalization(name="entry_flow_conv1_2_BN")(x)
    skip_half = layers.Activation("relu", name="entry_flow_conv1_2_relu")(x)

    skip_quarter = xception_block(skip_half, [w(ENTRY_FILTERS[0])] * 3, "entry_flow_block1", "conv", stride=2)
    skip_eighth = xception_block(skip_quarter, [w(ENTRY_FILTERS[1])] * 3, "entry_flow_block2", "conv", stride=2)
    x = xception_block(skip_eighth, [w(ENTRY_FILTERS[2])] * 3, "entry_flow_block3", "conv", stride=2)
    for unit in range(middle_units):
        x = xception_block(x, [w(MIDDLE_FILTERS)] * 3, f"middle_flow_unit_{unit + 1}", "sum")
    x = xception_block(x, [w(f) for f in EXIT_FILTERS[0]], "exit_flow_block1", "conv")
    x = xception_block(x, [w(f) for f in EXIT_FILTERS[1]], "exit_flow_block2", "none", rate=2, activate_inside=True)
    return EncoderFeatures(skip_half, skip_quarter, skip_eighth, x)
