"""Ablation of the CPU recipe's levers, scored on the validation split only (never test).

Each row trains frcunet-lite from the same seed with one lever changed on top of the rows kept so far
(greedy: a lever stays when the validation per-image Dice does not drop by more than NOISE), then scores
the validation images at the data's native 256x192 size. Rows use fixed epoch counts, not minutes, so a
busy machine does not change the ranking; minutes are recorded beside. Resolution and precision are speed
levers: `benchmarks/train_speed.py` measures them (docs/benchmarks.md).

    python benchmarks/recipe_ablation.py --data128 data/isic128 --data192 data/isic192 --out output/ablation

Resumable: a finished row is read back from its JSON file; an interrupted training continues.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np

# Within this drop (about the spread between seeds of one setting) a lever is kept: most of them are
# regularisers whose benefit grows with the 60-minute budget the short rows cannot show.
NOISE = 0.003

# The old cpu budget, in float32: mixed_bfloat16 is emulated (5x slower) on CPUs without AVX-512 BF16.
BEFORE = dict(model_options={}, epochs=2, batch_size=16, lr=1e-3, loss="bce+dice", augment="flip",
              monitor="val_dice", schedule="plateau", optimizer="adam", precision="float32")

# (row name, what changes relative to the rows kept so far)
LEVERS = [
    ("fixed input scaling (x/127.5-1) instead of per-image min-max", {"model_options": {"normalization": "fixed"}}),
    ("batch norm in the decoder", {"model_options": {"decoder_bn": True}}),
    ("warm-up + cosine instead of plateau", {"schedule": "cosine", "warmup_epochs": 0.25}),
    ("AdamW, weight decay 1e-4", {"optimizer": "adamw", "weight_decay": 1e-4}),
    ("full augmentation (scale, rotation, shift, colour)", {"augment": "full"}),
    ("EMA of the weights (0.99 per step)", {"ema": True}),
]


def write_text(path, text):
    from frcunet.saving import atomic_path

    with atomic_path(path) as temporary:
        temporary.write_text(text)


def merge(settings, change):
    merged = {**settings, **{k: v for k, v in change.items() if k != "model_options"}}
    merged["model_options"] = {**settings["model_options"], **change.get("model_options", {})}
    return merged


def score_on_val(run, data, data192, tta=False):
    """Per-image Dice, IoU, ISIC thresholded Jaccard and pooled F1 on the val split, at 256x192."""
    from frcunet.data.pipeline import open_split
    from frcunet.metrics import PooledCounts, per_image_metrics, thresholded_jaccard
    from frcunet.prediction import predict_batches, resize_probabilities
    from frcunet.runs import load_run_model

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
    from frcunet.training import TrainConfig, train

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
    lines = ["| # | lever | kept | epochs | minutes | val Dice/img | val thr. Jaccard | val pooled F1 |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in records:
        v = r["val"]
        lines.append(f"| {r['row']} | {r['name']} | {r.get('kept', '')} | {r['settings'].get('epochs', '-')} | "
                     f"{r['minutes']:.1f} | {v['dice']:.4f} | {v['thresholded_jaccard']:.4f} "
                     f"| {v['pooled_f1']:.4f} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data128", default="data/isic128")
    parser.add_argument("--data192", default="data/isic192", help="the same split at 192x256, for its masks")
    parser.add_argument("--out", default="output/ablation")
    parser.add_argument("--epochs", type=int, default=2, help="epochs of each row")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    settings = dict(BEFORE, epochs=args.epochs)
    records = [run_row(out, 0, "before: the old cpu budget (min-max, no decoder BN, Adam 1e-3, plateau, flips)",
                       settings, args.data128, args.data192, args.seed)]
    best = records[0]["val"]["dice"]
    for index, (name, change) in enumerate(LEVERS, start=1):
        record = run_row(out, index, name, merge(settings, change), args.data128, args.data192, args.seed)
        record["kept"] = "yes" if record["val"]["dice"] >= best - NOISE else "no"
        if record["kept"] == "yes":
            settings, best = merge(settings, change), max(best, record["val"]["dice"])
        records.append(record)
        write_text(out / "ablation.md", table(records) + "\n")

    # Flip TTA: the kept recipe's row, scored again with the four flips averaged.
    kept_run = max((r for r in records if r.get("kept", "yes") == "yes"), key=lambda r: r["row"])
    tta = dict(kept_run, row=len(records), name="flip TTA at evaluation (same weights as row "
               f"{kept_run['row']})", kept="", minutes=0.0,
               val=score_on_val(out / "runs" / f"row{kept_run['row']:02d}", args.data128, args.data192, tta=True))
    records.append(tta)

    write_text(out / "ablation.md", table(records) + "\n")
    write_text(out / "recipe.json", json.dumps(settings, indent=1))
    print(table(records))
    print(f"kept settings: {json.dumps(settings)}")


if __name__ == "__main__":
    main()
