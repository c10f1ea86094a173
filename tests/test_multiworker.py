"""`--distribute multiworker`: two training processes on this machine (loopback only) end with the same weights,
and their loss curve is one process's on the same global batch, on TensorFlow (TF_CONFIG) and JAX
(jax.distributed through the KERAS_DISTRIBUTION_* variables)."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from conftest import SMALL_UNET_FLAGS, read_history, run_cli

pytestmark = pytest.mark.long

# The cpu recipe's features that involve the replicas: flips, a cosine schedule, batch norm (synchronised on
# TensorFlow) re-estimated before validation, and an exponential moving average of the weights.
TRAIN_FLAGS = [*SMALL_UNET_FLAGS, "--epochs", 2, "--batch-size", 8, "--lr", 1e-3, "--augment", "flip",
               "--schedule", "cosine", "--bn-recalibration", 8, "--ema", "on", "--precision", "float32", "--quiet"]
HISTORY_COLUMNS = ("loss", "dice", "val_loss", "val_dice")


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _cluster_environments(backend):
    """The environment of each of two workers, for `backend`."""
    if backend == "tensorflow":
        workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
        return [{"TF_CONFIG": json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}})}
                for i in range(2)]
    coordinator = f"127.0.0.1:{_free_ports(1)[0]}"
    return [{"KERAS_DISTRIBUTION_JOB_ADDRESSES": coordinator, "KERAS_DISTRIBUTION_NUM_PROCESSES": "2",
             "KERAS_DISTRIBUTION_PROCESS_ID": str(i)} for i in range(2)]


def _train_two_workers(backend, args, timeout=420):
    """Starts both workers, waits for both; a worker left waiting for a failed peer is killed."""
    started = []
    for extra in _cluster_environments(backend):
        env = dict(os.environ, KERAS_BACKEND=backend, **extra)
        started.append(subprocess.Popen([sys.executable, "-m", "frcunet", *map(str, args)], env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = []
    try:
        for process in started:
            outputs.append(process.communicate(timeout=timeout))
    finally:
        for process in started:
            process.kill()
    return [(process.returncode, *output) for process, output in zip(started, outputs, strict=True)]


def _weights(path):
    import h5py

    arrays = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, item: arrays.__setitem__(name, item[()]) if isinstance(item, h5py.Dataset) else None)
    return arrays


def _curve(run):
    return np.array([[float(row[column]) for column in HISTORY_COLUMNS] for row in read_history(run)])


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_two_workers_train_as_one_process_on_the_global_batch(prepared, tmp_path, backend):
    run = tmp_path / "run"
    done = _train_two_workers(backend, ["train", "--data", prepared, "--run", run, *TRAIN_FLAGS,
                                        "--distribute", "multiworker"])
    for code, _, err in done:
        assert code == 0, err[-3000:]
    assert "data-parallel over 2 replicas, 4 images each per step" in done[0][1]
    # The chief (worker 0) owns the run folder; worker 1 keeps its own beside it.
    chief, other = run, tmp_path / "run.worker1"
    assert (chief / "model.keras").is_file() and (other / "model.keras").is_file()
    chief_weights, other_weights = _weights(chief / "best.weights.h5"), _weights(other / "best.weights.h5")
    assert chief_weights.keys() == other_weights.keys()
    for name, array in chief_weights.items():
        np.testing.assert_array_equal(array, other_weights[name], err_msg=name)

    single = run_cli("train", "--data", prepared, "--run", tmp_path / "single", *TRAIN_FLAGS,
                     timeout=420) if backend == "tensorflow" else _single_jax(prepared, tmp_path / "single")
    assert single.returncode == 0, single.stderr[-3000:]
    np.testing.assert_allclose(_curve(chief), _curve(other), rtol=1e-6)
    np.testing.assert_allclose(_curve(chief), _curve(tmp_path / "single"), rtol=1e-5, atol=1e-6)


def _single_jax(prepared, run):
    env = dict(os.environ, KERAS_BACKEND="jax")
    return subprocess.run([sys.executable, "-m", "frcunet", "train", "--data", str(prepared), "--run", str(run),
                           *map(str, TRAIN_FLAGS)], env=env, capture_output=True, text=True, timeout=420)


@pytest.mark.parametrize("environment, message", [
    ({}, "needs TF_CONFIG"),
    ({"TF_CONFIG": '{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 3}}'},
     "TF_CONFIG must be JSON like"),
])
def test_multiworker_without_a_cluster_description_is_refused(prepared, tmp_path, monkeypatch, environment, message):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    from frcunet.core.errors import UserError
    from frcunet.training.distribute import this_worker

    with pytest.raises(UserError, match=message):
        this_worker("multiworker", "tensorflow")


def test_jax_cluster_variables_are_checked(monkeypatch):
    from frcunet.core.errors import UserError
    from frcunet.training.distribute import this_worker

    for name in ("KERAS_DISTRIBUTION_JOB_ADDRESSES", "KERAS_DISTRIBUTION_NUM_PROCESSES",
                 "KERAS_DISTRIBUTION_PROCESS_ID"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(UserError, match="KERAS_DISTRIBUTION_JOB_ADDRESSES"):
        this_worker("multiworker", "jax")
    monkeypatch.setenv("KERAS_DISTRIBUTION_JOB_ADDRESSES", "127.0.0.1:1")
    monkeypatch.setenv("KERAS_DISTRIBUTION_NUM_PROCESSES", "2")
    monkeypatch.setenv("KERAS_DISTRIBUTION_PROCESS_ID", "2")
    with pytest.raises(UserError, match="must be 0 to 1"):
        this_worker("multiworker", "jax")
    monkeypatch.setenv("KERAS_DISTRIBUTION_PROCESS_ID", "1")
    assert this_worker("multiworker", "jax").index == 1


def test_a_time_budget_is_refused_across_workers(prepared, tmp_path):
    done = run_cli("train", "--data", prepared, "--run", tmp_path / "run", *TRAIN_FLAGS, "--distribute",
                   "multiworker", "--max-minutes", 5)
    assert done.returncode != 0
    assert "error: --max-minutes plans the epochs from each worker's own clock" in done.stderr
    assert not (tmp_path / "run").exists()


def test_a_batch_jax_cannot_split_evenly_is_refused_before_training(prepared):
    from frcunet.core.errors import UserError
    from frcunet.data.pipeline import SegmentationBatches
    from frcunet.training.trainer import _check_batches_split

    train, val = (SegmentationBatches(prepared, split, batch_size=6) for split in ("train", "val"))
    assert train.batch_sizes() == [4, 6] and val.batch_sizes() == [2, 6]  # 16 and 8 images
    _check_batches_split(train, val, 2)
    with pytest.raises(UserError, match="a training batch holds 6 images"):
        _check_batches_split(train, val, 4)


def test_each_process_reads_its_own_part_of_every_batch(prepared):
    from frcunet.data.pipeline import SegmentationBatches

    whole = SegmentationBatches(prepared, "train", batch_size=8, shuffle=True, augment="flip", seed=3)
    parts = [SegmentationBatches(prepared, "train", batch_size=8, shuffle=True, augment="flip", seed=3,
                                 part=(index, 2)) for index in range(2)]
    for batch in range(len(whole)):
        images, masks = whole[batch]
        np.testing.assert_array_equal(np.concatenate([part[batch][0] for part in parts]), images)
        np.testing.assert_array_equal(np.concatenate([part[batch][1] for part in parts]), masks)
