"""The training batches as a native `tf.data` pipeline, for the TensorFlow backend.

On the TensorFlow backend, `model.fit` fed from Python (a `keras.utils.PyDataset`, a generator, or
`tf.numpy_function`) trained frcunet-lite at about half the speed it reaches on in-memory tensors on a
2-core CPU (docs/results.md, "Input pipeline"). This pipeline yields exactly the batches that
`SegmentationBatches` yields: the same rows in the same order per (seed, epoch), and the same flips and
turns per (seed, epoch, row), drawn in numpy once per epoch. Only gathers, flips and turns run per
batch, as TensorFlow ops. It holds the arrays in memory and covers the "none" and "flip" augmentation;
"full" stays on the Python pipeline.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from frcunet.data.pipeline import augmentation_key

if TYPE_CHECKING:
    import tensorflow as tf

    from frcunet.data.pipeline import SegmentationBatches

NATIVE_AUGMENTATIONS = ("none", "flip")


def flip_codes(seed: int, epoch: int, rows: Sequence[int] | np.ndarray, square: bool,
               repetitions: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
    """(horizontal flip, vertical flip, quarter turns) per row: the draws `flip_and_turn` makes."""
    codes = np.zeros((len(rows), 3), np.int32)
    repetitions = np.zeros(len(rows), np.int64) if repetitions is None else repetitions
    for k, (row, repetition) in enumerate(zip(rows, repetitions, strict=True)):
        rng = np.random.default_rng(augmentation_key(seed, epoch, row, repetition))
        horizontal, vertical = rng.random() < 0.5, rng.random() < 0.5
        turns = int(rng.integers(4)) if square else 2 * int(rng.integers(2))
        codes[k] = (horizontal, vertical, turns)
    return codes


def epoch_plan(batches: SegmentationBatches, epoch: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows (in batch order, each batch sorted as SegmentationBatches reads it) and their flip codes."""
    entries = [batches.batch_entries(index, epoch) for index in range(len(batches))]
    rows = np.concatenate([rows for rows, _ in entries])
    height, width = batches.data[0].size
    if batches.augment == "flip":
        codes = flip_codes(batches.seed, epoch, rows, height == width,
                           np.concatenate([repetitions for _, repetitions in entries]))
    else:
        codes = np.zeros((len(rows), 3), np.int32)
    return rows.astype(np.int64), codes


def native_dataset(batches: SegmentationBatches, epochs: int) -> tf.data.Dataset:
    """A tf.data.Dataset of the batches of epochs `batches.epoch` .. `epochs - 1`, one after the other.

    Pass it to `model.fit` with `steps_per_epoch=len(batches)`, so that one iterator runs through the
    epochs in order.
    """
    import tensorflow as tf

    if batches.augment not in NATIVE_AUGMENTATIONS:
        raise ValueError(f"the native pipeline covers augmentation {NATIVE_AUGMENTATIONS}, not {batches.augment!r}")
    images = tf.constant(np.concatenate([np.asarray(part.images) for part in batches.data]))
    masks = tf.constant(np.concatenate([np.asarray(part.masks) for part in batches.data]))
    count = len(images) * batches.repeats  # rows per epoch, repetitions included

    def plan(epoch):
        rows, codes = tf.numpy_function(lambda e: epoch_plan(batches, int(e)), [epoch], (tf.int64, tf.int32),
                                        stateful=False)
        return tf.ensure_shape(rows, [count]), tf.ensure_shape(codes, [count, 3])

    def load(row, code):
        image = tf.cast(tf.gather(images, row), tf.float32)
        mask = tf.cast(tf.gather(masks, row), tf.float32)[..., None]
        image, mask = [tf.cond(code[0] > 0, lambda a=a: tf.reverse(a, [1]), lambda a=a: a) for a in (image, mask)]
        image, mask = [tf.cond(code[1] > 0, lambda a=a: tf.reverse(a, [0]), lambda a=a: a) for a in (image, mask)]
        return tf.image.rot90(image, code[2]), tf.image.rot90(mask, code[2])

    def one_epoch(epoch):
        # One Python call per epoch draws its order and flips; the batches themselves are TensorFlow ops.
        pairs = tf.data.Dataset.from_tensor_slices(plan(epoch))
        return pairs.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).batch(batches.batch_size)

    first = batches.epoch
    return tf.data.Dataset.range(first, max(epochs, first + 1)).flat_map(one_epoch).prefetch(2)
