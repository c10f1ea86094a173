"""Synthetic dermoscopy images with exact masks, in the ISIC 2018 folder layout.

Each image: skin-toned textured background with uneven lighting, freckles that
are not lesions, an irregular lesion with colour variation and a fuzzy border
(its mask is exact), hairs crossing everything, and the dark circular vignette
of a dermoscope. Contrast and size vary, so an untrained model scores poorly.
Every sample depends only on (seed, index): the same call writes the same files.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage
from tqdm import tqdm

from frcunet.core.errors import UserError
from frcunet.core.names import MASK_SUFFIX
from frcunet.core.saving import atomic_folder

INPUT_DIR = "ISIC2018_Task1-2_Training_Input"
TRUTH_DIR = "ISIC2018_Task1_Training_GroundTruth"


def _smooth_noise(rng, shape, sigma):
    """Zero-mean, unit-std noise smoothed over `sigma` pixels."""
    noise = ndimage.gaussian_filter(rng.normal(size=shape), sigma, mode="wrap")
    return (noise - noise.mean()) / (noise.std() + 1e-9)


def _lesion_field(rng, height, width):
    """Signed distance-like field: > 0 inside an irregular star-shaped lesion."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    cy = height * rng.uniform(0.35, 0.65)
    cx = width * rng.uniform(0.35, 0.65)
    radius = min(height, width) * rng.uniform(0.12, 0.36)
    angle = np.arctan2(yy - cy, (xx - cx) / rng.uniform(0.7, 1.4))
    distance = np.hypot(yy - cy, (xx - cx) / rng.uniform(0.8, 1.25))
    boundary = np.ones_like(angle)
    for k in range(2, 8):
        boundary += rng.uniform(0, 0.22 / k**0.5) * np.cos(k * angle + rng.uniform(0, 2 * np.pi))
    # Small-scale wiggle of the border, so it is not a smooth curve.
    boundary += 0.06 * _smooth_noise(rng, (height, width), 3)
    return radius * boundary - distance, radius


def _hair_layer(rng, height, width):
    """Darkness of 0..8 hairs: quadratic curves of 1-3 px width."""
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for _ in range(rng.integers(0, 9)):
        p0, p1, p2 = (rng.uniform(-0.2, 1.2, 2) * (width, height) for _ in range(3))
        t = np.linspace(0, 1, 60)[:, None]
        curve = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2
        draw.line([tuple(point) for point in curve], fill=int(rng.uniform(150, 255)), width=int(rng.integers(1, 4)))
    return np.asarray(canvas, np.float64) / 255.0


def synth_pair(seed: int, index: int, size: Sequence[int] = (192, 256)) -> tuple[np.ndarray, np.ndarray]:
    """One (image uint8 (H, W, 3), mask uint8 0/255 (H, W)) pair."""
    rng = np.random.default_rng([seed, index])
    height, width = size
    skin = np.array([rng.uniform(190, 235), rng.uniform(140, 185), rng.uniform(115, 160)])
    texture = 0.6 * _smooth_noise(rng, (height, width), 6) + 0.4 * _smooth_noise(rng, (height, width), 1.2)
    yy, xx = np.mgrid[0:height, 0:width] / np.array([height, width])[:, None, None]
    lighting = 1 + rng.uniform(-0.12, 0.12) * (xx - 0.5) + rng.uniform(-0.12, 0.12) * (yy - 0.5)
    image = skin * (lighting * (1 + 0.05 * texture))[..., None]

    # Freckles: small dark blobs that are not the lesion.
    freckles = np.zeros((height, width))
    for _ in range(rng.integers(0, 6)):
        fy, fx = rng.uniform(0, height), rng.uniform(0, width)
        freckles += np.exp(-(((yy * height - fy) ** 2 + (xx * width - fx) ** 2) / (2 * rng.uniform(1.5, 4) ** 2)))
    image *= 1 - 0.35 * np.clip(freckles, 0, 1)[..., None]

    field, radius = _lesion_field(rng, height, width)
    mask = field > 0
    softness = radius * rng.uniform(0.04, 0.25)
    alpha = 1 / (1 + np.exp(-field / softness))
    contrast = rng.uniform(0.35, 1.0)  # some lesions barely stand out
    dark = np.array([rng.uniform(70, 140), rng.uniform(35, 90), rng.uniform(20, 70)])
    darker = dark * rng.uniform(0.3, 0.7)
    blotches = np.clip(0.5 + 0.5 * _smooth_noise(rng, (height, width), rng.uniform(3, 10)), 0, 1)
    lesion = dark + (darker - dark) * blotches[..., None]
    if rng.random() < 0.4:  # blue-grey veil of some melanomas
        lesion = lesion * 0.8 + np.array([90, 95, 115]) * 0.2 * blotches[..., None]
    lesion *= 1 + 0.08 * texture[..., None]
    weight = (contrast * alpha)[..., None]
    image = image * (1 - weight) + lesion * weight

    hair = _hair_layer(rng, height, width)
    image = image * (1 - 0.85 * hair[..., None]) + 30 * 0.85 * hair[..., None]

    radial = np.hypot((yy - 0.5) * height, (xx - 0.5) * width) / (0.5 * np.hypot(height, width))
    edge = rng.uniform(0.85, 1.1)
    vignette = np.clip((edge - radial) / 0.15, 0, 1) ** 0.7
    image = image * vignette[..., None] + rng.normal(0, 2.0, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), mask.astype(np.uint8) * 255


def write_synthetic_isic(out_dir: Path | str, n: int, seed: int = 0, size: Sequence[int] = (192, 256),
                         progress: bool = True) -> None:
    """Writes `n` pairs as an ISIC 2018 download (JPEG images, PNG masks), atomically; UserError for fewer than
    one pair or a side under 16 pixels (nothing is written then)."""
    if n < 1 or min(size) < 16:
        raise UserError("--n must be at least 1 and --size at least 16 16")
    with atomic_folder(out_dir, "synthetic") as staging:
        (staging / INPUT_DIR).mkdir()
        (staging / TRUTH_DIR).mkdir()
        # The real download carries text files beside the images; readers must skip them.
        (staging / INPUT_DIR / "LICENSE.txt").write_text(
            "Synthetic images generated by frcunet synth; no licence needed.\n")
        for index in tqdm(range(n), desc="synthesising", unit="pair", disable=not progress):
            image, mask = synth_pair(seed, index, size)
            name = f"ISIC_{index:07d}"
            Image.fromarray(image).save(staging / INPUT_DIR / f"{name}.jpg", quality=92)
            Image.fromarray(mask).save(staging / TRUTH_DIR / f"{name}{MASK_SUFFIX}")
