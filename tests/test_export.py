"""Export for serving: a SavedModel with a uint8 signature, and a standalone .keras file."""

import pytest

from conftest import cli, run_python


@pytest.fixture(scope="module")
def run(tiny_run):
    return tiny_run / "run"


def test_saved_model_serves_uint8_images_like_the_keras_model(run, tmp_path):
    done = cli("export", "--run", run, "--format", "savedmodel", "--out", tmp_path / "export")
    assert done.returncode == 0, done.stderr[-3000:]
    check = run_python(
        "import numpy as np, tensorflow as tf, frcunet\n"
        f"images = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3)).astype('uint8')\n"
        f"loaded = tf.saved_model.load(r'{tmp_path / 'export' / 'savedmodel'}')\n"
        "served = loaded.serve(tf.constant(images)).numpy()\n"
        f"model = frcunet.load_model(r'{run}')\n"
        "np.testing.assert_allclose(served, model.predict(images.astype('float32'), verbose=0), atol=1e-5)\n"
        "print(served.shape, served.dtype)\n",
        backend="tensorflow",
    )
    assert check.returncode == 0, check.stderr[-3000:]
    assert check.stdout.split("\n")[-2] == "(3, 32, 32, 1) float32"


def test_keras_export_loads_with_plain_keras_in_a_fresh_process(run, tmp_path):
    done = cli("export", "--run", run, "--format", "keras", "--out", tmp_path / "k")
    assert done.returncode == 0, done.stderr[-3000:]
    check = run_python(
        "import numpy as np, keras, frcunet.models\n"
        f"model = keras.saving.load_model(r'{tmp_path / 'k' / 'model.keras'}')\n"
        "print(model.predict(np.zeros((1, 32, 32, 3)), verbose=0).shape)\n"
    )
    assert check.returncode == 0 and check.stdout.strip().endswith("(1, 32, 32, 1)"), check.stderr[-3000:]


def test_export_errors_are_one_line(tmp_path):
    done = cli("export", "--run", tmp_path / "none", "--out", tmp_path / "o")
    assert done.returncode == 2 and done.stderr.strip().splitlines()[-1].startswith("error: no run in")
    assert not (tmp_path / "o").exists()
