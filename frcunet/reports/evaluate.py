"""report.html of `frcunet evaluate`: the run, the data, the summary, the curves, and every test image.

One row per test image: its thumbnail with the ground truth's and the prediction's contours, Dice, IoU, HD95,
the lesion's area and the predicted area, and whether the image is a known poor mask, where the dataset folder
lists them (`flagged_ids.txt`, one id a line, beside the download; for ISIC 2018, 31 ids).
Worst Dice first; a click on a thumbnail opens the full-size overlay (report/overlays/<id>.jpg).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from frcunet.reports import html
from frcunet.reports.images import Case, thumbnail_size, write_cases

if TYPE_CHECKING:
    from frcunet.data.manifest import Manifest

REPORT = "report.html"
FILES = "report"  # beside report.html: thumbs/ and overlays/
POOR_MASKS_FILE = "flagged_ids.txt"
TAIL_LIMITS = (0.5, 0.8)


def poor_masks(manifest: Manifest | None) -> set[str] | None:
    """Ids of known poor ground-truth masks that a prepared folder's dataset lists, or None when it lists none.

    Read from `flagged_ids.txt` in the dataset folder the manifest names (`source_dir`): one id a line, blank
    lines and lines starting with '#' ignored.
    """
    if manifest is None or not manifest.source_dir:
        return None
    try:
        text = (Path(manifest.source_dir) / POOR_MASKS_FILE).read_text()
    except OSError:
        return None
    return {line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")}


@dataclass
class Cases:
    """The scored test images. ids: list of str; images: uint8 (N, H, W, 3); truth: bool (N, H, W);
    probabilities: float (N, H, W); per_image: metrics.per_image_metrics' dict; threshold: float; original_sizes:
    each image's (H, W) before it was prepared, or None: the drawings take the original's aspect (a 4:3 photo
    prepared at 128x128 is shown 4:3)."""

    ids: list[str]
    images: np.ndarray
    truth: np.ndarray
    probabilities: np.ndarray
    per_image: dict[str, np.ndarray]
    threshold: float
    original_sizes: Sequence[tuple[int, int]] | None = None

    def shape(self, i: int) -> tuple[int, int] | None:
        return tuple(self.original_sizes[i]) if self.original_sizes else None


COLUMNS = [
    html.Column("thumb", "image", "image"),
    html.Column("id", "id", "text"),
    html.Column("dice", "Dice", digits=4, note="per-image Dice at the threshold", filter=True),
    html.Column("iou", "IoU", digits=4, note="per-image Jaccard index", filter=True),
    html.Column("hd95", "HD95 (px)", digits=1, note="95th percentile Hausdorff distance in pixels of the scored "
                "grid; '-' where one mask is empty", filter=True),
    html.Column("area", "lesion area %", digits=1, note="ground-truth lesion pixels, % of the image", filter=True),
    html.Column("predicted", "predicted area %", digits=1, note="predicted lesion pixels, % of the image",
                filter=True),
]
POOR_COLUMN = html.Column("poor", "poor mask", "flag", note=f"listed in the dataset's {POOR_MASKS_FILE} as a known "
                          "poor ground-truth mask")


def case_rows(cases: Cases, poor: set[str] | None = None) -> list[dict[str, Any]]:
    """The table's rows: one dict per test image."""
    truth_area = cases.truth.reshape(len(cases.ids), -1).mean(axis=1) * 100
    predicted_area = (cases.probabilities > cases.threshold).reshape(len(cases.ids), -1).mean(axis=1) * 100
    rows = []
    for i, image_id in enumerate(cases.ids):
        rows.append({
            "thumb": (html.href(FILES, "thumbs", f"{image_id}.jpg"), html.href(FILES, "overlays", f"{image_id}.jpg"),
                      thumbnail_size(cases.images.shape[1:3], cases.shape(i))),
            "id": image_id, "dice": float(cases.per_image["dice"][i]), "iou": float(cases.per_image["iou"][i]),
            "hd95": float(cases.per_image["hd95"][i]), "area": float(truth_area[i]),
            "predicted": float(predicted_area[i]), "poor": poor is not None and image_id in poor,
        })
    return rows


def _distribution(per_image):
    """Rows of the per-image distribution table: mean ± sd, median, 5th percentile, worst, undefined."""
    rows = []
    for key, label, digits in (("dice", "Dice", 4), ("iou", "IoU", 4), ("hd95", "HD95 (px)", 2)):
        values = np.asarray(per_image[key], float)
        defined = values[np.isfinite(values)]
        if not len(defined):
            rows.append([label, "-", "-", "-", "-", str(len(values))])
            continue
        worst = defined.max() if key == "hd95" else defined.min()
        low = np.percentile(defined, 95 if key == "hd95" else 5)
        rows.append([label, f"{defined.mean():.{digits}f} ± {defined.std():.{digits}f}",
                     f"{np.median(defined):.{digits}f}", f"{low:.{digits}f}", f"{worst:.{digits}f}",
                     str(len(values) - len(defined))])
    return rows


def _tail(dice):
    dice = np.asarray(dice, float)
    parts = [f"{int((dice < limit).sum())} images ({100 * (dice < limit).mean():.1f} %) below Dice {limit}"
             for limit in TAIL_LIMITS]
    return "Long tail: " + ", ".join(parts) + "."


def _poor_summary(rows, poor):
    listed = [r["dice"] for r in rows if r["poor"]]
    others = [r["dice"] for r in rows if not r["poor"]]
    if not listed:
        return f"None of the test images is among the {len(poor)} known poor masks of the dataset ({POOR_MASKS_FILE})."
    others_mean = f"{np.mean(others):.4f}" if others else "-"
    return (f"{len(listed)} test images are known poor masks ({POOR_MASKS_FILE}, marked in the table): mean Dice "
            f"{np.mean(listed):.4f} on them, {others_mean} on the other {len(others)}.")


def write_evaluation_report(folder: Path | str, cases: Cases, about: Sequence[tuple[str, object]],
                            summary: tuple[Sequence[str], Sequence[Sequence[object]]], poor: set[str] | None = None,
                            figures: Sequence[str] = ("ROC.png", "Precision_recall.png"),
                            workers: int | None = None) -> Path:
    """Writes report.html, report/thumbs/ and report/overlays/ into `folder` (an evaluation's staging folder).

    Args:
        folder: Path. Where report.html goes; the ROC and PR figures are already there.
        cases: Cases.
        about: list of (term, description) pairs: the run, the data, the settings.
        summary: (header, rows) of the results table (evaluation.results_table's columns).
        poor: set of ids of known poor masks, or None when the dataset lists none.
        figures: file names of the figures beside report.html.
        workers: threads that draw the images (default: one per core).

    Returns:
        Path of report.html.
    """
    folder = Path(folder)
    write_cases([Case(image_id, cases.images[i], cases.probabilities[i], cases.truth[i], cases.shape(i))
                 for i, image_id in enumerate(cases.ids)], folder / FILES, cases.threshold, workers)
    rows = case_rows(cases, poor)
    columns = COLUMNS + ([POOR_COLUMN] if poor is not None else [])
    header, summary_rows = summary
    title = about[0][1] if about else "Evaluation"
    body = [
        html.element("h1", f"Evaluation: {title}"),
        html.facts(about),
        html.element("h2", "Summary"),
        html.simple_table(header, summary_rows, "Pooled over every test pixel (F1..AP) and per-image means (/img)"),
        html.simple_table(["per image", "mean ± sd", "median", "5 % worst", "worst", "undefined"],
                          _distribution(cases.per_image), "Per-image distribution"),
        html.element("p", _tail(cases.per_image["dice"]), class_="note"),
        html.element("p", _poor_summary(rows, poor), class_="note") if poor is not None else None,
        html.element("div", *(html.element("img", src=html.href(name), alt=name, width="260") for name in figures),
                     html.histogram_svg(cases.per_image["dice"], "per-image Dice"), class_="figures"),
        html.element("h2", f"Every test image ({len(rows)})"),
        html.element("p", "Worst Dice first. Click a column's title to sort by it (again for the other direction), "
                     "a thumbnail for its full-size overlay.", class_="note"),
        html.legend(truth=True),
        html.case_table("evaluation", columns, rows, sort="dice", what="test images"),
    ]
    html.write_page(folder / REPORT, f"Evaluation: {title}", *body)
    return folder / REPORT
