"""Evaluation of a run's best model on a prepared test split.

Output folder (`output/<run name>` by default), written atomically:
    metrics.json           pooled metrics, per-image means/stds/undefined counts, ISIC thresholded
                           Jaccard, the legacy "JS" (which equals accuracy), settings and versions
    per_image.csv          id and every per-image metric
    results.md             the paper's columns plus per-image Dice, IoU, HD95 (also printed); AP is the
                           average precision (stored as "auc_pr"); "HD95 diag." counts an empty
                           prediction or truth as the image diagonal instead of leaving it out
    ROC.png  Precision_recall.png  overlays.png
    report.html  report/   every test image in a sortable table, with thumbnails and overlays
                           (frcunet.reports.evaluate)
    masks/<id>_segmentation.png   0/255 at each test image's original size
"""

from __future__ import annotations

import csv
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from frcunet.core.errors import UserError
from frcunet.core.markdown import markdown_table, number
from frcunet.core.names import MASK_SUFFIX
from frcunet.core.provenance import versions
from frcunet.core.saving import atomic_folder, check_output_folder
from frcunet.data.manifest import MANIFEST
from frcunet.data.pipeline import PreparedFolder
from frcunet.evaluation.metrics import (
    PER_IMAGE_KEYS,
    PooledCounts,
    per_image_metrics,
    per_image_statistics,
    thresholded_jaccard,
)
from frcunet.evaluation.records import EvaluationMetrics, MetricsSummary, write_metrics

# Every results table's columns: (header, where the value sits in a metrics summary, decimals). The paper's
# pooled columns come first; compare's tables use the same entries.
RESULT_COLUMNS = (
    *((name, ("pooled", key), 4) for name, key in (("F1", "f1"), ("SE", "se"), ("SP", "sp"), ("ACC", "acc"),
                                                    ("PC", "pc"), ("JS", "js"))),
    ("legacy JS (=ACC)", ("legacy_js_equals_accuracy",), 4),
    ("AUC ROC", ("pooled", "auc_roc"), 4),
    ("AP", ("pooled", "auc_pr"), 4),
    ("Dice/img", ("per_image_mean", "dice"), 4),
    ("IoU/img", ("per_image_mean", "iou"), 4),
    ("HD95/img (px)", ("per_image_mean", "hd95"), 2),
    ("HD95 diag./img (px)", ("per_image_mean", "hd95_diag"), 2),
    ("ISIC thr. Jaccard", ("thresholded_jaccard",), 4),
)


@dataclass
class EvaluateConfig:
    run: str = ""  # default: weights/<data folder name>_frcunet
    data: str = "data/isic2018"
    out: str = ""  # default: output/<run folder name>
    threshold: float = 0.5
    tta: bool = False
    native: bool = False
    resize: bool = False
    batch_size: int = 8
    progress: bool = True
    pretrained: bool = False  # score the model shipped with the package instead of a run
    allow_seen: bool = False  # score test images the run trained or validated on (refused otherwise)


def _test_ids_and_sizes(prepared, count):
    """Ids and original (H, W) of the test images from the manifest; plain numbers without one."""
    path = prepared.path / MANIFEST
    if prepared.manifest is None:
        return [f"{i:05d}" for i in range(count)], None, None
    entries = prepared.manifest.splits["test"]
    if len(entries) != count:
        raise UserError(f"{path} lists {len(entries)} test images but the arrays hold {count}; prepare again")
    return [e.id for e in entries], [e.original_size for e in entries], entries


def _check_unseen(run, run_config, prepared, test_ids, allow_seen):
    """Refuses a test split that holds images the run trained or validated on (unless `allow_seen`).

    Runs record the ids they saw, and so does the shipped model's record; for a run recorded before that, a
    data folder it trained on whose manifest has changed since (prepared again, another seed) is refused.
    """
    data = prepared.path
    seen = run_config.seen_ids
    hint = "pass --allow-seen to score them anyway"
    if seen is not None:
        overlap = set(test_ids) & {i for ids in seen.values() for i in ids}
        if overlap and not allow_seen:
            who = f"{run} (or the weights it started from)" if "init_weights" in seen else f"{run}"
            raise UserError(f"{len(overlap)} of the {len(test_ids)} test images of {data} are images {who} trained or "
                            f"validated on (e.g. {sorted(overlap)[0]}): its score would be inflated; evaluate on "
                            f"images it did not see (was the folder prepared again with another --seed?), or {hint}")
        return
    trained_on = run_config.data
    same_folder = isinstance(trained_on, str) and Path(trained_on).resolve() == Path(data).resolve()
    recorded = run_config.data_manifest_sha1
    if same_folder and recorded and prepared.manifest_sha1 not in (None, recorded) and not allow_seen:
        raise UserError(f"{data} was prepared again since {run} trained on it (its manifest changed): its test "
                        f"split may hold images the run trained on; prepare it as before, or {hint}")


def _score(truth, probabilities, threshold):
    counts = PooledCounts(threshold).update_in_chunks(truth, probabilities)
    return counts, per_image_metrics(truth, probabilities, threshold)


def _score_native(entries, ids, probabilities, threshold, progress, mask_folder):
    """Scores each prediction, resized to its original size, against the original mask file, and writes
    its mask into `mask_folder` from the same resized map (each map is resized once)."""
    from frcunet.data.imaging import read_mask
    from frcunet.inference.prediction import resize_probabilities, save_mask_png

    mask_folder.mkdir()
    counts = PooledCounts(threshold)
    rows = {key: [] for key in PER_IMAGE_KEYS}
    for entry, image_id, probability in tqdm(list(zip(entries, ids, probabilities, strict=True)), desc="native scoring",
                                             unit="image", disable=not progress, file=sys.stderr):
        mask_path = Path(entry.mask)
        if not mask_path.is_file():
            raise UserError(f"--native needs the original masks; {mask_path} is missing (or drop --native)")
        size = entry.original_size
        truth, found_size, digest = read_mask(mask_path, size)
        if found_size != size or (entry.mask_sha1 and digest != entry.mask_sha1):
            what = f"is {found_size[1]}x{found_size[0]}, not {size[1]}x{size[0]}" if found_size != size else \
                "has changed"
            raise UserError(f"--native: {mask_path} {what} since the folder was prepared; prepare it again (or drop "
                            "--native)")
        native_probability = resize_probabilities(probability, size)
        save_mask_png(native_probability > threshold, mask_folder / f"{image_id}{MASK_SUFFIX}")
        counts.update(truth[None], native_probability[None])
        for key, value in per_image_metrics(truth[None], native_probability[None], threshold).items():
            rows[key].append(float(value[0]))
    return counts, {k: np.array(v) for k, v in rows.items()}


def _summary(counts, per_image):
    pooled = counts.result()
    stats = per_image_statistics(per_image)
    # The reference's "JS" column called a function that returns pixel accuracy for binary labels.
    return MetricsSummary(pooled, stats["mean"], stats["std"], stats["undefined"],
                          thresholded_jaccard(per_image["iou"]), legacy_js_equals_accuracy=pooled["acc"])


def results_cells(summary: MetricsSummary) -> list[str]:
    """The results table's cells of one metrics summary, formatted ('-' where a value is missing)."""
    return [number(summary.value(path), digits) for _, path, digits in RESULT_COLUMNS]


def results_table(name: str, summary: MetricsSummary) -> str:
    """Markdown table: the paper's columns, then per-image Dice, IoU, HD95 and the ISIC score."""
    return markdown_table(["model", *(header for header, _, _ in RESULT_COLUMNS)], [[name, *results_cells(summary)]])


def _write_per_image(path, ids, per_image):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", *PER_IMAGE_KEYS])
        for i, image_id in enumerate(ids):
            writer.writerow([image_id, *(f"{per_image[k][i]:.6g}" for k in PER_IMAGE_KEYS)])


def _write_masks(folder, ids, probabilities, original_sizes, threshold, progress):
    from frcunet.inference.prediction import resize_probabilities, save_mask_png

    folder.mkdir()
    for i, image_id in enumerate(tqdm(ids, desc="writing masks", unit="mask", disable=not progress,
                                      file=sys.stderr)):
        probability = probabilities[i]
        if original_sizes:
            probability = resize_probabilities(probability, original_sizes[i])
        save_mask_png(probability > threshold, folder / f"{image_id}{MASK_SUFFIX}")


def _case_figure(path, ids, images, truth, probabilities, per_image, threshold, title):
    from frcunet.evaluation.plots import plot_cases

    order = np.argsort(per_image["dice"], kind="stable")
    picks = [("worst", order[0]), ("median", order[len(order) // 2]), ("best", order[-1])]
    cases = [(f"{label}: {ids[i]}  Dice {per_image['dice'][i]:.3f}", images[i], truth[i], probabilities[i] > threshold)
             for label, i in picks]
    plot_cases(cases, path, title)


def evaluate(config: EvaluateConfig) -> tuple[EvaluationMetrics, Path]:
    """Evaluates as `config` says; returns (metrics dict, output folder)."""
    from frcunet.artifacts.runs import default_run_folder, load_run_model
    from frcunet.evaluation.plots import plot_precision_recall, plot_roc
    from frcunet.inference.prediction import check_threshold, predict_batches, resize_images, resize_probabilities

    if config.batch_size < 1:
        raise UserError("--batch-size must be at least 1")
    if config.pretrained and config.run:
        raise UserError("--pretrained scores the shipped model; drop --run (or --pretrained)")
    run = Path("pretrained") if config.pretrained else \
        Path(config.run or default_run_folder(config.data))
    check_threshold(config.threshold, "--threshold")
    prepared = PreparedFolder(config.data)
    test = prepared.split("test")
    if len(test) == 0:
        raise UserError(f"the test split of {config.data} is empty; prepare it with a non-empty test share")
    model, run_config = load_run_model(None if config.pretrained else run)
    model_size = run_config.size
    if test.size != model_size and not config.resize:
        raise UserError(f"the test images are {test.size[0]}x{test.size[1]} but {run} was trained at "
                        f"{model_size[0]}x{model_size[1]}; pass --resize to predict at the model's size")
    ids, original_sizes, entries = _test_ids_and_sizes(prepared, len(test))
    _check_unseen("the shipped model" if config.pretrained else run, run_config, prepared, ids, config.allow_seen)
    out = Path(config.out or Path("output") / run.name)
    # Checked before the long prediction, and again when the folder is written.
    keep_clear = dict(keep_clear=(config.data,) if config.pretrained else (config.data, run))
    check_output_folder(out, "evaluation", **keep_clear)

    images = np.asarray(test.images)
    truth = np.asarray(test.masks).astype(bool)
    model_images = resize_images(images, model_size) if test.size != model_size else images
    probabilities = predict_batches(model, model_images, config.batch_size, config.tta, config.progress)
    if test.size != model_size:
        probabilities = np.stack([resize_probabilities(p, test.size) for p in probabilities])
    counts, per_image = _score(truth, probabilities, config.threshold)
    if config.native and entries is None:
        raise UserError(f"--native needs {Path(config.data) / MANIFEST} to find the original masks")
    progress = None
    if not config.pretrained:
        from frcunet.artifacts.runs import run_progress

        progress = run_progress(run)

    with atomic_folder(out, "evaluation", **keep_clear) as staging:
        native = None
        if config.native:
            native = _summary(*_score_native(entries, ids, probabilities, config.threshold, config.progress,
                                             staging / "masks"))
        else:
            _write_masks(staging / "masks", ids, probabilities, original_sizes, config.threshold, config.progress)
        metrics = EvaluationMetrics(_summary(counts, per_image), len(ids), config.threshold, test.size, native,
                                    str(run), run_config.model, str(config.data), asdict(config), versions(),
                                    progress)
        write_metrics(staging, metrics)
        _write_per_image(staging / "per_image.csv", ids, per_image)
        title = f"{run.name} on {Path(config.data).name} test ({len(ids)} images)"
        plot_roc(counts, metrics.summary.pooled, staging / "ROC.png", title)
        plot_precision_recall(counts, metrics.summary.pooled, staging / "Precision_recall.png", title)
        _case_figure(staging / "overlays.png", ids, images, truth, probabilities, per_image, config.threshold, title)
        (staging / "results.md").write_text(_results_markdown(run, config, metrics))
        _write_report(staging, run, config, metrics, ids, images, truth, probabilities, per_image, original_sizes,
                      prepared.manifest)
    return metrics, out


def _write_report(folder, run, config, metrics, ids, images, truth, probabilities, per_image, original_sizes,
                  manifest):
    """report.html and its thumbnails and overlays (frcunet.reports.evaluate)."""
    from frcunet.core.provenance import git_commit
    from frcunet.reports.evaluate import Cases, poor_masks, write_evaluation_report
    from frcunet.reports.html import stamp

    grid, name = metrics.grid, f"{metrics.model} ({run.name})"
    progress = metrics.run_progress
    about = [
        ("run", f"{run.name} on {Path(config.data).name}"),
        ("run folder", "the model shipped with the package" if config.pretrained else str(run)),
        ("model", metrics.model),
        ("data", f"{config.data}: its test split, {len(ids)} images scored at {grid[0]}x{grid[1]}"),
        ("settings", f"threshold {config.threshold}{', flip TTA' if config.tta else ''}"
                     f"{', resized to the model' if config.resize else ''}"),
        ("training", None if not progress or progress["finished"] else
         f"unfinished: {progress['epochs_done']} of {progress['epochs_planned']} epochs, best epoch "
         f"{progress['best_epoch']} scored"),
        ("written", f"{stamp()} by frcunet {metrics.versions.get('frcunet')}, commit {git_commit() or 'unknown'}"),
        ("files", "metrics.json, per_image.csv, results.md, masks/ (beside this page)"),
    ]
    header = ["", *(column for column, _, _ in RESULT_COLUMNS)]
    rows = [[name, *results_cells(metrics.summary)]]
    if metrics.native:
        rows.append([name + " native", *results_cells(metrics.native)])
    cases = Cases(ids, images, truth, probabilities, per_image, config.threshold, original_sizes)
    write_evaluation_report(folder, cases, about, (header, rows), poor_masks(manifest))


def _results_markdown(run, config, metrics):
    grid = metrics.grid
    text = f"# Evaluation of {run}\n\nTest split of {config.data}: {metrics.n_images} images scored at " \
           f"{grid[0]}x{grid[1]}, threshold {config.threshold}{', flip TTA' if config.tta else ''}.\n\n"
    name = f"{metrics.model} ({run.name})"
    text += results_table(name, metrics.summary) + "\n"
    if metrics.native:
        text += "\nAt each image's original size, against the original masks:\n\n"
        text += results_table(name + " native", metrics.native) + "\n"
    text += ("\nHD95/img leaves out images where one mask is empty; HD95 diag. counts them as the image "
             "diagonal. AP is the average precision.\n")
    return text + ("\nF1..PC and JS pool every test pixel (JS is the true Jaccard, F1/(2-F1)); the reference's "
                   "'JS' equalled accuracy and is shown as legacy JS. /img columns are per-image means.\n")


def printed_tables(metrics: EvaluationMetrics) -> str:
    """The results table of an evaluation's metrics (and its native-size table), as the command prints it."""
    name = f"{metrics.model} ({Path(metrics.run).name})"
    tables = [results_table(name, metrics.summary)]
    if metrics.native:
        tables.append(results_table(name + " native", metrics.native))
    return "\n".join(tables)
