"""Turns a finished run into the model shipped inside the package (frcunet/pretrained/).

    python scripts/ship_model.py --run weights/isic128_cpu_final --data data/isic128 \
        --evaluation output/isic128_cpu_final
    python scripts/ship_model.py --onnx-only       # only the ONNX file, again, from the shipped weights

Writes the run's best weights as float16 (`frcunet_lite_isic2018.npz`) and a record
(`frcunet_lite_isic2018.json`) with the architecture, input size, the training settings, the
test metrics of `--evaluation` (its metrics.json) and the ids of the held-out test images, then reloads
the stored model and reports how far its probabilities are from the float32 run's on the test images.
It then exports the stored model (the float16 weights, as float32) to `frcunet_lite_isic2018.onnx`, the file
that `frcunet predict` runs on ONNX Runtime, and puts its SHA-1 into the record. Needs the TensorFlow backend
and tf2onnx. MODEL_CARD.md beside them is written by hand from the record.
"""

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np

TRAINING_KEYS = ("epochs", "batch_size", "lr", "loss", "augment", "monitor", "schedule", "warmup_epochs",
                 "optimizer", "weight_decay", "ema", "bn_recalibration", "max_minutes", "train_splits",
                 "precision_used", "seed")


def main():
    from frcunet.artifacts.pretrained import PRETRAINED_DIR, ShippedRecord, load_pretrained_model, write_pretrained
    from frcunet.artifacts.runs import load_run_model
    from frcunet.data.manifest import read_manifest
    from frcunet.data.pipeline import open_split
    from frcunet.evaluation.records import read_metrics
    from frcunet.inference.prediction import predict_batches

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run")
    parser.add_argument("--data", help="the prepared folder the run trained on")
    parser.add_argument("--evaluation", help="frcunet evaluate's output folder for the run")
    parser.add_argument("--out", default=str(PRETRAINED_DIR))
    parser.add_argument("--onnx-only", action="store_true", help="only export the shipped weights as ONNX again")
    args = parser.parse_args()
    if args.onnx_only:
        ship_onnx(args.out)
        return
    if not (args.run and args.data and args.evaluation):
        parser.error("--run, --data and --evaluation are needed (or --onnx-only)")

    model, run = load_run_model(args.run)
    metrics = read_metrics(args.evaluation)
    manifest = read_manifest(args.data)
    history = (Path(args.run) / "history.csv").read_text().strip().splitlines()
    record = ShippedRecord(
        model=run.model, model_options=run.model_options, size=run.size, threshold=0.5,
        training={key: run.setting(key) for key in TRAINING_KEYS} | {"epochs_run": len(history) - 1},
        data={"dataset": manifest.dataset, "source": "ISIC 2018 Task 1 training data (2335 of the 2594 pairs, "
              "downscaled to 256x192)", "split": manifest.split, "counts": manifest.counts,
              "manifest_sha1": run.data_manifest_sha1},
        test_metrics={"pooled": metrics.summary.pooled, "per_image_mean": metrics.summary.per_image_mean,
                      "thresholded_jaccard": metrics.summary.thresholded_jaccard, "n_images": metrics.n_images}
        | ({"native": metrics.as_dict()["native"]} if metrics.native else {}),
        test_evaluation={"tta": metrics.settings.get("tta"), "threshold": metrics.threshold},
        held_out_test_ids=manifest.ids("test"),
        # What evaluate refuses to score the shipped model on: the images it trained or validated on.
        seen_ids=run.seen_ids or {split: manifest.ids(split) for split in ("train", "val")},
        versions=run.setting("versions") or {}, git_commit=run.setting("git_commit"))
    write_pretrained(model, record, args.out)
    shipped, _ = load_pretrained_model(args.out)
    images = np.asarray(open_split(args.data, "test").images)
    before = predict_batches(model, images, 16, progress=False)
    after = predict_batches(shipped, images, 16, progress=False)
    changed = np.mean((before > 0.5) != (after > 0.5))
    size = sum(p.stat().st_size for p in Path(args.out).glob("frcunet_lite_isic2018.*"))
    print(f"wrote {args.out}: {size / 1e6:.2f} MB; float16 vs float32 probabilities on {len(images)} test images: "
          f"max |difference| {np.abs(before - after).max():.2e}, mask pixels changed {changed:.2e}")
    ship_onnx(args.out)


def ship_onnx(folder):
    """The shipped weights as an ONNX model beside them, its SHA-1 in the record."""
    from frcunet.artifacts.pretrained import ONNX_FILE, WEIGHTS_FILE, load_pretrained_model, write_shipped_record
    from frcunet.artifacts.runs import RunRecord
    from frcunet.core.provenance import file_sha1
    from frcunet.core.saving import atomic_path
    from frcunet.inference.export import write_onnx

    folder = Path(folder)
    model, record = load_pretrained_model(folder)
    weights_sha1 = file_sha1(folder / WEIGHTS_FILE)
    with atomic_path(folder / ONNX_FILE) as temporary:
        write_onnx(model, RunRecord(record.model, record.size, dict(record.model_options)), temporary, weights_sha1,
                   "pretrained")
    onnx_sha1 = file_sha1(folder / ONNX_FILE)
    write_shipped_record(folder, replace(record, onnx={"file": ONNX_FILE, "sha1": onnx_sha1,
                                                       "weights_sha1": weights_sha1}))
    print(f"wrote {folder / ONNX_FILE}: {(folder / ONNX_FILE).stat().st_size / 1e6:.2f} MB, SHA-1 {onnx_sha1}")


if __name__ == "__main__":
    main()
