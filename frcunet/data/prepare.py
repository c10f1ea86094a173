"""Prepared split folder: decode pairs in parallel, stream them into .npy files, publish atomically.

The folder holds `data_{split}.npy` (N, H, W, 3) uint8, `mask_{split}.npy`
(N, H, W) uint8 0/1 and `manifest.json`; readers memory-map the arrays. Rows
are streamed into the files as workers decode them, so memory stays flat. The
folder is built under a hidden staging name beside the target and renamed
into place at the end, so a killed run leaves no half-written folder under the
real name.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

from frcunet.core.errors import UserError
from frcunet.core.names import SPLITS
from frcunet.core.provenance import versions
from frcunet.core.saving import atomic_folder, check_output_folder
from frcunet.data.imaging import DEFAULT_MAX_PIXELS, read_pair
from frcunet.data.manifest import MANIFEST, Manifest, ManifestEntry, write_manifest
from frcunet.data.workers import ordered_map, workers_that_fit

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, DTypeLike

    from frcunet.data.sources import Pair


def _decode(size, max_pixels, pair):
    return read_pair(pair.image, pair.mask, size, max_pixels)


def _decoded_pairs(pairs, size, workers, max_pixels):
    """Decoded pairs in input order; worker processes when workers > 1."""
    decode = partial(_decode, tuple(size), max_pixels)
    yield from map(decode, pairs) if workers <= 1 else ordered_map(decode, pairs, workers)


# A decoded pair at the target size lives in a few copies at once (Pillow's image, numpy's array, the
# mask's coverage map): about 16 bytes per target pixel. The original image comes on top, bounded by
# --max-pixels, and is not counted: a dermoscopy original is far smaller than the sizes this guards.
BYTES_PER_PIXEL_DECODED = 16


def _check_resources(out_dir, size, count, workers):
    """Workers that fit in memory; refuses a --size that does not fit in memory or on the disk, up front."""
    height, width = size
    per_worker = BYTES_PER_PIXEL_DECODED * height * width
    workers = workers_that_fit(workers, per_worker, f"--size {height} {width}")
    needed = count * height * width * 4  # 3 image bytes and 1 mask byte per pixel
    parent = next(p for p in [out_dir, *out_dir.parents] if p.exists())
    free = shutil.disk_usage(parent).free
    if needed > free:
        raise UserError(f"the prepared arrays need {needed / 2**30:.1f} GiB but {parent} has "
                        f"{free / 2**30:.1f} GiB free; free space, choose another --out or a smaller --size")
    return workers


def prepare_split_folder(pairs_by_split: Mapping[str, Sequence[Pair]], out_dir: Path | str, size: Sequence[int],
                         info: Mapping[str, Any], workers: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS,
                         progress: bool = True) -> Manifest:
    """Writes the prepared folder for {split: [Pair, ...]}; returns its manifest.

    Args:
        pairs_by_split: the pairs of train, val and test, in their stored order.
        out_dir: the folder to create or replace.
        size: (height, width) of the stored arrays.
        info: extra manifest fields (dataset, source folder, split protocol).
        workers: decoding processes (default: all cores).
    """
    out_dir = Path(out_dir)
    # A folder with a manifest.json was prepared by an earlier version, before the marker existed.
    target = dict(legacy_marker=MANIFEST, keep_clear=[info["source_dir"]] if "source_dir" in info else [])
    check_output_folder(out_dir, "prepared", **target)
    height, width = size
    total = sum(len(p) for p in pairs_by_split.values())
    workers = _check_resources(out_dir.absolute(), size, total, workers or os.cpu_count() or 1)
    start = time.perf_counter()
    with atomic_folder(out_dir, "prepared", **target) as staging:
        images = {s: NpyWriter(staging / f"data_{s}.npy", (len(pairs_by_split[s]), height, width, 3)) for s in SPLITS}
        masks = {s: NpyWriter(staging / f"mask_{s}.npy", (len(pairs_by_split[s]), height, width)) for s in SPLITS}
        order = [(s, p) for s in SPLITS for p in pairs_by_split[s]]
        entries: dict[str, list[ManifestEntry]] = {s: [] for s in SPLITS}
        lesion_pixels = dict.fromkeys(SPLITS, 0)
        decoded = _decoded_pairs([p for _, p in order], size, workers, max_pixels)
        with closing(decoded), tqdm(total=total, desc="preparing", unit="pair", disable=not progress,
                                    file=sys.stderr) as bar:
            for (split, pair), result in zip(order, decoded, strict=True):
                images[split].append(result.image)
                masks[split].append(result.mask)
                lesion_pixels[split] += int(result.mask.sum())
                entries[split].append(ManifestEntry(
                    pair.id, str(pair.image.absolute()), str(pair.mask.absolute()), tuple(result.original_size),
                    result.image_sha1, result.mask_sha1))
                bar.update()
        for writer in (*images.values(), *masks.values()):
            writer.close()
        lesion_fraction = {
            s: lesion_pixels[s] / (len(entries[s]) * height * width) if entries[s] else None for s in SPLITS
        }
        manifest = Manifest(
            size=(height, width), splits=entries, lesion_fraction=lesion_fraction, **info,
            created=datetime.now(timezone.utc).isoformat(timespec="seconds"), command=list(sys.argv),
            versions=versions(), seconds=round(time.perf_counter() - start, 2))
        write_manifest(staging, manifest)
    return manifest


class NpyWriter:
    """Writes an .npy file of known shape one row at a time.

    Rows go through the page cache, not a memory map, so the process's
    resident memory stays at one row whatever the dataset's size.
    """

    def __init__(self, path: Path | str, shape: Sequence[int], dtype: DTypeLike = np.uint8) -> None:
        self.shape, self.dtype, self.rows = tuple(shape), np.dtype(dtype), 0
        self.file = open(path, "wb")
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": self.shape}
        np.lib.format.write_array_header_1_0(self.file, header)

    def append(self, row: ArrayLike) -> None:
        row = np.ascontiguousarray(row, dtype=self.dtype)
        if row.shape != self.shape[1:] or self.rows >= self.shape[0]:
            raise ValueError(f"row {self.rows} of shape {row.shape} does not fit an array of shape {self.shape}")
        self.file.write(row.tobytes())
        self.rows += 1

    def close(self) -> None:
        self.file.close()
        if self.rows != self.shape[0]:
            raise ValueError(f"wrote {self.rows} of {self.shape[0]} rows")


def preparation_report(manifest: Manifest, out_dir: Path | str) -> str:
    """The lines printed at the end of a preparation: a table of the splits, then any warnings."""
    from frcunet.core.markdown import markdown_table, number

    fractions, counts = manifest.lesion_fraction, manifest.counts
    table = markdown_table(["split", "pairs", "lesion fraction"],
                           [[split, counts[split], number(fractions[split], 3)] for split in SPLITS])
    lines = [f"prepared {sum(counts.values())} pairs at {manifest.size[0]}x{manifest.size[1]} "
             f"in {manifest.seconds:.1f} s -> {out_dir}", "", table]
    lines += [f"warning: no {split} mask has a lesion pixel; check that the masks mark lesions with a value above "
              "their background" for split in SPLITS if fractions[split] == 0]
    return "\n".join(lines)


@dataclass
class PrepareConfig:
    """What `prepare_dataset` reads and writes.

    Args:
        dataset: str. "isic2018", "isic2017", "ph2" or "folder".
        data_dir: str, Path or None. The download (for "folder": the images folder); None for the dataset's own
            default folder.
        out_dir: str, Path or None. The prepared folder to write; None for `data/<dataset>`.
        size: (int, int). Height and width of the stored arrays.
        split: three floats or None. Fractions of a seeded ratio split; None for the paper protocol.
        seed: int. Shuffle seed of the ratio protocol and of PH2's paper protocol.
        split_file: str, Path or None. An earlier manifest.json whose split is reused by id.
        workers: int or None. Decoding processes; None for as many as the cores and memory allow.
        skip_unpaired: bool. Drop images without a mask and masks without an image instead of refusing.
        max_pixels: int. Refuse images larger than this.
        masks_dir: str, Path or None. "folder" only: the masks folder.
        mask_suffix: str. "folder" only: a mask's name is the image's stem plus this suffix.
        progress: bool. Show a progress bar.
    """

    dataset: str
    data_dir: Path | str | None = None
    out_dir: Path | str | None = None
    size: Sequence[int] = (256, 256)
    split: Sequence[float] | None = None
    seed: int = 0
    split_file: Path | str | None = None
    workers: int | None = None
    skip_unpaired: bool = False
    max_pixels: int = DEFAULT_MAX_PIXELS
    masks_dir: Path | str | None = None
    mask_suffix: str = ""
    progress: bool = True


def prepare_dataset(config: PrepareConfig) -> tuple[Manifest, Path]:
    """Lists a dataset's pairs, splits them and writes the prepared folder.

    Args:
        config: PrepareConfig.

    Returns:
        (manifest, out_dir): the Manifest written (frcunet.data.manifest) and the prepared folder (a Path).

    Raises:
        UserError: an unknown dataset, a missing or malformed download, a bad size, seed or split.
    """
    from frcunet.data import sources, splits

    c = config
    dataset, data_dir, size, split, seed = c.dataset, c.data_dir, tuple(c.size), c.split, c.seed
    if dataset not in sources.SOURCES:
        raise UserError(f"unknown dataset {dataset!r}; choose one of {', '.join(sources.SOURCES)}")
    source = sources.SOURCES[dataset]
    if dataset == "folder":
        if not data_dir or not c.masks_dir:
            raise UserError("the folder dataset needs --data-dir IMAGES_DIR and --masks-dir MASKS_DIR")
        pairs = sources.folder_pairs(data_dir, c.masks_dir, c.mask_suffix, c.skip_unpaired)
    else:
        data_dir = data_dir or source.default_dir
        pairs = {"isic2018": sources.isic2018_pairs, "isic2017": sources.isic2017_pairs,
                 "ph2": sources.ph2_pairs}[dataset](data_dir, c.skip_unpaired)
    if seed < 0:
        raise UserError(f"--seed must be 0 or more, got {seed}")
    if any(s < 16 for s in size):
        raise UserError(f"--size {size[0]} {size[1]} is too small; use at least 16 (multiples of 16 for the models)")
    ids = [p.id for p in pairs]
    if c.split_file:
        split_ids = splits.split_from_manifest(c.split_file, ids)
        protocol = {"protocol": "file", "split_file": str(c.split_file)}
    elif split:
        split_ids = splits.ratio_split(ids, split, seed)
        protocol = {"protocol": "ratio", "fractions": [float(f) for f in split], "seed": seed}
    else:
        split_ids = splits.paper_split(dataset, ids, seed)
        protocol = {"protocol": "paper", "seed": seed if dataset in splits.PAPER_SHUFFLED else None}
    by_id = {p.id: p for p in pairs}
    pairs_by_split = {name: [by_id[i] for i in split_ids[name]] for name in splits.SPLITS}
    out_dir = Path(c.out_dir or Path("data") / dataset)
    info = {"dataset": dataset, "source_dir": str(Path(data_dir).resolve()), "split": protocol,
            "unused_pairs": len(pairs) - sum(len(v) for v in pairs_by_split.values())}
    manifest = prepare_split_folder(pairs_by_split, out_dir, size, info, c.workers, c.max_pixels, c.progress)
    return manifest, out_dir
