"""Decode and resize one image/mask pair: RGB uint8 image, 0/1 uint8 mask.

Runs inside worker processes, so it takes plain arguments and returns plain
arrays. Problems with a file raise UserError naming the file.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageChops, ImageOps

from frcunet.core.errors import UserError

# A dermoscopy image is at most ~6000x4000; anything far beyond is a mistake
# (or a decompression bomb) and would exhaust memory when decoded.
DEFAULT_MAX_PIXELS = 64_000_000


@dataclass
class DecodedPair:
    """A pair after decoding, resized to the target grid."""

    image: np.ndarray  # (H, W, 3) uint8
    mask: np.ndarray  # (H, W) uint8 0/1
    original_size: tuple[int, int]  # (height, width) of the source image
    image_sha1: str
    mask_sha1: str


def _open(path, max_pixels):
    """Reads the file once (for its hash) and opens it lazily; checks the pixel count from the header."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from None
    _allow_pillow(max_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise UserError(f"{path} is too large to decode ({exc}); downscale it or raise --max-pixels") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise UserError(f"{path} is not a readable image ({exc.__class__.__name__}); replace or remove it") from None
    width, height = image.size
    if width * height > max_pixels:
        raise UserError(
            f"{path} has {width}x{height} pixels, over the limit of {max_pixels:,}; "
            "downscale it or raise --max-pixels"
        )
    return image, hashlib.sha1(data).hexdigest()


def _load(image, path):
    """Forces decoding so a truncated file fails here, naming the file."""
    try:
        image.load()
    except (OSError, SyntaxError, ValueError) as exc:
        raise UserError(f"{path} is corrupt or truncated ({exc}); replace or remove it") from None
    return image


def _allow_pillow(max_pixels):
    """Raises Pillow's own decompression-bomb limit (it refuses twice MAX_IMAGE_PIXELS) to `max_pixels`, so
    that --max-pixels decides; it is only ever raised, never lowered."""
    if Image.MAX_IMAGE_PIXELS is not None and 2 * Image.MAX_IMAGE_PIXELS < max_pixels:
        Image.MAX_IMAGE_PIXELS = max_pixels // 2 + 1


# One-channel modes wider than 8 bits (16-bit PNG, 32-bit integer or float TIFF). Pillow's own
# conversion to RGB clips them at 255, which turns a 16-bit image all white.
WIDE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
NOMINAL_RANGES = (1.0, 255.0, 4095.0, 65535.0)  # float 0..1, 8-, 12- and 16-bit


def _as_8bit(values):
    """uint8 from a wide grey image, scaled by the smallest usual range that holds its values."""
    values = np.nan_to_num(values.astype(np.float64))
    values -= min(values.min(), 0.0)
    top = values.max()
    scale = next((r for r in NOMINAL_RANGES if top <= r), top)
    return np.rint(values * (255.0 / scale)).astype(np.uint8)


# EXIF orientations (tag 0x0112) that swap width and height: a photo taken in portrait, stored in landscape.
_ORIENTATION_TAG, _TRANSPOSING = 0x0112, (5, 6, 7, 8)


def _upright(image):
    """The image as viewers show it: its EXIF orientation applied (most phone photos carry one)."""
    return ImageOps.exif_transpose(image) if image.getexif().get(_ORIENTATION_TAG, 1) != 1 else image


def upright_size(image: Image.Image) -> tuple[int, int]:
    """(height, width) of an opened image as viewers show it (EXIF orientation applied)."""
    width, height = image.size
    transposed = image.getexif().get(_ORIENTATION_TAG, 1) in _TRANSPOSING
    return (width, height) if transposed else (height, width)


def resize_rgb(image: Image.Image, size: Sequence[int]) -> Image.Image:
    """An RGB PIL image resized to `size` = (H, W): bicubic, antialiased. The one resize of every model input
    (prepare, evaluate --resize, predict on files and on arrays), so that they all give the same pixels."""
    return image.resize((size[1], size[0]), Image.Resampling.BICUBIC, reducing_gap=3.0)


def read_image(path: Path, size: Sequence[int], max_pixels: int = DEFAULT_MAX_PIXELS
               ) -> tuple[np.ndarray, tuple[int, int], str]:
    """RGB uint8 (H, W, 3) at `size` = (H, W), antialiased and upright (EXIF orientation applied); returns
    (array, original (H, W) as viewers show it, sha1)."""
    image, digest = _open(path, max_pixels)
    original = upright_size(image)
    height, width = size
    # JPEG draft mode decodes at 1/2, 1/4 or 1/8 scale while staying >= the target (in the stored orientation).
    image.draft("RGB", (width, height) if original == (image.size[1], image.size[0]) else (height, width))
    image = _upright(_load(image, path))
    if image.mode in WIDE_MODES:
        image = Image.fromarray(_as_8bit(np.asarray(image)))
    if image.mode != "RGB":
        image = image.convert("RGB")  # grayscale, RGBA (alpha dropped), CMYK, palette
    return np.asarray(resize_rgb(image, size), dtype=np.uint8), original, digest


def as_rgb8(array: np.ndarray) -> np.ndarray:
    """An image array as (H, W, 3) uint8 RGB, read as prepare reads files; UserError when it is not an image.

    uint8 as it is; other integer types scaled by the smallest usual range that holds them (255, 4095,
    65535), as 16-bit files are; floats whose values lie in 0..1 scaled by 255, floats in 0..255 rounded;
    grey (H, W) or (H, W, 1) repeated into three channels; RGBA's alpha dropped. Refused: booleans (a mask,
    not a photo), other channel counts, empty arrays, and floats that are not finite or lie outside 0..255.
    """
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[2] == 4:
        array = array[..., :3]  # RGBA: alpha dropped
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] != 3) or array.size == 0:
        raise UserError(f"an image must be (H, W, 3) RGB, (H, W, 4) RGBA or (H, W) grey and not empty, got shape "
                        f"{array.shape}")
    if array.dtype == bool or array.dtype.kind not in "uif":
        raise UserError(f"an image must hold numbers (uint8 0..255, other integers, or floats in 0..1 or 0..255), "
                        f"got {array.dtype}")
    if array.dtype.kind == "f":
        if not np.isfinite(array).all() or array.min() < 0 or array.max() > 255:
            raise UserError("a float image must hold finite values in 0..1 or 0..255")
        array = np.rint(array * 255.0 if array.max() <= 1.0 else array).astype(np.uint8)
    elif array.dtype != np.uint8:
        array = _as_8bit(array)
    return np.ascontiguousarray(np.repeat(array[..., None], 3, axis=2) if array.ndim == 2 else array)


def mask_threshold(low: int, high: int) -> int:
    """The level at and above which a mask value is lesion, from the mask's own lowest and highest values.

    0/255 masks (also noisy JPEG ones) split at 128, as before; masks stored as 0/1, 0/2 or 0/100
    split half-way between their two levels instead of becoming empty. A one-level mask is all
    lesion unless that level is 0.
    """
    if high >= 255 or high == low:
        return 128 if high >= 128 else max(high, 1)
    return max(1, int(np.ceil((low + high) / 2)))


def binarize_mask(values: np.ndarray) -> np.ndarray:
    """Boolean lesion mask of an array mask of any depth (RGB: the channels' maximum)."""
    if values.ndim == 3:
        values = values.max(axis=-1)
    if values.dtype.kind == "f" or values.max() > 255:
        low, high = float(values.min()), float(values.max())
        return values >= ((low + high) / 2 if high > low else (high if high > 0 else 1))
    return values >= mask_threshold(int(values.min()), int(values.max()))


def _mask_as_0_255(image):
    """An 8-bit 0/255 mask image from any mask encoding, with Pillow's C loops (masks can be 12 MP)."""
    if image.mode in ("RGB", "RGBA", "P", "LA", "CMYK"):
        channels = image.convert("RGB").split()
        image = ImageChops.lighter(ImageChops.lighter(channels[0], channels[1]), channels[2])  # max of channels
    elif image.mode not in ("L", "1"):
        return Image.fromarray(binarize_mask(np.asarray(image)).astype(np.uint8) * 255)
    image = image.convert("L")
    threshold = mask_threshold(*image.getextrema())
    return image.point(lambda v: 255 if v >= threshold else 0)


def read_mask(path: Path, size: Sequence[int], max_pixels: int = DEFAULT_MAX_PIXELS
              ) -> tuple[np.ndarray, tuple[int, int], str]:
    """0/1 uint8 (H, W): binarised, resized as a coverage fraction, binarised again at one half."""
    image, digest = _open(path, max_pixels)
    original = upright_size(image)
    binary = _mask_as_0_255(_upright(_load(image, path)))
    coverage = binary.resize((size[1], size[0]), Image.Resampling.BILINEAR, reducing_gap=3.0)
    return (np.asarray(coverage) >= 128).astype(np.uint8), original, digest


def read_pair(image_path: Path, mask_path: Path, size: Sequence[int], max_pixels: int = DEFAULT_MAX_PIXELS
              ) -> DecodedPair:
    """Both files of a pair at `size`; their original sizes must agree."""
    image, image_size, image_sha1 = read_image(image_path, size, max_pixels)
    mask, mask_size, mask_sha1 = read_mask(mask_path, size, max_pixels)
    if image_size != mask_size:
        raise UserError(
            f"mask {mask_path} is {mask_size[1]}x{mask_size[0]} but its image is {image_size[1]}x{image_size[0]}; "
            "a mask must have its image's size"
        )
    return DecodedPair(image, mask, image_size, image_sha1, mask_sha1)
