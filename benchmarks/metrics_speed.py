"""Metric speed: frcunet.evaluation.metrics against the released Evaluate_Skin.py's metric sequence, in the same run.

    python benchmarks/metrics_speed.py [--images 520] [--size 256]

The release thresholded the flat score vector, called scikit-learn's roc_curve, roc_auc_score and
precision_recall_curve (+ np.trapz) on it, copied it pixel by pixel into y_pred in a Python loop, then
called confusion_matrix, its "Jaccard" (jaccard_similarity_score, which returned accuracy: today
accuracy_score) and f1_score. The scikit-learn calls run on every pixel; the loop is timed on a slice
(--loop-pixels) and scaled to the full set.
"""

import argparse
import time

import numpy as np

from frcunet.evaluation.metrics import per_image_metrics, pooled_metrics


def released_copy_loop(scores, threshold=0.5):
    """The release's loop: y_pred filled one pixel at a time from the (already thresholded) scores."""
    predicted = np.empty(scores.shape[0])
    for i in range(scores.shape[0]):
        predicted[i] = 1 if scores[i] >= threshold else 0
    return predicted


def released_sklearn_calls(truth, scores, predicted):
    """The release's scikit-learn calls, in its order, on every pixel."""
    from sklearn import metrics

    metrics.roc_curve(truth, scores)
    metrics.roc_auc_score(truth, scores)
    precision, recall, _ = metrics.precision_recall_curve(truth, scores)
    np.trapezoid(precision[::-1], recall[::-1])
    metrics.confusion_matrix(truth, predicted)
    metrics.accuracy_score(truth, predicted)  # what jaccard_similarity_score computed for binary labels
    metrics.f1_score(truth, predicted, average="binary")


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

    # The release's vectors: (N, 1) columns of 0/1 ints, scores thresholded before any curve.
    y_true = np.where(truth.reshape(-1, 1) > 0.5, 1, 0)
    y_scores = np.where(probabilities.reshape(-1, 1) > 0.5, 1, 0)
    start = time.perf_counter()
    released_copy_loop(y_scores[: args.loop_pixels])
    loop_seconds = (time.perf_counter() - start) * pixels / args.loop_pixels
    y_pred = y_scores[:, 0].astype(np.float64)  # what the loop produces, made at once for the calls below
    start = time.perf_counter()
    released_sklearn_calls(y_true, y_scores, y_pred)
    sklearn_seconds = time.perf_counter() - start
    release_seconds = loop_seconds + sklearn_seconds

    print("| what | seconds | ratio to the release |\n| --- | --- | --- |")
    print(f"| release: y_pred copied in a Python loop (timed on {args.loop_pixels / 1e6:.1f} M pixels, scaled) "
          f"| {loop_seconds:.1f} | |")
    print(f"| release: scikit-learn ROC, PR, confusion, accuracy, F1 on every pixel | {sklearn_seconds:.1f} | |")
    print(f"| release, in all | {release_seconds:.1f} | 1 |")
    print(f"| pooled_metrics (confusion, ROC AUC and AP from a 1e-4 histogram) | {pooled_seconds:.2f} | "
          f"{pooled_seconds / release_seconds:.4f} |")
    print(f"| per_image_metrics (Dice, IoU, SE, SP, ACC, HD95 of each image) | {per_image_seconds:.2f} | "
          f"{per_image_seconds / release_seconds:.4f} |")


if __name__ == "__main__":
    main()
