"""report.html of `frcunet compare`: every test image, a column per model, where the first model wins and loses.

For each section of the comparison (the test split; optionally the transfer and fine-tuning sets) one row per
test image: each model's Dice on it averaged over the seeds, the difference between the first model and each
other one, and each model's thumbnail side by side (those of its first seed's evaluation, which drew them:
eval/<model>_seed<seed>/report/thumbs/). Sorted by the first difference, the first model's worst losses first.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from frcunet.reports import html
from frcunet.reports.evaluate import FILES, POOR_COLUMN

REPORT = "report.html"


@dataclass
class Section:
    """One block of the comparison.

    name: a short key ("main", "transfer", "finetune"); title: its heading; models: names, the first compared with
    the others; dice: {model: [{image id: Dice} per seed]}; evaluations: {model: [evaluation folder per seed]};
    summary and tests: (header, rows) of its Markdown tables; poor: ids of known poor masks, or None; notes:
    paragraphs shown under the tables.
    """

    name: str
    title: str
    models: list[str]
    dice: dict[str, list[dict[str, float]]]
    evaluations: dict[str, list[Path | str]]
    summary: tuple[Sequence[str], Sequence[Sequence[object]]]
    tests: tuple[Sequence[str], Sequence[Sequence[object]]] | None = None
    poor: set[str] | None = None
    notes: list[str] = field(default_factory=list)


def _mean(values):
    return sum(values) / len(values)


def _thumbnail(out, evaluation, image_id):
    """(thumbnail URL, overlay URL, (H, W)) relative to the report, or None when that evaluation drew none."""
    files = Path(evaluation) / FILES
    try:
        with Image.open(files / "thumbs" / f"{image_id}.jpg") as thumbnail:  # reads the header only
            width, height = thumbnail.size
    except (OSError, ValueError):
        return None
    relative = Path(os.path.relpath(files, out)).parts
    return (html.href(*relative, "thumbs", f"{image_id}.jpg"), html.href(*relative, "overlays", f"{image_id}.jpg"),
            (height, width))


def _delta_key(other):
    return f"delta:{other}"


def section_rows(out: Path | str, section: Section) -> list[dict[str, Any]]:
    """The table's rows: one dict per image that every model and seed scored."""
    first, others = section.models[0], section.models[1:]
    ids = sorted(set.intersection(*(set(d) for model in section.models for d in section.dice[model])))
    rows = []
    for image_id in ids:
        row = {"id": image_id, "poor": section.poor is not None and image_id in section.poor}
        for model in section.models:
            row[f"dice:{model}"] = _mean([d[image_id] for d in section.dice[model]])
            row[f"thumb:{model}"] = _thumbnail(out, section.evaluations[model][0], image_id)
        for other in others:
            row[_delta_key(other)] = row[f"dice:{first}"] - row[f"dice:{other}"]
        rows.append(row)
    return rows


def section_columns(section: Section) -> list[html.Column]:
    first, others = section.models[0], section.models[1:]
    columns = [html.Column(f"thumb:{model}", model, "image") for model in section.models]
    columns.append(html.Column("id", "id", "text"))
    columns += [html.Column(f"dice:{model}", f"Dice {model}", digits=4, filter=True,
                            note=f"{model}'s per-image Dice, averaged over the seeds") for model in section.models]
    columns += [html.Column(_delta_key(other), f"ΔDice {first} − {other}", digits=4, filter=True,
                            note=f"positive: {first} is better on this image") for other in others]
    if section.poor is not None:
        columns.append(POOR_COLUMN)
    return columns


def _section(out: Path, section: Section) -> list[ET.Element | None]:
    rows = section_rows(out, section)
    columns = section_columns(section)
    others = section.models[1:]
    sort = _delta_key(others[0]) if others else f"dice:{section.models[0]}"
    where = (f"Sorted by ΔDice against {others[0]}: the images where {section.models[0]} loses most come first, "
             "the ones where it wins most last (click the column again). ") if others else "Worst Dice first. "
    return [
        html.element("h2", section.title),
        html.simple_table(*section.summary, "Mean ± sd over the seeds"),
        html.simple_table(*section.tests, "Paired per-image test (each image's Dice averaged over the seeds)")
        if section.tests else None,
        *(html.element("p", note, class_="note") for note in section.notes),
        html.element("p", where + "Thumbnails are those of each model's first seed; a click opens the full-size "
                     "overlay.", class_="note"),
        html.case_table(section.name, columns, rows, sort=sort, what="test images"),
    ]


def write_comparison_report(path: Path | str, title: str, about: Sequence[tuple[str, object]],
                            sections: Sequence[Section]) -> None:
    """Writes the comparison's report.html to `path` (the caller makes it atomic).

    Args:
        path: Path of report.html, in the comparison's folder (the thumbnails' links are relative to it).
        title: str. The page's heading.
        about: list of (term, description): the data, the budget, the seeds, the command.
        sections: list of Section, those without results left out by the caller.
    """
    out = Path(path).parent
    body = [html.element("h1", title), html.facts(about), html.legend(truth=True)]
    for section in sections:
        body += _section(out, section)
    html.write_page(Path(path), title, *body)
