"""Prepared split folders from layouts as downloaded, with the Prepare scripts' defaults."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, run_cli
from frcunet.core.errors import UserError
from frcunet.data.prepare import PrepareConfig, prepare_dataset
from frcunet.data.splits import paper_split, ratio_split
from frcunet.data.synthetic import write_synthetic_isic

IN18, GT18 = "ISIC2018_Task1-2_Training_Input", "ISIC2018_Task1_Training_GroundTruth"


def _script(name, *args, cwd, timeout=300):
    return subprocess.run([sys.executable, str(ROOT / name), *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def _link_isic18(shared, target, count=None, images_dir=IN18, masks_dir=GT18, rename=None):
    """A download-shaped folder of symlinks to real ISIC 2018 pairs (optionally renamed ids)."""
    (target / images_dir).mkdir(parents=True)
    (target / masks_dir).mkdir(parents=True)
    sources = sorted((shared / "ISIC2018" / IN18).glob("ISIC_*.jpg"))
    chosen = [sources[i % len(sources)] for i in range(count or len(sources))]
    for i, image in enumerate(chosen):
        new_id = rename(i) if rename else image.stem
        (target / images_dir / f"{new_id}.jpg").symlink_to(image)
        (target / masks_dir / f"{new_id}_segmentation.png").symlink_to(
            shared / "ISIC2018" / GT18 / f"{image.stem}_segmentation.png")
    return target


def _load(folder, kind, split):
    return np.load(folder / f"{kind}_{split}.npy", mmap_mode="r")


def test_prepare_ph2_with_no_arguments_gives_the_paper_split(shared_data, tmp_path):
    (tmp_path / "dataset_ph2").mkdir()
    (tmp_path / "dataset_ph2" / "PH2Dataset").symlink_to(shared_data / "PH2Dataset")
    done = _script("Prepare_ph2.py", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    out = tmp_path / "data" / "ph2"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"] == {"train": 80, "val": 20, "test": 100}
    assert manifest["split"] == {"protocol": "paper", "seed": 0}
    assert _load(out, "data", "test").shape == (100, 256, 256, 3)
    masks = _load(out, "mask", "train")
    assert masks.shape == (80, 256, 256) and set(np.unique(masks)) == {0, 1}
    entry = manifest["splits"]["test"][0]
    with Image.open(entry["image"]) as original:
        assert entry["original_size"] == [original.height, original.width]
    assert entry["mask"].endswith("_lesion.bmp")
    assert 0.1 < manifest["lesion_fraction"]["test"] < 0.6
    # The split is a fixed function of the ids and the seed: the same on every machine.
    assert [e["id"] for e in manifest["splits"]["test"][:3]] == PH2_TEST_HEAD
    assert "test" in done.stdout and "lesion fraction" in done.stdout


PH2_TEST_HEAD = ["IMD434", "IMD395", "IMD017"]


def test_prepare_isic2018_with_no_arguments_on_a_full_size_download(shared_data, tmp_path):
    # 2594 pairs as in the real download: the real 2335, then repeats under new ids.
    _link_isic18(shared_data, tmp_path / "dataset_isic18", count=2594, rename=lambda i: f"ISIC_{i:07d}")
    (tmp_path / "dataset_isic18" / IN18 / "LICENSE.txt").write_text("CC BY-NC")
    done = _script("Prepare_ISIC2018.py", "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    manifest = json.loads((tmp_path / "data" / "isic2018" / "manifest.json").read_text())
    assert manifest["counts"] == {"train": 1815, "val": 259, "test": 520}
    ids = [e["id"] for s in ("train", "val", "test") for e in manifest["splits"][s]]
    assert ids == sorted(ids)  # the paper split is in file order


def test_prepare_isic2017_with_no_arguments_keeps_all_2000(shared_data, tmp_path):
    root = _link_isic18(shared_data, tmp_path / "dataset_isic17", count=2000, images_dir="ISIC-2017_Training_Data",
                        masks_dir="ISIC-2017_Training_Part1_GroundTruth", rename=lambda i: f"ISIC_{i:07d}")
    (root / "ISIC-2017_Training_Data" / "ISIC_0000000_superpixels.png").symlink_to(
        shared_data / "ISIC2018" / GT18 / "ISIC_0000000_segmentation.png")
    done = _script("Prepare_ISIC2017.py", "--quiet", "--size", 64, 64, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    manifest = json.loads((tmp_path / "data" / "isic2017" / "manifest.json").read_text())
    assert manifest["counts"] == {"train": 1400, "val": 200, "test": 400}


def test_paper_protocol_on_the_wrong_count_offers_the_ratio_split(shared_data, tmp_path):
    _link_isic18(shared_data, tmp_path / "dataset_isic18", count=30)
    done = _script("Prepare_ISIC2018.py", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: the paper protocol for isic2018 needs 2594 pairs (1815/259/520) but the folder has 30; "
        "use --split 0.7 0.1 0.2 --seed 0 for a ratio split instead"]
    assert not (tmp_path / "data").exists()


def test_ratio_split_is_identical_across_runs_and_reusable_by_file(shared_data, tmp_path):
    data = _link_isic18(shared_data, tmp_path / "isic", count=40)
    first, _ = prepare_dataset(PrepareConfig("isic2018", data, tmp_path / "a", (32, 48),
                                             split=(0.5, 0.25, 0.25), seed=7,
                                             progress=False))
    second, _ = prepare_dataset(PrepareConfig("isic2018", data, tmp_path / "b", (32, 48),
                                              split=(0.5, 0.25, 0.25), seed=7,
                                              workers=1, progress=False))
    assert first.splits == second.splits and first.counts == {"train": 20, "val": 10, "test": 10}
    for kind in ("data", "mask"):
        np.testing.assert_array_equal(_load(tmp_path / "a", kind, "val"), _load(tmp_path / "b", kind, "val"))
    reused, _ = prepare_dataset(PrepareConfig("isic2018", data, tmp_path / "c", (32, 32),
                                              split_file=tmp_path / "a" / "manifest.json",
                                              progress=False))
    assert reused.ids("test") == first.ids("test")
    assert reused.split["protocol"] == "file"
    assert first.versions["frcunet"] and first.source_dir == str(data.resolve())


def test_split_functions():
    ids = [f"id{i:03d}" for i in range(100)]
    assert ratio_split(ids, (0.7, 0.1, 0.2), seed=1) == ratio_split(list(reversed(ids)), (0.7, 0.1, 0.2), seed=1)
    assert ratio_split(ids, (0.7, 0.1, 0.2), seed=1) != ratio_split(ids, (0.7, 0.1, 0.2), seed=2)
    with pytest.raises(UserError, match="add up to 1"):
        ratio_split(ids, (0.7, 0.1, 0.1))
    ph2 = paper_split("ph2", [f"IMD{i:03d}" for i in range(200)], seed=0)
    assert [len(ph2[s]) for s in ("train", "val", "test")] == [80, 20, 100]
    assert sorted(sum(ph2.values(), [])) == [f"IMD{i:03d}" for i in range(200)]


@pytest.mark.parametrize("test_ids, message", [(["id000"], "lists id000 in both train and test"),
                                               (["id005", "id005"], "lists id005 twice in test")])
def test_a_manifest_split_must_be_disjoint(tmp_path, test_ids, message):
    from frcunet.data.splits import split_from_manifest

    ids = [f"id{i:03d}" for i in range(6)]
    manifest = {"splits": {"train": [{"id": i} for i in ids[:3]], "val": [{"id": "id003"}],
                           "test": [{"id": i} for i in test_ids]}}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError, match=message):
        split_from_manifest(tmp_path / "manifest.json", ids)


def test_a_failed_run_leaves_the_previous_folder_untouched(tmp_path):
    write_synthetic_isic(tmp_path / "syn", 6, progress=False)
    prepare_dataset(PrepareConfig("isic2018", tmp_path / "syn", tmp_path / "out", (32, 32),
                                  split=(0.5, 0.25, 0.25), progress=False))
    before = (tmp_path / "out" / "manifest.json").read_bytes()
    (tmp_path / "syn" / IN18 / "ISIC_0000003.jpg").write_bytes(b"broken")
    with pytest.raises(UserError, match="ISIC_0000003.jpg"):
        prepare_dataset(PrepareConfig("isic2018", tmp_path / "syn", tmp_path / "out", (32, 32), split=(0.5, 0.25, 0.25),
                        progress=False))
    assert (tmp_path / "out" / "manifest.json").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "syn"]  # no staging left behind


def test_killed_preparation_leaves_no_output_and_the_rerun_completes(shared_data, tmp_path):
    data = _link_isic18(shared_data, tmp_path / "isic")
    args = ["prepare", "isic2018", "--data-dir", data, "--out", tmp_path / "out", "--split", 0.7, 0.1, 0.2,
            "--workers", 1, "--quiet"]
    process = subprocess.Popen([sys.executable, "-m", "frcunet", *map(str, args)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not list(tmp_path.glob(".out.partial-*/data_train.npy")) and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (tmp_path / "out").exists()
    assert list(tmp_path.glob(".out.partial-*"))  # the killed run's staging folder
    done = run_cli(*args)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "out" / "manifest.json").is_file()
    assert not list(tmp_path.glob(".out.partial-*"))


def test_cli_errors_are_one_line(tmp_path):
    missing = run_cli("prepare", "isic2018", "--data-dir", tmp_path / "nothing", "--out", tmp_path / "o")
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'nothing'} not found; expected ISIC2018_Task1-2_Training_Input/ISIC_*.jpg and "
        "ISIC2018_Task1_Training_GroundTruth/ISIC_*_segmentation.png"]
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "notes.txt").write_text("mine")
    write_synthetic_isic(tmp_path / "syn", 4, progress=False)
    occupied = run_cli("prepare", "isic2018", "--data-dir", tmp_path / "syn", "--out", tmp_path / "o",
                       "--split", 0.5, 0.25, 0.25)
    assert occupied.returncode == 2 and "did not write as its prepared output" in occupied.stderr
    assert (tmp_path / "o" / "notes.txt").read_text() == "mine"


def test_prepare_any_folder(tmp_path):
    write_synthetic_isic(tmp_path / "syn", 8, progress=False)
    manifest, out = prepare_dataset(PrepareConfig("folder", tmp_path / "syn" / IN18, tmp_path / "out", (32, 32),
                                    split=(0.5, 0.25, 0.25), masks_dir=tmp_path / "syn" / GT18,
                                    mask_suffix="_segmentation", progress=False))
    assert manifest.counts == {"train": 4, "val": 2, "test": 2}
    assert _load(out, "mask", "train").max() == 1
