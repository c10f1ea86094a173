"""Fine-tuning the shipped model on PH2: the recipe's choice, the paper's protocol, and how many images it needs.

Three stages, each resumable (a finished row is read back from its JSON file; an interrupted training
continues), all on PH2 at 128x128 with the paper's 80/20/100 split (seeded shuffle, seed 0):

    select     variants of the fine-tuning recipe from the shipped model, one lever changed per row, each
               keeping its last epoch and scored on the 20 validation images only (per-image Dice at 128x128)
    protocol   the chosen recipe (`--recipe finetune`) from the shipped model at three seeds, against the
               shipped model with no fine-tuning and against the same network trained from scratch for the same
               epochs; scored on the 100 test images, with the paired per-image Wilcoxon test of `compare`
    labels     the same two trainings on the first 5, 10, 20 and 40 training images of a seeded shuffle of the
               80 (the seed is the training seed), same validation and test images; 80 is the protocol's rows

    python benchmarks/finetune_ph2.py --stage select
    python benchmarks/finetune_ph2.py --stage protocol
    python benchmarks/finetune_ph2.py --stage labels
    python benchmarks/finetune_ph2.py --stage report        # tables (Markdown) and Figures/label_count.png

Rows train for fixed epochs, not minutes, so a busy machine changes their minutes, not what they learn.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SEEDS = (0, 1, 2)
LABEL_COUNTS = (5, 10, 20, 40, 80)
# Row 0 of the selection: `--recipe finetune` as first written, before the selection changed it. Every
# variant changes it, so that the selection reruns as it ran whatever the recipe has become since.
DRAFT = dict(epochs=30, batch_size=8, lr=3e-4, loss="bce+dice", augment="flip", monitor="last", schedule="cosine",
             warmup_epochs=0.0, optimizer="adam", weight_decay=0.0, bn_recalibration=256, freeze_bn=False,
             epoch_images=80, precision="auto", max_minutes=0.0)
# One lever changed from the draft per row.
VARIANTS = [
    ("draft: Adam 3e-4, cosine over 30 epochs, no warm-up, batch 8, flips and turns, BCE + Dice, batch norm "
     "statistics re-estimated on the training images", {}),
    ("learning rate 1e-4", {"lr": 1e-4}),
    ("learning rate 1e-3", {"lr": 1e-3}),
    ("15 epochs", {"epochs": 15}),
    ("60 epochs", {"epochs": 60}),
    ("batch norm statistics not re-estimated (moving averages)", {"bn_recalibration": 0}),
    ("batch norm frozen (the shipped statistics and scales)", {"bn_recalibration": 0, "freeze_bn": True}),
    ("full augmentation (scale, rotation, shift, colour)", {"augment": "full"}),
    # Added after rows 0-7: the best lever (frozen batch norm) with the second best (1e-3), and at the cheaper
    # length, which tied the draft's.
    ("batch norm frozen and learning rate 1e-3", {"bn_recalibration": 0, "freeze_bn": True, "lr": 1e-3}),
    ("batch norm frozen and 15 epochs", {"bn_recalibration": 0, "freeze_bn": True, "epochs": 15}),
]
# From scratch: the same epochs and batches, with the cpu recipe's learning rate, warm-up and batch norm
# (trained, its statistics re-estimated on 256 training images): a network that starts from random weights
# needs them. Everything else is the finetune recipe's.
SCRATCH = {"lr": 1e-3, "warmup_epochs": 1.0, "freeze_bn": False, "bn_recalibration": 256}


def write_json(path, value):
    from frcunet.core.saving import atomic_path

    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(value, indent=1))


def prepared_ph2(out, ph2):
    """PH2 at 128x128 with the paper split (seed 0), prepared once."""
    from frcunet.data.prepare import PrepareConfig, prepare_dataset

    folder = out / "data" / "ph2"
    if not (folder / "manifest.json").is_file():
        prepare_dataset(PrepareConfig("ph2", str(ph2), str(folder), (128, 128), seed=0, progress=False))
    return folder


def subset(out, ph2, full, count, seed):
    """A prepared folder with the first `count` training images of a seeded shuffle, the same val and test."""
    from frcunet.data.prepare import PrepareConfig, prepare_dataset

    if count == 80:
        return full
    folder = out / "data" / f"ph2_{count}_seed{seed}"
    if (folder / "manifest.json").is_file():
        return folder
    from frcunet.data.manifest import read_manifest

    manifest = read_manifest(full)
    train = manifest.ids("train")
    chosen = sorted(np.random.default_rng([seed, count]).permutation(len(train))[:count])
    # A split file (prepare --split-file) needs only each split's ids.
    ids = {"train": [train[i] for i in chosen], "val": manifest.ids("val"), "test": manifest.ids("test")}
    split_file = out / "data" / f"split_{count}_seed{seed}.json"
    write_json(split_file, {"splits": {name: [{"id": i} for i in split] for name, split in ids.items()}})
    prepare_dataset(PrepareConfig("ph2", str(ph2), str(folder), (128, 128), split_file=str(split_file),
                                  progress=False))
    return folder


def recipe(change=None, scratch=False):
    from frcunet.training.recipes import recipe_settings

    settings, _ = recipe_settings("finetune", "frcunet-lite")
    settings.update(change or {})
    if scratch:
        settings.update(SCRATCH)
    return settings


def train_row(run, data, settings, seed, scratch=False):
    """Trains (or finishes) one run; returns (minutes, epochs) of the training, read back when done."""
    from frcunet.artifacts.pretrained import pretrained_record
    from frcunet.training.trainer import TrainConfig, train

    timing = Path(run) / "timing.json"
    if timing.is_file():
        return json.loads(timing.read_text())
    shipped = pretrained_record()
    start = time.perf_counter()
    if scratch:
        train(TrainConfig(data=str(data), run=str(run), model=shipped.model,
                          model_options=dict(shipped.model_options), seed=seed, verbose=2, **settings))
    else:
        train(TrainConfig(data=str(data), run=str(run), init_weights="pretrained", seed=seed, verbose=2, **settings))
    result = {"minutes": (time.perf_counter() - start) / 60, "epochs": settings["epochs"]}
    write_json(timing, result)
    return result


def score_on_val(run, data):
    """Per-image Dice and IoU, and the ISIC thresholded Jaccard, on the validation images at 128x128."""
    from frcunet.artifacts.runs import load_run_model
    from frcunet.data.pipeline import open_split
    from frcunet.evaluation.metrics import per_image_metrics, thresholded_jaccard
    from frcunet.inference.prediction import predict_batches

    model, _ = load_run_model(None if run is None else str(run))
    split = open_split(data, "val")
    probabilities = predict_batches(model, np.asarray(split.images), 16, tta=False, progress=False)
    per_image = per_image_metrics(np.asarray(split.masks), np.stack(probabilities))
    return {"dice": float(np.mean(per_image["dice"])), "iou": float(np.mean(per_image["iou"])),
            "thresholded_jaccard": float(thresholded_jaccard(per_image["iou"]))}


def stage_select(out, data):
    rows = []
    record = out / "select" / "shipped.json"
    if not record.is_file():
        write_json(record, {"name": "the shipped model, not fine-tuned", "val": score_on_val(None, data)})
    rows.append(json.loads(record.read_text()))
    for index, (name, change) in enumerate(VARIANTS):
        record = out / "select" / f"row{index}.json"
        if not record.is_file():
            settings = dict(DRAFT, **change)
            run = out / "select" / "runs" / f"row{index}"
            timing = train_row(run, data, settings, seed=0)
            write_json(record, {"name": name, "settings": settings, **timing, "val": score_on_val(run, data)})
        rows.append(json.loads(record.read_text()))
        print(select_table(rows), flush=True)


def select_table(rows):
    base = next((r["val"]["dice"] for r in rows if r["name"].startswith("draft")), None)
    lines = ["| # | lever changed from the draft | epochs | minutes | val Dice/img | vs draft | val IoU/img | "
             "val thr. Jaccard |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for i, r in enumerate(rows):
        v = r["val"]
        delta = f"{v['dice'] - base:+.4f}" if base is not None and "settings" in r else "-"
        lines.append(f"| {i - 1 if i else '-'} | {r['name']} | {r.get('epochs', 0)} | {r.get('minutes', 0):.1f} | "
                     f"{v['dice']:.4f} | {delta} | {v['iou']:.4f} | {v['thresholded_jaccard']:.4f} |")
    return "\n".join(lines)


def evaluate_row(run, data, out):
    """(metrics, {id: Dice}) on the test split; `run` None scores the shipped model."""
    from frcunet.evaluation.compare import evaluate_once
    from frcunet.evaluation.evaluate import EvaluateConfig, evaluate

    if run is not None:
        return evaluate_once(run, data, out)
    if not (Path(out) / "metrics.json").is_file():
        evaluate(EvaluateConfig(pretrained=True, data=str(data), out=str(out), progress=False))
    return _read_evaluation(out)


def _read_evaluation(out):
    import csv

    from frcunet.evaluation.records import read_metrics

    metrics = read_metrics(out)
    with open(Path(out) / "per_image.csv", newline="") as f:
        return metrics, {row["id"]: float(row["dice"]) for row in csv.DictReader(f)}


def arms(out, ph2, full, count, seed):
    """{arm: (run folder, data folder, settings, scratch)} of one label count and seed."""
    data = subset(out, ph2, full, count, seed)
    tag = f"n{count}_seed{seed}"
    return {"fine-tuned": (out / "runs" / f"finetuned_{tag}", data, recipe(), False),
            "from scratch": (out / "runs" / f"scratch_{tag}", data, recipe(scratch=True), True)}


def run_arms(out, ph2, full, counts):
    # Seed by seed, so that an interrupted study has every label count at the same number of seeds.
    for seed in SEEDS:
        for count in counts:
            for arm, (run, data, settings, scratch) in arms(out, ph2, full, count, seed).items():
                train_row(run, data, settings, seed, scratch)
                evaluate_row(run, full, out / "eval" / run.name)
                print(f"done: {arm}, {count} images, seed {seed}", flush=True)


def results(out, ph2, full, count):
    """{arm: [(metrics, dice, (minutes, epochs, None)), ...]} over the seeds of one label count."""
    rows = {"fine-tuned": [], "from scratch": []}
    for seed in SEEDS:
        for arm, (run, _, _, _) in arms(out, ph2, full, count, seed).items():
            if (out / "eval" / run.name / "metrics.json").is_file():
                timing = json.loads((run / "timing.json").read_text())
                rows[arm].append((*_read_evaluation(out / "eval" / run.name),
                                  (timing["minutes"], timing["epochs"], float("nan"))))
    return rows


def report(out, ph2, full):
    from frcunet.artifacts.pretrained import pretrained_record
    from frcunet.evaluation.compare import HEADER, _row, paired_test
    from frcunet.models.registry import build_model

    shipped = pretrained_record()
    parameters = build_model(shipped.model, (64, 64, 3), **shipped.model_options).count_params()
    untuned = evaluate_row(None, full, out / "eval" / "shipped")
    protocol = results(out, ph2, full, 80)
    lines = ["### PH2 test split (100 images), 80 training images", "", HEADER,
             _row("shipped model, not fine-tuned", [(*untuned, None)], parameters)]
    lines += [_row(arm, rows, parameters) for arm, rows in protocol.items() if rows]
    lines += ["", "| fine-tuned vs | images | mean ΔDice | median ΔDice | fine-tuned better / worse | Wilcoxon p |",
              "| --- | --- | --- | --- | --- | --- |"]
    tuned = [dice for _, dice, _ in protocol["fine-tuned"]]
    for name, other in (("shipped model, not fine-tuned", [untuned[1]]),
                        ("from scratch", [dice for _, dice, _ in protocol["from scratch"]])):
        if tuned and other:
            t = paired_test(tuned, other)
            lines.append(f"| {name} | {t['n']} | {t['mean_difference']:+.4f} | {t['median_difference']:+.4f} | "
                         f"{t['first_better']} / {t['other_better']} | {t['p']:.3g} |")
    lines += ["", "### How many images: per-image Dice on the 100 test images (mean ± sd over the seeds)", "",
              "| training images | fine-tuned from the shipped model | from scratch | seeds | minutes per training |",
              "| --- | --- | --- | --- | --- |"]
    curve = {}
    for count in LABEL_COUNTS:
        rows = results(out, ph2, full, count)
        dice = {arm: [m.summary.per_image_mean["dice"] for m, _, _ in r] for arm, r in rows.items()}
        minutes = [t[0] for r in rows.values() for _, _, t in r]
        if not any(dice.values()):
            continue
        curve[count] = dice
        cells = [_mean_sd(dice[arm]) for arm in ("fine-tuned", "from scratch")]
        lines.append(f"| {count} | {cells[0]} | {cells[1]} | {len(dice['fine-tuned'])} / {len(dice['from scratch'])} "
                     f"| {np.mean(minutes):.1f} |")
    lines.append(f"| 0 (shipped model) | {untuned[0].summary.per_image_mean['dice']:.3f} | - | - | - |")
    (out / "report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if curve:
        _figure(curve, untuned[0].summary.per_image_mean["dice"], ROOT / "Figures" / "label_count.png")


def _mean_sd(values):
    if not values:
        return "-"
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}" if len(values) > 1 else f"{values[0]:.3f}"


def _figure(curve, untuned, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from frcunet.core.saving import atomic_path

    figure, axes = plt.subplots(figsize=(5.5, 3.8), dpi=120)
    for arm, colour, marker in (("fine-tuned", "#0072B2", "o"), ("from scratch", "#D55E00", "s")):
        counts = [c for c in curve if curve[c][arm]]
        means = [np.mean(curve[c][arm]) for c in counts]
        spread = [np.std(curve[c][arm], ddof=1) if len(curve[c][arm]) > 1 else 0 for c in counts]
        axes.errorbar(counts, means, yerr=spread, color=colour, marker=marker, capsize=3,
                      label=f"{arm}" + (" from the shipped model" if arm == "fine-tuned" else ""))
    axes.axhline(untuned, color="#555555", linestyle="--", label="shipped model, not fine-tuned")
    axes.set_xscale("log")
    axes.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())  # only the counts trained on are labelled
    axes.set_xticks(list(curve), [str(c) for c in curve])
    axes.set_xlabel("PH2 training images (annotated)")
    axes.set_ylabel("per-image Dice, 100 PH2 test images")
    axes.set_title("How many images? (mean ± sd over 3 seeds)")
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png")
    plt.close(figure)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", choices=("select", "protocol", "labels", "report"), required=True)
    parser.add_argument("--ph2", default=str(ROOT.parent / "shared" / "data" / "PH2Dataset"),
                        help="the PH2 download (its 'PH2 Dataset images' folder inside)")
    parser.add_argument("--out", default="output/finetune_ph2")
    parser.add_argument("--counts", type=int, nargs="+", default=[c for c in LABEL_COUNTS if c != 80],
                        help="labels stage: training image counts")
    args = parser.parse_args()
    out = Path(args.out)
    (out / "select").mkdir(parents=True, exist_ok=True)
    full = prepared_ph2(out, args.ph2)
    if args.stage == "select":
        stage_select(out, full)
    elif args.stage == "protocol":
        run_arms(out, args.ph2, full, [80])
        evaluate_row(None, full, out / "eval" / "shipped")
        report(out, args.ph2, full)
    elif args.stage == "labels":
        run_arms(out, args.ph2, full, args.counts)
        report(out, args.ph2, full)
    else:
        report(out, args.ph2, full)


if __name__ == "__main__":
    main()
