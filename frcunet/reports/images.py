"""Thumbnails and full-size overlays of the cases a report shows: contours drawn on the image, saved as JPEG.

numpy and Pillow only, so that `frcunet predict --report` works in the prediction-only install. The ground
truth is drawn in blue and the prediction in orange (Okabe and Ito's palette), which readers with any of the
common colour-vision deficiencies tell apart; the prediction is drawn last, so it shows where both agree.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

TRUTH_COLOUR = "#0072B2"  # blue
PREDICTION_COLOUR = "#E69F00"  # orange
THUMBNAIL_SIDE = 112  # long side in pixels: 520 of them stay under 3 MB and a page of them loads at once
OVERLAY_SIDE = 384  # a full-size overlay's long side is at least this (small grids are enlarged)
GALLERY_SIDE = 640  # predict's overlays are made from the photo itself: at most this long side
THUMBNAIL_QUALITY, OVERLAY_QUALITY = 80, 90
THUMBS, OVERLAYS = "thumbs", "overlays"


def _rgb(colour):
    return tuple(int(colour[i: i + 2], 16) for i in (1, 3, 5))


def outline(mask: np.ndarray, width: int = 1) -> np.ndarray:
    """The pixels of a boolean mask that touch the outside (4-neighbours; beyond the image counts as outside),
    thickened inwards and outwards to about `width` pixels."""
    mask = np.asarray(mask, bool)
    padded = np.pad(mask, 1)
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:] & mask
    edge = mask & ~interior
    for _ in range(width - 1):
        edge = _dilate(edge)
    return edge


def _dilate(mask):
    padded = np.pad(mask, 1)
    grown = mask.copy()
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            grown |= padded[dy: dy + mask.shape[0], dx: dx + mask.shape[1]]
    return grown


def _resize_map(values, size):
    """A float map (probabilities, or a 0/1 mask) resized bilinearly to size = (H, W)."""
    values = np.asarray(values, np.float32)
    if values.shape == tuple(size):
        return values
    return np.asarray(Image.fromarray(values).resize((size[1], size[0]), Image.Resampling.BILINEAR))


def _resize_image(image, size):
    image = np.asarray(image, np.uint8)
    if image.shape[:2] == tuple(size):
        return image
    return np.asarray(Image.fromarray(image).resize((size[1], size[0]), Image.Resampling.BICUBIC, reducing_gap=3.0))


def fit(size: Sequence[int], side: int, enlarge: bool = False) -> tuple[int, int]:
    """(H, W) scaled so that the long side is `side` (smaller ones kept unless `enlarge`; then by whole factors,
    so that pixels stay square blocks)."""
    height, width = size
    longest = max(height, width)
    if longest > side:
        scale = side / longest
    elif enlarge:
        scale = math.ceil(side / longest)
    else:
        scale = 1
    return max(1, round(height * scale)), max(1, round(width * scale))


def draw_case(image: np.ndarray, probability: np.ndarray, threshold: float, size: Sequence[int],
              truth: np.ndarray | None = None, width: int = 2) -> np.ndarray:
    """uint8 (H, W, 3) at `size`: the image with the truth's and the prediction's contours.

    The maps are resized before thresholding (bilinearly: smooth contours on an enlarged image), the truth at
    one half of its 0/1 coverage, the prediction at `threshold`.
    """
    drawn = _resize_image(image, size).copy()
    if truth is not None:
        drawn[outline(_resize_map(truth, size) >= 0.5, width)] = _rgb(TRUTH_COLOUR)
    drawn[outline(_resize_map(probability, size) > threshold, width)] = _rgb(PREDICTION_COLOUR)
    return drawn


@dataclass
class Case:
    """One case to draw. image: uint8 (H, W, 3); probability: float (h, w) in [0, 1], any size; truth: (h, w)
    bool or None; name: the file name's stem (thumbs/<name>.jpg, overlays/<name>.jpg); shape: (H, W) whose
    aspect the drawings take (the original photo's, when the image was resized to a square grid), or None for
    the image's own."""

    name: str
    image: np.ndarray
    probability: np.ndarray
    truth: np.ndarray | None = None
    shape: tuple[int, int] | None = None


def _save_jpeg(pixels, path, quality):
    Image.fromarray(pixels).save(path, format="JPEG", quality=quality, optimize=False)


def write_case(case: Case, folder: Path | str, threshold: float, enlarge: bool = True) -> None:
    """Writes `folder`/thumbs/<name>.jpg and `folder`/overlays/<name>.jpg of one case."""
    shape = drawn_shape(case.image.shape[:2], case.shape)
    full = fit(shape, OVERLAY_SIDE if enlarge else GALLERY_SIDE, enlarge)
    _save_jpeg(draw_case(case.image, case.probability, threshold, full, case.truth, width=2),
               Path(folder) / OVERLAYS / f"{case.name}.jpg", OVERLAY_QUALITY)
    small = fit(shape, THUMBNAIL_SIDE)
    _save_jpeg(draw_case(case.image, case.probability, threshold, small, case.truth, width=2),
               Path(folder) / THUMBS / f"{case.name}.jpg", THUMBNAIL_QUALITY)


def make_folders(folder: Path | str) -> None:
    for name in (THUMBS, OVERLAYS):
        (Path(folder) / name).mkdir(parents=True, exist_ok=True)


def write_cases(cases: Iterable[Case], folder: Path | str, threshold: float, workers: int | None = None) -> None:
    """Writes every case's thumbnail and overlay into `folder` (created), on threads: Pillow's resizing and
    JPEG encoding release the interpreter lock."""
    make_folders(folder)
    workers = workers or (os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool:
        for _ in pool.map(lambda case: write_case(case, folder, threshold), cases):
            pass


def drawn_shape(grid: Sequence[int], shape: Sequence[int] | None = None) -> tuple[int, ...]:
    """(H, W) of the aspect a case is drawn at: `shape`'s, at about the grid's size, or the grid's own."""
    if shape is None:
        return tuple(grid)
    scale = max(grid) / max(shape)
    return max(1, round(shape[0] * scale)), max(1, round(shape[1] * scale))


def thumbnail_size(grid: Sequence[int], shape: Sequence[int] | None = None) -> tuple[int, int]:
    """(H, W) of the thumbnail of an image of size `grid` = (H, W) drawn at `shape`'s aspect (see Case)."""
    return fit(drawn_shape(grid, shape), THUMBNAIL_SIDE)
