"""Model registry: `build_model(name, input_shape, **overrides)`.

Every model takes raw RGB images (any range, 0..255 expected) and returns a
sigmoid lesion probability map of shape (H, W, 1); H and W must be divisible
by 16. Names: frcunet, frcunet-lite, unet, attention-unet.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import keras
from keras import layers

from frcunet.core.errors import UserError
from frcunet.core.names import PYRAMID_MODES
from frcunet.models.backbones import aligned_xception, scaled
from frcunet.models.frequency_attention import FrequencyRecalibration, LaplacianPyramid
from frcunet.models.preprocessing import normalization_layer

SIZE_MULTIPLE = 16


class InputShapeError(UserError, ValueError):
    """An input shape that the models cannot take."""


class ModelOptionError(UserError, ValueError):
    """A model option that builds no network: a width, unit or filter count out of range."""


# The size options and what each must be: (test, the words for it).
_OPTION_RANGES = {"width": (lambda v: v > 0, "positive"), "middle_units": (lambda v: v >= 0, "0 or more"),
                  "base_filters": (lambda v: v >= 1, "at least 1")}


def check_model_options(options: Mapping[str, Any], model: str | None = None) -> None:
    """Raises ModelOptionError for an option `model` does not take (when given), or for a width, middle-flow
    unit count or base filter count out of range.

    Without it a negative width would quietly build the narrowest network (every layer at 8 channels).
    """
    if model is not None:
        unknown = set(options) - set(effective_model_options(model, {}))
        if unknown:
            flags = ", ".join("--" + key.replace("_", "-") for key in sorted(unknown))
            raise ModelOptionError(f"{flags} does not apply to {model}")
    if "pyramid" in options and options["pyramid"] not in PYRAMID_MODES:
        raise ModelOptionError(f"--pyramid must be one of {', '.join(PYRAMID_MODES)}, got {options['pyramid']!r}")
    for name, (fits, wanted) in _OPTION_RANGES.items():
        if name in options and not fits(options[name]):
            flag = "--" + name.replace("_", "-")
            raise ModelOptionError(f"{name} ({flag}) must be {wanted}, got {options[name]}")


def check_input_shape(input_shape: Sequence[int | None]) -> tuple[int, int, int]:
    """Returns (H, W, C) or raises InputShapeError saying what would work."""
    if len(input_shape) != 3:
        raise InputShapeError(f"input_shape must be (height, width, channels), got {tuple(input_shape)}")
    height, width, channels = input_shape
    if channels != 3:
        raise InputShapeError(f"the models take RGB images (3 channels), got {channels}")
    for side, value in (("height", height), ("width", width)):
        if value is None or value < SIZE_MULTIPLE or value % SIZE_MULTIPLE:
            lower = max(SIZE_MULTIPLE, (value or 0) // SIZE_MULTIPLE * SIZE_MULTIPLE)
            raise InputShapeError(
                f"image {side} {value} is not a multiple of {SIZE_MULTIPLE}; "
                f"resize to e.g. {lower} or {lower + SIZE_MULTIPLE}"
            )
    return int(height), int(width), int(channels)


def _conv(x, filters, kernel_size, name, activation="relu", batch_norm=False):
    """The decoder's conv: bias, he_normal, same padding, no BN (as released).

    With `batch_norm` (not in the release) the conv drops its bias and a BN sits before the ReLU: the
    un-normalised decoder trains slowly at the learning rates a short CPU budget needs.
    """
    x = layers.Conv2D(filters, kernel_size, padding="same", use_bias=not batch_norm,
                      activation=None if batch_norm else activation, kernel_initializer="he_normal", name=name)(x)
    if batch_norm:
        x = layers.BatchNormalization(name=f"{name}_BN")(x)
        x = layers.Activation(activation, name=f"{name}_relu")(x)
    return x


def _up_and_merge(x, skip, filters, name, merge_convs=2, batch_norm=False):
    """Nearest x2 upsampling, a 2x2 conv, concat with the skip, 3x3 convs."""
    x = layers.UpSampling2D(2, name=f"{name}_up")(x)
    x = _conv(x, filters, 2, f"{name}_upconv", batch_norm=batch_norm)
    x = layers.Concatenate(name=f"{name}_concat")([x, skip])
    for i in range(merge_convs):
        x = _conv(x, filters, 3, f"{name}_conv{i + 1}", batch_norm=batch_norm)
    return x


def _probability_head(x, readout="glorot_uniform"):
    # float32 so that mixed-precision training still yields exact probabilities.
    x = layers.Conv2D(1, 1, kernel_initializer=readout, bias_initializer=keras.initializers.Constant(-1.4),
                      name="head_logits")(x)
    return layers.Activation("sigmoid", dtype="float32", name="probability")(x)


def build_frcunet(
    input_shape: tuple[int, int, int] = (256, 256, 3),
    width: float = 1.0,
    middle_units: int = 16,
    pyramid: str = "reference",
    frequency_block: bool = True,
    dropout: float = 0.1,
    squeeze_units: int = 32,
    normalization: str = "minmax",
    decoder_bn: bool = False,
    name: str = "frcunet",
) -> keras.Model:
    """FRCU-Net as released: aligned Xception-65 encoder, frequency block, U-Net decoder.

    Args:
        width: multiplier on every channel count (1.0 = the paper's network).
        middle_units: Xception middle-flow units (16 in the paper).
        pyramid: "reference" (same-resolution bands) or "multiscale".
        frequency_block: False removes the pyramid and gate (for ablations).
        dropout: after the bottleneck block (0.1 in the paper).
        squeeze_units: width of the gate's MLP bottleneck (32 in the paper).
        normalization: "minmax" (per image, as released) or "fixed" (x / 127.5 - 1).
        decoder_bn: batch norm after every decoder conv (the release has none there).
    """
    check_input_shape(input_shape)
    if pyramid not in PYRAMID_MODES:
        raise ValueError(f"pyramid must be one of {PYRAMID_MODES}, got {pyramid!r}")
    w = lambda f: scaled(f, width)  # noqa: E731

    images = keras.Input(input_shape, name="images")
    features = aligned_xception(normalization_layer(normalization)(images), width, middle_units)

    x = features.deep
    for filters, conv_name in ((1024, "reduce_1"), (512, "reduce_2")):
        x = layers.Conv2D(w(filters), 3, padding="same", use_bias=False, activation="relu", name=conv_name)(x)
    x = layers.Conv2D(w(256), 3, padding="same", use_bias=False, name="reduce_3")(x)
    x = layers.BatchNormalization(epsilon=1e-5, name="reduce_BN")(x)
    x = layers.Activation("relu", name="reduce_relu")(x)

    if frequency_block:
        bands = LaplacianPyramid(mode=pyramid, name="laplacian_pyramid")(x)
        x = FrequencyRecalibration(w(256), squeeze_units=scaled(squeeze_units, width), name="frequency_recalibration")(
            bands
        )
    bn = decoder_bn
    x = _conv(x, w(256), 3, "bottleneck_conv1", batch_norm=bn)
    x = _conv(x, w(256), 3, "bottleneck_conv2", batch_norm=bn)
    x = layers.BatchNormalization(name="bottleneck_BN")(x)
    x = layers.Activation("relu", name="bottleneck_relu")(x)
    x = layers.Dropout(dropout, name="bottleneck_dropout")(x)

    x = _up_and_merge(x, features.skip_eighth, w(256), "decoder_1_8", batch_norm=bn)
    x = _up_and_merge(x, features.skip_quarter, w(256), "decoder_1_4", batch_norm=bn)
    x = _up_and_merge(x, features.skip_half, w(128), "decoder_1_2", merge_convs=1, batch_norm=bn)
    x = layers.UpSampling2D(2, name="decoder_full_up")(x)
    x = _conv(x, w(128), 3, "decoder_full_conv", batch_norm=bn)
    return keras.Model(images, _frcunet_head(x, w, bn), name=name)


def _frcunet_head(x, w, batch_norm):
    """The released head: 3x3 convs down to two ReLU channels, then the 1x1 logit and the sigmoid."""
    x = _conv(x, w(64), 3, "head_conv1", batch_norm=batch_norm)
    x = _conv(x, w(64), 3, "head_conv2", batch_norm=batch_norm)
    x = _conv(x, 2, 3, "head_conv3", batch_norm=batch_norm)
    # With batch norm the two ReLU channels stay alive; the read-out then starts as one lesion (+1) and one
    # background (-1) channel, since Glorot draws both negative for one seed in four and the logit cannot
    # then rise above the prior (seed 1 of the cpu recipe trained to a constant background).
    readout = keras.initializers.Constant([[[[1.0], [-1.0]]]]) if batch_norm else "glorot_uniform"
    return _probability_head(x, readout)


def build_frcunet_lite(input_shape: tuple[int, int, int] = (256, 256, 3), width: float = 0.25, middle_units: int = 2,
                       **overrides: Any) -> keras.Model:
    """FRCU-Net's topology at a width and depth a 2-core CPU can train."""
    overrides.setdefault("name", "frcunet_lite")
    return build_frcunet(input_shape, width=width, middle_units=middle_units, **overrides)


def _conv_bn_relu(x, filters, name):
    for i in (1, 2):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_initializer="he_normal",
                          name=f"{name}_conv{i}")(x)
        x = layers.BatchNormalization(name=f"{name}_BN{i}")(x)
        x = layers.Activation("relu", name=f"{name}_relu{i}")(x)
    return x


def _attention_gate(skip, gating, filters, name):
    """Oktay et al.'s additive attention: the coarser map decides which skip pixels pass."""
    theta = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_theta")(skip)
    phi = layers.Conv2D(filters, 1, name=f"{name}_phi")(gating)
    phi = layers.UpSampling2D(2, interpolation="bilinear", name=f"{name}_phi_up")(phi)
    joint = layers.Activation("relu", name=f"{name}_relu")(layers.Add(name=f"{name}_add")([theta, phi]))
    alpha = layers.Conv2D(1, 1, activation="sigmoid", name=f"{name}_alpha")(joint)
    return layers.Multiply(name=f"{name}_gated")([skip, alpha])


def _build_unet_family(input_shape, base_filters, depth, attention, name, normalization="minmax"):
    check_input_shape(input_shape)
    if not 1 <= depth <= 4:
        raise ValueError(f"depth must be 1..4 (inputs are multiples of 16), got {depth}")
    images = keras.Input(input_shape, name="images")
    x = normalization_layer(normalization)(images)
    skips = []
    for level in range(depth):
        x = _conv_bn_relu(x, base_filters * 2**level, f"encoder_{level}")
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"encoder_{level}_pool")(x)
    x = _conv_bn_relu(x, base_filters * 2**depth, "bridge")
    for level in reversed(range(depth)):
        filters = base_filters * 2**level
        skip = skips[level]
        if attention:
            skip = _attention_gate(skip, x, max(1, filters // 2), f"attention_{level}")
        x = layers.Conv2DTranspose(filters, 2, strides=2, name=f"decoder_{level}_up")(x)
        x = layers.Concatenate(name=f"decoder_{level}_concat")([x, skip])
        x = _conv_bn_relu(x, filters, f"decoder_{level}")
    return keras.Model(images, _probability_head(x), name=name)


def build_unet(input_shape: tuple[int, int, int] = (256, 256, 3), base_filters: int = 64, depth: int = 4,
               normalization: str = "minmax", name: str = "unet") -> keras.Model:
    """Ronneberger's U-Net with batch norm; base_filters=64, depth=4 is the classic size."""
    return _build_unet_family(input_shape, base_filters, depth, attention=False, name=name,
                              normalization=normalization)


def build_attention_unet(input_shape: tuple[int, int, int] = (256, 256, 3), base_filters: int = 64, depth: int = 4,
                         normalization: str = "minmax", name: str = "attention_unet") -> keras.Model:
    """U-Net whose skips pass through Oktay et al.'s additive attention gates."""
    return _build_unet_family(input_shape, base_filters, depth, attention=True, name=name,
                              normalization=normalization)


MODELS = {
    "frcunet": build_frcunet,
    "frcunet-lite": build_frcunet_lite,
    "unet": build_unet,
    "attention-unet": build_attention_unet,
}


def _builder_defaults(builder):
    import inspect

    return {key: parameter.default for key, parameter in inspect.signature(builder).parameters.items()
            if parameter.default is not inspect.Parameter.empty and key not in ("input_shape", "name")}


def effective_model_options(name: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Every option of model `name` with the value its builder uses: the defaults with `overrides` on top.

    >>> options = effective_model_options("frcunet-lite", {"width": 0.125})
    >>> options["width"], options["middle_units"], options["normalization"]
    (0.125, 2, 'minmax')
    """
    defaults = _builder_defaults(MODELS[name])
    if name == "frcunet-lite":  # its builder passes everything else on to build_frcunet
        defaults = {**_builder_defaults(build_frcunet), **defaults}
    return {**defaults, **overrides}


def build_model(name: str, input_shape: Sequence[int] = (256, 256, 3), **overrides: Any) -> keras.Model:
    """Builds a registry model by name.

    Args:
        name: str. One of `MODELS`: "frcunet", "frcunet-lite", "unet", "attention-unet".
        input_shape: (int, int, int). Height, width (multiples of 16) and 3 channels. Defaults to
            (256, 256, 3).
        **overrides: keyword arguments of the model's builder, e.g. `width`, `decoder_bn` or `base_filters`.

    Returns:
        A keras.Model from raw RGB images (0..255) to lesion probabilities of shape (H, W, 1).

    Raises:
        ValueError: an unknown name. UserError: an input size or option value the model cannot take.

    >>> model = build_model("frcunet-lite", (64, 64, 3))
    >>> tuple(model.output_shape)
    (None, 64, 64, 1)
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    check_model_options(overrides, name)
    return MODELS[name](tuple(input_shape), **overrides)


def build_model_to_load(name: str, input_shape: Sequence[int], load: Callable[[keras.Model], object],
                        **overrides: Any) -> keras.Model:
    """Builds a registry model whose weights `load(model)` then sets, without drawing them at random first.

    Under JAX each initializer compiles one program per weight shape: about 80 for frcunet-lite, which is
    most of a fresh process's time to load a model, for values the loaded weights replace. There the model
    is built under a stateless scope, which leaves its variables unset; `load` assigns them, and any it
    leaves unset (or all of them, when it fails) are then initialised as usual. Other backends initialise
    eagerly at little cost and build as usual.

    Args:
        name, input_shape, **overrides: as in `build_model`.
        load: callable(model) that assigns the model's weights, e.g. `lambda m: m.load_weights(path)`.

    Returns:
        The keras.Model with the loaded weights.
    """
    if keras.backend.backend() != "jax":
        model = build_model(name, input_shape, **overrides)
        load(model)
        return model
    # Keras has no public way to finish a stateless build; these two are its own helpers (Keras is pinned).
    from keras.src.backend.common import global_state
    from keras.src.backend.common.variables import initialize_all_variables

    with keras.StatelessScope(initialize_variables=False):
        model = build_model(name, input_shape, **overrides)
    try:
        load(model)
    finally:
        unset = global_state.get_global_attribute("uninitialized_variables") or []
        global_state.set_global_attribute("uninitialized_variables", [v for v in unset if v._value is None])
        initialize_all_variables()
    return model
