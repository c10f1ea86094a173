"""Screenshots of the three reports for docs/usage.md, as headless Chromium renders them (Figures/report_*.png).

    python scripts/report_figures.py --evaluation EVAL_OUT --comparison COMPARE_OUT --gallery PREDICT_OUT

Each report folder is one that `frcunet evaluate`, `frcunet compare` or `frcunet predict --report` wrote. Each
shot starts a little above the case table (the figures for the evaluation, the paired test for the comparison)
and shows its first rows, in the page's default order.
"""

import argparse
import sys
import tempfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the Chromium driver of the browser tests
HEIGHT = 1100

# Each shot's file, window width, and what it starts at: a CSS selector, and how far above it.
SHOTS = {
    "evaluation": ("report_evaluate.png", 1000, ".figures", 30),
    "comparison": ("report_compare.png", 1400, "table.summary", 50),
    "gallery": ("report_predict.png", 1000, "h1", 20),
}


def shoot(report, name, width, selector, margin):
    from chromium import Chromium

    with Chromium(width=width, height=HEIGHT) as page:
        page.open(report)
        # Every thumbnail of the shot loaded, lazy ones included, before the picture is taken.
        page.evaluate("Promise.all(Array.from(document.images).map(i => { i.loading = 'eager';"
                      " return i.decode().catch(() => null); }))")
        top = page.evaluate(f"document.querySelector({selector!r}).getBoundingClientRect().top + window.scrollY")
        if page.errors() or page.external_requests():
            raise SystemExit(f"{report}: {page.errors()} {page.external_requests()}")
        with tempfile.TemporaryDirectory() as folder:
            raw = Path(folder) / "shot.png"
            page.screenshot(raw, top=max(0, top - margin), height=HEIGHT)
            with Image.open(raw) as shot:
                shot.convert("RGB").save(ROOT / "Figures" / name, optimize=True)
    print(f"wrote Figures/{name}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evaluation", type=Path, help="a folder frcunet evaluate wrote")
    parser.add_argument("--comparison", type=Path, help="a folder frcunet compare wrote")
    parser.add_argument("--gallery", type=Path, help="a folder frcunet predict --report wrote")
    args = parser.parse_args()
    for kind, (name, width, selector, margin) in SHOTS.items():
        folder = getattr(args, kind)
        if folder:
            shoot(folder / "report.html", name, width, selector, margin)


if __name__ == "__main__":
    main()
