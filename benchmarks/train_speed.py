"""Training throughput: images per second of a few training steps, with ratios in the same run.

    python benchmarks/train_speed.py [--size 256 256] [--batch 4] [--steps 3] [--only frcunet]

Measures frcunet-lite and unet (float32 and mixed_bfloat16), and frcunet with
and without its frequency block (pyramid, gate and fusion), so the block's cost
is a ratio measured in one process. Each case: one warm-up step (tracing), then
`--steps` timed steps on random data.
"""

import argparse
import time

import keras
import numpy as np

from frcunet.models.registry import build_model

# (label, registry name, overrides, precision)
CASES = [
    ("unet", "unet", {}, "float32"),
    ("unet", "unet", {}, "mixed_bfloat16"),
    ("frcunet-lite", "frcunet-lite", {}, "float32"),
    ("frcunet-lite", "frcunet-lite", {}, "mixed_bfloat16"),
    ("frcunet-lite, cpu recipe network (decoder BN)", "frcunet-lite", {"decoder_bn": True}, "float32"),
    ("frcunet without frequency block", "frcunet", {"frequency_block": False}, "float32"),
    ("frcunet", "frcunet", {}, "float32"),
]


def model_and_batch(name, overrides, size, batch, jit_compile="auto"):
    """A freshly built and compiled model, with one random batch of images and masks to train it on."""
    keras.backend.clear_session()
    model = build_model(name, (*size, 3), **overrides)
    model.compile(keras.optimizers.Adam(1e-4), "binary_crossentropy", jit_compile=jit_compile)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (batch, *size, 3)).astype(np.float32)
    masks = (rng.random((batch, *size, 1)) > 0.7).astype(np.float32)
    return model, images, masks


def images_per_second(name, overrides, precision, size, batch, steps):
    keras.config.set_dtype_policy(precision)
    model, images, masks = model_and_batch(name, overrides, size, batch)
    model.train_on_batch(images, masks)  # trace and warm up
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(images, masks)
    seconds = (time.perf_counter() - start) / steps
    keras.config.set_dtype_policy("float32")
    return model.count_params(), batch / seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", nargs=2, type=int, default=(256, 256))
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--only", help="measure only the cases of this model name (e.g. frcunet)")
    args = parser.parse_args()
    print(f"backend {keras.backend.backend()}, batch {args.batch} at {args.size[0]}x{args.size[1]}, "
          f"{args.steps} timed steps after one warm-up\n")
    print("| model | precision | parameters | train images/s | ratio |\n| --- | --- | --- | --- | --- |")
    results = {}
    for label, name, overrides, precision in CASES:
        if args.only and name != args.only:
            continue
        parameters, speed = images_per_second(name, overrides, precision, args.size, args.batch, args.steps)
        results[(label, precision)] = speed
        baseline = results.get((label, "float32"), speed)
        ratio = f"{speed / baseline:.2f} x float32" if precision != "float32" else "1.00"
        if label.startswith("frcunet-lite, "):
            ratio = f"{speed / results[('frcunet-lite', 'float32')]:.2f} x frcunet-lite float32"
        if label == "frcunet":
            without = results[("frcunet without frequency block", "float32")]
            ratio = f"step time {without / speed:.3f} x without block"
        print(f"| {label} | {precision} | {parameters:,} | {speed:.2f} | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
