"""The evaluation report's cost: the time to write it for a test split, and its load time in headless Chromium.

    python benchmarks/report_speed.py --data PREPARED [--repeats 3] [--out output/report_speed]

Predicts the test split of a prepared folder with the shipped model (ONNX Runtime), scores it, then, `--repeats`
times each:
- writes report.html with its thumbnails and overlays (frcunet.reports.evaluate), timed whole and in its two
  parts: drawing and saving the images, and building and writing the page;
- opens it in a fresh headless Chromium (tests/chromium.py) and times the load (from navigation to the load
  event, on the clock of this process and in the page's Navigation Timing), one sort of the table and one
  filter (in the page, with performance.now()).
Prints the medians and the page's size. For the numbers in docs/benchmarks.md, "Reports": ISIC 2018's 467
held-out test images at 128x128 (the shipped model's record lists them; prepare them with --split-file).
"""

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the Chromium driver the browser tests use


def scored_split(data):
    """The shipped model's scored Cases of the test split of `data`."""
    from frcunet.data.manifest import read_manifest
    from frcunet.data.pipeline import open_split
    from frcunet.evaluation.metrics import per_image_metrics
    from frcunet.inference.prediction import predict_batches, resize_images, shipped_onnx
    from frcunet.reports.evaluate import Cases

    test = open_split(data, "test")
    entries = read_manifest(data).splits["test"]
    model = shipped_onnx()
    images = np.asarray(test.images)
    probabilities = predict_batches(model, resize_images(images, model.size), 16, progress=False)
    if probabilities.shape[1:] != images.shape[1:3]:
        raise SystemExit("prepare the data at the shipped model's 128x128")
    truth = np.asarray(test.masks).astype(bool)
    return Cases([e.id for e in entries], images, truth, probabilities, per_image_metrics(truth, probabilities, 0.5),
                 0.5, [e.original_size for e in entries])


def write_once(folder, cases, poor):
    """Seconds to write the whole report, and to draw its images alone."""
    from frcunet.reports.evaluate import FILES, write_evaluation_report
    from frcunet.reports.images import Case, write_cases

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    start = time.perf_counter()
    write_evaluation_report(folder, cases, [("run", "shipped model")], (["", "F1"], [["shipped", "-"]]), poor,
                            figures=())
    whole = time.perf_counter() - start
    shutil.rmtree(folder / FILES)
    start = time.perf_counter()
    write_cases([Case(i, cases.images[k], cases.probabilities[k], cases.truth[k], cases.shape(k))
                 for k, i in enumerate(cases.ids)], folder / FILES, cases.threshold)
    return whole, time.perf_counter() - start


def browse_once(page_path):
    """Load seconds (wall clock, Navigation Timing's DOMContentLoaded and load) and in-page ms of a sort and a
    filter."""
    from chromium import Chromium

    with Chromium(width=1400, height=1000) as page:
        wall = page.open(page_path)
        timing = page.evaluate("(() => { const n = performance.getEntriesByType('navigation')[0];"
                               " return [n.domContentLoadedEventEnd, n.loadEventEnd]; })()")
        sort = page.evaluate("(() => { const t = performance.now();"
                             " document.querySelector('th[data-key=iou] button').click();"
                             " return performance.now() - t; })()")
        filtered = page.evaluate("(() => { const f = document.getElementById('filter-value-evaluation');"
                                 " const t = performance.now(); f.value = '0.8';"
                                 " f.dispatchEvent(new Event('input')); return performance.now() - t; })()")
        shown = page.evaluate("document.querySelector('.count').textContent")
        assert not page.errors() and not page.external_requests(), (page.errors(), page.external_requests())
    return wall, timing[0] / 1000, timing[1] / 1000, sort, filtered, shown


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="prepared folder at 128x128")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "output" / "report_speed")
    args = parser.parse_args()

    from frcunet.reports.evaluate import poor_masks

    cases = scored_split(args.data)
    poor = poor_masks(args.data)
    writes = [write_once(args.out, cases, poor) for _ in range(args.repeats)]
    loads = [browse_once(args.out / "report.html") for _ in range(args.repeats)]
    files = sorted((args.out / "report").rglob("*.jpg"))
    result = {
        "cases": len(cases.ids),
        "write_s": statistics.median(w[0] for w in writes),
        "images_s": statistics.median(w[1] for w in writes),
        "all_write_s": [round(w[0], 2) for w in writes],
        "load_wall_s": statistics.median(x[0] for x in loads),
        "dom_content_loaded_s": statistics.median(x[1] for x in loads),
        "load_event_s": statistics.median(x[2] for x in loads),
        "all_load_event_s": [round(x[2], 3) for x in loads],
        "sort_ms": statistics.median(x[3] for x in loads),
        "filter_ms": statistics.median(x[4] for x in loads),
        "filter_shows": loads[0][5],
        "page_kb": (args.out / "report.html").stat().st_size / 1024,
        "images_mb": sum(f.stat().st_size for f in files) / 2**20,
        "thumbnail_kb": np.mean([f.stat().st_size for f in files if f.parent.name == "thumbs"]) / 1024,
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
