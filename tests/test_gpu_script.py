"""scripts/gpu_paper.sh, the paper-scale GPU run, passes its CPU smoke run under JAX."""

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT


@pytest.mark.long
def test_the_gpu_script_smoke_run_trains_evaluates_and_reports(tmp_path):
    env = dict(os.environ, PYTHON=sys.executable, KERAS_BACKEND="jax")
    done = subprocess.run([str(ROOT / "scripts" / "gpu_paper.sh"), "--smoke", "--out", str(tmp_path / "out"),
                           "--work", str(tmp_path)], env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert [row["model"] for row in record["rows"]] == ["frcunet-lite"] and record["rows"][0]["epochs"] == 1
    assert 0.0 <= record["rows"][0]["pooled"]["f1"] <= 1.0 and record["device"].startswith("cpu")
    results = (tmp_path / "out" / "results.md").read_text()
    assert "| frcunet-lite |" in results and "| FRCU-Net (paper, best released row) | 0.927" in results
    assert (tmp_path / "out" / "frcunet-lite_history.csv").is_file()
    assert (tmp_path / "output" / "gpu_eval_frcunet-lite" / "metrics.json").is_file()

    # A second call reuses the trained run and its evaluation instead of training again.
    again = subprocess.run([str(ROOT / "scripts" / "gpu_paper.sh"), "--smoke", "--out", str(tmp_path / "out"),
                            "--work", str(tmp_path)], env=env, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "frcunet train" not in again.stdout and "frcunet evaluate" not in again.stdout
