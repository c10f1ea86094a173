"""Data-parallel training through each backend's own engine.

TensorFlow: `tf.distribute.MirroredStrategy` (one machine) or `MultiWorkerMirroredStrategy` (TF_CONFIG); the
model is built and compiled in the strategy's scope, and its batch norm layers are synchronised across
replicas, so that they see the global batch as one device would. JAX: `keras.distribution.DataParallel` over
all devices, after `jax.distributed` start-up (KERAS_DISTRIBUTION_* variables) for several processes; JAX's
global arrays make batch norm global already. Either way the global batch is split across replicas, and the
result equals one device's training on the same global batch within float tolerance
(tests/test_multiworker.py). TensorFlow is imported only here, and only when the TensorFlow backend is in use.
"""

from __future__ import annotations

import contextlib
import json
import os
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import keras

from frcunet.core.errors import UserError
from frcunet.core.names import DISTRIBUTE_MODES

# What --distribute multiworker reads on JAX (keras.distribution.initialize reads the same variables).
JAX_CLUSTER_VARIABLES = ("KERAS_DISTRIBUTION_JOB_ADDRESSES", "KERAS_DISTRIBUTION_NUM_PROCESSES",
                         "KERAS_DISTRIBUTION_PROCESS_ID")


@dataclass(frozen=True)
class Worker:
    """This process's place among the training processes: index 0 (the chief) writes the run folder."""

    index: int = 0
    count: int = 1


def this_worker(mode: str, backend: str | None = None) -> Worker:
    """This process's Worker, read from the cluster description in the environment (nothing starts).

    TensorFlow: TF_CONFIG (a "chief" task, if any, comes first, then the "worker" tasks in order).
    JAX: KERAS_DISTRIBUTION_PROCESS_ID and KERAS_DISTRIBUTION_NUM_PROCESSES.
    """
    if mode != "multiworker":
        return Worker()
    backend = backend or keras.backend.backend()
    if backend == "tensorflow":
        return _tensorflow_worker()
    if backend == "jax":
        return _jax_worker()
    raise UserError(f"--distribute supports the tensorflow and jax backends, not {backend}")


def _tensorflow_worker():
    if "TF_CONFIG" not in os.environ:
        raise UserError("--distribute multiworker on TensorFlow needs TF_CONFIG describing the cluster on every "
                        "worker (see docs/usage.md, 'Several machines')")
    try:
        described = json.loads(os.environ["TF_CONFIG"])
        cluster, task = described["cluster"], described["task"]
        chiefs, workers = list(cluster.get("chief", [])), list(cluster.get("worker", []))
        index = int(task["index"]) + (len(chiefs) if task["type"] == "worker" else 0)
        if task["type"] not in ("chief", "worker") or not 0 <= index < len(chiefs) + len(workers):
            raise ValueError(task)
    except (ValueError, KeyError, TypeError, AttributeError):
        raise UserError('TF_CONFIG must be JSON like {"cluster": {"worker": ["host1:port", "host2:port"]}, '
                        '"task": {"type": "worker", "index": 0}}, with this worker\'s index in the list') from None
    return Worker(index, len(chiefs) + len(workers))


def _jax_worker():
    missing = [name for name in JAX_CLUSTER_VARIABLES if not os.environ.get(name)]
    if missing:
        raise UserError(f"--distribute multiworker on JAX needs {', '.join(missing)} on every process "
                        "(see docs/usage.md, 'Several machines')")
    try:
        index = int(os.environ["KERAS_DISTRIBUTION_PROCESS_ID"])
        count = int(os.environ["KERAS_DISTRIBUTION_NUM_PROCESSES"])
    except ValueError:
        raise UserError("KERAS_DISTRIBUTION_PROCESS_ID and KERAS_DISTRIBUTION_NUM_PROCESSES must be whole "
                        "numbers") from None
    if not 0 <= index < count:
        raise UserError(f"KERAS_DISTRIBUTION_PROCESS_ID must be 0 to {count - 1}, got {index}")
    return Worker(index, count)


def split_cpu_for_tensorflow(replicas: int) -> None:
    """Makes TensorFlow show `replicas` logical CPU devices (for testing without accelerators)."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * replicas)
    except RuntimeError:
        raise UserError("--cpu-replicas must be set before TensorFlow starts; run it in a fresh process") from None


def _tensorflow_strategy(mode, cpu_replicas):
    import tensorflow as tf

    if mode == "multiworker":
        _tensorflow_worker()  # a clear error for a missing or malformed TF_CONFIG
        _let_keras_train_across_workers()
        return tf.distribute.MultiWorkerMirroredStrategy()
    if cpu_replicas:
        split_cpu_for_tensorflow(cpu_replicas)
    accelerators = tf.config.list_logical_devices("GPU")
    devices = [d.name for d in accelerators] or [d.name for d in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(devices=devices)


def _let_keras_train_across_workers():
    """Works around two faults of Keras 3's TensorFlow trainer under MultiWorkerMirroredStrategy.

    Keras 3.15 fails there before the first step: (1) `_maybe_symbolic_build` reduces the first batch, a
    tuple of per-replica values, with `strategy.reduce`, which takes one value, not a tuple ("Attempt to
    convert a value (PerReplica...)"); (2) each step's logs, scalars, are averaged with `axis=0` ("Invalid
    reduction dimension 0 for input with 0 dimensions"). The batch is only read for its shapes, so a replica's
    own part serves; the scalars are averaged over replicas without an axis. Both replacements are
    idempotent, and change nothing without a multi-worker strategy.
    """
    import tensorflow as tf
    from keras.src.backend.tensorflow import trainer

    if getattr(trainer, "_frcunet_multiworker", False):
        return
    original_reduce = trainer.reduce_per_replica
    original_build = trainer.TensorFlowTrainer._maybe_symbolic_build

    def reduce_per_replica(values, strategy, reduction):
        if trainer._collective_all_reduce_multi_worker(strategy) and reduction in ("auto", "mean"):
            return tf.nest.map_structure(
                lambda value: strategy.reduce("MEAN", value, axis=None) if value is not None else None, values)
        return original_reduce(values, strategy, reduction)

    def maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = self._distribute_strategy
        if strategy is None or not trainer._collective_all_reduce_multi_worker(strategy) or iterator is None:
            return original_build(self, iterator=iterator, data_batch=data_batch)
        for _, _, batches in iterator:
            local = tf.nest.map_structure(lambda value: strategy.experimental_local_results(value)[0],
                                          next(batches))
            break
        with strategy.scope():
            self._symbolic_build(data_batch=local)

    trainer.reduce_per_replica = reduce_per_replica
    trainer.TensorFlowTrainer._maybe_symbolic_build = maybe_symbolic_build
    trainer._frcunet_multiworker = True


def _jax_distribution(mode):
    if mode == "multiworker":
        import jax

        # On CPUs, processes exchange gradients through gloo; accelerators have their own collectives.
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        keras.distribution.initialize()  # reads the KERAS_DISTRIBUTION_* variables
    devices = keras.distribution.list_devices()
    distribution = keras.distribution.DataParallel(devices=devices)
    # Each process reads its own part of every global batch (SegmentationBatches' `part`), so Keras
    # must not shard the input again.
    distribution.auto_shard_dataset = False
    keras.distribution.set_distribution(distribution)
    return len(devices)


def distribution_scope(mode: str = "none", cpu_replicas: int = 0) -> tuple[AbstractContextManager[Any], int]:
    """A context to build and compile the model in, and the number of replicas.

    Args:
        mode: "none", "data-parallel" or "multiworker".
        cpu_replicas: TensorFlow only: split the CPU into this many devices (tests).
    """
    if mode not in DISTRIBUTE_MODES:
        raise UserError(f"--distribute must be one of {', '.join(DISTRIBUTE_MODES)}")
    if mode == "none":
        return contextlib.nullcontext(), 1
    backend = keras.backend.backend()
    if backend == "tensorflow":
        strategy = _tensorflow_strategy(mode, cpu_replicas)
        return strategy.scope(), strategy.num_replicas_in_sync
    if backend == "jax":
        return contextlib.nullcontext(), _jax_distribution(mode)
    raise UserError(f"--distribute supports the tensorflow and jax backends, not {backend}")


def synchronize_batch_norm(model: keras.Model, replicas: int) -> None:
    """TensorFlow, several replicas: batch norm computes its statistics over the global batch, not each
    replica's share, so that a distributed step equals one device's step on the same batch."""
    if replicas > 1 and keras.backend.backend() == "tensorflow":
        from frcunet.models.batch_norm import batch_norm_layers

        for layer in batch_norm_layers(model):
            layer.synchronized = True
