"""Prediction: probability maps for images of any size, with optional flip averaging (TTA).

A model here is either a Keras model (float input) or an `OnnxModel` (uint8 input, ONNX Runtime); both give
the same probabilities. Keras-free: predicting with the shipped model or an ONNX export imports neither
TensorFlow nor Keras, and a folder is predicted with decoding, the network and writing overlapped.
"""

from __future__ import annotations

import logging
import os
import sys
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image
from tqdm import tqdm

from frcunet.core.errors import UserError
from frcunet.core.names import IMAGE_SUFFIXES, MASK_SUFFIX
from frcunet.inference.onnx_model import OnnxModel, onnxruntime_available

if TYPE_CHECKING:
    import keras

    from frcunet.core.saving import OwnedEntries

log = logging.getLogger(__name__)  # shown by the command line; silent in a host program unless it asks

# What --probabilities writes beside each mask: <stem> + this (0..255).
PROBABILITY_SUFFIX = "_probability.png"



def check_threshold(threshold: object, name: str = "threshold") -> None:
    """Refuses a threshold that is not a number strictly between 0 and 1 (NaN included): no mask would mean
    anything."""
    import math

    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold) \
            or not 0 < threshold < 1:
        raise UserError(f"{name} must lie strictly between 0 and 1, got {threshold!r}")


def model_size(model: keras.Model | OnnxModel) -> tuple[int, int]:
    """(height, width) the model takes."""
    return tuple(model.size) if isinstance(model, OnnxModel) else tuple(model.input_shape[1:3])


def _probabilities(model, batch):
    """(N, H, W) float32 probabilities of a uint8 batch (N, H, W, 3)."""
    if isinstance(model, OnnxModel):
        return np.asarray(model(batch), dtype=np.float32)[..., 0]
    return np.asarray(model(np.asarray(batch, np.float32), training=False), dtype=np.float32)[..., 0]


def predict_batches(model: keras.Model | OnnxModel, images: np.ndarray, batch_size: int = 8, tta: bool = False,
                    progress: bool = True, desc: str = "predicting") -> np.ndarray:
    """Probabilities (N, H, W) float32 for uint8 images (N, H, W, 3) at the model's size.

    With `tta`, the maps of the image and its horizontal, vertical and double
    flips are averaged (each flipped back first).
    """
    if batch_size < 1:
        raise UserError("--batch-size must be at least 1")
    results = []
    flips = [(), (2,), (1,), (1, 2)] if tta else [()]
    with tqdm(total=len(images), desc=desc, unit="image", disable=not progress, file=sys.stderr) as bar:
        for start in range(0, len(images), batch_size):
            batch = np.asarray(images[start: start + batch_size], dtype=np.uint8)
            total = np.zeros(batch.shape[:3], np.float32)
            for axes in flips:
                out = _probabilities(model, np.flip(batch, axes) if axes else batch)
                total += np.flip(out, axes) if axes else out
            results.append(total / len(flips))
            bar.update(len(batch))
    return np.concatenate(results) if results else np.zeros((0, *model_size(model)), np.float32)


def resize_probabilities(probabilities: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """A float probability map resized (bilinear) to size = (H, W)."""
    if probabilities.shape == tuple(size):
        return probabilities
    image = Image.fromarray(probabilities.astype(np.float32))
    return np.asarray(image.resize((size[1], size[0]), Image.Resampling.BILINEAR), dtype=np.float32)


def resize_images(images: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """uint8 RGB images resized to size = (H, W) with the resize every model input gets."""
    from frcunet.data.imaging import resize_rgb

    if images.shape[1:3] == tuple(size):
        return images
    return np.stack([np.asarray(resize_rgb(Image.fromarray(np.asarray(image)), size)) for image in images])


def predict_arrays(model: keras.Model | OnnxModel, images: Sequence[np.ndarray | Path | str], batch_size: int = 8,
                   tta: bool = False, progress: bool = False) -> list[np.ndarray]:
    """Python API: probability maps for a list of images of any sizes, each at its own size.

    An image is an array (read by `frcunet.data.imaging.as_rgb8`: RGB, grey, RGBA, 16-bit, float) or an image
    file, read as `predict_files` reads it, so that both give the same maps.
    """
    inputs = [_model_input(image, model_size(model)) for image in images]
    if not inputs:
        return []
    probabilities = predict_batches(model, np.stack([resized for resized, _ in inputs]), batch_size, tta, progress)
    return [resize_probabilities(p, original) for p, (_, original) in zip(probabilities, inputs, strict=True)]


def _model_input(image, size):
    """(uint8 image at the model's size, original (H, W)) of an array or an image file."""
    from frcunet.data.imaging import as_rgb8, read_image

    if isinstance(image, (str, Path)):
        return read_image(Path(image), size)[:2]
    array = as_rgb8(image)
    return resize_images(array[None], size)[0], array.shape[:2]


def run_onnx_export(run: Path | str, threads: int | None = None) -> OnnxModel | None:
    """The run's own ONNX export when it exists and was exported from its current best weights, else None."""
    from frcunet.artifacts.runs import BEST_WEIGHTS, RUN_ONNX_FILE

    path = Path(run) / RUN_ONNX_FILE
    if not path.is_file() or not onnxruntime_available():
        return None
    model = OnnxModel(path, threads)
    if not _exported_from(model, Path(run) / BEST_WEIGHTS):
        log.warning(f"{path} was exported from other weights than {Path(run) / BEST_WEIGHTS}; predicting with Keras "
                    f"(run frcunet export --run {run} --format onnx to export them again)")
        return None
    return model


def _exported_from(model, weights):
    from frcunet.core.provenance import file_sha1

    return model.metadata.get("frcunet_weights_sha1") == file_sha1(weights)


def shipped_onnx(threads: int | None = None) -> OnnxModel | None:
    """The shipped model's ONNX file, or None when ONNX Runtime is not installed or the file is missing."""
    from frcunet.artifacts.pretrained import ONNX_FILE, PRETRAINED_DIR

    path = PRETRAINED_DIR / ONNX_FILE
    return OnnxModel(path, threads) if path.is_file() and onnxruntime_available() else None


def open_model(run: Path | str | None = None, onnx: Path | str | None = None, threads: int | None = None,
               before_keras: Callable[[], object] | None = None) -> keras.Model | OnnxModel:
    """The model to predict with: an ONNX file, a run (its ONNX export when current, else Keras), or with
    neither the shipped model (its ONNX file on ONNX Runtime when installed, else Keras). `threads`: ONNX
    Runtime's threads (None: one per core). `before_keras`: called before Keras is first imported (the command
    line imports it quietly)."""
    import importlib.util

    if onnx:
        return OnnxModel(onnx, threads)
    model = shipped_onnx(threads) if run is None else run_onnx_export(run, threads)
    if model is not None:
        return model
    if importlib.util.find_spec("keras") is None:
        where = "the shipped model's ONNX file is missing; reinstall frcunet" if run is None else \
            f"{run} has no current ONNX export; run frcunet export --run {run} --format onnx where Keras is installed"
        raise UserError(f"predicting needs ONNX Runtime with an ONNX model, or Keras: {where}, pass --onnx FILE, "
                        "or install the training stack (pip install 'frcunet[train]' tensorflow-cpu)")
    if before_keras is not None:
        before_keras()
    from frcunet.artifacts.runs import load_run_model

    return load_run_model(run)[0]


PREDICTED_RECORD = ".frcunet-predicted"  # the files predict wrote into --out; only those are ever replaced


def _input_files(source):
    """The images to predict: `source` itself, or the images of the folder `source`, except masks that an
    earlier predict wrote there (so a folder used as --out before is not segmented twice)."""
    from frcunet.core.saving import OwnedEntries

    source = Path(source)
    if source.is_file():
        return [source]
    if source.is_dir():
        written = OwnedEntries(source, PREDICTED_RECORD).names
        files = sorted(p for p in source.iterdir()
                       if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and p.name not in written)
        if files:
            return files
        raise UserError(f"no {', '.join(s[1:].upper() for s in IMAGE_SUFFIXES)} images in {source}")
    if source.exists():
        raise UserError(f"{source} is neither an image file nor a folder; give an image file or a folder of images")
    raise UserError(f"{source} not found; give an image file or a folder of images")


def _project_folder(folder):
    """What the project keeps in `folder` and replaces or reads whole, or None: an output of a kind, a run, a
    prepared folder."""
    from frcunet.artifacts.runs import BEST_WEIGHTS, CONFIG_FILE
    from frcunet.core.saving import folder_kind
    from frcunet.data.manifest import MANIFEST

    if folder_kind(folder):
        return f"a frcunet {folder_kind(folder)} output folder, which a rerun replaces whole"
    if (folder / CONFIG_FILE).is_file() and (folder / BEST_WEIGHTS).exists():
        return "a run folder"
    if (folder / MANIFEST).is_file() and (folder / "data_train.npy").exists():
        return "a prepared data folder"
    return None


def _check_out(out, source):
    """Refuses an --out whose masks would be lost or read back: inside --input, or in a folder the project
    replaces or reads whole (an evaluation, export or prepared folder, a run)."""
    from frcunet.core.saving import check_folder_path

    check_folder_path(out)
    source = Path(source)
    if source.is_dir() and (out.resolve() == source.resolve() or source.resolve() in out.resolve().parents):
        raise UserError(f"--out {out} is --input {source} or inside it; the masks would be read as images next "
                        "time: choose a folder outside it")
    for folder in (out, *out.absolute().parents):
        what = _project_folder(folder)
        if what:
            where = "is" if folder == out else f"lies inside {folder},"
            raise UserError(f"--out {out} {where} {what}; choose a separate folder for the masks")


def _output_names(files, probabilities):
    """{input file: its output names}; refuses two inputs that would write the same names."""
    by_stem = {}
    for path in files:
        by_stem.setdefault(path.stem, []).append(path.name)
    clashes = [" and ".join(names) for names in by_stem.values() if len(names) > 1]
    if clashes:
        raise UserError(f"{'; '.join(clashes)} would write the same mask file; rename or move one of them")
    suffixes = (MASK_SUFFIX, PROBABILITY_SUFFIX) if probabilities else (MASK_SUFFIX,)
    return {path: [path.stem + suffix for suffix in suffixes] for path in files}


class _Prefetch:
    """Decodes files on a thread pool ahead of their use, in order, with at most `ahead` in flight.

    `top_up` queues more decoding whenever there is room, so that the pool always has work while the
    network runs or the caller waits for writes; `take(n)` returns the next n (path, result, UserError or
    None), waiting for them.
    """

    def __init__(self, pool: ThreadPoolExecutor, function: Callable[[Path], object], paths: Iterable[Path],
                 ahead: int) -> None:
        self.pool, self.function, self.ahead = pool, function, ahead
        self.paths, self.pending = iter(paths), deque()
        self.top_up()

    def top_up(self):
        while len(self.pending) < self.ahead:
            path = next(self.paths, None)
            if path is None:
                return
            self.pending.append((path, self.pool.submit(self.function, path)))

    def __bool__(self) -> bool:
        return bool(self.pending)

    def take(self, count):
        taken = [self.pending.popleft() for _ in range(min(count, len(self.pending)))]
        self.top_up()
        return [self._result(path, future) for path, future in taken]

    @staticmethod
    def _result(path: Path, future: Future) -> tuple[Path, object, UserError | None]:
        try:
            return path, future.result(), None
        except UserError as exc:
            return path, None, exc


def predict_files(run: Path | str | None, source: Path | str, out: Path | str, threshold: float = 0.5,
                  probabilities: bool = False, tta: bool = False, batch_size: int = 8, progress: bool = True,
                  onnx: Path | str | None = None, workers: int | None = None, report: bool = False,
                  before_keras: Callable[[], object] | None = None) -> tuple[int, list[str]]:
    """Segments files with a model (an ONNX file, a run, or with neither the shipped model); returns (number
    written, list of "file: reason" for unreadable inputs).

    With `report`, also writes `out`/report.html and `out`/report/: a gallery of the masks drawn on their images
    (frcunet.reports.gallery), published once every mask is written. `before_keras`: see `open_model`.

    Masks go into `out`, which may hold other files: only files that predict wrote are ever replaced, and a
    file is recorded as predict's only once it is written. Decoding and writing run on `workers` threads
    (default: one per core and one more) while the network predicts, with a bounded number of images in flight, so a
    folder of any size is predicted in bounded memory; the masks are those of a sequential run.
    """
    from frcunet.core.locks import exclusive_lock
    from frcunet.core.saving import OwnedEntries

    check_threshold(threshold, "--threshold")

    if batch_size < 1:
        raise UserError("--batch-size must be at least 1")
    files = _input_files(source)
    names = _output_names(files, probabilities)
    out = Path(out)
    _check_out(out, source)
    cores = os.cpu_count() or 1
    # A quarter of the cores for the network, the rest decode and write: the network is about a quarter of an
    # image's CPU time on full-size photos, and one ONNX Runtime thread does more per core than two (on 2 cores:
    # 230 against 170 images/s per core at 128x128; docs/benchmarks.md).
    model = open_model(run, onnx, threads=max(1, cores // 4), before_keras=before_keras)
    if run is not None and not onnx:
        _warn_if_unfinished(run)
    out.parent.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(out.parent / f".{out.name}.lock", out, "written"):
        ours = OwnedEntries(out, PREDICTED_RECORD)
        foreign = ours.foreign([name for file_names in names.values() for name in file_names] +
                               (_gallery_names(out) if report else []))
        if foreign:
            raise UserError(f"{out} already holds {', '.join(foreign[:3])}{' ...' if len(foreign) > 3 else ''}, "
                            "not written by frcunet predict; it is left untouched: choose another --out")
        out.mkdir(exist_ok=True)
        # One more thread than cores: a thread is often waiting for the file system (measured: 3 threads on 2
        # cores predicted 86 images/s, 2 threads 66, docs/benchmarks.md).
        workers = max(1, workers or cores + 1)
        if not report:
            return _predict_into(model, files, names, out, ours, threshold, probabilities, tta, batch_size, progress,
                                 workers)
        return _predict_with_gallery(model, files, names, out, ours, threshold, probabilities, tta, batch_size,
                                     progress, workers, _gallery_facts(run, onnx, source, threshold, tta))


GALLERY_PAGE, GALLERY_FILES = "report.html", "report"


def _gallery_names(out):
    """The gallery's names that predict must own before it replaces them. Its folder carries a marker of its own
    (saving.atomic_folder), so one published by a run killed before recording it is still known as predict's."""
    from frcunet.core.saving import folder_kind

    return [GALLERY_PAGE] + ([] if folder_kind(out / GALLERY_FILES) == "gallery" else [GALLERY_FILES])


def _gallery_facts(run, onnx, source, threshold, tta):
    model = f"ONNX file {onnx}" if onnx else f"run {run}" if run else \
        "the frcunet-lite shipped with the package (trained on ISIC 2018)"
    return [("model", model), ("input", str(source)),
            ("settings", f"threshold {threshold}{', flip TTA' if tta else ''}")]


def _predict_with_gallery(model, files, names, out, ours, threshold, probabilities, tta, batch_size, progress,
                          workers, about):
    """_predict_into, drawing each mask on its image as it is written; then the gallery's page."""
    from frcunet.core.saving import atomic_folder, atomic_path
    from frcunet.reports.gallery import Gallery
    from frcunet.reports.html import stamp

    with atomic_folder(out / GALLERY_FILES, "gallery") as staging:
        gallery = Gallery(staging, threshold)
        written, failed = _predict_into(model, files, names, out, ours, threshold, probabilities, tta, batch_size,
                                        progress, workers, gallery)
    ours.add([GALLERY_FILES])
    with atomic_path(out / GALLERY_PAGE) as temporary:
        gallery.write_page(temporary, files, [*about, ("written", stamp())], failed)
    ours.add([GALLERY_PAGE])
    return written, failed


def _warn_if_unfinished(run):
    from frcunet.artifacts.runs import run_progress

    progress = run_progress(run)
    if not progress["finished"]:
        log.warning(f"{run} has not finished training ({progress['epochs_done']} of {progress['epochs_planned']} "
                    f"epochs): predicting with its best epoch so far (epoch {progress['best_epoch']})")


def _predict_into(model, files, names, out, ours, threshold, probabilities, tta, batch_size, progress, workers,
                  gallery=None):
    """predict_files' loop: decoding ahead on the pool, the network on this thread, writing on the pool (and
    drawing into `gallery`, a reports.gallery.Gallery, when given)."""
    from frcunet.data.imaging import read_image

    size = model_size(model)

    def write(path, probability, original):
        if gallery is not None:
            gallery.add(path, probability, original)
        probability = resize_probabilities(probability, original)
        save_mask_png(probability > threshold, out / names[path][0])
        if probabilities:
            _save_probability_png(probability, out / names[path][1])
        return path

    failed = []
    # Decoded images are small (the model's size) and a write holds the small map until it resizes it, so
    # a few batches in flight keep every core busy in bounded memory, whatever the number of files.
    in_flight = 4 * batch_size
    writes = deque()
    written = _WrittenRecord(ours, names)
    try:
        with ThreadPoolExecutor(workers) as pool, \
                tqdm(total=len(files), desc="predicting", unit="image", disable=not progress, file=sys.stderr) as bar:
            decoded = _Prefetch(pool, lambda path: read_image(path, size)[:2], files, in_flight)
            while decoded:
                batch = decoded.take(batch_size)
                readable = [(path, result) for path, result, error in batch if error is None]
                for path, _, error in batch:
                    if error is not None:
                        failed.append(f"{path.name}: {error}")
                        log.warning(f"skipping {path}: {error}")
                if readable:
                    maps = predict_batches(model, np.stack([image for _, (image, _) in readable]), batch_size, tta,
                                           progress=False)
                    writes.extend(pool.submit(write, path, probability, original)
                                  for probability, (path, (_, original)) in zip(maps, readable, strict=True))
                # Wait for the oldest writes only when too many are pending; record those finished.
                while len(writes) > in_flight or (writes and writes[0].done()):
                    written.add(writes.popleft().result())
                bar.update(len(batch))
            while writes:
                written.add(writes.popleft().result())
    finally:
        # An error or an interrupt: the pool has finished what it started; whatever was written is recorded,
        # so that rerunning the same command replaces those masks instead of refusing them as the user's.
        written.add_all(future.result() for future in writes
                        if future.done() and not future.cancelled() and not future.exception())
    return written.count, failed


class _WrittenRecord:
    """Records each written input's output names in predict's record, in the order they are written."""

    def __init__(self, ours: OwnedEntries, names: dict[Path, list[str]]) -> None:
        self.ours, self.names, self.count = ours, names, 0

    def add(self, path):
        self.add_all([path])

    def add_all(self, paths):
        paths = list(paths)
        self.ours.add(name for path in paths for name in self.names[path])
        self.count += len(paths)


def save_mask_png(mask: np.ndarray, path: Path | str) -> None:
    """A 0/255 8-bit PNG of a boolean mask, written atomically."""
    from frcunet.core.saving import atomic_path

    with atomic_path(path) as temporary:
        Image.fromarray(np.asarray(mask, bool).view(np.uint8) * np.uint8(255)).save(temporary, format="PNG")


def _save_probability_png(probability, path):
    from frcunet.core.saving import atomic_path

    with atomic_path(path) as temporary:
        Image.fromarray(np.rint(np.clip(probability, 0, 1) * 255).astype(np.uint8)).save(temporary, format="PNG")
