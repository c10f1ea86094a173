"""The comparison harness writes one table with a row per model, and transfer rows."""

from conftest import run_cli
from frcunet.data.prepare import prepare_dataset
from frcunet.data.synthetic import write_synthetic_isic


def test_compare_trains_each_model_and_writes_one_table(tmp_path):
    write_synthetic_isic(tmp_path / "syn", 16, seed=1, size=(32, 32), progress=False)
    prepare_dataset("isic2018", tmp_path / "syn", tmp_path / "a", (32, 32), split=(0.5, 0.25, 0.25), workers=1,
                    progress=False)
    prepare_dataset("isic2018", tmp_path / "syn", tmp_path / "b", (32, 32), split=(0.0, 0.0, 1.0), workers=1,
                    progress=False)
    done = run_cli("compare", "--data", tmp_path / "a", "--out", tmp_path / "cmp", "--models", "unet",
                   "attention-unet", "--epochs", 1, "--transfer", tmp_path / "b", timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = (tmp_path / "cmp" / "comparison.md").read_text()
    assert "| model | F1 | SE | SP | ACC | PC | JS |" in report
    assert "| unet |" in report and "| attention-unet |" in report
    assert "| unet, no fine-tuning |" in report and "Seed 0. Command:" in report
    assert (tmp_path / "cmp" / "eval" / "unet" / "metrics.json").is_file()
