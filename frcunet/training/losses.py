"""Training losses and the Dice metric logged every epoch (keras.ops only).

The evaluation metrics that papers report live in `frcunet.evaluation.metrics` (numpy,
over whole test sets); these are the differentiable or streaming versions
used inside `model.fit`.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

# A tensor of the backend, or a KerasTensor while a functional model is built.
Tensor = Any

SMOOTH = 1.0


@keras.saving.register_keras_serializable(package="frcunet")
def soft_dice_loss(y_true: Tensor, y_pred: Tensor) -> Tensor:
    """1 - soft Dice of each image, so small lesions weigh as much as large ones."""
    y_true = ops.cast(y_true, y_pred.dtype)
    axes = tuple(range(1, len(y_pred.shape)))
    intersection = ops.sum(y_true * y_pred, axis=axes)
    total = ops.sum(y_true, axis=axes) + ops.sum(y_pred, axis=axes)
    return 1.0 - (2.0 * intersection + SMOOTH) / (total + SMOOTH)


@keras.saving.register_keras_serializable(package="frcunet")
def bce_dice_loss(y_true: Tensor, y_pred: Tensor) -> Tensor:
    """Binary cross-entropy (pixel mean) plus soft Dice loss, per image."""
    bce = ops.mean(keras.losses.binary_crossentropy(y_true, y_pred), axis=tuple(range(1, len(y_pred.shape) - 1)))
    return bce + soft_dice_loss(y_true, y_pred)


LOSSES = {"bce": "binary_crossentropy", "dice": soft_dice_loss, "bce+dice": bce_dice_loss}


@keras.saving.register_keras_serializable(package="frcunet")
class PooledDice(keras.metrics.Metric):
    """Dice (F1) at a threshold, pooled over every pixel seen since the last reset.

    Pooling over the epoch, not averaging batch Dice values, gives the same
    number however the data is batched. Both masks empty gives 1.

    Args:
        threshold: probability above which a pixel counts as lesion.
    """

    def __init__(self, threshold: float = 0.5, name: str = "dice", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.threshold = float(threshold)
        self.intersection = self.add_variable(shape=(), initializer="zeros", name="intersection")
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")

    def update_state(self, y_true: Tensor, y_pred: Tensor, sample_weight: Tensor | None = None) -> None:
        truth = ops.cast(ops.greater(y_true, 0.5), "float32")
        predicted = ops.cast(ops.greater(y_pred, self.threshold), "float32")
        self.intersection.assign_add(ops.sum(truth * predicted))
        self.total.assign_add(ops.sum(truth) + ops.sum(predicted))

    def result(self) -> Tensor:
        return ops.where(self.total > 0, 2.0 * self.intersection / ops.maximum(self.total, 1.0), 1.0)

    def reset_state(self) -> None:
        self.intersection.assign(0.0)
        self.total.assign(0.0)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "threshold": self.threshold}
