"""An evaluation's metrics.json, typed: `write_metrics` is its one writer (`frcunet evaluate`), `read_metrics` its
one reader (compare, the GPU script, shipping a model); everything else reads the record's fields.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from frcunet.core.errors import UserError
from frcunet.core.saving import read_json

METRICS_FILE = "metrics.json"


@dataclass(frozen=True)
class MetricsSummary:
    """One scoring of a test split: pooled pixel metrics and per-image statistics.

    `pooled` maps f1, se, sp, acc, pc, js, auc_roc, auc_pr to their values; the per-image maps take dice, iou,
    hd95, hd95_diag.
    """

    pooled: dict[str, float]
    per_image_mean: dict[str, float]
    per_image_std: dict[str, float] = field(default_factory=dict)
    per_image_undefined: dict[str, int] = field(default_factory=dict)
    thresholded_jaccard: float = math.nan  # the ISIC challenge's score
    legacy_js_equals_accuracy: float = math.nan  # what the released code called JS

    def value(self, path: tuple[str, ...]) -> float | None:
        """The value at `path` ("pooled", "f1") or ("thresholded_jaccard",); None where an older file lacks it."""
        found: Any = getattr(self, path[0], None)
        for key in path[1:]:
            found = found.get(key) if isinstance(found, dict) else None
        return found

    @classmethod
    def from_dict(cls, values: dict) -> MetricsSummary:
        known = {key: values[key] for key in cls.__dataclass_fields__ if key in values}
        return cls(**known)


@dataclass(frozen=True)
class EvaluationMetrics:
    """Everything metrics.json holds: the summary at the prepared grid, the same at each image's original size
    (`native`, with --native), and what was scored with what."""

    summary: MetricsSummary
    n_images: int
    threshold: float
    grid: tuple[int, int]  # (height, width) the test images were scored at
    native: MetricsSummary | None = None
    run: str = ""
    model: str = ""
    data: str = ""
    settings: dict[str, Any] = field(default_factory=dict)  # the EvaluateConfig
    versions: dict[str, str] = field(default_factory=dict)
    run_progress: dict[str, Any] | None = None  # epochs done and planned, finished, best epoch

    def as_dict(self) -> dict[str, Any]:
        """The JSON form: the summary's fields at the top level, as metrics.json has always had them."""
        values = {**asdict(self.summary), **asdict(self), "grid": list(self.grid)}
        del values["summary"]
        if self.native is None:
            del values["native"]
        if self.run_progress is None:
            del values["run_progress"]
        return values

    @classmethod
    def from_dict(cls, values: dict, source: Path | str) -> EvaluationMetrics:
        try:
            native = values.get("native")
            return cls(MetricsSummary.from_dict(values), int(values["n_images"]), float(values["threshold"]),
                       tuple(values["grid"]), MetricsSummary.from_dict(native) if native else None,
                       str(values.get("run", "")), str(values.get("model", "")), str(values.get("data", "")),
                       dict(values.get("settings") or {}), dict(values.get("versions") or {}),
                       values.get("run_progress"))
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(f"{source} is not a metrics.json that `frcunet evaluate` wrote "
                            f"({exc.__class__.__name__}); evaluate again") from None


def write_metrics(folder: Path | str, metrics: EvaluationMetrics) -> None:
    """Writes metrics.json into `folder` (evaluate's staging folder, published whole)."""
    (Path(folder) / METRICS_FILE).write_text(json.dumps(metrics.as_dict(), indent=1, allow_nan=True))


def read_metrics(folder: Path | str) -> EvaluationMetrics:
    """The EvaluationMetrics of an evaluation's output folder; UserError when missing or malformed."""
    path = Path(folder) / METRICS_FILE
    return EvaluationMetrics.from_dict(read_json(path, "evaluate again", missing="run frcunet evaluate first"), path)
