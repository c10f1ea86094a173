"""Prediction: probability maps for images of any size, with optional flip averaging (TTA)."""

import logging
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from frcunet.names import IMAGE_SUFFIXES

log = logging.getLogger(__name__)  # shown by the command line; silent in a host program unless it asks


def predict_batches(model, images, batch_size=8, tta=False, progress=True, desc="predicting"):
    """Probabilities (N, H, W) float32 for uint8 images (N, H, W, 3) at the model's size.

    With `tta`, the maps of the image and its horizontal, vertical and double
    flips are averaged (each flipped back first).
    """
    if batch_size < 1:
        from frcunet.errors import UserError

        raise UserError("--batch-size must be at least 1")
    results = []
    flips = [(), (2,), (1,), (1, 2)] if tta else [()]
    with tqdm(total=len(images), desc=desc, unit="image", disable=not progress, file=sys.stderr) as bar:
        for start in range(0, len(images), batch_size):
            batch = np.asarray(images[start: start + batch_size], dtype=np.float32)
            total = np.zeros(batch.shape[:3], np.float32)
            for axes in flips:
                flipped = np.flip(batch, axes) if axes else batch
                out = np.asarray(model(flipped, training=False), dtype=np.float32)[..., 0]
                total += np.flip(out, axes) if axes else out
            results.append(total / len(flips))
            bar.update(len(batch))
    return np.concatenate(results) if results else np.zeros((0, *model.input_shape[1:3]), np.float32)


def resize_probabilities(probabilities, size):
    """A float probability map resized (bilinear) to size = (H, W)."""
    if probabilities.shape == tuple(size):
        return probabilities
    image = Image.fromarray(probabilities.astype(np.float32))
    return np.asarray(image.resize((size[1], size[0]), Image.Resampling.BILINEAR), dtype=np.float32)


def resize_images(images, size):
    """uint8 RGB images resized (antialiased) to size = (H, W)."""
    if images.shape[1:3] == tuple(size):
        return images
    return np.stack([
        np.asarray(Image.fromarray(np.asarray(image)).resize((size[1], size[0]), Image.Resampling.BICUBIC))
        for image in images
    ])


def predict_arrays(model, images, batch_size=8, tta=False, progress=False):
    """Python API: probability maps for a list of uint8 RGB arrays of any sizes, each at its own size."""
    size = model.input_shape[1:3]
    resized = np.stack([resize_images(np.asarray(image)[None], size)[0] for image in images])
    probabilities = predict_batches(model, resized, batch_size, tta, progress)
    return [resize_probabilities(p, np.asarray(image).shape[:2]) for p, image in zip(probabilities, images)]


def save_mask_png(mask, path):
    """A 0/255 8-bit PNG of a boolean mask, written atomically."""
    from frcunet.saving import atomic_path

    with atomic_path(path) as temporary:
        Image.fromarray(np.where(mask, 255, 0).astype(np.uint8)).save(temporary, format="PNG")


PREDICTED_RECORD = ".frcunet-predicted"  # the files predict wrote into --out; only those are ever replaced


def _input_files(source):
    from frcunet.errors import UserError

    source = Path(source)
    if source.is_file():
        return [source]
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if files:
            return files
        raise UserError(f"no {', '.join(s[1:].upper() for s in IMAGE_SUFFIXES)} images in {source}")
    raise UserError(f"{source} not found; give an image file or a folder of images")


def _output_names(files, probabilities):
    """{input file: its output names}; refuses two inputs that would write the same names."""
    from frcunet.errors import UserError

    by_stem = {}
    for path in files:
        by_stem.setdefault(path.stem, []).append(path.name)
    clashes = [" and ".join(names) for names in by_stem.values() if len(names) > 1]
    if clashes:
        raise UserError(f"{'; '.join(clashes)} would write the same mask file; rename or move one of them")
    suffixes = ("_segmentation.png", "_probability.png") if probabilities else ("_segmentation.png",)
    return {path: [path.stem + suffix for suffix in suffixes] for path in files}


def predict_files(run, source, out, threshold=0.5, probabilities=False, tta=False, batch_size=8, progress=True):
    """Segments files with a run's model (run None: the shipped model); returns (number written, list of
    "file: reason" for unreadable inputs).

    Masks go into `out`, which may hold other files: only files that predict wrote are ever replaced.
    """
    from frcunet.data.imaging import read_image
    from frcunet.errors import UserError
    from frcunet.runs import load_run_model
    from frcunet.saving import OwnedEntries, check_folder_path

    if batch_size < 1:
        raise UserError("--batch-size must be at least 1")
    files = _input_files(source)
    names = _output_names(files, probabilities)
    out = Path(out)
    check_folder_path(out)
    ours = OwnedEntries(out, PREDICTED_RECORD)
    foreign = ours.foreign([name for file_names in names.values() for name in file_names])
    if foreign:
        raise UserError(f"{out} already holds {', '.join(foreign[:3])}{' ...' if len(foreign) > 3 else ''}, "
                        "not written by frcunet predict; it is left untouched: choose another --out")
    model, record = load_run_model(run)
    size = record.size
    out.mkdir(parents=True, exist_ok=True)
    ours.add(name for file_names in names.values() for name in file_names)
    failed, written = [], 0
    with tqdm(total=len(files), desc="predicting", unit="image", disable=not progress, file=sys.stderr) as bar:
        for start in range(0, len(files), batch_size):
            batch, originals, sources = [], [], []
            for path in files[start: start + batch_size]:
                try:
                    image, original, _ = read_image(path, size)
                except UserError as exc:
                    failed.append(f"{path.name}: {exc}")
                    log.warning(f"skipping {path}: {exc}")
                    continue
                batch.append(image)
                originals.append(original)
                sources.append(path)
            if batch:
                maps = predict_batches(model, np.stack(batch), batch_size, tta, progress=False)
                for probability, original, path in zip(maps, originals, sources):
                    probability = resize_probabilities(probability, original)
                    save_mask_png(probability > threshold, out / names[path][0])
                    if probabilities:
                        _save_probability_png(probability, out / names[path][1])
                    written += 1
            bar.update(min(batch_size, len(files) - start))
    return written, failed


def _save_probability_png(probability, path):
    from frcunet.saving import atomic_path

    with atomic_path(path) as temporary:
        Image.fromarray(np.rint(np.clip(probability, 0, 1) * 255).astype(np.uint8)).save(temporary, format="PNG")
