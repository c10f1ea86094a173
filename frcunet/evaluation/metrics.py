"""Segmentation metrics, pooled as the paper reports them and per image as recent papers do.

y_true: binary masks (N, H, W) (bool or 0/1); y_prob: probabilities in [0, 1],
same shape. A pixel is predicted lesion when its probability is above the
threshold (`>`, as the training Dice does).

Reductions (stated, since they change the numbers):
- `pooled_metrics`: one confusion matrix over every pixel of every image
  (what the reference and the paper's tables report). ROC and PR areas come
  from the probabilities, via a 10,001-bin histogram (bin width 1e-4): exact
  for probabilities on that grid, and within about 1e-4 of the exact areas
  otherwise, without sorting all pixels.
- `per_image_metrics`: each image scored alone; averaging is left to the caller
  (`per_image_statistics`). Empty masks: both empty gives Dice = IoU = 1; one empty gives
  Dice = IoU = 0. SE is undefined (NaN) for an image without lesion, SP for an
  image without background, HD95 when either mask is empty. NaNs are left out
  of means and counted. Leaving out an empty prediction of a real lesion
  flatters the HD95 mean, so `hd95_diag` also reports the convention of several
  challenges: such an image (either mask empty, not both) counts as the image's
  diagonal, and two empty masks as 0.
- `auc_pr` is the average precision (the step-wise sum of precision over recall
  gains, as scikit-learn's `average_precision_score`), labelled AP in tables;
  the released code reported a trapezoidal area under the PR curve instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

HISTOGRAM_BINS = 10_001  # probability p falls in bin round(p * 10_000)
ISIC_JACCARD_FLOOR = 0.65
PER_IMAGE_KEYS = ("dice", "iou", "se", "sp", "acc", "hd95", "hd95_diag")


def _as_binary(y_true):
    y_true = np.asarray(y_true)
    return y_true if y_true.dtype == bool else y_true > 0


def _check_shapes(y_true, y_prob):
    if y_true.shape != y_prob.shape:
        raise ValueError(f"y_true {y_true.shape} and y_prob {y_prob.shape} must have the same shape")


class PooledCounts:
    """Confusion counts and probability histograms, accumulated image batch by image batch."""

    def __init__(self, threshold: float = 0.5) -> None:
        self.threshold = threshold
        self.tp = self.fp = self.tn = self.fn = 0
        self.positive_hist = np.zeros(HISTOGRAM_BINS, np.int64)
        self.negative_hist = np.zeros(HISTOGRAM_BINS, np.int64)

    def update(self, y_true: ArrayLike, y_prob: ArrayLike) -> None:
        """Adds a batch of images (or one image) to the counts."""
        truth, y_prob = _as_binary(y_true), np.asarray(y_prob)
        _check_shapes(truth, y_prob)
        truth, probabilities = truth.ravel(), y_prob.ravel()
        predicted = probabilities > self.threshold
        tp = int(np.count_nonzero(predicted & truth))
        positives, predicted_positives = int(np.count_nonzero(truth)), int(np.count_nonzero(predicted))
        self.tp += tp
        self.fp += predicted_positives - tp
        self.fn += positives - tp
        self.tn += truth.size - positives - predicted_positives + tp
        bins = np.rint(np.clip(probabilities, 0.0, 1.0) * (HISTOGRAM_BINS - 1)).astype(np.int32)
        self.positive_hist += np.bincount(bins[truth], minlength=HISTOGRAM_BINS)
        self.negative_hist += np.bincount(bins[~truth], minlength=HISTOGRAM_BINS)

    def update_in_chunks(self, y_true: np.ndarray, y_prob: np.ndarray, images_per_chunk: int = 64) -> PooledCounts:
        """Adds a stack of images a chunk at a time, so that the temporaries stay small."""
        for start in range(0, len(y_true), images_per_chunk):
            self.update(y_true[start: start + images_per_chunk], y_prob[start: start + images_per_chunk])
        return self

    def curves(self) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None, np.ndarray]:
        """ROC (fpr, tpr) and PR (recall, precision) points, thresholds from high to low."""
        tp = np.cumsum(self.positive_hist[::-1])
        fp = np.cumsum(self.negative_hist[::-1])
        positives, negatives = tp[-1], fp[-1]
        tpr = np.concatenate([[0.0], tp / positives]) if positives else None
        fpr = np.concatenate([[0.0], fp / negatives]) if negatives else None
        predicted = tp + fp
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = np.where(predicted > 0, tp / np.maximum(predicted, 1), 1.0)
        recall = tp / positives if positives else None
        return fpr, tpr, recall, precision

    def result(self) -> dict[str, float]:
        tp, fp, tn, fn = self.tp, self.fp, self.tn, self.fn
        f1 = _ratio(2 * tp, 2 * tp + fp + fn, empty=1.0)
        fpr, tpr, recall, precision = self.curves()
        auc_roc = float(np.trapezoid(tpr, fpr)) if tpr is not None and fpr is not None else float("nan")
        if recall is not None:
            # Average precision: precision at each threshold, weighted by the recall it adds.
            auc_pr = float(np.sum(np.diff(np.concatenate([[0.0], recall])) * precision))
        else:
            auc_pr = float("nan")
        return {
            "f1": f1,
            "se": _ratio(tp, tp + fn),
            "sp": _ratio(tn, tn + fp),
            "acc": _ratio(tp + tn, tp + tn + fp + fn),
            "pc": _ratio(tp, tp + fp),
            "js": _ratio(tp, tp + fp + fn, empty=1.0),
            "auc_roc": auc_roc,
            "auc_pr": auc_pr,
        }


def _ratio(numerator, denominator, empty=float("nan")):
    return float(numerator / denominator) if denominator else empty


def pooled_metrics(y_true: ArrayLike, y_prob: ArrayLike, threshold: float = 0.5) -> dict[str, float]:
    """F1 (= pooled Dice), SE, SP, ACC, PC, JS (the real Jaccard), ROC AUC and PR AUC over all pixels.

    Args:
        y_true: array of shape (N, H, W) or (N, H, W, 1). Ground truth; nonzero is lesion.
        y_prob: float array of the same shape. Lesion probabilities in [0, 1].
        threshold: float. A pixel is predicted lesion when its probability is above it. Defaults to 0.5.

    Returns:
        A dict of floats: f1, se, sp, acc, pc, js, auc_roc, auc_pr. A ratio with an empty denominator is
        NaN, except F1 and JS, which are 1.0 when truth and prediction are both empty.

    Raises:
        ValueError: the shapes differ.

    >>> import numpy as np
    >>> truth = np.array([[[1, 1], [0, 0]]])
    >>> pooled_metrics(truth, np.array([[[0.9, 0.2], [0.1, 0.3]]]))["f1"]
    0.6666666666666666
    """
    y_true, y_prob = _as_binary(y_true), np.asarray(y_prob)
    _check_shapes(y_true, y_prob)
    return PooledCounts(threshold).update_in_chunks(y_true, y_prob).result()


def _boundary(mask):
    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def hd95(truth: ArrayLike, predicted: ArrayLike) -> float:
    """95th percentile Hausdorff distance in pixels: the larger of the two directed 95th percentiles.

    Boundaries are the mask pixels with a 4-neighbour outside the mask (or on
    the image border). NaN when either mask is empty.
    """
    truth, predicted = _as_binary(truth), _as_binary(predicted)
    if not truth.any() or not predicted.any():
        return float("nan")
    truth_edge, predicted_edge = _boundary(truth), _boundary(predicted)
    to_truth = ndimage.distance_transform_edt(~truth_edge)
    to_predicted = ndimage.distance_transform_edt(~predicted_edge)
    return float(max(np.percentile(to_truth[predicted_edge], 95), np.percentile(to_predicted[truth_edge], 95)))


def per_image_metrics(y_true: ArrayLike, y_prob: ArrayLike, threshold: float = 0.5) -> dict[str, np.ndarray]:
    """Dice, IoU, SE, SP, ACC and HD95 of each image.

    Args:
        y_true, y_prob, threshold: as for `pooled_metrics`; the first axis indexes the images.

    Returns:
        A dict of (N,) float arrays: dice, iou, se, sp, acc, hd95 (pixels; NaN when either mask is empty) and
        hd95_diag (HD95 with an empty mask scored as the image diagonal, 0 when both are empty). Dice and
        IoU are 1.0 for an image where truth and prediction are both empty, as the ISIC scorer counts them.

    Raises:
        ValueError: the shapes differ.
    """
    truth = _as_binary(y_true)
    y_prob = np.asarray(y_prob)
    _check_shapes(truth, y_prob)
    predicted = y_prob > threshold
    axes = tuple(range(1, truth.ndim))
    tp = np.count_nonzero(truth & predicted, axis=axes).astype(np.float64)
    positives = np.count_nonzero(truth, axis=axes).astype(np.float64)
    predicted_positives = np.count_nonzero(predicted, axis=axes).astype(np.float64)
    pixels = float(np.prod(truth.shape[1:]))
    fp, fn = predicted_positives - tp, positives - tp
    tn = pixels - tp - fp - fn
    with np.errstate(invalid="ignore", divide="ignore"):
        both_empty = (positives + predicted_positives) == 0
        dice = np.where(both_empty, 1.0, 2 * tp / (positives + predicted_positives))
        iou = np.where(both_empty, 1.0, tp / (tp + fp + fn))
        se = np.where(positives > 0, tp / positives, np.nan)
        sp = np.where(tn + fp > 0, tn / (tn + fp), np.nan)
    acc = (tp + tn) / pixels
    distances = np.array([hd95(t, p) for t, p in zip(truth, predicted, strict=True)], dtype=np.float64)
    diagonal = float(np.hypot(*truth.shape[1:3]))
    penalised = np.where(np.isnan(distances), np.where(both_empty, 0.0, diagonal), distances)
    return {"dice": dice, "iou": iou, "se": se, "sp": sp, "acc": acc, "hd95": distances, "hd95_diag": penalised}


def thresholded_jaccard(iou: ArrayLike, floor: float = ISIC_JACCARD_FLOOR) -> float:
    """The ISIC 2018 challenge score: mean per-image IoU, where an IoU below `floor` counts as 0.

    Args:
        iou: sequence of floats. Per-image IoU (Jaccard) values.
        floor: float. IoU values below it score 0. Defaults to 0.65, the challenge's.

    Returns:
        A float; NaN for no images.

    >>> thresholded_jaccard([0.9, 0.6])
    0.45
    """
    iou = np.asarray(iou, dtype=np.float64)
    return float(np.mean(np.where(iou >= floor, iou, 0.0))) if iou.size else float("nan")


def per_image_statistics(per_image: Mapping[str, ArrayLike]) -> dict[str, dict[str, float | int]]:
    """Mean, standard deviation and count of undefined values of each per-image metric."""
    summary: dict[str, dict[str, float | int]] = {"mean": {}, "std": {}, "undefined": {}}
    for key, values in per_image.items():
        values = np.asarray(values, dtype=np.float64)
        defined = values[~np.isnan(values)]
        summary["mean"][key] = float(defined.mean()) if defined.size else float("nan")
        summary["std"][key] = float(defined.std()) if defined.size else float("nan")
        summary["undefined"][key] = int(values.size - defined.size)
    return summary
