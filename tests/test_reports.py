"""The reports of evaluate, compare and predict --report, checked as headless Chromium renders them (issue 29).

The browser tests read the live page: its rows after the script ran, what a click on a column's title and the
filter do, the console, and every request the page made (none may leave the machine).
"""

import csv
import json
import os

import numpy as np
import pytest
from chromium import Chromium, find_chromium
from PIL import Image

from conftest import cli
from frcunet.core.errors import UserError
from frcunet.core.markdown import markdown_table
from frcunet.data.prepare import PrepareConfig, prepare_dataset
from frcunet.data.synthetic import write_synthetic_isic
from frcunet.inference.prediction import predict_files
from frcunet.reports.html import Column, case_table, element, render_page
from frcunet.reports.images import PREDICTION_COLOUR, TRUTH_COLOUR, draw_case, outline

IN18, GT18 = "ISIC2018_Task1-2_Training_Input", "ISIC2018_Task1_Training_GroundTruth"


@pytest.fixture(scope="session")
def browser():
    """Chromium's executable: required in CI (make test installs it as root), skipped only when absent outside CI."""
    found = find_chromium()
    if not found:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("chromium is missing; CI must run the browser tests (apt-get install chromium, as root)")
        pytest.skip("chromium not installed (apt-get install chromium)")
    return found


def _rows(page, table):
    """The rows of a case table as rendered, in their order: {"visible": bool, key: data-v or text, ...}."""
    return page.evaluate(f"""(() => {{
        const table = document.getElementById({json.dumps(table)});
        const keys = Array.from(table.tHead.rows[0].cells).map(th => th.dataset.key || null);
        return Array.from(table.tBodies[0].rows).map(row => {{
            const found = {{visible: row.getClientRects().length > 0}};
            keys.forEach((key, i) => {{
                if (key) found[key] = row.cells[i].dataset.v !== undefined ? row.cells[i].dataset.v
                                                                         : row.cells[i].textContent;
            }});
            return found;
        }});
    }})()""")


def _click_header(page, table, key):
    page.evaluate(f"document.querySelector('#{table} th[data-key={json.dumps(key)}] button').click()")


def _set_filter(page, name, value, column=None):
    page.evaluate(f"""(() => {{
        const column = document.getElementById('filter-column-{name}');
        if ({json.dumps(column)} !== null) {{ column.value = {json.dumps(column)};
                                             column.dispatchEvent(new Event('change')); }}
        const field = document.getElementById('filter-value-{name}');
        field.value = {json.dumps(value)};
        field.dispatchEvent(new Event('input'));
    }})()""")


def _images_load(page):
    """Loads every image of the page (lazy ones too); the number that decoded, and the number of images."""
    return page.evaluate("""Promise.all(Array.from(document.images).filter(i => i.closest('td, .figures'))
        .map(i => { i.loading = 'eager'; return i.decode().then(() => 1, () => 0); }))
        .then(done => [done.reduce((a, b) => a + b, 0), done.length])""")


def _number(value):
    return float(value) if value not in ("", None) else float("nan")


def _check_offline(page, folder):
    assert page.errors() == []
    assert page.external_requests() == []
    # Every file the page asked for is its own (the page, its thumbnails, overlays and figures).
    assert all(url.startswith(folder.resolve().as_uri()) for url in page.requests), page.requests


def test_markdown_table_escapes_pipes_and_refuses_ragged_rows():
    assert markdown_table(["a", "b"], [["x|y", 1]]) == "| a | b |\n| --- | --- |\n| x\\|y | 1 |"
    with pytest.raises(ValueError, match="a row of 1 cells in a table of 2 columns"):
        markdown_table(["a", "b"], [["x"]])


def test_contours_use_the_two_colour_blind_safe_colours():
    image = np.full((32, 32, 3), 128, np.uint8)
    truth = np.zeros((32, 32), bool)
    truth[8:20, 8:20] = True
    probability = np.zeros((32, 32), np.float32)
    probability[14:26, 14:26] = 0.9
    drawn = draw_case(image, probability, 0.5, (96, 96), truth, width=1)
    colours = {tuple(c) for c in drawn.reshape(-1, 3)}
    rgb = [tuple(int(c[i: i + 2], 16) for i in (1, 3, 5)) for c in (TRUTH_COLOUR, PREDICTION_COLOUR)]
    assert colours == {(128, 128, 128), *rgb}
    # A lesion touching the border is outlined along the border too.
    assert outline(np.ones((4, 5), bool)).sum() == 14


def test_a_page_escapes_what_it_shows():
    page = render_page("<t>", element("p", "a < b & \"c\"", title="x\" onload=\"alert(1)"),
                       case_table("t", [Column("id", "id", "text")], [{"id": "</script><b>"}], sort="id"))
    assert "<b>" not in page and "&lt;/script&gt;&lt;b&gt;" in page and 'onload="' not in page
    assert page.startswith("<!DOCTYPE html>") and "http" not in page.replace("http://www.w3.org/2000/svg", "")


@pytest.fixture(scope="module")
def evaluation(tiny_run, tmp_path_factory):
    """The tiny run evaluated on synthetic data whose download lists one test image as a poor mask."""
    root = tmp_path_factory.mktemp("report_eval")
    write_synthetic_isic(root / "syn", 16, seed=3, size=(48, 64), progress=False)
    manifest, _ = prepare_dataset(PrepareConfig("isic2018", root / "syn", root / "prepared", (32, 32),
                                                split=(0.25, 0.25, 0.5), workers=1, progress=False))
    poor = manifest.ids("test")[2]
    (root / "syn" / "flagged_ids.txt").write_text(f"# known poor masks\n{poor}\n")
    done = cli("evaluate", "--run", tiny_run / "run", "--data", root / "prepared", "--out", root / "out",
               "--allow-seen", "--quiet")
    assert done.returncode == 0, done.stderr[-3000:]
    with open(root / "out" / "per_image.csv", newline="") as f:
        cases = list(csv.DictReader(f))
    return root / "out", cases, poor


def test_evaluation_report_shows_every_case_worst_first_sorts_and_filters(evaluation, browser):
    out, cases, poor = evaluation
    assert len(cases) == 8
    assert len(list((out / "report" / "thumbs").glob("*.jpg"))) == 8
    assert len(list((out / "report" / "overlays").glob("*.jpg"))) == 8
    with Image.open(out / "report" / "overlays" / f"{cases[0]['id']}.jpg") as overlay:
        assert overlay.size == (384, 288)  # the 64x48 original's aspect, though scored on a 32x32 grid
    with Chromium(browser) as page:
        page.open(out / "report.html")
        rows = _rows(page, "cases-evaluation")
        assert len(rows) == len(cases) and all(r["visible"] for r in rows)
        dice = [float(r["dice"]) for r in rows]
        assert dice == sorted(dice) and rows[0]["id"] == min(cases, key=lambda c: float(c["dice"]))["id"]
        assert {r["id"]: r["poor"] for r in rows} == {c["id"]: "1" if c["id"] == poor else "0" for c in cases}

        _click_header(page, "cases-evaluation", "area")
        area = [float(r["area"]) for r in _rows(page, "cases-evaluation")]
        assert area == sorted(area)
        _click_header(page, "cases-evaluation", "area")
        assert [float(r["area"]) for r in _rows(page, "cases-evaluation")] == sorted(area, reverse=True)
        _click_header(page, "cases-evaluation", "hd95")  # undefined HD95 (an empty mask) goes last
        hd95 = [_number(r["hd95"]) for r in _rows(page, "cases-evaluation")]
        defined = [v for v in hd95 if v == v]
        assert hd95[: len(defined)] == sorted(defined)

        # The filter shows the rows below a value of the chosen column (Dice by default) and hides the others.
        for column, limit in (("dice", dice[0] + 1e-4), ("area", float(np.median(area)))):
            _set_filter(page, "evaluation", f"{limit:.6f}", column=column)
            shown = [r for r in _rows(page, "cases-evaluation") if r["visible"]]
            assert {r["id"] for r in shown} == {r["id"] for r in rows if float(r[column]) < float(f"{limit:.6f}")}
            count = f"{len(shown)} of {len(cases)} test images shown" if len(shown) < len(cases) else \
                f"{len(cases)} test images"
            assert page.evaluate("document.querySelector('.count').textContent") == count
        assert 0 < len(shown) < len(cases)
        _set_filter(page, "evaluation", "")
        assert all(r["visible"] for r in _rows(page, "cases-evaluation"))

        assert _images_load(page) == [len(cases) + 2] * 2  # the thumbnails, ROC and PR
        page.evaluate("document.querySelector('#cases-evaluation a.full').click()")
        assert page.evaluate("document.getElementById('viewer').open")
        assert page.evaluate("document.querySelector('#viewer img').decode().then(() => true)")
        _check_offline(page, out)


def test_evaluation_report_marks_the_known_poor_isic_masks(shared_data, tiny_run, tmp_path, browser):
    flagged = sorted((shared_data / "ISIC2018" / "flagged_ids.txt").read_text().split())
    images = sorted(p.stem for p in (shared_data / "ISIC2018" / IN18).glob("ISIC_*.jpg"))
    chosen = flagged[:4] + [i for i in images if i not in flagged][:8]
    data = tmp_path / "isic"
    for folder in (IN18, GT18):
        (data / folder).mkdir(parents=True)
    for image_id in chosen:
        (data / IN18 / f"{image_id}.jpg").symlink_to(shared_data / "ISIC2018" / IN18 / f"{image_id}.jpg")
        mask = f"{image_id}_segmentation.png"
        (data / GT18 / mask).symlink_to(shared_data / "ISIC2018" / GT18 / mask)
    (data / "flagged_ids.txt").symlink_to(shared_data / "ISIC2018" / "flagged_ids.txt")
    split = {"splits": {"train": [], "val": [], "test": [{"id": i} for i in chosen]}}
    (tmp_path / "split.json").write_text(json.dumps(split))
    prepare_dataset(PrepareConfig("isic2018", data, tmp_path / "prepared", (32, 32),
                                  split_file=str(tmp_path / "split.json"), workers=1, progress=False))
    # The tiny run's synthetic ids are ISIC-like: some equal these ones.
    done = cli("evaluate", "--run", tiny_run / "run", "--data", tmp_path / "prepared", "--out", tmp_path / "out",
               "--allow-seen", "--quiet")
    assert done.returncode == 0, done.stderr[-3000:]
    with Chromium(browser) as page:
        page.open(tmp_path / "out" / "report.html")
        rows = _rows(page, "cases-evaluation")
        assert sorted(r["id"] for r in rows if r["poor"] == "1") == flagged[:4]
        assert len(rows) == 12
        assert "4 test images are known poor masks" in page.evaluate("document.body.innerText")
        _check_offline(page, tmp_path / "out")


def _fake_evaluation(folder, ids, dice, grid=(32, 32)):
    """An evaluation folder as evaluate writes it (per-image scores, thumbnails), without a model."""
    from frcunet.evaluation.records import EvaluationMetrics, MetricsSummary
    from frcunet.reports.evaluate import Cases, write_evaluation_report

    rng = np.random.default_rng(len(folder.name))
    images = rng.integers(0, 256, (len(ids), *grid, 3), dtype=np.uint8)
    truth = np.zeros((len(ids), *grid), bool)
    truth[:, 8:24, 8:24] = True
    folder.mkdir(parents=True)
    per_image = {key: np.asarray(dice) for key in ("dice", "iou", "hd95")}
    write_evaluation_report(folder, Cases(ids, images, truth, truth.astype(np.float32), per_image, 0.5),
                            [("run", folder.name)], (["", "F1"], [["x", "1"]]), figures=())
    summary = MetricsSummary({"f1": float(np.mean(dice))}, {"dice": float(np.mean(dice))})
    return EvaluationMetrics(summary, len(ids), 0.5, grid), dict(zip(ids, dice, strict=True))


def test_comparison_report_puts_each_model_side_by_side_losses_first(prepared, tmp_path, browser):
    from frcunet.evaluation.budgets import BUDGETS
    from frcunet.evaluation.compare import (
        CompareConfig,
        _evaluation_folder,
        _open_comparison_folder,
        _write_report,
    )

    ids = [e["id"] for e in json.loads((prepared / "manifest.json").read_text())["splits"]["test"]]
    rng = np.random.default_rng(0)
    models = ["frcunet-lite", "unet"]
    config = CompareConfig(str(prepared), str(tmp_path / "cmp"), models=models, seeds=(0, 1))
    out = _open_comparison_folder(tmp_path / "cmp", (config.data,))
    sections = {"main": {m: [] for m in models}, "transfer": {}, "finetune": {}}
    for model in models:
        for seed in config.seeds:
            dice = list(rng.uniform(0.3, 1.0, len(ids)))
            metrics, scores = _fake_evaluation(_evaluation_folder(out, model, seed, "main"), ids, dice)
            sections["main"][model].append((metrics, scores, (1.0, 2, 30.0)))
    _write_report(out, config, BUDGETS["cpu"], models, sections, {m: 1e6 for m in models}, {}, "abc")
    assert "| model | seeds | F1 |" in (out / "comparison.md").read_text()
    mean = {m: {i: np.mean([s[1][i] for s in sections["main"][m]]) for i in ids} for m in models}
    delta = {i: mean["frcunet-lite"][i] - mean["unet"][i] for i in ids}
    with Chromium(browser) as page:
        page.open(out / "report.html")
        rows = _rows(page, "cases-main")
        assert [r["id"] for r in rows] == sorted(ids, key=delta.get)  # where frcunet-lite loses most, first
        for row in rows:
            assert float(row["delta:unet"]) == pytest.approx(delta[row["id"]])
            assert float(row["dice:unet"]) == pytest.approx(mean["unet"][row["id"]])
        _click_header(page, "cases-main", "dice:unet")
        assert [r["id"] for r in _rows(page, "cases-main")] == sorted(ids, key=mean["unet"].get)
        _set_filter(page, "main", "0", column="delta:unet")  # the images where frcunet-lite loses
        shown = {r["id"] for r in _rows(page, "cases-main") if r["visible"]}
        assert shown == {i for i in ids if delta[i] < 0}
        # Both models' thumbnails (their first seed's), side by side in each row.
        sources = page.evaluate("Array.from(document.querySelector('#cases-main tbody tr').querySelectorAll('img'))"
                                ".map(i => i.getAttribute('src'))")
        assert [s.split("/")[1] for s in sources] == ["frcunet-lite_seed0", "unet_seed0"]
        assert _images_load(page) == [2 * len(ids)] * 2
        _check_offline(page, out)


def _photos(folder, sizes):
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i, size in enumerate(sizes):
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(folder / f"photo {i}#.jpg")
    return folder


def test_predict_report_is_a_gallery_of_every_mask(tiny_run, tmp_path, browser):
    photos = _photos(tmp_path / "in", [(60, 80), (700, 500), (40, 40)])
    (photos / "broken.png").write_bytes(b"not a png")
    done = cli("predict", "--run", tiny_run / "run", "--input", photos, "--out", tmp_path / "out", "--report",
               "--quiet")
    assert done.returncode == 2 and "1 of 4 inputs could not be read" in done.stderr
    assert "gallery of the masks" in done.stdout
    out = tmp_path / "out"
    with Image.open(out / "report" / "overlays" / "photo 1#.jpg") as overlay:
        assert overlay.size == (457, 640)  # drawn on the photo itself, at most 640 pixels long
    with Chromium(browser) as page:
        page.open(out / "report.html")
        rows = _rows(page, "cases-gallery")
        assert sorted(r["file"] for r in rows) == ["photo 0#.jpg", "photo 1#.jpg", "photo 2#.jpg"]
        hesitant = [float(r["hesitant"]) for r in rows]
        assert hesitant == sorted(hesitant, reverse=True)  # the most doubtful masks first
        _click_header(page, "cases-gallery", "file")
        assert [r["file"] for r in _rows(page, "cases-gallery")] == ["photo 0#.jpg", "photo 1#.jpg", "photo 2#.jpg"]
        assert _images_load(page) == [3, 3]
        assert "broken.png" in page.evaluate("document.body.innerText")
        _check_offline(page, out)

    # A second run replaces its own gallery; a user's report.html elsewhere is never replaced.
    again = predict_files(tiny_run / "run", photos / "photo 0#.jpg", out, progress=False, report=True)
    assert again == (1, [])
    assert sorted(p.name for p in (out / "report" / "thumbs").iterdir()) == ["photo 0#.jpg"]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "report.html").write_text("my notes")
    with pytest.raises(UserError, match="report.html, not written by frcunet predict"):
        predict_files(tiny_run / "run", photos / "photo 0#.jpg", mine, progress=False, report=True)
    assert sorted(p.name for p in mine.iterdir()) == ["report.html"]
    assert (mine / "report.html").read_text() == "my notes"
