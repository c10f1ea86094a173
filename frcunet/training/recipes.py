"""Named training recipes: the settings `frcunet train --recipe NAME` starts from.

A recipe fills every training setting the command line leaves unset; flags
given explicitly always win. Keras-free, so the command line can read it
before the backend loads.

    paper  the released code's training: BCE, Adam 1e-4, batch 12, 100 epochs, plateau schedule,
           no augmentation, faithful network (per-image min-max input, no decoder batch norm).
    cpu    the 60-minute CPU recipe for frcunet-lite (docs/results.md, "CPU recipe"): the earlier CPU
           settings (BCE + Dice, Adam 1e-3, batch 16, flips and turns, best epoch on validation Dice)
           with a one-epoch warm-up and a cosine decay that spans a 60-minute wall-clock budget, and
           float32 unless the CPU computes bfloat16 natively. frcunet-lite gets batch norm in its decoder:
           the released decoder trained to a constant background at one seed in three. Before each
           validation, batch norm statistics are re-estimated on 256 training images: the moving averages
           lagged the weights (validation pooled Dice 0.64 with them, 0.87 re-estimated, at one
           frcunet-lite seed of three; frcunet.models.batch_norm). The input scaling stays the released per-image
           min-max (fixed scaling did worse in the validation ablation). frcunet-lite is half its default
           width (0.125, 0.74 M parameters): in equal minutes the narrower network trains twice the epochs
           and won on validation at 13 and at 47 minutes (docs/results.md, "Lever ablation").
    finetune  fine-tuning the shipped model (`--init-weights pretrained`) on a few annotated images, chosen
           on PH2's 20 validation images (docs/results.md, "PH2 from the shipped model"): Adam 1e-3 with a
           cosine decay over 30 epochs of at least 80 images (a smaller training set is repeated within an
           epoch), batch 8, flips and turns, BCE + Dice, the last epoch kept, and batch norm frozen: its
           statistics and scales stay the shipped ones (+0.016 validation Dice per image against re-estimating
           them, and twice as fast). About 1 to 2 minutes on a 2-core CPU.
"""

from __future__ import annotations

from typing import Any

from frcunet.core.errors import UserError

RECIPES = {
    "paper": {
        "train": dict(epochs=100, batch_size=12, lr=1e-4, loss="bce", augment="none", monitor="val_loss",
                      schedule="plateau", optimizer="adam", precision="float32"),
        "model_options": {},
    },
    "cpu": {
        "train": dict(epochs=200, batch_size=16, lr=1e-3, loss="bce+dice", augment="flip", monitor="val_dice",
                      schedule="cosine", warmup_epochs=1.0, optimizer="adam", weight_decay=0.0,
                      bn_recalibration=256, precision="auto", max_minutes=60.0),
        # Decoder batch norm (not in the release) for frcunet-lite: without it one seed in three trained to a
        # constant background; with it (and its +1/-1 head read-out) that seed trains (docs/results.md).
        # Half width: more epochs beat more channels in a CPU budget (validation Dice +0.008 at 13 minutes,
        # +0.0085 at 47; docs/results.md, "Lever ablation").
        "model_options": {"frcunet-lite": {"decoder_bn": True, "width": 0.125}},
    },
    "finetune": {
        "train": dict(epochs=30, batch_size=8, lr=1e-3, loss="bce+dice", augment="flip", monitor="last",
                      schedule="cosine", warmup_epochs=0.0, optimizer="adam", weight_decay=0.0,
                      bn_recalibration=0, freeze_bn=True, epoch_images=80, precision="auto", max_minutes=0.0),
        "model_options": {},
    },
}


def recipe_settings(name: str, model: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(training settings, model options) of recipe `name` for `model`; UserError for an unknown name."""
    if name not in RECIPES:
        raise UserError(f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}")
    recipe = RECIPES[name]
    return dict(recipe["train"]), dict(recipe["model_options"].get(model, {}))
