"""Prediction speed on full-size photos: the old Keras path, the ONNX Runtime path, and the I/O floor.

    python benchmarks/predict_speed.py [--images 200] [--out output/predict_speed]

Makes `--images` full-size JPEGs (1504x1129, like the ISIC originals) by upscaling real ISIC 2018 images
from ../shared/data, then measures in one run, on the shipped model:
- old: the Keras path as it was before ONNX (one image decoded, the batch predicted by the Keras model, each
  mask resized and written, all in turn on one thread);
- new: `frcunet predict` as it is (ONNX Runtime, decoding and writing on threads while the network runs);
- floor: the new path's decoding and writing with no network (a constant probability map), on both cores;
and the time to the first mask of one photo in a fresh process, for `frcunet predict --run` on a run
folder holding the shipped weights (Keras) and for `frcunet predict` (ONNX). Prints images/s and ratios.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
FULL_SIZE = (1504, 1129)  # width, height of the largest ISIC 2018 originals


def make_photos(folder, count):
    folder.mkdir(parents=True, exist_ok=True)
    sources = sorted((ROOT.parent / "shared" / "data" / "ISIC2018" / "ISIC2018_Task1-2_Training_Input").glob("*.jpg"))
    for _, source in enumerate(sources[:count]):
        target = folder / f"{source.stem}.jpg"
        if not target.is_file():
            Image.open(source).convert("RGB").resize(FULL_SIZE, Image.Resampling.BICUBIC).save(target, quality=90)
    return sorted(folder.glob("*.jpg"))[:count]


def old_keras_path(photos, out, batch_size=8):
    """The sequential loop predict ran before the ONNX path, with the shipped Keras model."""
    from frcunet.artifacts.runs import load_run_model
    from frcunet.core.names import MASK_SUFFIX
    from frcunet.data.imaging import read_image
    from frcunet.inference.prediction import predict_batches, resize_probabilities, save_mask_png

    model, record = load_run_model(None)
    out.mkdir(parents=True, exist_ok=True)
    for start in range(0, len(photos), batch_size):
        decoded = [read_image(path, record.size)[:2] for path in photos[start: start + batch_size]]
        maps = predict_batches(model, np.stack([image for image, _ in decoded]), batch_size, progress=False)
        for probability, (_, original), path in zip(maps, decoded, photos[start: start + batch_size], strict=True):
            save_mask_png(resize_probabilities(probability, original) > 0.5, out / f"{path.stem}{MASK_SUFFIX}")


def new_path(photos, out):
    from frcunet.inference.prediction import predict_files

    folder = photos[0].parent
    written, failed = predict_files(None, folder, out, progress=False)
    assert written == len(photos) and not failed


def floor(photos, out, size=(128, 128)):
    """Decode at draft scale, resize a probability map to the photo and write it: both cores, no network."""
    from frcunet.core.names import MASK_SUFFIX
    from frcunet.data.imaging import read_image
    from frcunet.inference.prediction import resize_probabilities, save_mask_png

    out.mkdir(parents=True, exist_ok=True)
    constant = np.linspace(0, 1, size[0] * size[1], dtype=np.float32).reshape(size)

    def one(path):
        _, original = read_image(path, size)[:2]
        save_mask_png(resize_probabilities(constant, original) > 0.5, out / f"{path.stem}{MASK_SUFFIX}")

    with ThreadPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(one, photos))


def timed(function, *args):
    start = time.perf_counter()
    function(*args)
    return time.perf_counter() - start


def keras_run_folder(folder):
    """A run folder holding the shipped weights, so that `predict --run` takes the Keras path."""
    from frcunet.artifacts.runs import load_run_model

    model, record = load_run_model(None)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_weights(folder / "best.weights.h5")
    (folder / "config.json").write_text(json.dumps({"model": record.model, "size": list(record.size),
                                                    "model_options": record.model_options}))
    return folder


def first_mask_seconds(argv):
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "frcunet", *map(str, argv), "--quiet"], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--out", default="output/predict_speed")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    out = Path(args.out)
    photos = make_photos(out / "photos", args.images)

    # Warm-up: TensorFlow's first model call in a process sets up its runtime. Each timed path loads its model.
    # The three paths take turns, three times, and each reports its median: this machine's speed drifts.
    old_keras_path(photos[:8], out / "warm_old")
    paths = {"old Keras path": old_keras_path, "new ONNX path": new_path, "floor (I/O only)": floor}
    seconds = {name: [] for name in paths}
    for _ in range(args.repeats):
        for name, function in paths.items():
            seconds[name].append(timed(function, photos, out / name.split()[0]))
    rates = {name: len(photos) / np.median(times) for name, times in seconds.items()}
    for name, rate in rates.items():
        runs = ", ".join(f"{len(photos) / t:.1f}" for t in seconds[name])
        print(f"{name:18s} {rate:7.1f} images/s (median of {runs})")
    print(f"new / old:   {rates['new ONNX path'] / rates['old Keras path']:.2f}x")
    print(f"new / floor: {rates['new ONNX path'] / rates['floor (I/O only)']:.2f}x")
    agree = np.mean([np.mean(np.asarray(Image.open(out / "old" / p.name)) == np.asarray(Image.open(p)))
                     for p in sorted((out / "new").glob("*.png"))])
    print(f"mask pixels equal between old and new: {100 * agree:.4f} %")

    run = keras_run_folder(out / "keras_run")
    one = photos[0]
    old_first = [first_mask_seconds(["predict", "--run", run, "--input", one, "--out", out / "first_old"])
                 for _ in range(3)]
    new_first = [first_mask_seconds(["predict", "--input", one, "--out", out / "first_new"]) for _ in range(3)]
    print(f"first mask, fresh process: old {np.median(old_first):.2f} s, new {np.median(new_first):.2f} s "
          f"(median of 3), new / old {np.median(new_first) / np.median(old_first):.2f}x")


if __name__ == "__main__":
    main()
