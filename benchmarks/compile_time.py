"""Compilation time of a training step, per model and per part of FRCU-Net, with ratios in the same run.

    KERAS_BACKEND=jax python benchmarks/compile_time.py [--size 64 64] [--batch 2]

On the lent GPU the first epoch of the full frcunet took 339 s under JAX where its computation was about
7 s (docs/results.md, "Paper scale (GPU)"): compilation, not training, used the budget. This measures, on
whatever backend and device it runs on, the first training step (tracing and compiling plus one step)
minus a second, compiled one, for the full-size U-Net (the baseline) and for frcunet with and without its
frequency block and with fewer Xception middle-flow units, so that the part to blame shows as a ratio.
"""

import argparse
import time

import keras
from train_speed import model_and_batch  # the benchmark beside this one

# (label, registry name, overrides)
CASES = [
    ("unet (baseline)", "unet", {}),
    ("frcunet", "frcunet", {}),
    ("frcunet without frequency block", "frcunet", {"frequency_block": False}),
    ("frcunet with 2 middle-flow units (16 released)", "frcunet", {"middle_units": 2}),
    ("frcunet-lite", "frcunet-lite", {}),
]


def compile_seconds(name, overrides, size, batch):
    """(first step minus a compiled step, a compiled step) in seconds."""
    model, images, masks = model_and_batch(name, overrides, size, batch, jit_compile=True)
    start = time.perf_counter()
    model.train_on_batch(images, masks)
    first = time.perf_counter() - start
    start = time.perf_counter()
    model.train_on_batch(images, masks)
    step = time.perf_counter() - start
    return first - step, step


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", nargs=2, type=int, default=(64, 64))
    parser.add_argument("--batch", type=int, default=2)
    args = parser.parse_args()
    print(f"backend {keras.backend.backend()}, {args.size[0]}x{args.size[1]}, batch {args.batch}")
    baseline = None
    for label, name, overrides in CASES:
        seconds, step = compile_seconds(name, overrides, tuple(args.size), args.batch)
        baseline = baseline or seconds
        print(f"{label:48s} compile {seconds:7.1f} s  ({seconds / baseline:4.2f}x the baseline)  step {step:.2f} s",
              flush=True)


if __name__ == "__main__":
    main()
