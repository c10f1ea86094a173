"""Learning-rate schedules that know the run's length, and a wall-clock budget.

`BudgetedSchedule` sets the learning rate before every step (linear warm-up,
then cosine decay to zero over the planned epochs) and, with a budget in
minutes, plans how many epochs fit: after each epoch it divides the time left
by the measured epoch time, so the cosine always ends with the last epoch that
fits, and training stops there. Its state (time used, epochs planned) goes into
the resume state, so an interrupted run continues the same budget.
"""

from __future__ import annotations

import math
import time
from typing import Any

import keras


def warmup_cosine(step: int, total_steps: int, warmup_steps: int, peak: float) -> float:
    """Linear warm-up from ~0 to `peak` over `warmup_steps`, then cosine decay to 0 at `total_steps`.

    >>> [round(warmup_cosine(s, 10, 2, 1.0), 3) for s in (0, 1, 2, 6, 10)]
    [0.5, 1.0, 1.0, 0.5, 0.0]
    """
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return peak * 0.5 * (1.0 + math.cos(math.pi * progress))


class BudgetedSchedule(keras.callbacks.Callback):
    """Per-step warm-up + cosine learning rate and an optional wall-clock budget.

    Args:
        peak_lr: the learning rate after warm-up.
        epochs: the most epochs to run (the schedule's length when there is no budget).
        steps_per_epoch: batches per epoch.
        max_minutes: 0 for no budget; else training stops after the last epoch expected to end within it.
        cosine: False keeps the learning rate as the optimizer has it (only the budget applies).
        warmup_epochs: length of the linear warm-up, in epochs (fractions allowed).
        fix_plan: with a budget, plan the number of epochs once, after the first epoch, and keep it (the
            --deterministic runs: a rerun on the same machine then follows the same schedule unless its first
            epoch's time differs enough to change the count). Otherwise the plan follows every epoch's time.

    What a budget plans from is saved with the resume state (every epoch's seconds, which of them also
    traced and compiled, the time used, the plan), so a resumed run continues the same plan instead of
    planning again from its own first epoch.

    Raises:
        ValueError: for a peak_lr, max_minutes or warmup_epochs that is negative, NaN or infinite.
    """

    # Saved in the resume state, restored before training continues.
    STATE_FIELDS = ("elapsed_seconds", "planned_epochs", "lowest_lr", "epoch_seconds", "tracing_epochs",
                    "plan_fixed")

    def __init__(self, peak_lr: float, epochs: int, steps_per_epoch: int, max_minutes: float = 0.0,
                 cosine: bool = True, warmup_epochs: float = 0.0, fix_plan: bool = False) -> None:
        super().__init__()
        for name, value in (("peak_lr", peak_lr), ("max_minutes", max_minutes), ("warmup_epochs", warmup_epochs)):
            # NaN passes any `< 0` test and would fail only at the end of the first epoch.
            if not math.isfinite(float(value)) or float(value) < 0:
                raise ValueError(f"{name} must be a finite number, 0 or more; got {value}")
        self.peak_lr, self.epochs, self.steps_per_epoch = float(peak_lr), int(epochs), int(steps_per_epoch)
        self.budget_seconds = 60.0 * float(max_minutes)
        self.cosine, self.warmup_epochs = cosine, float(warmup_epochs)
        self.elapsed_seconds = 0.0
        self.planned_epochs = float(self.epochs)
        self.lowest_lr: float | None = None  # the lowest rate applied after the warm-up
        self.epoch_seconds: list[float] = []  # every finished epoch's seconds, by epoch
        self.tracing_epochs: list[int] = []  # the epochs that were the first of their process: they also traced
        self.fix_plan, self.plan_fixed = bool(fix_plan), False

    def learning_rate(self, epoch: int, batch: int) -> float:
        total = int(self.planned_epochs) * self.steps_per_epoch
        warmup = int(round(self.warmup_epochs * self.steps_per_epoch))
        return warmup_cosine(epoch * self.steps_per_epoch + batch, total, warmup, self.peak_lr)

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._last = time.perf_counter()
        self._first_in_process = True

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch = epoch

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self.cosine:
            self.model.optimizer.learning_rate = self._applied_rate(self._epoch, batch)

    def _applied_rate(self, epoch, batch):
        """The cosine's rate, never above one already applied after the warm-up.

        A budget re-plans after every epoch; when later epochs run faster than the first (which also
        compiles), more of them fit and the cosine would stretch and climb back up. The rate then holds
        until the longer curve comes down to it, so it only ever falls after the warm-up.
        """
        rate = self.learning_rate(epoch, batch)
        if epoch * self.steps_per_epoch + batch < int(round(self.warmup_epochs * self.steps_per_epoch)):
            return rate
        if self.lowest_lr is not None:
            rate = min(rate, self.lowest_lr)
        self.lowest_lr = rate
        return rate

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        now = time.perf_counter()
        self.epoch_seconds.append(now - self._last)
        if self._first_in_process:
            self.tracing_epochs.append(epoch)
            self._first_in_process = False
        self.elapsed_seconds += now - self._last
        self._last = now
        if logs is not None and self.cosine:
            last = self.learning_rate(epoch, self.steps_per_epoch - 1)
            logs["learning_rate"] = float(last if self.lowest_lr is None else min(last, self.lowest_lr))
        if not self.budget_seconds:
            return
        if not self.plan_fixed:
            self.planned_epochs = float(min(self.epochs, epoch + 1 + max(0, math.floor(
                (self.budget_seconds - self.elapsed_seconds) / self._typical_epoch_seconds()))))
            self.plan_fixed = self.fix_plan
        if epoch + 1 >= self.planned_epochs:
            self.model.stop_training = True

    def _typical_epoch_seconds(self):
        """The mean epoch time, leaving out epochs that also traced and compiled once there are others."""
        tracing = set(self.tracing_epochs)
        typical = [s for epoch, s in enumerate(self.epoch_seconds) if epoch not in tracing] or self.epoch_seconds
        return sum(typical) / len(typical)
