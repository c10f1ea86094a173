"""A resumed frcunet-lite run equals an uninterrupted one, bit for bit, with every feature of the cpu recipe.

tests/test_faults.py kills a real process (the small U-Net, TensorFlow). This one stops frcunet-lite, which has
dropout, after an epoch has been saved, on both backends, with a warm-up and cosine schedule spanning a time
budget, batch norm re-estimation, an exponential moving average of the weights, decoder batch norm and flips.
"""

import json

import numpy as np
import pytest

from conftest import TINY_LITE, read_history

pytestmark = [pytest.mark.agnostic, pytest.mark.long]

EPOCHS, STOP_AFTER = 4, 2


class _FakeClock:
    """perf_counter for the budget: every call is one second later, in every process alike."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        self.now += 1.0
        return self.now


def _weights(path):
    import h5py

    arrays = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, item: arrays.__setitem__(name, item[()]) if isinstance(item, h5py.Dataset) else None)
    return arrays


def _train(prepared, run, monkeypatch, stop_after=None):
    import keras

    from frcunet.training import schedules
    from frcunet.training import trainer as training

    monkeypatch.setattr(schedules, "time", _FakeClock())
    if stop_after is not None:
        class StopAfter(keras.callbacks.Callback):  # a kill after the epoch's state is on disk
            def on_epoch_end(self, epoch, logs=None):
                if epoch + 1 == stop_after:
                    raise KeyboardInterrupt

        built = training._callbacks
        monkeypatch.setattr(training, "_callbacks",
                            lambda *args: (lambda made: ([*made[0], StopAfter()], *made[1:]))(built(*args)))
    # The budget (2 minutes of fake seconds) is larger than the epochs need: it plans, the cosine spans it.
    config = training.TrainConfig.from_recipe(
        "cpu", "frcunet-lite", model_options=TINY_LITE, data=str(prepared), run=str(run), deterministic=True,
        verbose=0, epochs=EPOCHS, max_minutes=2.0, batch_size=4, bn_recalibration=8, ema=True, precision="float32")
    try:
        training.train(config)
    except KeyboardInterrupt:
        assert stop_after is not None
    monkeypatch.undo()


def test_a_stopped_frcunet_lite_run_resumes_to_the_same_weights_and_history(prepared, tmp_path, monkeypatch):
    _train(prepared, tmp_path / "whole", monkeypatch)
    _train(prepared, tmp_path / "stopped", monkeypatch, stop_after=STOP_AFTER)
    state = json.loads((tmp_path / "stopped" / "resume" / "state.json").read_text())
    assert state["epochs_done"] == STOP_AFTER and not (tmp_path / "stopped" / "model.keras").exists()
    _train(prepared, tmp_path / "stopped", monkeypatch)

    whole, resumed = read_history(tmp_path / "whole"), read_history(tmp_path / "stopped")
    assert len(whole) == len(resumed) == EPOCHS
    for a, b in zip(whole, resumed, strict=True):
        assert a == b  # every logged value as written, to the last digit
    for name in ("best.weights.h5", f"resume/epoch-{EPOCHS:04d}.weights.h5"):
        want, got = _weights(tmp_path / "whole" / name), _weights(tmp_path / "stopped" / name)
        assert want.keys() == got.keys()
        for key in want:
            np.testing.assert_array_equal(got[key], want[key], err_msg=f"{name}: {key}")
    budget = json.loads((tmp_path / "whole" / "resume" / "state.json").read_text())["callbacks"]["budget"]
    assert budget["planned_epochs"] == EPOCHS and len(budget["epoch_seconds"]) == EPOCHS
