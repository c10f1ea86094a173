"""Training augmentation of one (image, mask) pair, in numpy: the same geometry for both.

Levels:
    none   the pair as stored
    flip   flips and 90-degree turns (180 only for non-square images): exact, no resampling
    full   flip, then one random affine warp (scale, rotation, shift; mirrored borders) and a
           photometric change (contrast, gamma, saturation, hue, brightness). The photometric part is
           not a global gain or offset, so the reference's per-image min-max scaling does not undo it.

Every draw comes from the `rng` the caller passes, so an epoch's augmentation
depends only on (seed, epoch, row).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from frcunet.core.names import AUGMENTATIONS

# Ranges of the "full" level, chosen to keep lesions plausible: dermoscopy has no up or down, so any
# turn is fine; scale within 0.75..1.33 keeps most of a lesion in view.
SCALE_RANGE = (0.75, 1.33)
MAX_ROTATION_DEGREES = 30.0
MAX_SHIFT = 0.1  # of the image side
CONTRAST_RANGE = (0.75, 1.33)
GAMMA_RANGE = (0.7, 1.4)
SATURATION_RANGE = (0.7, 1.3)
MAX_HUE_RADIANS = 0.1
MAX_BRIGHTNESS = 20.0


def check_augmentation(level: str | bool | None) -> str:
    """Maps the old boolean spelling onto a level; raises ValueError for unknown names."""
    if level is True:
        return "flip"
    if level in (False, None):
        return "none"
    if level not in AUGMENTATIONS:
        raise ValueError(f"augmentation must be one of {', '.join(AUGMENTATIONS)}, got {level!r}")
    return level


def flip_and_turn(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, square: bool
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Random flips and 90-degree turns (180 only when not square), image and mask alike."""
    if rng.random() < 0.5:
        image, mask = image[:, ::-1], mask[:, ::-1]
    if rng.random() < 0.5:
        image, mask = image[::-1], mask[::-1]
    turns = int(rng.integers(4)) if square else 2 * int(rng.integers(2))
    return np.rot90(image, turns), np.rot90(mask, turns)


def random_affine(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One random scale, rotation and shift about the centre; borders mirrored, mask re-binarised."""
    height, width = mask.shape
    scale = math.exp(rng.uniform(*np.log(SCALE_RANGE)))
    angle = math.radians(rng.uniform(-MAX_ROTATION_DEGREES, MAX_ROTATION_DEGREES))
    shift = rng.uniform(-MAX_SHIFT, MAX_SHIFT, size=2) * (height, width)
    # affine_transform maps output coordinates to input ones: the inverse of "zoom by scale, turn by angle".
    cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
    matrix = np.array([[cos, -sin], [sin, cos]])
    centre = np.array([(height - 1) / 2, (width - 1) / 2])
    offset = centre - matrix @ (centre + shift)
    warp = dict(matrix=matrix, offset=offset, order=1, mode="mirror")
    warped = np.stack([ndimage.affine_transform(image[..., c], **warp) for c in range(3)], axis=-1)
    warped_mask = ndimage.affine_transform(mask.astype(np.float32), **warp) > 0.5
    return warped, warped_mask.astype(mask.dtype)


def random_colour(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Contrast, gamma, saturation, hue and brightness changes of a float 0..255 RGB image."""
    grey = image.mean(axis=-1, keepdims=True)
    image = grey + (image - grey) * rng.uniform(*SATURATION_RANGE)
    image = _rotate_hue(image, rng.uniform(-MAX_HUE_RADIANS, MAX_HUE_RADIANS))
    mean = image.mean()
    image = mean + (image - mean) * rng.uniform(*CONTRAST_RANGE)
    image = 255.0 * (np.clip(image, 0, 255) / 255.0) ** rng.uniform(*GAMMA_RANGE)
    return np.clip(image + rng.uniform(-MAX_BRIGHTNESS, MAX_BRIGHTNESS), 0, 255)


def _rotate_hue(image, radians):
    """Turns the chroma plane (I, Q of YIQ) by `radians`, keeping the luma."""
    to_yiq = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    cos, sin = math.cos(radians), math.sin(radians)
    turn = np.array([[1, 0, 0], [0, cos, -sin], [0, sin, cos]])
    transform = np.linalg.inv(to_yiq) @ turn @ to_yiq
    return image @ transform.T.astype(np.float32)


def augment_pair(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, square: bool, level: str = "flip"
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The augmented (float32 image 0..255, mask) of one pair at `level` (see the module docstring)."""
    image = np.asarray(image, np.float32)
    if level == "none":
        return image, mask
    image, mask = flip_and_turn(image, mask, rng, square)
    if level == "full":
        image, mask = random_affine(np.ascontiguousarray(image), np.ascontiguousarray(mask), rng)
        image = random_colour(image, rng)
    return np.ascontiguousarray(image, dtype=np.float32), np.ascontiguousarray(mask)
