"""The CPU recipe's parts: augmentation, fixed input scaling, decoder batch norm, schedules, time budget."""

import json

import keras
import numpy as np
import pytest

from conftest import SMALL_UNET, read_history
from frcunet.artifacts.runs import load_run_model
from frcunet.cli import make_parser, train_config
from frcunet.core.errors import UserError
from frcunet.data.augmentation import augment_pair, check_augmentation
from frcunet.data.pipeline import SegmentationBatches
from frcunet.models.batch_norm import batch_norm_layers, recalibrate_batch_norm
from frcunet.training.recipes import RECIPES, recipe_settings
from frcunet.training.schedules import warmup_cosine
from frcunet.training.trainer import TrainConfig, train

TINY = {"width": 0.125, "middle_units": 1}


def _disc_pair(size=(48, 64)):
    """A grey image that is bright exactly where its mask is set (an off-centre disc)."""
    rows, cols = np.mgrid[: size[0], : size[1]]
    mask = ((rows - 20) ** 2 + (cols - 36) ** 2 < 12**2).astype(np.uint8)
    image = np.repeat((40 + 180 * mask)[..., None], 3, axis=-1).astype(np.float32)
    return image, mask


def test_full_augmentation_moves_image_and_mask_together():
    image, mask = _disc_pair()
    moved = 0
    for seed in range(20):
        augmented, augmented_mask = augment_pair(image, mask, np.random.default_rng(seed), square=False,
                                                 level="full")
        assert augmented.shape == image.shape and augmented_mask.shape == mask.shape
        assert set(np.unique(augmented_mask)) <= {0, 1}
        # Brightness, contrast and gamma are monotonic and the image is grey, so the bright pixels are
        # still exactly the lesion, wherever the warp put it.
        bright = augmented.mean(axis=-1) > augmented.mean()
        assert (bright == augmented_mask.astype(bool)).mean() > 0.97
        moved += not np.array_equal(augmented_mask, mask)
    assert moved >= 18


def test_full_augmentation_survives_per_image_min_max_scaling():
    """The old jitter (global gain and offset) was undone by the model's min-max input layer; this is not."""
    from frcunet.models.preprocessing import MinMaxNormalization

    image = np.random.default_rng(0).uniform(0, 255, (32, 32, 3)).astype(np.float32)
    mask = np.zeros((32, 32), np.uint8)
    rng = np.random.default_rng(1)
    normalise = MinMaxNormalization()
    flipped, _ = augment_pair(image, mask, np.random.default_rng(1), square=True, level="flip")
    full, _ = augment_pair(image, mask, rng, square=True, level="full")
    # The same seed draws the same flips first, so any difference comes from the warp and the colours.
    difference = np.abs(np.asarray(normalise(full[None])) - np.asarray(normalise(flipped[None])))
    assert difference.mean() > 0.05


def test_flip_level_only_rearranges_pixels():
    image = np.random.default_rng(2).uniform(0, 255, (16, 32, 3)).astype(np.float32)
    out, _ = augment_pair(image, np.zeros((16, 32), np.uint8), np.random.default_rng(3), False, "flip")
    np.testing.assert_array_equal(np.sort(out.ravel()), np.sort(image.ravel()))


def test_augmentation_levels_and_the_old_boolean():
    assert check_augmentation(True) == "flip" and check_augmentation(False) == "none"
    assert check_augmentation("full") == "full"
    with pytest.raises(ValueError, match="none, flip, full"):
        check_augmentation("strong")


def test_warmup_then_cosine_reaches_zero_at_the_end():
    values = [warmup_cosine(step, 100, 10, 2e-3) for step in range(101)]
    assert values[0] == pytest.approx(2e-4) and values[9] == pytest.approx(2e-3)
    assert max(values) == pytest.approx(2e-3) and values[-1] == pytest.approx(0.0, abs=1e-12)
    assert all(a >= b for a, b in zip(values[10:], values[11:], strict=False))  # each value with the next


def test_a_budget_that_grows_never_raises_the_rate_again(monkeypatch):
    from types import SimpleNamespace

    from frcunet.training import schedules

    clock = SimpleNamespace(now=0.0)
    monkeypatch.setattr(schedules.time, "perf_counter", lambda: clock.now)
    schedule = schedules.BudgetedSchedule(1e-3, epochs=20, steps_per_epoch=4, max_minutes=1.0, warmup_epochs=1)
    model = SimpleNamespace(optimizer=SimpleNamespace(learning_rate=0.0), stop_training=False)
    schedule.set_model(model)
    schedule.on_train_begin()
    rates = []
    # The first epoch takes 20 s (it compiles), the next ones 5 s: the plan grows from 3 to 9 epochs.
    for epoch, seconds in enumerate([20, 5, 5, 5, 5, 5, 5, 5, 5]):
        schedule.on_epoch_begin(epoch)
        for batch in range(4):
            schedule.on_train_batch_begin(batch)
            rates.append(model.optimizer.learning_rate)
        clock.now += seconds
        schedule.on_epoch_end(epoch, {})
        if model.stop_training:
            break
    after_warmup = rates[4:]
    assert all(b <= a for a, b in zip(after_warmup, after_warmup[1:], strict=False)), after_warmup  # with the next
    assert schedule.planned_epochs > 3 and after_warmup[-1] < 0.1 * 1e-3


def _run_epochs(schedules, schedule, clock, seconds, first_epoch=0):
    """Feeds `schedule` epochs of the given durations (a fake clock); returns the plan after each."""
    from types import SimpleNamespace

    model = SimpleNamespace(optimizer=SimpleNamespace(learning_rate=0.0), stop_training=False)
    schedule.set_model(model)
    schedule.on_train_begin()
    plans = []
    for epoch, duration in enumerate(seconds, start=first_epoch):
        schedule.on_epoch_begin(epoch)
        clock.now += duration
        schedule.on_epoch_end(epoch, {})
        plans.append(schedule.planned_epochs)
    return plans


def test_a_resumed_budget_plans_from_the_epochs_it_measured_not_from_its_tracing_epoch(monkeypatch):
    from types import SimpleNamespace

    from frcunet.training import schedules

    clock = SimpleNamespace(now=0.0)
    monkeypatch.setattr(schedules.time, "perf_counter", lambda: clock.now)
    settings = dict(peak_lr=1e-3, epochs=100, steps_per_epoch=4, max_minutes=1.0)
    first = schedules.BudgetedSchedule(**settings)
    # 20 s to trace and compile, then 4 s an epoch: 1 + 10 epochs fit in the minute.
    assert _run_epochs(schedules, first, clock, [20, 4, 4]) == [3.0, 11.0, 11.0]
    state = {name: getattr(first, name) for name in first.STATE_FIELDS}
    resumed = schedules.BudgetedSchedule(**settings)
    for name, value in state.items():
        setattr(resumed, name, value)
    # The resumed process traces again (20 s of the budget: 12 s left after it). Planned at the 4 s an epoch
    # measured before, 3 more epochs fit (7 in all); planned at that tracing epoch's pace, none would.
    assert _run_epochs(schedules, resumed, clock, [20, 4], first_epoch=3) == [7.0, 7.0]
    assert resumed.tracing_epochs == [0, 3]


def test_a_deterministic_budget_fixes_its_plan_after_the_first_epoch(monkeypatch):
    from types import SimpleNamespace

    from frcunet.training import schedules

    clock = SimpleNamespace(now=0.0)
    monkeypatch.setattr(schedules.time, "perf_counter", lambda: clock.now)
    fixed = schedules.BudgetedSchedule(1e-3, 100, 4, max_minutes=1.0, fix_plan=True)
    assert _run_epochs(schedules, fixed, clock, [10, 2, 2, 2]) == [6.0] * 4  # 1 + 50 s / 10 s, kept
    moving = schedules.BudgetedSchedule(1e-3, 100, 4, max_minutes=1.0)
    assert _run_epochs(schedules, moving, clock, [10, 2]) == [6.0, 26.0]


def test_a_resume_must_agree_on_determinism(prepared, tmp_path):
    from conftest import SMALL_UNET
    from frcunet.core.errors import UserError
    from frcunet.training.trainer import TrainConfig, train

    settings = dict(data=str(prepared), run=str(tmp_path / "run"), model="unet", model_options=SMALL_UNET, epochs=1,
                    batch_size=8, verbose=0)
    train(TrainConfig(**settings))
    with pytest.raises(UserError, match=r"other settings \(epochs|deterministic\)"):
        train(TrainConfig(**dict(settings, epochs=2, deterministic=True)))


def test_fixed_scaling_and_decoder_bn_change_the_model_not_its_interface():
    from frcunet.models.registry import build_model

    plain = build_model("frcunet-lite", (32, 32, 3), **TINY)
    model = build_model("frcunet-lite", (32, 32, 3), normalization="fixed", decoder_bn=True, **TINY)
    names = {layer.name for layer in model.layers}
    assert "head_conv1_BN" in names and "head_conv1_BN" not in {layer.name for layer in plain.layers}
    assert type(model.get_layer("normalize")).__name__ == "FixedScaling"
    assert tuple(model.output_shape) == (None, 32, 32, 1)
    # Per-image min-max hides a global brightening; fixed scaling passes it on.
    image = np.random.default_rng(0).uniform(20, 200, (1, 32, 32, 3)).astype(np.float32)
    normalise = model.get_layer("normalize")
    assert float(np.abs(np.asarray(normalise(image + 30.0)) - np.asarray(normalise(image))).max()) > 0.2
    unet = build_model("unet", (32, 32, 3), base_filters=4, depth=2, normalization="fixed")
    assert type(unet.get_layer("normalize")).__name__ == "FixedScaling"


def test_recipe_fills_unset_flags_and_given_flags_win():
    args = make_parser().parse_args(["train", "--recipe", "cpu", "--model", "frcunet-lite", "--lr", "5e-4"])
    config = train_config(args)
    assert config.lr == 5e-4
    assert config.schedule == RECIPES["cpu"]["train"]["schedule"]
    assert config.model_options == recipe_settings("cpu", "frcunet-lite")[1]
    assert config.max_minutes == 60 and config.precision == "auto"
    args = make_parser().parse_args(["train", "--recipe", "cpu", "--model", "frcunet-lite", "--decoder-bn", "off",
                                     "--width", "0.25", "--augment"])
    config = train_config(args)
    assert config.model_options == {"decoder_bn": False, "width": 0.25} and config.augment == "flip"
    # Without --recipe the paper's settings, and the faithful network.
    config = train_config(make_parser().parse_args(["train"]))
    assert (config.lr, config.batch_size, config.epochs, config.model_options) == (1e-4, 12, 100, {})


def _batch_norm_statistics(model):
    return [keras.ops.convert_to_numpy(variable) for layer in batch_norm_layers(model)
            for variable in (layer.moving_mean, layer.moving_variance)]


@pytest.mark.agnostic
def test_cosine_schedule_spans_the_epochs_and_ema_runs(prepared, tmp_path):
    # The small U-Net (batch norm everywhere): the schedule, EMA and re-estimation do not depend on the network.
    config = TrainConfig(data=str(prepared), run=str(tmp_path / "run"), model="unet",
                         model_options=dict(SMALL_UNET, normalization="fixed"), epochs=3, batch_size=4,
                         lr=1e-3, schedule="cosine", warmup_epochs=1, optimizer="adamw", weight_decay=1e-4,
                         ema=True, bn_recalibration=8, augment="full", loss="bce+dice", monitor="val_dice",
                         verbose=0)
    run, _ = train(config)
    rates = [float(row["learning_rate"]) for row in read_history(run)]
    # Logged at each epoch's last step: the peak after the warm-up epoch, then down to near 0 at the end
    assert rates[0] == pytest.approx(1e-3, rel=1e-3) and rates[0] > rates[1] > rates[2]
    assert rates[-1] < 0.1 * 1e-3
    assert (run / "best.weights.h5").is_file() and (run / "model.keras").is_file()

    # The kept weights carry batch norm statistics re-estimated for them (the averaged weights) on the first
    # two training batches: re-estimating once more changes nothing. Moving averages would not pass this.
    model, _ = load_run_model(run)
    kept = _batch_norm_statistics(model)
    images = SegmentationBatches(prepared, ("train",), 4, shuffle=True, seed=config.seed)
    assert recalibrate_batch_norm(model, (images[index][0] for index in range(2))) == 2
    for saved, again in zip(kept, _batch_norm_statistics(model), strict=True):
        np.testing.assert_allclose(saved, again, rtol=1e-4, atol=1e-6)


# Not in the JAX pass: the budget is Python bookkeeping around fit, the same on every backend.
def test_time_budget_stops_after_the_last_epoch_that_fits(prepared, tmp_path):
    run = tmp_path / "run"
    # A budget far below one epoch: the first epoch runs (nothing is known before it), then training stops.
    config = TrainConfig(data=str(prepared), run=str(run), model="unet", model_options=SMALL_UNET, epochs=50,
                         batch_size=4, lr=1e-3, schedule="cosine", max_minutes=0.001, verbose=0)
    train(config)
    assert len(read_history(run)) == 1
    state = json.loads((run / "resume" / "state.json").read_text())
    assert state["finished"] and state["callbacks"]["budget"]["planned_epochs"] == 1
    assert state["callbacks"]["budget"]["elapsed_seconds"] > 0
    # The same command again finds the budget spent and does nothing.
    _, history = train(TrainConfig(**{**config.__dict__, "run": str(run)}))
    assert history is None


def test_fitting_on_validation_needs_the_last_epoch_kept(prepared, tmp_path):
    config = TrainConfig(data=str(prepared), run=str(tmp_path / "run"), model="frcunet-lite", model_options=TINY,
                         epochs=1, batch_size=4, train_splits=("train", "val"), monitor="val_dice", verbose=0)
    with pytest.raises(UserError, match="--monitor last"):
        train(config)
    assert not (tmp_path / "run").exists()


def test_fitting_on_train_and_val_sees_both(prepared, tmp_path):
    from frcunet.data.pipeline import SegmentationBatches

    both = SegmentationBatches(prepared, ("train", "val"), batch_size=100)
    images, masks = both[0]
    train_images = np.load(prepared / "data_train.npy")
    val_images = np.load(prepared / "data_val.npy")
    np.testing.assert_array_equal(images, np.concatenate([train_images, val_images]).astype(np.float32))
    run, _ = train(TrainConfig(data=str(prepared), run=str(tmp_path / "run"), model="unet",
                               model_options=SMALL_UNET, epochs=1, batch_size=4, train_splits=("train", "val"),
                               monitor="last", verbose=0))
    assert json.loads((run / "config.json").read_text())["train_splits"] == ["train", "val"]
