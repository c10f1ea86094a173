"""Metric speed: frcunet.metrics against the reference's per-pixel Python loop, in the same run.

    python benchmarks/metrics_speed.py [--images 520] [--size 256]

The reference counted its confusion matrix in a Python loop over every pixel;
that loop is timed on a slice (--loop-pixels) and scaled to the full set.
"""

import argparse
import time

import numpy as np

from frcunet.metrics import per_image_metrics, pooled_metrics


def reference_confusion_loop(truth, predicted):
    """The reference's way: index the flat numpy vectors pixel by pixel in Python."""
    tp = fp = tn = fn = 0
    for i in range(len(truth)):
        if truth[i] == 1 and predicted[i] == 1:
            tp += 1
        elif predicted[i] == 1:
            fp += 1
        elif truth[i] == 1:
            fn += 1
        else:
            tn += 1
    return tp, fp, tn, fn


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=520)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--loop-pixels", type=int, default=300_000)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[: args.size, : args.size]
    centres = rng.uniform(0.3, 0.7, (args.images, 2)) * args.size
    radii = rng.uniform(0.1, 0.35, args.images) * args.size
    truth = ((yy - centres[:, 0, None, None]) ** 2 + (xx - centres[:, 1, None, None]) ** 2) < radii[:, None, None] ** 2
    noise = rng.normal(0, 0.25, truth.shape).astype(np.float32)
    probabilities = np.clip(truth * 0.7 + 0.15 + noise, 0, 1).astype(np.float32)
    pixels = truth.size
    print(f"{args.images} images of {args.size}x{args.size} = {pixels / 1e6:.1f} M pixels")

    start = time.perf_counter()
    pooled_metrics(truth, probabilities)
    pooled_seconds = time.perf_counter() - start
    start = time.perf_counter()
    per_image_metrics(truth, probabilities)
    per_image_seconds = time.perf_counter() - start

    flat_truth = truth.ravel()[: args.loop_pixels].astype(np.uint8)
    flat_predicted = (probabilities.ravel() > 0.5)[: args.loop_pixels].astype(np.uint8)
    start = time.perf_counter()
    reference_confusion_loop(flat_truth, flat_predicted)
    loop_seconds = (time.perf_counter() - start) * pixels / args.loop_pixels

    print("| what | seconds | ratio to the reference loop |\n| --- | --- | --- |")
    print(f"| reference: confusion matrix in a Python loop (timed on {args.loop_pixels / 1e6:.1f} M pixels, scaled) "
          f"| {loop_seconds:.1f} | 1 |")
    print(f"| pooled_metrics (confusion, ROC AUC and PR AUC from a 1e-4 histogram) | {pooled_seconds:.2f} | "
          f"{pooled_seconds / loop_seconds:.4f} |")
    print(f"| per_image_metrics (Dice, IoU, SE, SP, ACC, HD95 of each image) | {per_image_seconds:.2f} | "
          f"{per_image_seconds / loop_seconds:.4f} |")


if __name__ == "__main__":
    main()
