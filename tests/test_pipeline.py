"""Batches from prepared folders, augmentation, losses and the logged Dice."""

import keras
import numpy as np
import pytest

from frcunet.core.errors import UserError
from frcunet.data.pipeline import SegmentationBatches, augment_pair, open_split
from frcunet.training.losses import PooledDice, bce_dice_loss, soft_dice_loss

pytestmark = pytest.mark.agnostic


def write_prepared(folder, n=10, size=(32, 48), seed=0):
    """A prepared folder whose mask is exactly where the red channel is bright."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "val", "test"):
        images = rng.integers(0, 256, (n, *size, 3)).astype(np.uint8)
        np.save(folder / f"data_{split}.npy", images)
        np.save(folder / f"mask_{split}.npy", (images[..., 0] > 127).astype(np.uint8))
    return folder


def test_batches_cover_the_split_with_float_images_and_masks(tmp_path):
    folder = write_prepared(tmp_path / "p")
    batches = SegmentationBatches(folder, "val", batch_size=4)
    assert len(batches) == 3
    images, masks = batches[2]
    assert images.shape == (2, 32, 48, 3) and masks.shape == (2, 32, 48, 1)
    assert images.dtype == np.float32 and masks.dtype == np.float32
    np.testing.assert_array_equal(images, np.load(folder / "data_val.npy")[8:10])


def test_shuffle_depends_only_on_seed_and_epoch(tmp_path):
    folder = write_prepared(tmp_path / "p", n=20)
    first = SegmentationBatches(folder, "train", batch_size=20, shuffle=True, seed=3)
    epoch0 = first.order().copy()
    first.on_epoch_end()
    epoch1 = first.order().copy()
    assert not np.array_equal(epoch0, epoch1)
    resumed = SegmentationBatches(folder, "train", batch_size=20, shuffle=True, seed=3, epoch=1)
    np.testing.assert_array_equal(resumed.order(), epoch1)


def test_a_few_images_are_repeated_into_an_epoch_of_epoch_images(tmp_path):
    folder = write_prepared(tmp_path / "p", n=5, size=(32, 32))
    plain = SegmentationBatches(folder, "train", batch_size=4, shuffle=True, augment="flip", seed=2)
    repeated = SegmentationBatches(folder, "train", batch_size=4, shuffle=True, augment="flip", seed=2,
                                   epoch_images=12)
    assert (len(plain), len(repeated)) == (2, 4)  # ceil(12 / 5) = 3 passes of the 5 images: 15 in 4 batches
    order = repeated.order()
    np.testing.assert_array_equal(order[:5], plain.order())  # the first pass is the unrepeated epoch
    np.testing.assert_array_equal(np.bincount(order % 5), [3] * 5)
    assert [sorted(order[k * 5: (k + 1) * 5] // 5) for k in range(3)] == [[0] * 5, [1] * 5, [2] * 5]
    original = np.load(folder / "data_train.npy").astype(np.float32)
    images = np.concatenate([repeated[i][0] for i in range(len(repeated))])
    # Every image shows three times, each copy a flip or turn of it, not always the same one.
    varied = 0
    for row in range(5):
        copies = [image for image in images if np.array_equal(np.sort(image.ravel()), np.sort(original[row].ravel()))]
        assert len(copies) == 3
        varied += any(not np.array_equal(copies[0], other) for other in copies[1:])
    assert varied >= 3  # each repetition draws its own flips and turns
    unshuffled = SegmentationBatches(folder, "val", batch_size=4, epoch_images=12)
    assert len(unshuffled) == 2  # validation never repeats


def test_augmentation_moves_image_and_mask_together(tmp_path):
    folder = write_prepared(tmp_path / "p", n=8, size=(32, 32))
    batches = SegmentationBatches(folder, "train", batch_size=8, shuffle=True, augment=True, seed=1)
    images, masks = batches[0]
    original = np.load(folder / "data_train.npy").astype(np.float32)
    assert not np.array_equal(images, original)
    # True means flips and turns: each image's pixels are rearranged, not changed, and the mask moves along.
    for image, before in zip(images, original, strict=True):
        np.testing.assert_array_equal(np.sort(image.ravel()), np.sort(before.ravel()))
    bright = images[..., 0] > 127
    assert (bright == (masks[..., 0] > 0.5)).mean() > 0.9
    full = SegmentationBatches(folder, "train", batch_size=8, shuffle=True, augment="full", seed=1)[0][0]
    assert not np.array_equal(np.sort(full[0].ravel()), np.sort(original[0].ravel()))


def test_non_square_images_are_only_turned_by_180_degrees():
    rng = np.random.default_rng(0)
    for _ in range(20):
        image, mask = augment_pair(np.zeros((16, 32, 3), np.float32), np.zeros((16, 32), np.float32), rng, False)
        assert image.shape == (16, 32, 3) and mask.shape == (16, 32)


def test_bad_prepared_folders_are_errors(tmp_path):
    with pytest.raises(UserError, match="frcunet prepare isic2018 --out"):
        open_split(tmp_path / "isic2018", "train")
    folder = write_prepared(tmp_path / "p")
    np.save(folder / "mask_val.npy", np.full((10, 32, 48), 255, np.uint8))
    with pytest.raises(UserError, match="0/1"):
        open_split(folder, "val")
    np.save(folder / "mask_test.npy", np.zeros((9, 32, 48), np.uint8))
    with pytest.raises(UserError, match="to match its images"):
        open_split(folder, "test")


def test_soft_dice_and_bce_dice_losses():
    truth = np.zeros((2, 8, 8, 1), np.float32)
    truth[:, 2:6, 2:6] = 1
    assert float(keras.ops.mean(soft_dice_loss(truth, truth))) == pytest.approx(0.0, abs=1e-6)
    assert float(keras.ops.mean(soft_dice_loss(truth, 1 - truth))) > 0.9
    assert float(keras.ops.mean(bce_dice_loss(truth, np.clip(truth, 0.01, 0.99)))) < 0.05


def test_pooled_dice_pools_over_batches():
    rng = np.random.default_rng(0)
    truth = (rng.random((6, 8, 8, 1)) > 0.6).astype(np.float32)
    probabilities = rng.random((6, 8, 8, 1)).astype(np.float32)
    metric = PooledDice()
    metric.update_state(truth[:2], probabilities[:2])
    metric.update_state(truth[2:], probabilities[2:])
    predicted = probabilities > 0.5
    expected = 2 * (predicted & (truth > 0.5)).sum() / (predicted.sum() + truth.sum())
    assert float(metric.result()) == pytest.approx(expected, rel=1e-6)
    metric.reset_state()
    metric.update_state(np.zeros((1, 4, 4, 1)), np.zeros((1, 4, 4, 1)))
    assert float(metric.result()) == 1.0  # both empty: perfect


@pytest.mark.parametrize("size, epoch_images, batches", [((32, 32), 0, 8), ((32, 48), 0, 8), ((32, 32), 45, 20)])
def test_native_pipeline_yields_the_same_batches_as_the_python_one(tmp_path, size, epoch_images, batches):
    from frcunet.data.native_pipeline import native_dataset  # TensorFlow is in requirements.txt: never skipped

    folder = write_prepared(tmp_path / "p", n=10, size=size)
    settings = dict(batch_size=6, shuffle=True, augment="flip", seed=4, epoch=1, epoch_images=epoch_images)
    python_batches = SegmentationBatches(folder, ("train", "val"), **settings)
    native = native_dataset(SegmentationBatches(folder, ("train", "val"), **settings), epochs=3)
    expected = []
    for _ in range(2):  # epochs 1 and 2, as a resumed run would see them
        expected += [python_batches[i] for i in range(len(python_batches))]
        python_batches.on_epoch_end()
    got = [(np.asarray(x), np.asarray(y)) for x, y in native]
    assert len(got) == len(expected) == batches
    for (x, y), (ex, ey) in zip(got, expected, strict=True):
        np.testing.assert_array_equal(x, ex)
        np.testing.assert_array_equal(y, ey)


def test_training_on_a_raw_download_suggests_preparing_it_into_a_new_folder(tmp_path):
    raw = tmp_path / "my_download"
    raw.mkdir()
    (raw / "case1.jpg").write_bytes(b"")
    with pytest.raises(UserError, match=f"prepare it into a new folder: frcunet prepare DATASET --data-dir {raw} "
                                        "--out data/my_download_prepared"):
        open_split(raw, "train")
