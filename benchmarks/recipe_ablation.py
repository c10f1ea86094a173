"""Ablation of the CPU recipe's levers, scored on the validation split only (never test).

Row 0 trains frcunet-lite with the cpu recipe (`frcunet.training.recipes`) for a fixed number of epochs; every
other row changes one lever of it and keeps the rest, so each row reads as "this lever against the
recipe". All rows start from the same seed, use a warm-up + cosine that spans their own epochs (so each
ends at learning rate 0 and is not caught mid-schedule), keep their last epoch (no selection on the split
they are scored on), and are scored on the validation images at the data's native 256x192 size.
Rows use fixed epoch counts, not minutes, so a busy machine does not change what they learn; their
minutes are recorded beside. Rows that cost more or less per epoch (192x256, width) train fewer or more
epochs, so that they get about the same minutes as row 0.

    python benchmarks/recipe_ablation.py --data128 data/isic128 --data192 data/isic192 --out output/ablation_recipe
    python benchmarks/recipe_ablation.py --epochs 8 --levers 8 --out output/ablation_recipe_8ep   # a longer check

Resumable: a finished row is read back from its JSON file; an interrupted training continues.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np

# (row name, what changes relative to the cpu recipe, which prepared data it trains on, time per epoch
# relative to row 0). A row trains row 0's epochs divided by its time factor, so that it gets about the same
# minutes. Factors measured here as seconds per training step at batch 16 against row 0's 1.31 s: 192x256
# about 3x; width 0.125 0.57 s; width 0.375 2.25 s; 4 middle-flow units 1.20 s (the middle flow runs at 1/16
# of the input size, so it costs little).
LEVERS = [
    ("plateau schedule (x0.1 after 7 stalled epochs) instead of warm-up + cosine",
     {"schedule": "plateau", "warmup_epochs": 0.0}, "128", 1.0),
    ("AdamW, weight decay 1e-4", {"optimizer": "adamw", "weight_decay": 1e-4}, "128", 1.0),
    ("native 192x256 input instead of 128x128 (a third of the epochs)", {}, "192", 3.0),
    ("full augmentation (scale, rotation, shift, colour)", {"augment": "full"}, "128", 1.0),
    ("EMA of the weights (0.99 per step)", {"ema": True}, "128", 1.0),
    ("BCE alone instead of BCE + Dice", {"loss": "bce"}, "128", 1.0),
    ("fixed input scaling (x/127.5-1) instead of per-image min-max",
     {"model_options": {"normalization": "fixed"}}, "128", 1.0),
    ("half the width (0.125: 0.74 M parameters), the same minutes", {"model_options": {"width": 0.125}}, "128",
     0.44),
    ("1.5x the width (0.375: 6.5 M parameters), the same minutes", {"model_options": {"width": 0.375}}, "128",
     1.72),
    ("twice the depth of the middle flow (4 units instead of 2)", {"model_options": {"middle_units": 4}}, "128",
     0.92),
]


def write_text(path, text):
    from frcunet.core.saving import atomic_path

    with atomic_path(path) as temporary:
        temporary.write_text(text)


def recipe_row_settings(epochs):
    """The cpu recipe for frcunet-lite, shortened to `epochs` without a wall-clock budget."""
    from frcunet.training.recipes import recipe_settings

    settings, options = recipe_settings("cpu", "frcunet-lite")
    return dict(settings, model_options=options, epochs=epochs, max_minutes=0.0, warmup_epochs=0.25,
                monitor="last", precision="float32")


def merge(settings, change):
    merged = {**settings, **{k: v for k, v in change.items() if k != "model_options"}}
    merged["model_options"] = {**settings["model_options"], **change.get("model_options", {})}
    return merged


def score_on_val(run, data, data192, tta=False):
    """Per-image Dice, IoU, ISIC thresholded Jaccard and pooled F1 on the val split, at 256x192."""
    from frcunet.artifacts.runs import load_run_model
    from frcunet.data.pipeline import open_split
    from frcunet.evaluation.metrics import PooledCounts, per_image_metrics, thresholded_jaccard
    from frcunet.inference.prediction import predict_batches, resize_probabilities

    model, _ = load_run_model(run)
    images = np.asarray(open_split(data, "val").images)
    truth = np.asarray(open_split(data192, "val").masks)
    probabilities = predict_batches(model, images, 16, tta=tta, progress=False)
    native = np.stack([resize_probabilities(p, truth.shape[1:]) for p in probabilities])
    per_image = per_image_metrics(truth, native)
    counts = PooledCounts()
    counts.update(truth, native)
    return {"dice": float(np.mean(per_image["dice"])), "iou": float(np.mean(per_image["iou"])),
            "thresholded_jaccard": float(thresholded_jaccard(per_image["iou"])),
            "pooled_f1": float(counts.result()["f1"])}


def run_row(out, index, name, settings, data, data192, seed):
    from frcunet.training.trainer import TrainConfig, train

    record_path = out / f"row{index:02d}.json"
    if record_path.is_file():
        return json.loads(record_path.read_text())
    run = out / "runs" / f"row{index:02d}"
    start = time.perf_counter()
    train(TrainConfig(data=str(data), run=str(run), model="frcunet-lite", seed=seed, verbose=2, **settings))
    minutes = (time.perf_counter() - start) / 60
    record = {"row": index, "name": name, "settings": settings, "data": str(data), "minutes": minutes,
              "val": score_on_val(run, data, data192)}
    write_text(record_path, json.dumps(record, indent=1))
    return record


def table(records):
    base = records[0]["val"]["dice"]
    lines = ["| # | lever changed from the cpu recipe | epochs | minutes | val Dice/img | vs row 0 "
             "| val IoU/img | val thr. Jaccard | val pooled F1 |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in records:
        v = r["val"]
        lines.append(f"| {r['row']} | {r['name']} | {r['settings']['epochs']} | {r['minutes']:.1f} "
                     f"| {v['dice']:.4f} | {v['dice'] - base:+.4f} | {v['iou']:.4f} "
                     f"| {v['thresholded_jaccard']:.4f} | {v['pooled_f1']:.4f} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data128", default="data/isic128")
    parser.add_argument("--data192", default="data/isic192", help="the same split at 192x256")
    parser.add_argument("--out", default="output/ablation_recipe")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of each 128x128 row")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--levers", type=int, nargs="+", default=range(1, len(LEVERS) + 1), metavar="ROW",
                        help="run only these lever rows (1..%d); row 0 always runs" % len(LEVERS))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = {"128": args.data128, "192": args.data192}

    recipe = recipe_row_settings(args.epochs)
    records = [run_row(out, 0, f"none: the cpu recipe, {args.epochs} epochs", recipe, data["128"], data["192"],
                       args.seed)]
    for index, (name, change, size, time_factor) in enumerate(LEVERS, start=1):
        if index not in args.levers:
            continue
        settings = merge(recipe, change)
        settings["epochs"] = max(1, round(args.epochs / time_factor))
        records.append(run_row(out, index, name, settings, data[size], data["192"], args.seed))
        write_text(out / "ablation.md", table(records) + "\n")

    # Flip TTA: row 0's weights, scored again with the four flips averaged.
    records.append(dict(records[0], row=len(records), name="flip TTA at evaluation (row 0's weights)", minutes=0.0,
                        val=score_on_val(out / "runs" / "row00", data["128"], data["192"], tta=True)))
    write_text(out / "ablation.md", table(records) + "\n")
    print(table(records))


if __name__ == "__main__":
    main()
