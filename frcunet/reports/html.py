"""HTML pages built as element trees and serialised once, by the standard library (xml.etree.ElementTree).

Text and attribute values are escaped by the serialiser, never by hand. A page inlines the project's own
stylesheet and script (assets/report.css, assets/report.js, a few kilobytes), so that it is one file beside its
images and works from file:// with no network.

A case table (`case_table`) is the reports' common part: one row per case, every column sortable (a click on
its header; again for the other direction), a filter that shows the rows whose chosen column lies below a
value, and thumbnails that open the full-size overlay. The rows are written in the default order, so the page
reads right before its script runs.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

from frcunet.reports.images import PREDICTION_COLOUR, TRUTH_COLOUR


def element(tag: str, *children: object, **attributes: object) -> ET.Element:
    """An Element. Children are Elements or strings (text); None children and None or False attributes are
    left out, True attributes written bare. `class_` is `class`, `data_key` is `data-key`."""
    node = ET.Element(tag, {_attribute_name(k): "" if v is True else str(v)
                            for k, v in attributes.items() if v is not None and v is not False})
    for child in children:
        _append(node, child)
    return node


def _attribute_name(name):
    return name.rstrip("_").replace("_", "-")


def _append(node, child):
    if child is None:
        return
    if isinstance(child, (list, tuple)):
        for item in child:
            _append(node, item)
    elif isinstance(child, ET.Element):
        node.append(child)
    elif len(node):
        node[-1].tail = (node[-1].tail or "") + str(child)
    else:
        node.text = (node.text or "") + str(child)


def _asset(name):
    return resources.files("frcunet.reports").joinpath("assets", name).read_text(encoding="utf-8")


def render_page(title: str, *body: ET.Element | None) -> str:
    """The whole document as a string: head (title, inlined style), body, the inlined script last."""
    page = element(
        "html",
        element("head", element("meta", charset="utf-8"),
                element("meta", name="viewport", content="width=device-width, initial-scale=1"),
                element("title", title), element("style", _asset("report.css"))),
        element("body", *body, _viewer(), element("script", _asset("report.js"))),
        lang="en")
    return "<!DOCTYPE html>\n" + ET.tostring(page, encoding="unicode", method="html") + "\n"


def write_page(path: Path, title: str, *body: ET.Element | None) -> None:
    """Writes the page to `path` (the caller makes it atomic: a staging folder or saving.atomic_path)."""
    path.write_text(render_page(title, *body), encoding="utf-8")


def _viewer():
    """The dialog in which a thumbnail's full-size overlay opens (without the script, the link opens it)."""
    return element("dialog", element("figure", element("img", alt=""), element("figcaption")), id="viewer")


def href(*parts: object) -> str:
    """A relative URL of a file path's parts (a file name may hold spaces, '#' or '?')."""
    return "/".join(quote(str(part)) for part in parts)


def stamp() -> str:
    """When a report was written, in UTC."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def facts(pairs: Iterable[tuple[str, object]]) -> ET.Element:
    """A definition list of (term, description) pairs, those without a description left out."""
    items = []
    for term, description in pairs:
        if description not in (None, ""):
            items += [element("dt", term), element("dd", description)]
    return element("dl", *items, class_="facts")


def simple_table(header: Iterable[object], rows: Iterable[Iterable[object]], caption: str | None = None) -> ET.Element:
    """A plain table (summaries): `header` strings, rows of strings; it scrolls sideways when wider than the
    window."""
    table = element("table", element("caption", caption) if caption else None,
                    element("thead", element("tr", *(element("th", h, scope="col") for h in header))),
                    element("tbody", *(element("tr", *(element("td", str(c)) for c in row)) for row in rows)),
                    class_="summary")
    return element("div", table, class_="wide")


def legend(truth: bool = True) -> ET.Element:
    """The contour colours."""
    keys = [("truth", "ground truth", TRUTH_COLOUR)] if truth else []
    keys.append(("prediction", "prediction", PREDICTION_COLOUR))
    return element("p", *(element("span", element("span", class_="swatch", style=f"background:{colour}"),
                                   label, class_=f"key {name}") for name, label, colour in keys),
                   class_="legend")


@dataclass
class Column:
    """A column of a case table.

    key: the row dict's key; header: the title shown; kind: "number", "text", "flag" (True shown as "yes")
    or "image" (a (thumbnail URL, overlay URL, (height, width)) triple, or None); digits: decimals of a
    number; note: the header's tooltip (what the column means); filter: offered in the filter's list.
    """

    key: str
    header: str
    kind: str = "number"
    digits: int = 3
    note: str = ""
    filter: bool = False


def _undefined(value, kind):
    return kind == "number" and (value is None or (isinstance(value, float) and math.isnan(value)))


def _sort_key(value, kind):
    """The order the script sorts defined values in: numbers, flags as 0/1, text."""
    if kind == "number":
        return value
    if kind == "flag":
        return int(bool(value))
    return str(value)


def _cell(column, value, caption):
    if column.kind == "image":
        if value is None:
            return element("td", "-", class_="thumb")
        thumbnail, overlay, (height, width) = value
        return element("td", element("a", element("img", src=thumbnail, width=width, height=height, alt=caption,
                                                   loading="lazy", decoding="async"),
                                     href=overlay, class_="full", data_caption=caption), class_="thumb")
    if column.kind == "number":
        undefined = _undefined(value, "number")
        shown = "-" if undefined else f"{value:.{column.digits}f}"
        return element("td", shown, data_v="" if undefined else repr(float(value)), class_="number")
    if column.kind == "flag":
        return element("td", "yes" if value else "", data_v="1" if value else "0", class_="flag")
    return element("td", str(value))


def case_table(name: str, columns: Sequence[Column], rows: Sequence[dict[str, Any]], sort: str,
               descending: bool = False, filter_column: str | None = None, filter_value: float | None = None,
               caption_key: str = "id", what: str = "cases") -> ET.Element:
    """A sortable, filterable table of cases, one row per dict in `rows`.

    Args:
        name: str. Unique on the page; the table's id is `cases-<name>`.
        columns: list of Column.
        rows: list of dicts (Column.key -> value).
        sort: str. The key of the column the rows are first sorted by (undefined values last).
        descending: bool. The first sort's direction.
        filter_column: str or None. The column the filter starts on (default: `sort`'s).
        filter_value: float or None. The filter's starting value (None: every row shown).
        caption_key: str. The key whose value names a case in the full-size viewer.
        what: str. What a row is, for the count line ("12 of 520 cases shown").

    Returns:
        Element: a div holding the filter, the count line and the table.
    """
    kind = next(c.kind for c in columns if c.key == sort)
    defined = [row for row in rows if not _undefined(row.get(sort), kind)]
    # Undefined values last in either direction, as the script sorts; equal values keep their order.
    order = sorted(defined, key=lambda row: _sort_key(row.get(sort), kind), reverse=descending) + \
        [row for row in rows if _undefined(row.get(sort), kind)]
    header = element("tr", *(_header(c, sort, descending) for c in columns))
    body = element("tbody", *(_row(row, columns, _caption(row, caption_key, columns)) for row in order))
    table = element("table", element("thead", header), body, id=f"cases-{name}", class_="cases",
                    data_what=what)
    return element("div", _filter(name, columns, filter_column or sort, filter_value),
                   element("p", f"{len(rows)} {what}", class_="count", aria_live="polite"), table,
                   class_="case-table")


def _row(row, columns, caption):
    return element("tr", *(_cell(column, row.get(column.key), caption) for column in columns))


def _caption(row, caption_key, columns):
    """What the full-size viewer shows under a case's overlay: its name and its numbers."""
    parts = [str(row.get(caption_key, ""))]
    for column in columns:
        value = row.get(column.key)
        if column.kind == "number" and column.filter and not _undefined(value, "number"):
            parts.append(f"{column.header} {value:.{column.digits}f}")
    return " · ".join(parts)


def _header(column, sort, descending):
    state = ("descending" if descending else "ascending") if column.key == sort else None
    if column.kind == "image":
        return element("th", column.header, scope="col", class_="thumb")
    kind = "number" if column.kind in ("number", "flag") else "text"
    return element("th", element("button", column.header, type="button", title=column.note or None),
                   scope="col", data_key=column.key, data_type=kind, aria_sort=state)


def _filter(name, columns, start, value):
    choices = [c for c in columns if c.filter]
    if not choices:
        return None
    select = element("select", *(element("option", c.header, value=c.key, selected=c.key == start)
                                 for c in choices), id=f"filter-column-{name}", class_="filter-column")
    field = element("input", type="number", step="0.05", id=f"filter-value-{name}", class_="filter-value",
                    value=None if value is None else f"{value:g}", placeholder="any", inputmode="decimal")
    return element("p", element("label", "Show rows whose ", for_=f"filter-column-{name}"), select,
                   element("label", " is below ", for_=f"filter-value-{name}"), field,
                   element("button", "show all", type="button", class_="filter-clear"), class_="filter")


def histogram_svg(values: Iterable[float | None], label: str, bins: int = 20, lines: Iterable[float] = (0.5, 0.8),
                  width: int = 380, height: int = 250) -> ET.Element:
    """An inline SVG histogram of values in [0, 1] (NaN left out), with dashed marks at `lines`."""
    values = [v for v in values if v is not None and not math.isnan(v)]
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, max(0, int(v * bins)))] += 1
    left, bottom, top, right = 40, 30, 12, 10
    plot_w, plot_h = width - left - right, height - top - bottom
    tallest = max(counts) or 1
    bar_w = plot_w / bins
    shapes = []
    for i, count in enumerate(counts):
        h = plot_h * count / tallest
        shapes.append(element("rect", element("title", f"{i / bins:.2f}-{(i + 1) / bins:.2f}: {count}"),
                              x=f"{left + i * bar_w + 0.5:.1f}", y=f"{top + plot_h - h:.1f}",
                              width=f"{bar_w - 1:.1f}", height=f"{h:.1f}", fill=TRUTH_COLOUR))
    for mark in lines:
        x = f"{left + plot_w * mark:.1f}"
        shapes.append(element("line", x1=x, x2=x, y1=str(top), y2=str(top + plot_h), stroke="#555",
                              stroke_dasharray="4 3"))
    axis_y = top + plot_h
    shapes.append(element("line", x1=str(left), x2=str(left + plot_w), y1=str(axis_y), y2=str(axis_y),
                          stroke="#333"))
    for tick in (0, 0.25, 0.5, 0.75, 1):
        shapes.append(element("text", f"{tick:g}", x=f"{left + plot_w * tick:.1f}", y=str(axis_y + 14),
                              text_anchor="middle"))
    shapes += [element("text", label, x=f"{left + plot_w / 2:.1f}", y=str(height - 2), text_anchor="middle"),
               element("text", str(tallest), x=str(left - 4), y=str(top + 4), text_anchor="end"),
               element("text", "0", x=str(left - 4), y=str(axis_y), text_anchor="end")]
    return element("svg", element("title", f"histogram of {label}"), *shapes, xmlns="http://www.w3.org/2000/svg",
                   viewBox=f"0 0 {width} {height}", width=str(width), height=str(height), role="img",
                   class_="histogram")
