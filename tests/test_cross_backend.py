"""Weights and saved models cross backends: trained on TensorFlow, used on JAX."""

import numpy as np
import pytest

from conftest import TINY_LITE, run_python

PYRAMIDS = ("reference", "multiscale")

# Both pyramid modes in one interpreter per backend: starting one costs more than building a narrow model.
WRITE = """
import numpy as np, keras
from frcunet.models.registry import build_model
images = np.random.default_rng(0).integers(0, 256, (2, 32, 48, 3)).astype("uint8")
for pyramid in {pyramids!r}:
    keras.utils.set_random_seed(3)
    model = build_model("frcunet-lite", (32, 48, 3), pyramid=pyramid, **{options!r})
    model.save_weights(rf"{folder}/{{pyramid}}.weights.h5")
    model.save(rf"{folder}/{{pyramid}}.keras")
    np.save(rf"{folder}/{{pyramid}}_expected.npy", model.predict(images, verbose=0))
np.save(r"{folder}/images.npy", images)
print(keras.backend.backend())
"""

# Weights load the way evaluate and predict load a run's (without drawing them at random first).
READ = """
import numpy as np, keras, frcunet
from frcunet.models.registry import build_model_to_load
images = np.load(r"{folder}/images.npy")
for pyramid in {pyramids!r}:
    weights = rf"{folder}/{{pyramid}}.weights.h5"
    model = build_model_to_load("frcunet-lite", (32, 48, 3), lambda m: m.load_weights(weights), pyramid=pyramid,
                                **{options!r})
    np.save(rf"{folder}/{{pyramid}}_from_weights.npy", model.predict(images, verbose=0))
    loaded = keras.saving.load_model(rf"{folder}/{{pyramid}}.keras")
    np.save(rf"{folder}/{{pyramid}}_from_keras.npy", loaded.predict(images, verbose=0))
print(keras.backend.backend())
"""


@pytest.mark.long
def test_weights_saved_under_tensorflow_predict_the_same_under_jax(tmp_path):
    script = dict(folder=tmp_path, pyramids=PYRAMIDS, options=TINY_LITE)
    written = run_python(WRITE.format(**script), backend="tensorflow")
    assert written.returncode == 0, written.stderr[-2000:]
    assert written.stdout.split()[-1] == "tensorflow"
    read = run_python(READ.format(**script), backend="jax")
    assert read.returncode == 0, read.stderr[-2000:]
    assert read.stdout.split()[-1] == "jax"
    for pyramid in PYRAMIDS:
        expected = np.load(tmp_path / f"{pyramid}_expected.npy")
        assert expected.std() > 0, pyramid  # a constant map would hide a broken load
        np.testing.assert_allclose(np.load(tmp_path / f"{pyramid}_from_weights.npy"), expected, atol=1e-4,
                                   err_msg=pyramid)
        np.testing.assert_allclose(np.load(tmp_path / f"{pyramid}_from_keras.npy"), expected, atol=1e-4,
                                   err_msg=pyramid)
