"""Batches from a prepared split folder: memory-mapped uint8 in, float32 batches out.

`SegmentationBatches` is a `keras.utils.PyDataset`, so it feeds `model.fit`
on every backend. Nothing is copied in full: each batch reads its rows from
the memory-mapped arrays. The order and the augmentation of an epoch depend
only on (seed, epoch), so a resumed run sees the same batches it would have.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from frcunet.core.errors import UserError
from frcunet.data.augmentation import augment_pair, check_augmentation
from frcunet.data.manifest import Manifest, manifest_path, manifest_sha1, read_manifest


@dataclass
class PreparedSplit:
    """The two arrays of one split of a prepared folder, memory-mapped."""

    images: np.ndarray  # (N, H, W, 3) uint8
    masks: np.ndarray  # (N, H, W) uint8 0/1

    @property
    def size(self) -> tuple[int, int]:
        return tuple(self.images.shape[1:3])

    def __len__(self) -> int:
        return len(self.images)


def prepare_hint(folder: Path | str) -> str:
    """The command that writes a prepared folder like `folder` (the `frcunet` command: a pip install has no
    repository scripts)."""
    dataset = Path(folder).name if Path(folder).name in ("isic2018", "isic2017", "ph2") else "DATASET"
    return f"frcunet prepare {dataset} --out {folder}"


def open_split(folder: Path | str, split: str, check_masks: bool = True) -> PreparedSplit:
    """Memory-maps one split and checks that its arrays agree; UserError says what to run."""
    folder = Path(folder)
    image_path, mask_path = folder / f"data_{split}.npy", folder / f"mask_{split}.npy"
    if not image_path.is_file() or not mask_path.is_file():
        if folder.is_dir() and not manifest_path(folder).is_file() and any(folder.iterdir()):
            raise UserError(f"{folder} is not a prepared folder (it holds other files: the dataset as downloaded?); "
                            f"prepare it into a new folder: frcunet prepare DATASET --data-dir {folder} --out "
                            f"data/{folder.name}_prepared, then train on that")
        raise UserError(f"no prepared {split} split in {folder} ({image_path.name} missing); run "
                        f"{prepare_hint(folder)} first")
    try:
        images = np.load(image_path, mmap_mode="r")
        masks = np.load(mask_path, mmap_mode="r")
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read the {split} arrays of {folder} ({exc}); prepare the folder again") from None
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise UserError(f"{image_path} must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}")
    if masks.dtype != np.uint8 or masks.shape != images.shape[:3]:
        raise UserError(f"{mask_path} must be uint8 {images.shape[:3]} to match its images, got "
                        f"{masks.dtype} {masks.shape}")
    if check_masks and len(masks) and _max_in_chunks(masks) > 1:
        raise UserError(f"{mask_path} holds values above 1; masks must be 0/1 (prepare the folder again)")
    return PreparedSplit(images, masks)


def _max_in_chunks(array, rows=64):
    return max(int(array[i: i + rows].max()) for i in range(0, len(array), rows))


class PreparedFolder:
    """A prepared folder opened once per command: each split memory-mapped (and its masks checked) on first use,
    the manifest read and hashed once. Training used to open the same folder five times."""

    def __init__(self, folder: Path | str) -> None:
        self.path = Path(folder)
        self._splits: dict[str, PreparedSplit] = {}
        self._checked: set[str] = set()

    def split(self, name: str, check_masks: bool = True) -> PreparedSplit:
        """The PreparedSplit `name` (see open_split); opened once, its masks checked once when asked."""
        if name not in self._splits:
            self._splits[name] = open_split(self.path, name, check_masks=check_masks)
            if check_masks:
                self._checked.add(name)
        elif check_masks and name not in self._checked:
            open_split(self.path, name, check_masks=True)
            self._checked.add(name)
        return self._splits[name]

    @functools.cached_property
    def manifest(self) -> Manifest | None:
        """The folder's Manifest, or None for arrays prepared without one."""
        return read_manifest(self.path) if manifest_path(self.path).is_file() else None

    @functools.cached_property
    def manifest_sha1(self) -> str | None:
        return manifest_sha1(self.path) if self.manifest is not None else None


def augmentation_key(seed: int, epoch: int, row: int, repetition: int = 0) -> list[int]:
    """The seed of one row's augmentation in one epoch (a repetition of the row draws its own)."""
    return [seed, epoch, int(row), 1] + ([int(repetition)] if repetition else [])


class SegmentationBatches(keras.utils.PyDataset):
    """(images, masks) batches of one prepared split (or several, concatenated) for `model.fit` / `predict`.

    Args:
        folder: the prepared folder.
        split: "train", "val" or "test", or a tuple of them to use together (e.g. ("train", "val") to fit
            a final model on both).
        batch_size: images per batch; the last batch may be smaller.
        shuffle: a new order every epoch, from (seed, epoch).
        augment: "none", "flip" or "full" (see `frcunet.data.augmentation`; training only). True means "flip".
        seed: base of every random choice.
        epoch_images: with shuffle, an epoch shows at least this many images: the rows are repeated, each
            repetition in its own order and with its own augmentation, so a handful of images still makes an
            epoch of several steps (fine-tuning on a few annotated images). 0: each image once.
        part: (index, count): read only the index-th of `count` equal parts of every batch (each process
            of a multi-process JAX training feeds its own part of the global batch).
        workers, use_multiprocessing: passed to PyDataset.

    Yields float32 images (B, H, W, 3) in 0..255 and float32 masks (B, H, W, 1).
    """

    def __init__(self, folder: Path | str | PreparedFolder, split: str | Sequence[str], batch_size: int,
                 shuffle: bool = False, augment: str | bool = "none", seed: int = 0, epoch: int = 0,
                 epoch_images: int = 0, part: tuple[int, int] = (0, 1), workers: int = 1,
                 use_multiprocessing: bool = False, **kwargs: Any) -> None:
        super().__init__(workers=workers, use_multiprocessing=use_multiprocessing, **kwargs)
        # A PreparedFolder is shared with the rest of the command in this process; loader processes reopen
        # the folder by its path (memory maps do not pickle).
        self._opened: PreparedFolder | None = folder if isinstance(folder, PreparedFolder) else PreparedFolder(folder)
        self.folder = self._opened.path
        self.splits = (split,) if isinstance(split, str) else tuple(split)
        self.batch_size, self.shuffle, self.seed = int(batch_size), shuffle, int(seed)
        self.augment = check_augmentation(augment)
        self.epoch = int(epoch)
        self.part = tuple(part)
        self._data: list[PreparedSplit] | None = None  # opened lazily, so the object pickles into worker processes
        lengths = [len(self._opened.split(name, check_masks=False)) for name in self.splits]
        self._starts = np.cumsum([0, *lengths])
        self._length = int(self._starts[-1])
        if self._length == 0:
            raise UserError(f"the {' + '.join(self.splits)} split of {self.folder} is empty; prepare it with a "
                            f"non-empty share")
        self.repeats = max(1, math.ceil(int(epoch_images) / self._length)) if shuffle else 1

    @property
    def data(self) -> list[PreparedSplit]:
        if self._data is None:
            if self._opened is None:  # in a loader process
                self._opened = PreparedFolder(self.folder)
            self._data = [self._opened.split(name, check_masks=False) for name in self.splits]
        return self._data

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_data"], state["_opened"] = None, None
        return state

    def __len__(self) -> int:
        return math.ceil(self._length * self.repeats / self.batch_size)

    def order(self, epoch: int | None = None) -> np.ndarray:
        """Entry order of `epoch` (default: the current one).

        Rows of several splits are numbered in turn; with repeats, entry e is row e % N in its repetition
        e // N (N rows), and each repetition has its own permutation.
        """
        if not self.shuffle:
            return np.arange(self._length)
        rng = np.random.default_rng([self.seed, self.epoch if epoch is None else epoch])
        return np.concatenate([rng.permutation(self._length) + k * self._length for k in range(self.repeats)])

    def batch_entries(self, index: int, epoch: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(rows, repetitions) of batch `index`, sorted by row: the order in which a batch is read."""
        entries = self.order(epoch)[index * self.batch_size: (index + 1) * self.batch_size]
        entries = entries[np.argsort(entries % self._length, kind="stable")]
        return entries % self._length, entries // self._length

    def batch_sizes(self) -> list[int]:
        """The distinct sizes of this dataset's batches: the full one and a smaller last one, if any."""
        total = self._length * self.repeats
        return sorted({min(self.batch_size, total), total % self.batch_size} - {0})

    def _read(self, rows):
        images, masks = [], []
        for split_index, start in enumerate(self._starts[:-1]):
            local = rows[(rows >= start) & (rows < self._starts[split_index + 1])] - start
            if len(local):
                images.append(self.data[split_index].images[local])
                masks.append(self.data[split_index].masks[local])
        return np.concatenate(images).astype(np.float32), np.concatenate(masks).astype(np.float32)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        rows, repetitions = self.batch_entries(index)
        if self.part != (0, 1):
            index_in_parts, parts = self.part
            share = slice(len(rows) * index_in_parts // parts, len(rows) * (index_in_parts + 1) // parts)
            rows, repetitions = rows[share], repetitions[share]
        images, masks = self._read(rows)
        if self.augment != "none":
            square = images.shape[1] == images.shape[2]
            for k, (row, repetition) in enumerate(zip(rows, repetitions, strict=True)):
                rng = np.random.default_rng(augmentation_key(self.seed, self.epoch, row, repetition))
                images[k], masks[k] = augment_pair(images[k], masks[k], rng, square, self.augment)
        return images, masks[..., None]

    def on_epoch_end(self) -> None:
        self.epoch += 1
