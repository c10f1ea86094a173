"""report.html of `frcunet predict --report`: every predicted mask drawn on its image, to check masks by eye.

There is no ground truth, so the table gives what hints at a doubtful mask instead: the predicted area, the
share of the image where the model hesitates (probabilities between 0.25 and 0.75: a wide band around the
contour) and the share of the image's border predicted as lesion (a lesion cut off by the frame, or dark
vignetted corners taken for lesion). Most hesitant first. Overlays are drawn on the photo itself, read again
at up to 640 pixels (the network saw it at its own, smaller size).

numpy and Pillow only: the prediction-only install writes it too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from frcunet.reports import html
from frcunet.reports.images import GALLERY_SIDE, Case, fit, make_folders, thumbnail_size, write_case

REPORT = "report.html"
FILES = "report"  # beside report.html: thumbs/ and overlays/
HESITANT = (0.25, 0.75)

COLUMNS = [
    html.Column("thumb", "image", "image"),
    html.Column("file", "file", "text"),
    html.Column("area", "predicted area %", digits=1, note="predicted lesion pixels, % of the image", filter=True),
    html.Column("hesitant", "hesitant %", digits=1, filter=True,
                note=f"pixels with a probability between {HESITANT[0]} and {HESITANT[1]}, % of the image"),
    html.Column("border", "border %", digits=1, filter=True,
                note="the image's outermost pixels predicted as lesion, % of them"),
]


def mask_statistics(probability: np.ndarray, threshold: float) -> dict[str, float]:
    """{area, hesitant, border}: percentages of a probability map (see the module's docstring)."""
    probability = np.asarray(probability, np.float32)
    mask = probability > threshold
    edge = np.concatenate([mask[0], mask[-1], mask[1:-1, 0], mask[1:-1, -1]])
    hesitant = (probability > HESITANT[0]) & (probability < HESITANT[1])
    return {"area": 100 * float(mask.mean()), "hesitant": 100 * float(hesitant.mean()),
            "border": 100 * float(edge.mean())}


class Gallery:
    """Draws predict's cases into `folder` (a staging folder) as they come, on predict's writing threads."""

    folder: Path
    threshold: float
    rows: dict[str, dict[str, Any]]

    def __init__(self, folder: Path | str, threshold: float) -> None:
        self.folder, self.threshold = Path(folder), threshold
        make_folders(self.folder)
        self.rows = {}

    def add(self, path: Path, probability: np.ndarray, original_size: tuple[int, int]) -> None:
        """Draws one input: `probability` at the model's size, `original_size` the photo's (H, W)."""
        from frcunet.data.imaging import read_image

        display = fit(original_size, GALLERY_SIDE)
        image = read_image(path, display)[0]
        name = Path(path).stem
        write_case(Case(name, image, probability), self.folder, self.threshold, enlarge=False)
        self.rows[str(path)] = {
            "thumb": (html.href(FILES, "thumbs", f"{name}.jpg"), html.href(FILES, "overlays", f"{name}.jpg"),
                      thumbnail_size(display)),
            "file": Path(path).name, **mask_statistics(probability, self.threshold)}

    def write_page(self, path: Path | str, files: Iterable[Path | str], about: Sequence[tuple[str, object]],
                   failed: Sequence[str] = ()) -> None:
        """Writes report.html to `path` (the caller makes it atomic): the rows of `files`, in their order."""
        rows = [self.rows[str(f)] for f in files if str(f) in self.rows]
        title = f"Predicted masks ({len(rows)} images)"
        body = [
            html.element("h1", title), html.facts(about),
            html.element("p", "Most hesitant first. Click a column's title to sort by it (again for the other "
                         "direction), a thumbnail for the full-size overlay.", class_="note"),
            html.element("p", f"Not predicted ({len(failed)}, unreadable): " + "; ".join(failed), class_="note")
            if failed else None,
            html.legend(truth=False),
            html.case_table("gallery", COLUMNS, rows, sort="hesitant", descending=True, caption_key="file",
                            what="images"),
        ]
        html.write_page(Path(path), title, *body)
