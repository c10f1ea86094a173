"""Export for serving: a SavedModel with a uint8 signature, and a standalone .keras file."""

import numpy as np
import pytest

from conftest import cli, run_python


@pytest.fixture(scope="module")
def run(tiny_run):
    return tiny_run / "run"


def _expected(run, images):
    import frcunet

    return frcunet.load_model(run).predict(images.astype("float32"), verbose=0)


@pytest.mark.long
def test_saved_model_serves_uint8_images_like_the_keras_model(run, tmp_path):
    done = cli("export", "--run", run, "--format", "savedmodel", "--out", tmp_path / "export")
    assert done.returncode == 0, done.stderr[-3000:]
    images = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3)).astype("uint8")
    np.save(tmp_path / "images.npy", images)
    # A serving host needs TensorFlow alone: the fresh process never imports frcunet.
    check = run_python(
        "import sys, numpy as np, tensorflow as tf\n"
        f"loaded = tf.saved_model.load(r'{tmp_path / 'export' / 'savedmodel'}')\n"
        f"served = loaded.serve(tf.constant(np.load(r'{tmp_path / 'images.npy'}'))).numpy()\n"
        f"np.save(r'{tmp_path / 'served.npy'}', served)\n"
        "print(served.dtype, 'frcunet' in sys.modules)\n",
        backend="tensorflow",
    )
    assert check.returncode == 0, check.stderr[-3000:]
    assert check.stdout.split("\n")[-2] == "float32 False"
    np.testing.assert_allclose(np.load(tmp_path / "served.npy"), _expected(run, images), atol=1e-5)


def test_keras_export_loads_with_plain_keras_in_a_fresh_process(run, tmp_path):
    done = cli("export", "--run", run, "--format", "keras", "--out", tmp_path / "k")
    assert done.returncode == 0, done.stderr[-3000:]
    images = np.random.default_rng(1).integers(0, 256, (2, 32, 32, 3)).astype("uint8")
    np.save(tmp_path / "images.npy", images)
    # Plain Keras: importing frcunet.models registers the custom layers, nothing else of frcunet runs.
    check = run_python(
        "import numpy as np, keras, frcunet.models\n"
        f"model = keras.saving.load_model(r'{tmp_path / 'k' / 'model.keras'}')\n"
        f"images = np.load(r'{tmp_path / 'images.npy'}').astype('float32')\n"
        f"np.save(r'{tmp_path / 'loaded.npy'}', model.predict(images, verbose=0))\n"
    )
    assert check.returncode == 0, check.stderr[-3000:]
    np.testing.assert_allclose(np.load(tmp_path / "loaded.npy"), _expected(run, images), atol=1e-5)


def test_export_errors_are_one_line(tmp_path):
    done = cli("export", "--run", tmp_path / "none", "--out", tmp_path / "o")
    assert done.returncode == 2 and done.stderr.strip().splitlines()[-1].startswith("error: no run in")
    assert not (tmp_path / "o").exists()
