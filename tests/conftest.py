"""Shared test set-up: caches out of the home folder, quiet TensorFlow, helpers."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("KERAS_HOME", str(ROOT / ".cache" / "keras"))
os.environ.setdefault("MPLCONFIGDIR", str(ROOT / ".cache" / "matplotlib"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# JAX keeps what it compiled on disk: many tests build the same small models, and the JAX pass then compiles
# each program once instead of once per test. One folder per pytest-xdist worker, as JAX writes without a lock.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      str(ROOT / ".cache" / "jax-tests" / os.environ.get("PYTEST_XDIST_WORKER", "main")))
# JAX compiles with LLVM's optimisations off (in this process and in the subprocesses that inherit it): at
# the tests' tiny shapes compiling is most of the time. Two epochs of the narrow frcunet-lite took 38-39 s
# instead of 88-98 s. Only the speed of the compiled code changes; TensorFlow on CPU does not use XLA.
if "--xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0").strip()

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


def cli(*args):
    """Runs the `frcunet` command inside this interpreter; returns a CompletedProcess like run_cli's.

    For tests of what a verb does: it skips the fresh interpreter's start-up (importing TensorFlow alone takes
    5-9 s of CPU here). Tests of the entry point itself, its stderr or a killed process keep run_cli.
    """
    import contextlib
    import io

    from frcunet.cli import main

    argv, out, err = [str(a) for a in args], io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse's own refusals
            code = exc.code
    return subprocess.CompletedProcess(["frcunet", *argv], code, out.getvalue(), err.getvalue())


SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data():
    """../shared/data: required in CI, skipped only when absent outside CI."""
    if not (SHARED_DATA / "ISIC2018").is_dir():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{SHARED_DATA} is missing; CI must run the real-data tests")
        pytest.skip(f"{SHARED_DATA} not present")
    return SHARED_DATA


def read_history(run):
    """The rows of a run's history.csv, as dicts of strings."""
    import csv

    with open(Path(run) / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="session")
def prepared(tmp_path_factory):
    """Synthetic ISIC data (48x64 originals) prepared at 32x32: 16 train, 8 val, 8 test."""
    from frcunet.data.prepare import PrepareConfig, prepare_dataset
    from frcunet.data.synthetic import write_synthetic_isic

    root = tmp_path_factory.mktemp("data")
    write_synthetic_isic(root / "syn", 32, seed=5, size=(48, 64), progress=False)
    prepare_dataset(PrepareConfig("isic2018", root / "syn", root / "prepared", (32, 32),
                                  split=(0.5, 0.25, 0.25), workers=1,
                                  progress=False))
    return root / "prepared"


TINY_LITE = {"width": 0.125, "middle_units": 1}
# For tests of the training workflow, where the network does not matter: a 70-layer U-Net traces far
# faster than the 154-layer narrow frcunet-lite (two tiny epochs: 8 s against 20 s).
SMALL_UNET = {"base_filters": 4}
SMALL_UNET_FLAGS = ["--model", "unet", "--base-filters", 4]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, worker_id):
    """One short training shared by the evaluation, export and fine-tuning tests.

    Synthetic ISIC data (48x64 originals) prepared at 32x32, 12/6/6 pairs; a
    narrow frcunet-lite trained for one epoch. Returns the folder holding
    `syn/` (the download), `prepared/` and `run/`. Tests only read it.

    The pytest-xdist workers of one session share it: the first to need it trains it
    while the others wait on a lock, instead of each training its own copy.
    """
    import fcntl
    import shutil

    from frcunet.data.prepare import PrepareConfig, prepare_dataset
    from frcunet.data.synthetic import write_synthetic_isic
    from frcunet.training.trainer import TrainConfig, train

    session = tmp_path_factory.getbasetemp()
    root = (session if worker_id == "master" else session.parent) / "tiny_run"
    with open(root.with_name("tiny_run.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / "complete").is_file():
            shutil.rmtree(root, ignore_errors=True)  # a worker that failed half-way
            write_synthetic_isic(root / "syn", 24, seed=9, size=(48, 64), progress=False)
            prepare_dataset(PrepareConfig("isic2018", root / "syn", root / "prepared", (32, 32),
                                          split=(0.5, 0.25, 0.25), workers=1, progress=False))
            train(TrainConfig(data=str(root / "prepared"), run=str(root / "run"), model="frcunet-lite",
                              model_options=TINY_LITE, epochs=1, batch_size=6, lr=1e-3, verbose=0))
            (root / "complete").touch()
    return root
