"""The model anywhere: ONNX and LiteRT exports checked by their own runtimes, prediction without TensorFlow or
Keras, the light install, EXIF orientation, one resize for the command line and the API, overlapped I/O."""

import hashlib
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, cli, run_python
from frcunet.artifacts.pretrained import ONNX_FILE, PRETRAINED_DIR, WEIGHTS_FILE, pretrained_record

HELD_OUT = 24  # real held-out ISIC images the exports are compared on


def _real_batch(shared_data, count=HELD_OUT):
    """uint8 (count, 128, 128, 3): held-out real ISIC images as predict reads them for the shipped model."""
    from frcunet.data.imaging import read_image

    root = shared_data / "ISIC2018" / "ISIC2018_Task1-2_Training_Input"
    ids = pretrained_record().held_out_test_ids[:count]
    return np.stack([read_image(root / f"{i}.jpg", pretrained_record().size)[0] for i in ids])


def _keras_probabilities(images):
    from frcunet.artifacts.runs import load_run_model

    model, _ = load_run_model(None)
    return np.asarray(model(images.astype(np.float32), training=False))


# Run in a fresh interpreter that must not import TensorFlow, Keras or frcunet: what a serving host has.
RUNTIME_CHECK = """
import sys, numpy as np
images = np.load(sys.argv[1])
if sys.argv[3] == "onnx":
    import onnxruntime
    session = onnxruntime.InferenceSession(sys.argv[2], providers=["CPUExecutionProvider"])
    assert not isinstance(session.get_inputs()[0].shape[0], int)  # a dynamic (symbolic) batch dimension
    out = session.run(["probabilities"], {"images": images})[0]
else:
    from ai_edge_litert.interpreter import Interpreter
    interpreter = Interpreter(model_path=sys.argv[2])
    entry, exit_ = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    assert entry["shape_signature"][0] == -1 and entry["dtype"] == np.uint8
    interpreter.resize_tensor_input(entry["index"], images.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(entry["index"], images)
    interpreter.invoke()
    out = interpreter.get_tensor(exit_["index"])
np.save(sys.argv[4], out)
print(sorted(m for m in ("tensorflow", "keras", "frcunet") if m in sys.modules))
"""


def _run_in_fresh_runtime(fmt, model_path, images, tmp_path):
    np.save(tmp_path / "images.npy", images)
    (tmp_path / "check.py").write_text(RUNTIME_CHECK)
    done = subprocess.run([sys.executable, str(tmp_path / "check.py"), str(tmp_path / "images.npy"), str(model_path),
                           fmt, str(tmp_path / "out.npy")], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"  # neither TensorFlow, Keras nor frcunet was imported
    return np.load(tmp_path / "out.npy")


def _assert_same_predictions(got, expected):
    assert got.shape == expected.shape and got.dtype == np.float32
    assert np.abs(got - expected).max() <= 1e-4
    assert np.mean((got > 0.5) == (expected > 0.5)) >= 0.9999


@pytest.mark.long
@pytest.mark.parametrize("fmt, file_name", [("onnx", "model.onnx"), ("litert", "model.tflite")])
def test_exports_of_the_shipped_model_match_keras_in_their_own_runtimes(shared_data, tmp_path, fmt, file_name):
    done = cli("export", "--pretrained", "--format", fmt, "--out", tmp_path / "export")
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "export" / file_name).is_file()
    images = _real_batch(shared_data)
    got = _run_in_fresh_runtime(fmt, tmp_path / "export" / file_name, images, tmp_path)
    _assert_same_predictions(got, _keras_probabilities(images))


def test_the_shipped_onnx_file_holds_the_shipped_weights(shared_data, tmp_path):
    record = pretrained_record()
    onnx_path = PRETRAINED_DIR / ONNX_FILE
    assert record.onnx["sha1"] == hashlib.sha1(onnx_path.read_bytes()).hexdigest()
    assert record.onnx["weights_sha1"] == hashlib.sha1((PRETRAINED_DIR / WEIGHTS_FILE).read_bytes()).hexdigest()
    assert record.onnx["sha1"] in (PRETRAINED_DIR / "MODEL_CARD.md").read_text()
    assert onnx_path.stat().st_size <= 8 * 1024 * 1024
    images = _real_batch(shared_data)
    _assert_same_predictions(_run_in_fresh_runtime("onnx", onnx_path, images, tmp_path), _keras_probabilities(images))


PREDICT_WITHOUT_KERAS = """
import sys
from frcunet.cli import main
code = main(sys.argv[1:])
print(code, sorted(m for m in ("tensorflow", "keras", "jax") if m in sys.modules))
"""


def test_predict_with_the_shipped_model_imports_neither_tensorflow_nor_keras(shared_data, tmp_path):
    photos = shared_data / "ISIC2018_fullres" / "ISIC2018_Task1-2_Training_Input"
    done = run_python(PREDICT_WITHOUT_KERAS.replace("sys.argv[1:]", repr(
        ["predict", "--input", str(photos), "--out", str(tmp_path / "masks"), "--quiet"])))
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "0 []"
    for photo in photos.iterdir():
        mask = Image.open(tmp_path / "masks" / f"{photo.stem}_segmentation.png")
        assert mask.size == Image.open(photo).size and mask.mode == "L"


@pytest.mark.long
def test_a_runs_onnx_export_is_used_by_predict_until_its_weights_change(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run / "run", run)
    done = cli("export", "--run", run, "--format", "onnx")
    assert done.returncode == 0 and (run / "model.onnx").is_file(), done.stderr[-3000:]
    photo = tmp_path / "in" / "p.png"
    photo.parent.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 52, 3), dtype=np.uint8)).save(photo)
    argv = ["predict", "--run", str(run), "--input", str(photo.parent), "--out", str(tmp_path / "o"), "--quiet",
            "--probabilities"]
    done = run_python(PREDICT_WITHOUT_KERAS.replace("sys.argv[1:]", repr(argv)))
    assert done.returncode == 0 and done.stdout.strip().splitlines()[-1] == "0 []", done.stderr[-3000:]
    onnx_probability = np.asarray(Image.open(tmp_path / "o" / "p_probability.png"), np.int16)

    import keras

    from frcunet.artifacts.runs import load_run_model

    model, _ = load_run_model(run)
    model.weights[0].assign(keras.ops.convert_to_numpy(model.weights[0]) * 1.5)
    model.save_weights(run / "best.weights.h5")
    done = cli(*argv)
    assert done.returncode == 0 and "exported from other weights" in done.stderr, done.stderr[-2000:]
    keras_probability = np.asarray(Image.open(tmp_path / "o" / "p_probability.png"), np.int16)
    assert keras_probability.shape == onnx_probability.shape == (40, 52)
    assert np.abs(keras_probability - onnx_probability).max() > 0  # the changed weights, through Keras


def test_export_refusals_are_one_line(tiny_run, tmp_path):
    for argv, words in ((["--format", "onnx"], "give --run RUN"),
                        (["--run", tiny_run / "run", "--pretrained", "--format", "onnx"], "drop --run"),
                        (["--pretrained", "--format", "litert"], "give --out FOLDER")):
        done = cli("export", *argv)
        assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1 and words in done.stderr, argv
    assert not (tiny_run / "run" / "model.onnx").exists()


def test_predict_refuses_a_file_that_is_not_an_exported_model(tmp_path):
    (tmp_path / "fake.onnx").write_bytes(b"not a model")
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(tmp_path / "a.png")
    done = cli("predict", "--onnx", tmp_path / "fake.onnx", "--input", tmp_path / "a.png", "--out", tmp_path / "o")
    assert done.returncode == 2 and done.stderr.startswith("error:") and "not an ONNX model" in done.stderr
    assert not (tmp_path / "o").exists()


def _rotated_jpeg(shared_data, tmp_path):
    """A real photo stored on its side with EXIF orientation 6 (viewers turn it 90 degrees clockwise), and the
    same photo stored upright."""
    source = shared_data / "ISIC2018_fullres" / "ISIC2018_Task1-2_Training_Input" / "ISIC_0000050.jpg"
    upright = Image.open(source).convert("RGB")
    upright.save(tmp_path / "upright.jpg", quality=95)
    exif = Image.Exif()
    exif[0x0112] = 6
    upright.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "turned.jpg", quality=95, exif=exif)
    return tmp_path / "upright.jpg", tmp_path / "turned.jpg", upright.size


def test_a_photo_with_an_exif_orientation_gets_a_mask_aligned_as_viewers_show_it(shared_data, tmp_path):
    upright, turned, (width, height) = _rotated_jpeg(shared_data, tmp_path)
    (tmp_path / "in").mkdir()
    for path in (upright, turned):
        shutil.copy(path, tmp_path / "in" / path.name)
    done = cli("predict", "--input", tmp_path / "in", "--out", tmp_path / "o", "--quiet")
    assert done.returncode == 0, done.stderr[-2000:]
    masks = [np.asarray(Image.open(tmp_path / "o" / f"{name}_segmentation.png")) > 0 for name in ("upright", "turned")]
    assert masks[0].shape == masks[1].shape == (height, width)
    assert 2 * (masks[0] & masks[1]).sum() / (masks[0].sum() + masks[1].sum()) > 0.97

    from frcunet.data.imaging import read_pair

    Image.fromarray(masks[0].astype(np.uint8) * 255).save(tmp_path / "mask.png")
    pair = read_pair(turned, tmp_path / "mask.png", (64, 64))  # prepare reads the photo upright too
    assert pair.original_size == (height, width)
    from frcunet.data.imaging import read_image

    as_shown = read_image(upright, (64, 64))[0].astype(int)
    assert np.abs(pair.image.astype(int) - as_shown).mean() < 3  # the same picture (JPEG noise apart)


def test_the_command_line_and_the_api_give_identical_masks(shared_data, tmp_path):
    import frcunet

    photo = shared_data / "ISIC2018_fullres" / "ISIC2018_Task1-2_Training_Input" / "ISIC_0000193.jpg"
    Image.open(photo).convert("RGB").save(tmp_path / "photo.png")
    done = cli("predict", "--input", tmp_path / "photo.png", "--out", tmp_path / "o", "--quiet")
    assert done.returncode == 0, done.stderr[-2000:]
    from_cli = np.asarray(Image.open(tmp_path / "o" / "photo_segmentation.png")) > 0
    from_array = frcunet.predict(None, np.asarray(Image.open(tmp_path / "photo.png")), threshold=0.5)
    from_file = frcunet.predict(None, photo, threshold=0.5)
    np.testing.assert_array_equal(from_array, from_cli)
    done = cli("predict", "--input", photo, "--out", tmp_path / "j", "--quiet")
    from_cli = np.asarray(Image.open(tmp_path / "j" / f"{photo.stem}_segmentation.png")) > 0
    np.testing.assert_array_equal(from_file, from_cli)


def test_overlapped_prediction_writes_what_a_sequential_one_writes(shared_data, tmp_path):
    from frcunet.inference.prediction import predict_files

    photos = sorted((shared_data / "ISIC2018" / "ISIC2018_Task1-2_Training_Input").glob("*.jpg"))[:11]
    (tmp_path / "in").mkdir()
    for photo in photos:
        (tmp_path / "in" / photo.name).symlink_to(photo)
    (tmp_path / "in" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    one = predict_files(None, tmp_path / "in", tmp_path / "one", batch_size=1, workers=1, progress=False,
                        probabilities=True)
    many = predict_files(None, tmp_path / "in", tmp_path / "many", batch_size=4, workers=3, progress=False,
                         probabilities=True)
    assert one[0] == many[0] == 11 and len(one[1]) == len(many[1]) == 1
    names = sorted(p.name for p in (tmp_path / "one").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "many").iterdir()) and len(names) == 23
    for name in names:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "many" / name).read_bytes(), name
    # And what a plain loop writes, one image after the other on this thread.
    from frcunet.data.imaging import read_image
    from frcunet.inference.prediction import (
        model_size,
        predict_batches,
        resize_probabilities,
        save_mask_png,
        shipped_onnx,
    )

    model = shipped_onnx()
    (tmp_path / "plain").mkdir()
    for photo in photos:
        image, original = read_image(photo, model_size(model))[:2]
        probability = resize_probabilities(predict_batches(model, image[None], progress=False)[0], original)
        save_mask_png(probability > 0.5, tmp_path / "plain" / f"{photo.stem}_segmentation.png")
        assert (tmp_path / "plain" / f"{photo.stem}_segmentation.png").read_bytes() == \
            (tmp_path / "many" / f"{photo.stem}_segmentation.png").read_bytes(), photo.name
    recorded = (tmp_path / "many" / ".frcunet-predicted").read_text()
    assert "broken_segmentation.png" not in recorded  # a skipped input's name is not claimed


def test_images_in_flight_stay_bounded():
    from concurrent.futures import ThreadPoolExecutor

    from frcunet.inference.prediction import _Prefetch

    taken = []

    def paths():
        for i in range(1000):
            taken.append(i)
            yield i

    with ThreadPoolExecutor(2) as pool:
        decoded = _Prefetch(pool, lambda i: i * 2, paths(), ahead=6)
        used = 0
        while decoded:
            for item, result, error in decoded.take(4):
                assert result == 2 * item and error is None and item == used
                used += 1
            assert len(taken) - used <= 6  # never more than `ahead` decoded before they are used
    assert used == 1000


@pytest.mark.long
def test_the_light_install_predicts_real_images_without_tensorflow_or_keras(shared_data, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "KERAS"))}
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    # The README's light install: the project alone, its core dependencies from PyPI, pinned as tested. From a
    # copy of the sources, since building a wheel writes build/ beside them.
    source = tmp_path / "source"
    outputs = {"build", "data", "weights", "output", "demo", "gpu-wheels", "gpu-data"}  # the checkout's own

    def ignored(folder, names):
        return [n for n in names if n.startswith(".") or n.endswith(".egg-info") or n == "__pycache__"
                or (folder == str(ROOT) and n in outputs)]

    shutil.copytree(ROOT, source, ignore=ignored)
    install = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
                              "-c", str(ROOT / "requirements.txt"), str(source)],
                             capture_output=True, text=True, timeout=900, env=env, cwd=tmp_path)
    assert install.returncode == 0, install.stderr[-3000:]
    probe = subprocess.run([str(venv / "bin" / "python"), "-c",
                            "import importlib.util as u, pathlib, frcunet; "
                            "print([m for m in ('tensorflow', 'keras', 'jax', 'scipy', 'h5py') if u.find_spec(m)]); "
                            "print(sum(p.stat().st_size for p in pathlib.Path(frcunet.__file__).parent.rglob('*') "
                            "if p.is_file()))"], capture_output=True, text=True, env=env, cwd=tmp_path)
    missing, package_bytes = probe.stdout.strip().splitlines()
    assert missing == "[]" and int(package_bytes) < 10 * 1024 * 1024, probe.stdout + probe.stderr
    photos = shared_data / "ISIC2018_fullres" / "ISIC2018_Task1-2_Training_Input"
    done = subprocess.run([str(venv / "bin" / "frcunet"), "predict", "--input", str(photos), "--out",
                           str(tmp_path / "light")], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    for verb in (["train", "--data", str(tmp_path / "nothing")], ["synth", "--out", str(tmp_path / "syn")]):
        refused = subprocess.run([str(venv / "bin" / "frcunet"), *verb], capture_output=True, text=True, env=env,
                                 cwd=tmp_path)
        lines = refused.stderr.strip().splitlines()
        assert refused.returncode == 2 and len(lines) == 1 and "frcunet[train]" in lines[0], refused.stderr[-2000:]
    here = cli("predict", "--input", photos, "--out", tmp_path / "full", "--quiet")
    assert here.returncode == 0
    for photo in photos.iterdir():
        name = f"{photo.stem}_segmentation.png"
        assert (tmp_path / "light" / name).read_bytes() == (tmp_path / "full" / name).read_bytes()
