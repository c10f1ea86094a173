"""Weights and saved models cross backends: trained on TensorFlow, used on JAX."""

import numpy as np
import pytest

from conftest import run_python

WRITE = """
import numpy as np, keras
from frcunet.models import build_model
keras.utils.set_random_seed(3)
model = build_model("frcunet-lite", (32, 48, 3), pyramid="{pyramid}")
images = np.random.default_rng(0).integers(0, 256, (2, 32, 48, 3)).astype("uint8")
model.save_weights(r"{folder}/lite.weights.h5")
model.save(r"{folder}/lite.keras")
np.save(r"{folder}/expected.npy", model.predict(images, verbose=0))
np.save(r"{folder}/images.npy", images)
print(keras.backend.backend())
"""

READ = """
import numpy as np, keras, frcunet
from frcunet.models import build_model
images = np.load(r"{folder}/images.npy")
model = build_model("frcunet-lite", (32, 48, 3), pyramid="{pyramid}")
model.load_weights(r"{folder}/lite.weights.h5")
np.save(r"{folder}/from_weights.npy", model.predict(images, verbose=0))
loaded = keras.saving.load_model(r"{folder}/lite.keras")
np.save(r"{folder}/from_keras.npy", loaded.predict(images, verbose=0))
print(keras.backend.backend())
"""


@pytest.mark.parametrize("pyramid", ["reference", "multiscale"])
def test_weights_saved_under_tensorflow_predict_the_same_under_jax(tmp_path, pyramid):
    written = run_python(WRITE.format(folder=tmp_path, pyramid=pyramid), backend="tensorflow")
    assert written.returncode == 0, written.stderr[-2000:]
    assert written.stdout.split()[-1] == "tensorflow"
    read = run_python(READ.format(folder=tmp_path, pyramid=pyramid), backend="jax")
    assert read.returncode == 0, read.stderr[-2000:]
    assert read.stdout.split()[-1] == "jax"
    expected = np.load(tmp_path / "expected.npy")
    assert expected.std() > 0  # a constant map would hide a broken load
    np.testing.assert_allclose(np.load(tmp_path / "from_weights.npy"), expected, atol=1e-4)
    np.testing.assert_allclose(np.load(tmp_path / "from_keras.npy"), expected, atol=1e-4)
