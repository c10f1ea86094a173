"""Figures of an evaluation: ROC and precision-recall curves, best/median/worst overlays."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # files only; no display is needed or assumed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy import ndimage  # noqa: E402

from frcunet.core.saving import atomic_path  # noqa: E402

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

    from frcunet.evaluation.metrics import PooledCounts


def _save(figure, path):
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=120, bbox_inches="tight", format=path.suffix[1:])
    plt.close(figure)


def plot_roc(counts: PooledCounts, pooled: Mapping[str, float], path: Path, title: str) -> None:
    fpr, tpr, _, _ = counts.curves()
    figure, axis = plt.subplots(figsize=(4.5, 4.5))
    if fpr is not None and tpr is not None:
        axis.plot(fpr, tpr, label=f"AUC = {pooled['auc_roc']:.4f}")
    axis.plot([0, 1], [0, 1], "--", color="grey", linewidth=0.8)
    axis.set(xlabel="false positive rate", ylabel="true positive rate (sensitivity)", title=title,
             xlim=(0, 1), ylim=(0, 1.01))
    axis.legend(loc="lower right")
    _save(figure, path)


def plot_precision_recall(counts: PooledCounts, pooled: Mapping[str, float], path: Path, title: str) -> None:
    _, _, recall, precision = counts.curves()
    figure, axis = plt.subplots(figsize=(4.5, 4.5))
    if recall is not None:
        axis.plot(recall, precision, label=f"AP = {pooled['auc_pr']:.4f}")
    axis.set(xlabel="recall (sensitivity)", ylabel="precision", title=title, xlim=(0, 1), ylim=(0, 1.01))
    axis.legend(loc="lower left")
    _save(figure, path)


def _outline(mask):
    mask = mask.astype(bool)
    return mask & ~ndimage.binary_erosion(mask)


def overlay(image: ArrayLike, truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """The image with the ground truth outlined in green and the prediction in magenta."""
    shown = np.array(image, dtype=np.uint8, copy=True)
    shown[ndimage.binary_dilation(_outline(truth))] = (40, 220, 60)
    shown[ndimage.binary_dilation(_outline(predicted))] = (230, 40, 220)
    return shown


def plot_cases(cases: Sequence[tuple[str, ArrayLike, np.ndarray, np.ndarray]], path: Path, title: str) -> None:
    """cases: list of (label, image, truth, predicted); one column each."""
    figure, axes = plt.subplots(1, len(cases), figsize=(3.2 * len(cases), 3.4), squeeze=False)
    for axis, (label, image, truth, predicted) in zip(axes[0], cases, strict=True):
        axis.imshow(overlay(image, truth, predicted))
        axis.set_title(label, fontsize=9)
        axis.axis("off")
    figure.suptitle(f"{title}\ngreen: ground truth, magenta: prediction", fontsize=9)
    _save(figure, path)
