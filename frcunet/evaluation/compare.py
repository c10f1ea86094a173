"""Comparison harness: several registry models, one prepared split, one budget, several seeds.

Each model is trained with the same recipe and wall-clock budget for every seed, evaluated on the same
test split, and summarised as mean ± sd over the seeds: the paper's pooled columns, per-image Dice, IoU
and HD95, the ISIC thresholded Jaccard, parameters, epochs reached, training minutes and images per
second. The first model is tested against each other one, image by image (Wilcoxon signed-rank on the
per-image Dice, each image's Dice averaged over the seeds first). comparison.md holds the tables; report.html
also shows every test image, each model's Dice on it and its thumbnails, sorted by where the first model loses
most (frcunet.reports.compare). Optionally every trained model is also scored on a second dataset without
fine-tuning (`transfer`) and after fine-tuning on it (`finetune`), with the same summaries and tests. Runs and
evaluations are kept under `out/`, so an interrupted comparison continues where it stopped.
"""

from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from frcunet.artifacts.runs import BEST_WEIGHTS, HISTORY_FILE
from frcunet.core.errors import UserError
from frcunet.core.markdown import markdown_row, markdown_table
from frcunet.core.saving import atomic_path
from frcunet.evaluation.budgets import BUDGETS
from frcunet.evaluation.evaluate import RESULT_COLUMNS
from frcunet.evaluation.records import METRICS_FILE, EvaluationMetrics, read_metrics
from frcunet.reports.compare import REPORT, Section, write_comparison_report
from frcunet.reports.html import stamp
from frcunet.training.recipes import RECIPES

if TYPE_CHECKING:
    from frcunet.training.trainer import TrainConfig

SEEDS = (0, 1, 2)


@dataclass
class CompareConfig:
    data: str
    out: str = "output/compare"
    budget: str = "cpu"
    models: list[str] = field(default_factory=list)  # default: the budget's; the first is tested against the rest
    seeds: tuple[int, ...] = SEEDS
    transfer: str = ""  # a prepared folder evaluated without fine-tuning (its test split)
    finetune: str = ""  # a prepared folder to fine-tune on and evaluate
    epochs: int = 0  # 0: the budget's epoch count
    minutes: float = 0.0  # 0: the budget's minutes per training
    command: str = ""  # the command line that asked for it, for the report (the CLI fills it)


def _train_config(budget, name, phase, config, **fields):
    """The TrainConfig of model `name` for phase "train" or "finetune": the budget's recipe and overrides."""
    from frcunet.training.trainer import TrainConfig

    overrides = dict(budget[phase])
    if config.epochs:
        overrides["epochs"] = config.epochs
    if config.minutes and phase == "train":
        overrides["max_minutes"] = config.minutes
    return TrainConfig.from_recipe(budget["recipe"], name, model_options=budget["models"].get(name, {}),
                                   verbose=2, **overrides, **fields)


def _recipe_view(train_config, budget):
    """The settings the budget's recipe sets, as `train_config` has them (for the report)."""
    return {key: getattr(train_config, key) for key in RECIPES[budget["recipe"]]["train"]}


def train_and_time(train_config: TrainConfig) -> tuple[float, int, float]:
    """Trains (or finishes an interrupted run); returns (minutes, epochs, images per second)."""
    from frcunet.data.pipeline import open_split
    from frcunet.training.trainer import train

    run = Path(train_config.run)
    timing = run / "timing.json"
    if timing.is_file():
        return tuple(json.loads(timing.read_text()))
    start = time.perf_counter()
    train(train_config)
    minutes = (time.perf_counter() - start) / 60
    with open(run / HISTORY_FILE, newline="") as f:
        epochs = sum(1 for _ in csv.DictReader(f))
    images = len(open_split(train_config.data, "train", check_masks=False)) * epochs
    result = (minutes, epochs, images / (minutes * 60))
    with atomic_path(timing) as temporary:
        temporary.write_text(json.dumps(result))
    return result


def evaluate_once(run: Path | str, data: Path | str, out: Path | str,
                  resize: bool = False) -> tuple[EvaluationMetrics, dict[str, float]]:
    """(EvaluationMetrics, {image id: Dice}) of a run on a test split; read back when already written."""
    from frcunet.evaluation.evaluate import EvaluateConfig, evaluate

    if not (Path(out) / METRICS_FILE).is_file():
        evaluate(EvaluateConfig(run=str(run), data=str(data), out=str(out), resize=resize, progress=False))
    metrics = read_metrics(out)
    with open(Path(out) / "per_image.csv", newline="") as f:
        dice = {row["id"]: float(row["dice"]) for row in csv.DictReader(f)}
    return metrics, dice


# Evaluation's columns without the threshold-free and legacy ones.
COLUMNS = tuple(column for column in RESULT_COLUMNS if column[0] not in ("legacy JS (=ACC)", "AUC ROC", "AP"))


def mean_sd(values: list[float | None], digits: int) -> str:
    """'mean ± sd' (sample sd) of the finite values; a single value has no sd."""
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return "-"
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return f"{mean:.{digits}f} ± {sd:.{digits}f}"


TABLE_HEADER = ("model", "seeds", *(c for c, _, _ in COLUMNS), "parameters", "epochs", "train minutes",
                "train images/s")
HEADER = markdown_table(TABLE_HEADER, [])  # the table's first two Markdown lines, for a table written row by row


def _row_cells(label, results, parameters):
    """One table row's cells from [(metrics, dice, timing or None), ...] of the seeds."""
    cells = [mean_sd([m.summary.value(path) for m, _, _ in results], digits) for _, path, digits in COLUMNS]
    timings = [t for _, _, t in results if t is not None]
    timing = [mean_sd([t[i] for t in timings], d) if timings else "-" for i, d in ((1, 1), (0, 1), (2, 1))]
    return [label, str(len(results)), *cells, f"{parameters / 1e6:.2f} M", *timing]


def _row(label, results, parameters):
    """The Markdown line of `_row_cells` (benchmarks/finetune_ph2.py writes its table with HEADER and this)."""
    return markdown_row(_row_cells(label, results, parameters))


def paired_test(first: dict[str, float], other: dict[str, float]) -> dict[str, Any]:
    """Wilcoxon signed-rank test of per-image Dice (each averaged over seeds) of two models on the same images.

    Returns a dict: n images, mean and median of (first - other), images where first is better, two-sided p.
    """
    import numpy as np
    from scipy.stats import wilcoxon

    ids = sorted(set.intersection(*(set(d) for d in first + other)))
    a = np.array([np.mean([d[i] for d in first]) for i in ids])
    b = np.array([np.mean([d[i] for d in other]) for i in ids])
    difference = a - b
    p = float(wilcoxon(a, b).pvalue) if np.any(difference != 0) else 1.0
    return {"n": len(ids), "mean_difference": float(difference.mean()),
            "median_difference": float(np.median(difference)), "first_better": int((difference > 0).sum()),
            "other_better": int((difference < 0).sum()), "p": p}


def _test_table(first_name, results):
    """(header, rows): the first model against each other one, per-image Dice, Wilcoxon signed-rank; None with
    one model."""
    names = list(results)
    if len(names) < 2:
        return None
    header = [f"{first_name} vs", "images", "mean ΔDice", "median ΔDice", f"{first_name} better / worse",
              "Wilcoxon p"]
    first = [dice for _, dice, _ in results[names[0]]]
    rows = []
    for name in names[1:]:
        test = paired_test(first, [dice for _, dice, _ in results[name]])
        rows.append([name, test["n"], f"{test['mean_difference']:+.4f}", f"{test['median_difference']:+.4f}",
                     f"{test['first_better']} / {test['other_better']}", f"{test['p']:.3g}"])
    return header, rows


# Marks a folder compare writes. Not the marker of folders written whole (saving.OWNER_MARKER): compare adds
# to its folder piece by piece (runs, evaluations, the report) to continue after an interruption, and the
# evaluations inside it are folders written whole.
COMPARISON_MARKER = ".frcunet-comparison"


def _open_comparison_folder(out, inputs):
    """`out`, created or reopened to continue: a new or empty folder, or one an earlier compare wrote.

    Refused before anything trains: a folder with other files (a user's own comparison.md), or one that
    equals, holds or lies inside a data folder it reads.
    """
    from frcunet.core.saving import check_output_folder, folders_overlap

    for other in inputs:
        if other and Path(other).exists() and folders_overlap(out, other):
            raise UserError(f"--out {out} would overlap {other}, which compare reads; choose a separate folder")
    # Folders of compare before the marker hold its runs/ and eval/ folders.
    ours = (out / COMPARISON_MARKER).is_file() or ((out / "runs").is_dir() and (out / "eval").is_dir())
    if not ours:
        check_output_folder(out, "comparison", keep_clear=inputs)
    out.mkdir(parents=True, exist_ok=True)
    (out / COMPARISON_MARKER).touch()
    return out


def _evaluation_folder(out, name, seed, section):
    """Where the evaluation of model `name`, seed `seed`, in section main, transfer or finetune is kept."""
    suffix = {"main": "", "transfer": "_transfer", "finetune": "_finetuned"}[section]
    return out / "eval" / f"{name}_seed{seed}{suffix}"


def run_comparison(config: CompareConfig) -> Path:
    from frcunet.core.provenance import git_commit, versions
    from frcunet.models.registry import build_model

    if config.budget not in BUDGETS:
        raise UserError(f"--budget must be one of {', '.join(BUDGETS)}")
    if not config.seeds or any(s < 0 for s in config.seeds):
        raise UserError("--seeds takes one or more non-negative integers")
    budget = BUDGETS[config.budget]
    names = list(config.models or budget["models"])
    out = _open_comparison_folder(Path(config.out), (config.data, config.transfer, config.finetune))
    sections = {"main": {}, "transfer": {}, "finetune": {}}
    parameters = {}
    for name in names:
        options = _train_config(budget, name, "train", config).model_options
        parameters[name] = build_model(name, (64, 64, 3), **options).count_params()
        for key in sections:
            sections[key][name] = []
        for seed in config.seeds:
            run = out / "runs" / f"{name}_seed{seed}"
            timing = train_and_time(_train_config(budget, name, "train", config, data=str(config.data), run=str(run),
                                                   seed=seed))
            metrics, dice = evaluate_once(run, config.data, _evaluation_folder(out, name, seed, "main"))
            sections["main"][name].append((metrics, dice, timing))
            if config.transfer:
                metrics, dice = evaluate_once(run, config.transfer, _evaluation_folder(out, name, seed, "transfer"),
                                          resize=True)
                sections["transfer"][name].append((metrics, dice, None))
            if config.finetune:
                tuned = out / "runs" / f"{name}_seed{seed}_finetuned"
                timing = train_and_time(_train_config(budget, name, "finetune", config, data=str(config.finetune),
                                                       run=str(tuned), seed=seed,
                                                       init_weights=str(run / BEST_WEIGHTS)))
                metrics, dice = evaluate_once(tuned, config.finetune, _evaluation_folder(out, name, seed, "finetune"))
                sections["finetune"][name].append((metrics, dice, timing))
            _write_report(out, config, budget, names, sections, parameters, versions(), git_commit())
    return out / "comparison.md"


def _write_report(out, config, budget, names, sections, parameters, library_versions, commit):
    """comparison.md and report.html, rewritten after each evaluation so that an interrupted comparison has both."""
    titles = {"main": f"Test split of {config.data}",
              "transfer": f"No fine-tuning: the test split of {config.transfer}, models trained on {config.data}",
              "finetune": f"Fine-tuned: trained on {config.finetune} from each model's weights, scored on its test "
                          "split"}
    title = f"Comparison on {config.data} ({config.budget} budget, seeds {', '.join(map(str, config.seeds))})"
    lines, html_sections = [f"# {title}", ""], []
    for key, heading in titles.items():
        results = {name: rows for name, rows in sections[key].items() if rows}
        if not results:
            continue
        summary = (TABLE_HEADER, [_row_cells(n, r, parameters[n]) for n, r in results.items()])
        lines += [f"## {heading}", "", markdown_table(*summary), ""]
        tests = _test_table(names[0], results)
        if tests:
            lines += ["Paired per-image test (Dice of each image averaged over the seeds):", "",
                      markdown_table(*tests), ""]
        html_sections.append(_report_section(out, config, key, heading, results, summary, tests))
    train = _recipe_view(_train_config(budget, names[0], "train", config), budget)
    tune = _recipe_view(_train_config(budget, names[0], "finetune", config), budget)
    options = {n: _train_config(budget, n, "train", config).model_options for n in names}
    command = config.command or "frcunet.evaluation.compare.run_comparison(...)"
    lines += [
        NOTES,
        f"Recipe {budget['recipe']!r}; training settings: {json.dumps(train)}; fine-tuning: {json.dumps(tune)}; "
        f"model options: {json.dumps(options)}.",
        f"Command: `{command}`.",
        f"Versions: {json.dumps(library_versions)}; commit {commit}.",
    ]
    with atomic_path(out / "comparison.md") as temporary:
        temporary.write_text("\n".join(lines) + "\n")
    about = [("data", config.data), ("budget", f"{config.budget} (recipe {budget['recipe']!r})"),
             ("seeds", ", ".join(map(str, config.seeds))), ("models", ", ".join(names)),
             ("command", command), ("written", f"{stamp()}, commit {commit}"),
             ("tables", "comparison.md beside this page; each evaluation in eval/")]
    with atomic_path(out / REPORT) as temporary:
        write_comparison_report(temporary, title, about, html_sections)


NOTES = ("Mean ± sample sd over the seeds. Pooled F1..JS over all test pixels at threshold 0.5 (JS = true Jaccard); "
         "/img = per-image means; thr. Jaccard = the ISIC challenge score (per-image IoU below 0.65 counts as 0).")
SECTION_DATA = {"main": "data", "transfer": "transfer", "finetune": "finetune"}


def _report_section(out, config, key, heading, results, summary, tests):
    """A section of report.html: each image's Dice per model (over the seeds) and the thumbnails."""
    from frcunet.data.pipeline import PreparedFolder
    from frcunet.reports.evaluate import poor_masks

    return Section(
        name=key, title=heading, models=list(results),
        dice={model: [dice for _, dice, _ in rows] for model, rows in results.items()},
        evaluations={model: [_evaluation_folder(out, model, seed, key) for seed in config.seeds[:len(rows)]]
                     for model, rows in results.items()},
        summary=summary, tests=tests,
        poor=poor_masks(PreparedFolder(getattr(config, SECTION_DATA[key])).manifest), notes=[NOTES])
