"""Time to the first training step on TensorFlow, with the optimizer built before it and as Keras leaves it.

    python benchmarks/first_step.py [--models frcunet-lite unet] [--size 128 128] [--batch 16] [--repeats 2]

Keras 3 on TensorFlow, without a distribution strategy, creates the optimizer's slot variables inside the
first traced training step; TensorFlow then traces that step a second time without variable creation.
`frcunet train` builds the optimizer right after compiling (training._compiled_model), so the step is
traced once. This times the first `train_on_batch` (tracing plus one step) both ways, alternating the two
so that a busy machine slows both alike, and prints the ratio; the baseline is Keras' default.
"""

import argparse
import statistics
import time

import keras
from train_speed import model_and_batch  # the benchmark beside this one


def first_step_seconds(name, size, batch, build_optimizer):
    model, images, masks = model_and_batch(name, {}, size, batch)
    if build_optimizer:
        model.optimizer.build(model.trainable_variables)
    start = time.perf_counter()
    model.train_on_batch(images, masks)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["frcunet-lite", "unet"])
    parser.add_argument("--size", nargs=2, type=int, default=(128, 128))
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    if keras.backend.backend() != "tensorflow":
        raise SystemExit("error: this measures TensorFlow's tracing; run it with KERAS_BACKEND=tensorflow")
    print(f"backend tensorflow, {args.size[0]}x{args.size[1]}, batch {args.batch}, median of {args.repeats}")
    for name in args.models:
        times = {False: [], True: []}
        for _ in range(args.repeats):
            for built in (False, True):
                times[built].append(first_step_seconds(name, tuple(args.size), args.batch, built))
        default, built = statistics.median(times[False]), statistics.median(times[True])
        print(f"{name:14s} Keras default {default:6.1f} s  optimizer built first {built:6.1f} s  "
              f"({default / built:.2f}x faster)", flush=True)


if __name__ == "__main__":
    main()
