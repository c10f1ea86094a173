"""One-batch forward (inference) time of the registry models, as ratios to a U-Net in the same run.

    python benchmarks/forward_time.py [--size 256 256] [--batch 4] [--repeats 3]

The machine is shared and noisy, so absolute times drift between runs; the
ratio to the `unet` baseline, measured in the same process, is the number to
compare. Each model is called once to trace and warm up, then timed.
"""

import argparse
import platform
import statistics
import time

import keras
import numpy as np

from frcunet.models.registry import build_model

CASES = [
    ("unet", {}),  # the baseline: Ronneberger U-Net, base 64, with batch norm
    ("frcunet", {}),
    ("frcunet", {"frequency_block": False}),
    ("frcunet-lite", {}),
]


def time_forward(model, images, repeats):
    forward = keras.ops.convert_to_numpy  # forces the result, so asynchronous backends are timed fully
    forward(model(images, training=False))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        forward(model(images, training=False))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", nargs=2, type=int, default=(256, 256))
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    images = np.random.default_rng(0).integers(0, 256, (args.batch, *args.size, 3)).astype("float32")
    print(f"backend {keras.backend.backend()}, keras {keras.__version__}, {platform.processor() or platform.machine()}")
    print(f"batch {args.batch} at {args.size[0]}x{args.size[1]}, median of {args.repeats}\n")
    print("| model | parameters | forward s/batch | images/s | ratio to unet |")
    print("| --- | --- | --- | --- | --- |")
    baseline = None
    for name, overrides in CASES:
        model = build_model(name, (*args.size, 3), **overrides)
        seconds = time_forward(model, images, args.repeats)
        baseline = baseline or seconds
        label = name + ("" if not overrides else " (" + ", ".join(f"{k}={v}" for k, v in overrides.items()) + ")")
        print(f"| {label} | {model.count_params():,} | {seconds:.3f} | {args.batch / seconds:.1f} | "
              f"{seconds / baseline:.2f} |", flush=True)
        keras.backend.clear_session()


if __name__ == "__main__":
    main()
