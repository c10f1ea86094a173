"""Dataset layouts as downloaded, and the mistakes a download can hold."""

import numpy as np
import pytest
from PIL import Image

from frcunet.core.errors import UserError
from frcunet.data import sources

ISIC18_IN, ISIC18_GT = "ISIC2018_Task1-2_Training_Input", "ISIC2018_Task1_Training_GroundTruth"


def _touch_png(path, size=(8, 8)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros(size, np.uint8)).save(path)


def test_isic2018_layout_pairs_by_id_and_ignores_text_files(tmp_path):
    for i in (3, 1, 2):
        _touch_png(tmp_path / ISIC18_IN / f"ISIC_000000{i}.jpg")
        _touch_png(tmp_path / ISIC18_GT / f"ISIC_000000{i}_segmentation.png")
    (tmp_path / ISIC18_IN / "LICENSE.txt").write_text("licence")
    (tmp_path / ISIC18_IN / "ATTRIBUTION.txt").write_text("who")
    pairs = sources.isic2018_pairs(tmp_path)
    assert [p.id for p in pairs] == ["ISIC_0000001", "ISIC_0000002", "ISIC_0000003"]
    assert pairs[0].mask.name == "ISIC_0000001_segmentation.png"


def test_isic2017_layout_skips_superpixel_maps(tmp_path):
    for i in (1, 2):
        _touch_png(tmp_path / "ISIC-2017_Training_Data" / f"ISIC_000000{i}.jpg")
        _touch_png(tmp_path / "ISIC-2017_Training_Data" / f"ISIC_000000{i}_superpixels.png")
        _touch_png(tmp_path / "ISIC-2017_Training_Part1_GroundTruth" / f"ISIC_000000{i}_segmentation.png")
    assert [p.id for p in sources.isic2017_pairs(tmp_path)] == ["ISIC_0000001", "ISIC_0000002"]


def test_missing_and_empty_folders_name_the_expected_layout(tmp_path):
    with pytest.raises(UserError, match="ISIC2018_Task1-2_Training_Input"):
        sources.isic2018_pairs(tmp_path / "nowhere")
    (tmp_path / ISIC18_IN).mkdir()
    (tmp_path / ISIC18_GT).mkdir()
    with pytest.raises(UserError, match="no images found.*ISIC2018_Task1-2_Training_Input"):
        sources.isic2018_pairs(tmp_path)
    with pytest.raises(UserError, match="PH2 Dataset images"):
        sources.ph2_pairs(tmp_path)


def test_unpaired_files_are_listed_or_skipped(tmp_path, caplog):
    for i in (1, 2, 3):
        _touch_png(tmp_path / ISIC18_IN / f"ISIC_000000{i}.jpg")
    _touch_png(tmp_path / ISIC18_GT / "ISIC_0000001_segmentation.png")
    _touch_png(tmp_path / ISIC18_GT / "ISIC_0000009_segmentation.png")
    with pytest.raises(UserError) as raised:
        sources.isic2018_pairs(tmp_path)
    message = str(raised.value)
    assert "2 images without mask (ISIC_0000002, ISIC_0000003)" in message
    assert "1 masks without image (ISIC_0000009)" in message and "--skip-unpaired" in message
    assert [p.id for p in sources.isic2018_pairs(tmp_path, skip_unpaired=True)] == ["ISIC_0000001"]
    assert "skipping 2 images without mask" in caplog.text  # logged; the command line adds "warning: "


def test_ph2_layout_straight_from_the_download(tmp_path):
    for case in ("IMD003", "IMD002"):
        base = tmp_path / "PH2Dataset" / "PH2 Dataset images" / case
        _touch_png(base / f"{case}_Dermoscopic_Image" / f"{case}.bmp")
        _touch_png(base / f"{case}_lesion" / f"{case}_lesion.bmp")
        _touch_png(base / f"{case}_roi" / f"{case}_R1.bmp")  # colour-class masks: not the lesion
    assert [p.id for p in sources.ph2_pairs(tmp_path)] == ["IMD002", "IMD003"]
    assert [p.id for p in sources.ph2_pairs(tmp_path / "PH2Dataset")] == ["IMD002", "IMD003"]


def test_any_folder_pairs_by_stem_with_a_mask_suffix(tmp_path):
    _touch_png(tmp_path / "img" / "a.png")
    _touch_png(tmp_path / "img" / "b.jpg")
    _touch_png(tmp_path / "msk" / "a_mask.png")
    _touch_png(tmp_path / "msk" / "b_mask.png")
    pairs = sources.folder_pairs(tmp_path / "img", tmp_path / "msk", "_mask")
    assert [(p.id, p.mask.name) for p in pairs] == [("a", "a_mask.png"), ("b", "b_mask.png")]


def test_real_ph2_and_isic2018_folders_are_read_whole(shared_data):
    assert len(sources.ph2_pairs(shared_data / "PH2Dataset")) == 200
    pairs = sources.isic2018_pairs(shared_data / "ISIC2018")
    assert len(pairs) == 2335
    flagged = set((shared_data / "ISIC2018" / "flagged_ids.txt").read_text().split())
    assert flagged <= {p.id for p in pairs}  # poor masks are still official pairs


def test_a_mask_suffix_with_an_extension_says_what_to_give_instead(tmp_path):
    from frcunet.data.sources import folder_pairs

    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    with pytest.raises(UserError, match=r"--mask-suffix _segmentation\.png ends with a file extension.*"
                                        r"--mask-suffix _segmentation:"):
        folder_pairs(tmp_path / "images", tmp_path / "masks", "_segmentation.png")
