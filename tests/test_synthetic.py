"""The synthetic ISIC-layout data of the demo and many tests."""

import numpy as np
import pytest

from conftest import run_cli
from frcunet.data.sources import isic2018_pairs
from frcunet.data.synthetic import synth_pair, write_synthetic_isic


def test_same_seed_same_pair_other_seed_other_pair():
    image, mask = synth_pair(3, 5)
    again_image, again_mask = synth_pair(3, 5)
    np.testing.assert_array_equal(image, again_image)
    np.testing.assert_array_equal(mask, again_mask)
    assert not np.array_equal(synth_pair(4, 5)[1], mask)


def test_pairs_look_like_dermoscopy_with_a_lesion_of_varied_size():
    fractions = []
    for index in range(12):
        image, mask = synth_pair(0, index, (96, 128))
        assert image.shape == (96, 128, 3) and image.dtype == np.uint8
        assert set(np.unique(mask)) == {0, 255}
        fractions.append((mask > 0).mean())
        lesion, skin = image[mask > 0].mean(), image[mask == 0].mean()
        assert lesion < skin  # lesions are darker than the skin around them
        assert image[0, 0].mean() < 0.8 * skin  # the dermoscope darkens the corners
    assert min(fractions) < 0.1 < max(fractions) < 0.6


def test_written_folder_is_an_isic2018_download(tmp_path):
    result = run_cli("synth", "--out", tmp_path / "syn", "--n", 5, "--seed", 2, "--size", 48, 64)
    assert result.returncode == 0, result.stderr[-2000:]
    pairs = isic2018_pairs(tmp_path / "syn")
    assert [p.id for p in pairs] == [f"ISIC_{i:07d}" for i in range(5)]
    assert (tmp_path / "syn" / "ISIC2018_Task1-2_Training_Input" / "LICENSE.txt").is_file()
    write_synthetic_isic(tmp_path / "again", 5, seed=2, size=(48, 64), progress=False)
    for name in ("ISIC_0000004_segmentation.png",):
        assert (tmp_path / "syn" / "ISIC2018_Task1_Training_GroundTruth" / name).read_bytes() == (
            tmp_path / "again" / "ISIC2018_Task1_Training_GroundTruth" / name).read_bytes()


def test_the_library_refuses_what_the_command_line_refuses(tmp_path):
    from frcunet.core.errors import UserError
    from frcunet.data.synthetic import write_synthetic_isic

    for n, size in ((0, (64, 64)), (4, (8, 64))):
        with pytest.raises(UserError, match="--n must be at least 1 and --size at least 16 16"):
            write_synthetic_isic(tmp_path / "syn", n, size=size, progress=False)
    assert not (tmp_path / "syn").exists()
