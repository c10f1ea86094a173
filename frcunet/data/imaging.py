"""Decode and resize one image/mask pair: RGB uint8 image, 0/1 uint8 mask.

Runs inside worker processes, so it takes plain arguments and returns plain
arrays. Problems with a file raise UserError naming the file.
"""

import hashlib
import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageChops

from frcunet.errors import UserError

# A dermoscopy image is at most ~6000x4000; anything far beyond is a mistake
# (or a decompression bomb) and would exhaust memory when decoded.
DEFAULT_MAX_PIXELS = 64_000_000


@dataclass
class DecodedPair:
    """A pair after decoding, resized to the target grid."""

    image: np.ndarray  # (H, W, 3) uint8
    mask: np.ndarray  # (H, W) uint8 0/1
    original_size: tuple  # (height, width) of the source image
    image_sha1: str
    mask_sha1: str


def _open(path, max_pixels):
    """Reads the file once (for its hash) and opens it lazily; checks the pixel count from the header."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
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


def read_image(path, size, max_pixels=DEFAULT_MAX_PIXELS):
    """RGB uint8 (H, W, 3) at `size` = (H, W), antialiased; returns (array, original (H, W), sha1)."""
    image, digest = _open(path, max_pixels)
    original = (image.size[1], image.size[0])
    height, width = size
    # JPEG draft mode decodes at 1/2, 1/4 or 1/8 scale while staying >= the target.
    image.draft("RGB", (width, height))
    image = _load(image, path)
    if image.mode != "RGB":
        image = image.convert("RGB")  # grayscale, RGBA (alpha dropped), CMYK, palette
    image = image.resize((width, height), Image.Resampling.BICUBIC, reducing_gap=3.0)
    return np.asarray(image, dtype=np.uint8), original, digest


def binarize_mask(values):
    """0/1 masks stay as they are; 0..255 masks (also noisy JPEG or RGB) split at 128."""
    if values.ndim == 3:
        values = values.max(axis=-1)
    return (values >= 128) if values.max() > 1 else (values > 0)


def _mask_as_0_255(image):
    """An 8-bit 0/255 mask image from any mask encoding, with Pillow's C loops (masks can be 12 MP)."""
    if image.mode in ("RGB", "RGBA", "P", "LA", "CMYK"):
        channels = image.convert("RGB").split()
        image = ImageChops.lighter(ImageChops.lighter(channels[0], channels[1]), channels[2])  # max of channels
    elif image.mode not in ("L", "1"):
        return Image.fromarray(binarize_mask(np.asarray(image)).astype(np.uint8) * 255)
    image = image.convert("L")
    threshold = 128 if image.getextrema()[1] > 1 else 1
    return image.point(lambda v: 255 if v >= threshold else 0)


def read_mask(path, size, max_pixels=DEFAULT_MAX_PIXELS):
    """0/1 uint8 (H, W): binarised, resized as a coverage fraction, binarised again at one half."""
    image, digest = _open(path, max_pixels)
    original = (image.size[1], image.size[0])
    binary = _mask_as_0_255(_load(image, path))
    coverage = binary.resize((size[1], size[0]), Image.Resampling.BILINEAR, reducing_gap=3.0)
    return (np.asarray(coverage) >= 128).astype(np.uint8), original, digest


def read_pair(image_path, mask_path, size, max_pixels=DEFAULT_MAX_PIXELS):
    """Both files of a pair at `size`; their original sizes must agree."""
    image, image_size, image_sha1 = read_image(image_path, size, max_pixels)
    mask, mask_size, mask_sha1 = read_mask(mask_path, size, max_pixels)
    if image_size != mask_size:
        raise UserError(
            f"mask {mask_path} is {mask_size[1]}x{mask_size[0]} but its image is {image_size[1]}x{image_size[0]}; "
            "a mask must have its image's size"
        )
    return DecodedPair(image, mask, image_size, image_sha1, mask_sha1)
