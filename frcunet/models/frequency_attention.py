"""Laplacian pyramid and frequency re-calibration: the FRCU-Net bottleneck block.

Both layers use `keras.ops` only, so they run on every Keras backend, and both
are registered for serialisation, so a saved `.keras` model loads with plain
`keras.saving.load_model` once `frcunet` is imported.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import layers, ops

from frcunet.core.names import PYRAMID_MODES

# A tensor of the backend, or a KerasTensor while a functional model is built.
Tensor = Any
Shape = tuple[int | None, ...]


def reference_sigmas(levels: int = 4, base: float = 1.6) -> tuple[float, ...]:
    """sigma_i = base * 2**(i / 3) for i = 1..levels, as in the released code."""
    return tuple(base * 2.0 ** (i / 3.0) for i in range(1, levels + 1))


def gaussian_kernel_1d(size: int, sigma: float) -> np.ndarray:
    """Normalised 1-D Gaussian of odd `size`, centred."""
    offsets = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    weights = np.exp(-0.5 * (offsets / sigma) ** 2)
    return weights / weights.sum()


def gaussian_kernel_2d(size: int, sigma: float) -> np.ndarray:
    """Separable 2-D Gaussian: outer product of the normalised 1-D kernel."""
    row = gaussian_kernel_1d(size, sigma)
    return np.outer(row, row)


def _repeat_edges(x, count, axis):
    first = ops.take(x, [0] * count, axis=axis)
    last = ops.take(x, [x.shape[axis] - 1] * count, axis=axis)
    return ops.concatenate([first, x, last], axis=axis)


def _depthwise_blur(x, kernel_1d, padding_mode):
    """Blur every channel of NHWC `x` with the separable Gaussian outer(kernel_1d, kernel_1d).

    Two 1-D passes (columns, then rows) cost 2k instead of k*k multiplies per
    pixel and give the same result as the 2-D kernel, zero padding included.
    padding_mode "zeros" is what the reference's `padding="same"` conv did;
    "edge" repeats the border pixels, so a constant map stays constant and
    maps smaller than the kernel (1x1 at the pyramid's top) still work.
    """
    channels = x.shape[-1]
    taps = np.asarray(kernel_1d, dtype=np.float64)
    along_height = ops.convert_to_tensor(np.tile(taps[:, None, None, None], (1, 1, channels, 1)), dtype=x.dtype)
    along_width = ops.convert_to_tensor(np.tile(taps[None, :, None, None], (1, 1, channels, 1)), dtype=x.dtype)
    if padding_mode == "zeros":
        x = ops.depthwise_conv(x, along_height, strides=1, padding="same")
        return ops.depthwise_conv(x, along_width, strides=1, padding="same")
    half = len(taps) // 2
    x = ops.depthwise_conv(_repeat_edges(x, half, axis=1), along_height, strides=1, padding="valid")
    return ops.depthwise_conv(_repeat_edges(x, half, axis=2), along_width, strides=1, padding="valid")


def _extend_to_even(x):
    """`x` with one more row (column) where its height (width) is odd: the linear extrapolation of the last two,
    or a copy of the last where there is only one."""
    for axis in (1, 2):
        length = x.shape[axis]
        if length % 2:
            last = ops.take(x, [length - 1], axis=axis)
            before = ops.take(x, [length - 2], axis=axis) if length > 1 else last
            x = ops.concatenate([x, 2 * last - before], axis=axis)
    return x


def _upsample(x, factor, size, dtype):
    """`x` upsampled bilinearly by exactly `factor`, then cropped to `size`: a sample of a level stays at the
    centre of the block of pixels it averaged, also where an odd side was extended before halving."""
    height, width = x.shape[1] * factor, x.shape[2] * factor
    up = ops.cast(ops.image.resize(x, (height, width), interpolation="bilinear"), dtype)
    return up if (height, width) == tuple(size) else up[:, : size[0], : size[1]]


@keras.saving.register_keras_serializable(package="frcunet")
class LaplacianPyramid(layers.Layer):
    """Splits a feature map into Laplacian frequency bands, all at its resolution.

    `mode="reference"` is what the released FRCU-Net code computed: four fixed
    Gaussian blurs G1..G4 of x at full resolution (sizes `kernel_sizes`, sigmas
    `sigmas`), and bands L0 = x, Li = G(i-1) - Gi with G0 = x. The detail bands
    telescope: L1 + ... + L4 = x - G4.

    `mode="multiscale"` is the pyramid the paper's figure draws: at each level
    the map is blurred (a 5-tap Gaussian, sigma 1) and halved; the level's band
    is the map minus its blurred-and-halved copy brought back up; every band is
    then resized (bilinear) to the input's resolution. L0 = x again.

    The Gaussian kernels are constants, not weights: nothing here is trained.

    Args:
        mode: "reference" or "multiscale".
        kernel_sizes: odd kernel size of each of the reference mode's blurs.
        sigmas: Gaussian sigma of each blur; default 1.6 * 2**(i/3), i = 1..4.

    Returns:
        A list of `1 + len(kernel_sizes)` tensors shaped like the input.

    Example:
    >>> bands = LaplacianPyramid()(keras.random.normal((2, 16, 16, 8)))
    >>> len(bands), tuple(bands[0].shape)
    (5, (2, 16, 16, 8))
    """

    mode: str
    kernel_sizes: tuple[int, ...]
    sigmas: tuple[float, ...]
    kernels: list[np.ndarray]  # the 1-D taps of each reference blur
    level_kernel: np.ndarray  # the 1-D taps of the multiscale levels' blur

    def __init__(self, mode: str = "reference", kernel_sizes: Sequence[int] = (3, 5, 7, 9),
                 sigmas: Sequence[float] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if mode not in PYRAMID_MODES:
            raise ValueError(f"pyramid mode must be one of {PYRAMID_MODES}, got {mode!r}")
        kernel_sizes = tuple(int(k) for k in kernel_sizes)
        if any(k < 1 or k % 2 == 0 for k in kernel_sizes):
            raise ValueError(f"Gaussian kernel sizes must be odd and positive, got {kernel_sizes}")
        sigmas = reference_sigmas(len(kernel_sizes)) if sigmas is None else tuple(float(s) for s in sigmas)
        if len(sigmas) != len(kernel_sizes):
            raise ValueError("give one sigma per Gaussian kernel size")
        self.mode = mode
        self.kernel_sizes = kernel_sizes
        self.sigmas = sigmas
        self.kernels = [gaussian_kernel_1d(k, s) for k, s in zip(kernel_sizes, sigmas, strict=True)]
        self.level_kernel = gaussian_kernel_1d(5, 1.0)

    @property
    def num_bands(self) -> int:
        return 1 + len(self.kernel_sizes)

    def call(self, x: Tensor) -> list[Tensor]:
        if self.mode == "reference":
            return self._reference_bands(x)
        return self._multiscale_bands(x)

    def _reference_bands(self, x):
        gaussians = [x] + [_depthwise_blur(x, k, "zeros") for k in self.kernels]
        return [x] + [gaussians[i - 1] - gaussians[i] for i in range(1, len(gaussians))]

    def multiscale_levels(self, x: Tensor) -> tuple[list[Tensor], Tensor]:
        """(details, low-pass) of the multiscale pyramid, each detail at its own level's resolution.

        Going back up, `low-pass` upsampled plus the coarsest detail gives the level above, and so on
        up to `x`: the details and the last low-pass reconstruct the input.
        """
        details, current = [], x
        for _ in self.kernel_sizes:
            blurred = _extend_to_even(_depthwise_blur(current, self.level_kernel, "edge"))
            # 2x2 means, not [::2]: each coarse sample then sits at the centre of its 2x2 block, which is
            # where bilinear upsampling (half-pixel centres) puts it. Taking every second pixel left the
            # samples half a pixel off, and a linear ramp then showed up as a constant detail band. An odd
            # side is first extended by one extrapolated row or column, so that every block is whole.
            smaller = ops.average_pool(blurred, pool_size=2, strides=2, padding="valid")
            details.append(current - _upsample(smaller, 2, current.shape[1:3], current.dtype))
            current = smaller
        return details, current

    @staticmethod
    def reconstruct(details: Sequence[Tensor], low: Tensor) -> Tensor:
        """The map that `multiscale_levels` split into (details, low): each level upsampled plus its detail."""
        for detail in reversed(details):
            low = _upsample(low, 2, detail.shape[1:3], detail.dtype) + detail
        return low

    def _multiscale_bands(self, x):
        size = tuple(x.shape[1:3])
        details, _ = self.multiscale_levels(x)
        return [x] + [detail if tuple(detail.shape[1:3]) == size else _upsample(detail, 2 ** level, size, x.dtype)
                      for level, detail in enumerate(details)]

    def compute_output_shape(self, input_shape: Shape) -> list[Shape]:
        return [tuple(input_shape)] * self.num_bands

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"mode": self.mode, "kernel_sizes": list(self.kernel_sizes), "sigmas": list(self.sigmas)})
        return config


@keras.saving.register_keras_serializable(package="frcunet")
class FrequencyRecalibration(layers.Layer):
    """Re-weights frequency bands channel-wise and fuses them into one map.

    One squeeze-excitation MLP (global average pool -> Dense(C) ReLU ->
    Dense(squeeze_units) ReLU -> Dense(C) sigmoid, bias-free, he_normal) is
    shared by all bands; each band is multiplied by its own gate. The gated
    bands are concatenated and projected by a bias-free 1x1 conv with ReLU,
    which equals the reference's Conv3D over a stacked band axis.

    Args:
        filters: channels of the fused output.
        squeeze_units: width of the MLP's bottleneck (32 in the paper).

    Example:
    >>> bands = LaplacianPyramid()(keras.random.normal((2, 16, 16, 64)))
    >>> tuple(FrequencyRecalibration(64, 8)(bands).shape)
    (2, 16, 16, 64)
    """

    filters: int
    squeeze_units: int
    excite_in: layers.Dense
    squeeze: layers.Dense
    excite_out: layers.Dense
    fuse: layers.Conv2D

    def __init__(self, filters: int, squeeze_units: int = 32, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.squeeze_units = int(squeeze_units)

    def build(self, bands_shape: Sequence[Shape]) -> None:
        channels = bands_shape[0][-1]
        dense = dict(use_bias=False, kernel_initializer="he_normal", dtype=self.dtype_policy)
        self.excite_in = layers.Dense(channels, activation="relu", name="excite_in", **dense)
        self.squeeze = layers.Dense(self.squeeze_units, activation="relu", name="squeeze", **dense)
        self.excite_out = layers.Dense(channels, activation="sigmoid", name="excite_out", **dense)
        self.fuse = layers.Conv2D(
            self.filters, 1, use_bias=False, activation="relu", kernel_initializer="he_normal",
            name="fuse", dtype=self.dtype_policy,
        )
        self.excite_in.build((None, channels))
        self.squeeze.build((None, channels))
        self.excite_out.build((None, self.squeeze_units))
        self.fuse.build(tuple(bands_shape[0][:-1]) + (channels * len(bands_shape),))

    def gates(self, bands: Sequence[Tensor]) -> list[Tensor]:
        """The sigmoid gate of each band, a list of (batch, channels) tensors in (0, 1)."""
        return [self.excite_out(self.squeeze(self.excite_in(ops.mean(b, axis=(1, 2))))) for b in bands]

    def call(self, bands: Sequence[Tensor]) -> Tensor:
        gated = [b * g[:, None, None, :] for b, g in zip(bands, self.gates(bands), strict=True)]
        return self.fuse(ops.concatenate(gated, axis=-1))

    def compute_output_shape(self, bands_shape: Sequence[Shape]) -> Shape:
        return tuple(bands_shape[0][:-1]) + (self.filters,)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"filters": self.filters, "squeeze_units": self.squeeze_units})
        return config
