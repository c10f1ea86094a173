"""Shared test set-up: caches out of the home folder, quiet TensorFlow, helpers."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("KERAS_HOME", str(ROOT / ".cache" / "keras"))
os.environ.setdefault("MPLCONFIGDIR", str(ROOT / ".cache" / "matplotlib"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402


def run_python(code, backend=None, cwd=None, timeout=300):
    """Runs `code` in a fresh interpreter (optionally on another Keras backend)."""
    env = dict(os.environ)
    if backend:
        env["KERAS_BACKEND"] = backend
    return subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def run_cli(*args, cwd=None, timeout=300):
    """Runs the `frcunet` command in a fresh interpreter; returns the CompletedProcess."""
    return subprocess.run(
        [sys.executable, "-m", "frcunet", *map(str, args)],
        cwd=cwd, capture_output=True, text=True, timeout=timeout, env=dict(os.environ),
    )


@pytest.fixture(autouse=True)
def _float32_policy():
    """Tests that change the dtype policy must not leak it into the next test."""
    import keras

    yield
    keras.config.set_dtype_policy("float32")


SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data():
    """../shared/data: required in CI, skipped only when absent outside CI."""
    if not (SHARED_DATA / "ISIC2018").is_dir():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{SHARED_DATA} is missing; CI must run the real-data tests")
        pytest.skip(f"{SHARED_DATA} not present")
    return SHARED_DATA
