"""Training input pipelines on the TensorFlow backend: images/s of model.fit, as ratios to in-memory arrays.

    python benchmarks/pipeline_speed.py --data data/isic128 [--steps 12] [--model frcunet-lite]

Three ways to feed the same model the same number of batches of a prepared split, each timed on its
second `fit` call (the first traces): in-memory float32 arrays (the baseline: no input cost),
`SegmentationBatches` (a keras.utils.PyDataset, Python per batch) and the native tf.data pipeline
(frcunet.data.native_pipeline). Flips and turns are on for both pipelines.
"""

import argparse
import time

import keras
import numpy as np

from frcunet.data.native_pipeline import native_dataset
from frcunet.data.pipeline import SegmentationBatches
from frcunet.models.registry import build_model
from frcunet.training.losses import bce_dice_loss


class FirstSteps(keras.utils.PyDataset):
    """The first `steps` batches of a PyDataset."""

    def __init__(self, inner, steps):
        super().__init__()
        self.inner, self.steps = inner, steps

    def __len__(self):
        return self.steps

    def __getitem__(self, index):
        return self.inner[index]


def images_per_second(model_name, feed, steps, batch, size):
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    model = build_model(model_name, (*size, 3))
    model.compile(keras.optimizers.Adam(1e-3), bce_dice_loss)
    times = []
    for _ in range(2):
        start = time.perf_counter()
        feed(model)
        times.append(time.perf_counter() - start)
    return steps * batch / times[-1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/isic128")
    parser.add_argument("--model", default="frcunet-lite")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    if keras.backend.backend() != "tensorflow":
        raise SystemExit("this benchmark compares TensorFlow input pipelines; run it with KERAS_BACKEND=tensorflow")

    def batches():
        return SegmentationBatches(args.data, "train", args.batch, shuffle=True, augment="flip")

    size = batches().data[0].size
    count = args.steps * args.batch
    arrays_x = np.concatenate([batches()[i][0] for i in range(args.steps)])
    arrays_y = np.concatenate([batches()[i][1] for i in range(args.steps)])
    feeds = {
        "in-memory arrays (no input cost)": lambda m: m.fit(arrays_x, arrays_y, batch_size=args.batch, epochs=1,
                                                             shuffle=False, verbose=0),
        "SegmentationBatches (PyDataset, Python per batch)": lambda m: m.fit(FirstSteps(batches(), args.steps),
                                                                             epochs=1, verbose=0),
        "native tf.data pipeline": lambda m: m.fit(native_dataset(batches(), 1).take(args.steps), epochs=1,
                                                   verbose=0),
    }
    print(f"{args.model} at {size[0]}x{size[1]}, batch {args.batch}, {args.steps} steps ({count} images) per fit\n")
    print("| input | train images/s | ratio to arrays |\n| --- | --- | --- |")
    baseline = None
    for label, feed in feeds.items():
        speed = images_per_second(args.model, feed, args.steps, args.batch, size)
        baseline = baseline or speed
        print(f"| {label} | {speed:.2f} | {speed / baseline:.2f} |", flush=True)


if __name__ == "__main__":
    main()
