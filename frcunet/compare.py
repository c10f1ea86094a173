"""Comparison harness: several registry models, one prepared split, one budget, one table.

Each model is trained with the same settings, evaluated on the same test
split, and given a row: the paper's pooled columns, per-image Dice, IoU and
HD95, the ISIC thresholded Jaccard, its parameters, training minutes and
training images per second. Optionally each trained model is also evaluated
on a second dataset without fine-tuning (`transfer`) and after the
fine-tuning recipe (`finetune`: train on that split from the first weights).
"""

import json
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from frcunet.errors import UserError

# Widths chosen so the CPU baselines have about frcunet-lite's 2.9 M parameters.
BUDGETS = {
    "cpu": {
        "models": {"frcunet-lite": {}, "unet": {"base_filters": 20}, "attention-unet": {"base_filters": 20}},
        "train": dict(epochs=10, batch_size=16, lr=1e-3, loss="bce+dice", augment=True, monitor="val_dice",
                      precision="mixed_bfloat16"),
        "finetune": dict(epochs=10, batch_size=8, lr=1e-4, loss="bce+dice", augment=True, monitor="val_dice",
                         precision="mixed_bfloat16"),
    },
    "paper": {
        "models": {"frcunet": {}, "unet": {}, "attention-unet": {}},
        "train": dict(epochs=100, batch_size=12, lr=1e-4, loss="bce"),
        "finetune": dict(epochs=100, batch_size=12, lr=1e-4, loss="bce"),
    },
}


@dataclass
class CompareConfig:
    data: str
    out: str = "output/compare"
    budget: str = "cpu"
    models: list = field(default_factory=list)  # default: the budget's models
    seed: int = 0
    transfer: str = ""  # a prepared folder evaluated without fine-tuning (its test split)
    finetune: str = ""  # a prepared folder to fine-tune on and evaluate
    epochs: int = 0  # 0: the budget's epoch count


def _row(label, metrics, parameters, minutes, speed):
    pooled, mean = metrics["pooled"], metrics["per_image_mean"]
    cells = [pooled[k] for k in ("f1", "se", "sp", "acc", "pc", "js")] + [mean["dice"], mean["iou"]]
    text = [f"{v:.4f}" for v in cells] + [f"{mean['hd95']:.2f}", f"{metrics['thresholded_jaccard']:.4f}"]
    extra = [f"{parameters / 1e6:.2f} M", f"{minutes:.1f}" if minutes is not None else "-",
             f"{speed:.1f}" if speed is not None else "-"]
    return f"| {label} | " + " | ".join(text + extra) + " |"


HEADER = ("| model | F1 | SE | SP | ACC | PC | JS | Dice/img | IoU/img | HD95/img (px) | ISIC thr. Jaccard | "
          "parameters | train minutes | train images/s |\n| --- |" + " --- |" * 13)


def _train_and_time(settings, data, run, model, options, seed, init_weights=None):
    from frcunet.data.pipeline import open_split
    from frcunet.training import TrainConfig, train

    start = time.perf_counter()
    train(TrainConfig(data=str(data), run=str(run), model=model, model_options=options, seed=seed,
                      init_weights=str(init_weights) if init_weights else None, restart=True, verbose=2, **settings))
    minutes = (time.perf_counter() - start) / 60
    images = len(open_split(data, "train", check_masks=False)) * settings["epochs"]
    return minutes, images / (minutes * 60)


def run_comparison(config):
    from frcunet.evaluation import EvaluateConfig, evaluate
    from frcunet.models import build_model
    from frcunet.provenance import git_commit, versions

    if config.budget not in BUDGETS:
        raise UserError(f"--budget must be one of {', '.join(BUDGETS)}")
    budget = {key: dict(value) for key, value in BUDGETS[config.budget].items()}
    if config.epochs:
        budget["train"]["epochs"] = budget["finetune"]["epochs"] = config.epochs
    models = {name: budget["models"].get(name, {}) for name in (config.models or budget["models"])}
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    sections = {"main": [], "transfer": [], "finetune": []}
    for name, options in models.items():
        run = out / "runs" / name
        parameters = build_model(name, (64, 64, 3), **options).count_params()
        minutes, speed = _train_and_time(budget["train"], config.data, run, name, options, config.seed)
        metrics, _ = evaluate(EvaluateConfig(run=str(run), data=config.data, out=str(out / "eval" / name),
                                             progress=False))
        sections["main"].append(_row(name, metrics, parameters, minutes, speed))
        if config.transfer:
            metrics, _ = evaluate(EvaluateConfig(run=str(run), data=config.transfer, resize=True, progress=False,
                                                 out=str(out / "eval" / f"{name}_transfer")))
            sections["transfer"].append(_row(f"{name}, no fine-tuning", metrics, parameters, None, None))
        if config.finetune:
            tuned = out / "runs" / f"{name}_finetuned"
            minutes, speed = _train_and_time(budget["finetune"], config.finetune, tuned, name, options, config.seed,
                                             init_weights=run / "best.weights.h5")
            metrics, _ = evaluate(EvaluateConfig(run=str(tuned), data=config.finetune, progress=False,
                                                 out=str(out / "eval" / f"{name}_finetuned")))
            sections["finetune"].append(_row(f"{name}, fine-tuned", metrics, parameters, minutes, speed))
        _write_report(out, config, budget, sections, versions(), git_commit())
    return out / "comparison.md"


def _write_report(out, config, budget, sections, library_versions, commit):
    from frcunet.saving import atomic_path

    lines = [f"# Comparison on {config.data} ({config.budget} budget)", "", HEADER, *sections["main"], ""]
    if sections["transfer"] or sections["finetune"]:
        described = []
        if config.transfer:
            described.append(f"no fine-tuning: the test split of {config.transfer}, models trained on {config.data}")
        if config.finetune:
            described.append(f"fine-tuned: trained on {config.finetune} from those weights, scored on its test split")
        lines += ["Transfer (" + "; ".join(described) + "):", "", HEADER, *sections["transfer"],
                  *sections["finetune"], ""]
    lines += [
        "Pooled F1..JS over all test pixels at threshold 0.5 (JS = true Jaccard); /img = per-image means.",
        f"Training settings: {json.dumps(budget['train'])}; fine-tuning: {json.dumps(budget['finetune'])}.",
        f"Seed {config.seed}. Command: `{' '.join(shlex.quote(a) for a in sys.argv)}`.",
        f"Versions: {json.dumps(library_versions)}; commit {commit}.",
    ]
    with atomic_path(out / "comparison.md") as temporary:
        temporary.write_text("\n".join(lines) + "\n")
