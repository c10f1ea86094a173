"""Pages: every HTML report the project writes (Markdown tables: frcunet.core.markdown).

    html.py       pages built as element trees (xml.etree.ElementTree) and serialised once, with the project's
                  own small stylesheet and script inlined (assets/): sortable, filterable case tables
    images.py     thumbnails and full-size overlays (numpy and Pillow only, so predict needs nothing more)
    evaluate.py   report.html of `frcunet evaluate`: one row per test image
    compare.py    report.html of `frcunet compare`: one row per test image, a column per model
    gallery.py    report.html of `frcunet predict --report`: overlays of masks without ground truth

Every page works from file:// with no network: no CDN, no fonts, no request leaves the machine.
"""
