"""The comparison harness: mean ± sd over seeds per model, paired per-image tests, transfer rows."""

import json

import numpy as np
import pytest

from conftest import cli
from frcunet.data.prepare import PrepareConfig, prepare_dataset
from frcunet.data.synthetic import write_synthetic_isic
from frcunet.evaluation.compare import mean_sd, paired_test


@pytest.mark.long
def test_compare_trains_each_model_per_seed_and_tests_the_first_against_the_rest(tmp_path):
    write_synthetic_isic(tmp_path / "syn", 16, seed=1, size=(32, 32), progress=False)
    prepare_dataset(PrepareConfig("isic2018", tmp_path / "syn", tmp_path / "a", (32, 32),
                                  split=(0.5, 0.25, 0.25), workers=1,
                                  progress=False))
    # The transfer set: a's test images alone (scoring images a model trained on is refused).
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    manifest["splits"].update(train=[], val=[])
    (tmp_path / "split.json").write_text(json.dumps(manifest))
    prepare_dataset(PrepareConfig("isic2018", tmp_path / "syn", tmp_path / "b", (32, 32),
                                  split_file=str(tmp_path / "split.json"), workers=1, progress=False))
    args = ["compare", "--data", tmp_path / "a", "--out", tmp_path / "cmp", "--models", "unet", "attention-unet",
            "--epochs", 1, "--seeds", 0, 1, "--transfer", tmp_path / "b"]
    done = cli(*args)
    assert done.returncode == 0, done.stderr[-3000:]
    report = (tmp_path / "cmp" / "comparison.md").read_text()
    assert "| model | seeds | F1 | SE | SP | ACC | PC | JS |" in report
    assert "| unet | 2 | " in report and "| attention-unet | 2 | " in report and " ± " in report
    assert "| unet vs | images |" in report and "Wilcoxon p" in report
    assert "## No fine-tuning" in report
    for seed in (0, 1):
        assert (tmp_path / "cmp" / "eval" / f"unet_seed{seed}" / "metrics.json").is_file()
    # Run again: every run and evaluation is found and reused, the report is the same.
    again = cli(*args)
    assert again.returncode == 0 and "Epoch" not in again.stdout
    assert (tmp_path / "cmp" / "comparison.md").read_text().split("Command:")[0] == report.split("Command:")[0]


def test_paired_test_matches_scipy_on_seed_averaged_dice():
    from scipy.stats import wilcoxon

    rng = np.random.default_rng(0)
    ids = [f"i{k}" for k in range(30)]
    first = [{i: float(v) for i, v in zip(ids, rng.uniform(0.7, 0.95, 30), strict=True)} for _ in range(3)]
    other = [{i: d[i] - 0.02 + 0.01 * rng.standard_normal() for i in ids} for d in first]
    result = paired_test(first, other)
    a = np.array([np.mean([d[i] for d in first]) for i in ids])
    b = np.array([np.mean([d[i] for d in other]) for i in ids])
    assert result["n"] == 30 and result["p"] == pytest.approx(wilcoxon(a, b).pvalue)
    assert result["mean_difference"] == pytest.approx(float((a - b).mean()))
    assert result["first_better"] + result["other_better"] == 30 and result["p"] < 0.01


def test_mean_sd_uses_the_sample_sd_and_skips_undefined_values():
    assert mean_sd([0.8, 0.9, 1.0], 3) == "0.900 ± 0.100"
    assert mean_sd([0.5, float("nan")], 2) == "0.50"
    assert mean_sd([], 2) == "-"


def test_compare_refuses_a_folder_it_did_not_write_and_one_that_overlaps_its_data(tmp_path):
    write_synthetic_isic(tmp_path / "syn", 8, seed=1, size=(32, 32), progress=False)
    prepare_dataset(PrepareConfig("isic2018", tmp_path / "syn", tmp_path / "a", (32, 32), split=(0.5, 0.25, 0.25),
                                  workers=1, progress=False))
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "comparison.md").write_text("my own notes")
    for out, words in ((mine, "did not write"), (tmp_path / "a", "would overlap"),
                       (tmp_path / "a" / "cmp", "would overlap")):
        done = cli("compare", "--data", tmp_path / "a", "--out", out, "--models", "unet", "--epochs", 1, "--seeds", 0)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1 and words in lines[0], lines
    assert (mine / "comparison.md").read_text() == "my own notes"
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(
        [".frcunet-output", "data_test.npy", "data_train.npy", "data_val.npy", "manifest.json", "mask_test.npy",
         "mask_train.npy", "mask_val.npy"])
