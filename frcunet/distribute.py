"""Data-parallel training through each backend's own engine.

TensorFlow: `tf.distribute.MirroredStrategy` (one machine) or
`MultiWorkerMirroredStrategy` (TF_CONFIG); the model is built and compiled in
the strategy's scope. JAX: `keras.distribution.DataParallel` over all devices,
after `jax.distributed` start-up for several machines. Either way the global
batch is split across replicas. TensorFlow is imported only here, and only
when the TensorFlow backend is in use.
"""

import contextlib
import os

import keras

from frcunet.errors import UserError
from frcunet.names import DISTRIBUTE_MODES

MODES = DISTRIBUTE_MODES


def split_cpu_for_tensorflow(replicas):
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
        if "TF_CONFIG" not in os.environ:
            raise UserError("--distribute multiworker needs TF_CONFIG describing the cluster on every worker")
        return tf.distribute.MultiWorkerMirroredStrategy()
    if cpu_replicas:
        split_cpu_for_tensorflow(cpu_replicas)
    accelerators = tf.config.list_logical_devices("GPU")
    devices = [d.name for d in accelerators] or [d.name for d in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(devices=devices)


def _jax_distribution(mode):
    if mode == "multiworker":
        # jax.distributed reads the coordinator address, process count and id from the environment
        # (JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID) or the cluster scheduler.
        keras.distribution.initialize()
    devices = keras.distribution.list_devices()
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    return len(devices)


def distribution_scope(mode="none", cpu_replicas=0):
    """A context to build and compile the model in, and the number of replicas.

    Args:
        mode: "none", "data-parallel" or "multiworker".
        cpu_replicas: TensorFlow only: split the CPU into this many devices (tests).
    """
    if mode not in MODES:
        raise UserError(f"--distribute must be one of {', '.join(MODES)}")
    if mode == "none":
        return contextlib.nullcontext(), 1
    backend = keras.backend.backend()
    if backend == "tensorflow":
        strategy = _tensorflow_strategy(mode, cpu_replicas)
        return strategy.scope(), strategy.num_replicas_in_sync
    if backend == "jax":
        return contextlib.nullcontext(), _jax_distribution(mode)
    raise UserError(f"--distribute supports the tensorflow and jax backends, not {backend}")
