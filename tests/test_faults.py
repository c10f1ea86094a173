"""Faults and mistakes a careless or unlucky user makes, through the command line.

Each case asserts the exit status, exactly one `error:` line (no traceback), and that nothing the user
had changed: every file under the folders involved has the same checksum before and after.
"""

import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_download import ArchiveServer, _zip

from conftest import ROOT, SMALL_UNET_FLAGS, TINY_LITE, run_cli
from frcunet.cli import main
from frcunet.core.errors import UserError
from frcunet.core.locks import exclusive_lock
from frcunet.data.imaging import read_image, read_mask

IN18, GT18 = "ISIC2018_Task1-2_Training_Input", "ISIC2018_Task1_Training_GroundTruth"
# The settings of conftest's tiny_run, as flags (its run folder continues with them); epochs stay last.
TRAIN_SETTINGS = ["--batch-size", 6, "--lr", 1e-3, "--quiet", "--epochs", 1]
TINY_TRAIN = ["--model", "frcunet-lite", "--width", TINY_LITE["width"], "--middle-units", TINY_LITE["middle_units"],
              *TRAIN_SETTINGS]
# A new run where the network does not matter: the small U-Net traces in a fraction of frcunet-lite's time.
UNET_TRAIN = [*SMALL_UNET_FLAGS, *TRAIN_SETTINGS]


def snapshot(*folders):
    """{path: sha1} of every file under the folders (hidden ones too)."""
    digests = {}
    for folder in map(Path, folders):
        files = [folder] if folder.is_file() else sorted(p for p in folder.rglob("*") if p.is_file())
        digests.update({str(p): hashlib.sha1(p.read_bytes()).hexdigest() for p in files})
    return digests


def refused(capsys, *argv, code=2):
    """Runs the command in this process; it must exit `code` with one `error:` line. Returns that line."""
    status = main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert status == code, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@pytest.fixture
def user_folder(tmp_path):
    folder = tmp_path / "mine"
    (folder / "notes").mkdir(parents=True)
    (folder / "thesis.txt").write_text("years of work")
    (folder / "notes" / "a.csv").write_text("1,2\n")
    return folder


# 1. Never delete what the project did not write


def test_evaluate_and_export_refuse_folders_they_did_not_write(tiny_run, user_folder, capsys):
    run, data = tiny_run / "run", tiny_run / "prepared"
    guarded = [user_folder, run, data]
    before = snapshot(*guarded)
    for out in (user_folder, run, data, data / "inside", tiny_run, "."):
        line = refused(capsys, "evaluate", "--run", run, "--data", data, "--out", out, "--quiet")
        assert any(reason in line for reason in ("frcunet did not write", "would overlap", "current folder"))
        line = refused(capsys, "export", "--run", run, "--format", "keras", "--out", out)
        assert any(reason in line for reason in ("frcunet did not write", "would overlap", "current folder"))
    assert snapshot(*guarded) == before


def test_evaluate_replaces_only_its_own_output(tiny_run, tmp_path, capsys):
    run, data, out = tiny_run / "run", tiny_run / "prepared", tmp_path / "eval"
    for _ in range(2):  # the second run replaces the first's folder
        assert main(["evaluate", "--run", str(run), "--data", str(data), "--out", str(out), "--quiet"]) == 0
    assert (out / ".frcunet-output").read_text().strip() == "evaluation"
    line = refused(capsys, "export", "--run", run, "--format", "keras", "--out", out)
    assert "as its export output" in line  # an evaluation folder is not an export folder
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eval"]  # no staging folder, no lock file left


def test_synth_and_prepare_refuse_a_users_folder(user_folder, tmp_path, capsys):
    before = snapshot(user_folder)
    assert "did not write" in refused(capsys, "synth", "--out", user_folder, "--n", 2, "--quiet")
    assert main(["synth", "--out", str(tmp_path / "syn"), "--n", "4", "--size", "32", "32", "--quiet"]) == 0
    line = refused(capsys, "prepare", "isic2018", "--data-dir", tmp_path / "syn", "--out", user_folder,
                   "--size", 16, 16, "--split", .5, .25, .25, "--quiet")
    assert "did not write" in line
    line = refused(capsys, "prepare", "isic2018", "--data-dir", tmp_path / "syn", "--out", tmp_path / "syn" / "p",
                   "--size", 16, 16, "--split", .5, .25, .25, "--quiet")
    assert "would overlap" in line  # inside the dataset it reads
    assert snapshot(user_folder) == before


def test_predict_adds_files_and_replaces_only_its_own(tiny_run, tmp_path, capsys):
    run, inputs, out = tiny_run / "run", tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    out.mkdir()
    for name in ("a", "b"):
        Image.new("RGB", (40, 30), (200, 120, 90)).save(inputs / f"{name}.jpg")
    (out / "mine.txt").write_text("keep")
    (out / "b_segmentation.png").write_bytes(b"the user's own file")
    before = snapshot(out)
    line = refused(capsys, "predict", "--run", run, "--input", inputs, "--out", out, "--quiet")
    assert "b_segmentation.png" in line and "not written by frcunet predict" in line
    assert snapshot(out) == before

    (out / "b_segmentation.png").unlink()
    for _ in range(2):  # a second prediction replaces the first's masks
        assert main(["predict", "--run", str(run), "--input", str(inputs), "--out", str(out), "--quiet"]) == 0
    assert (out / "mine.txt").read_text() == "keep"
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "a_segmentation.png", "b_segmentation.png", "mine.txt"]


def test_predict_refuses_inputs_that_would_write_one_file(tiny_run, tmp_path, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.new("RGB", (40, 30)).save(inputs / "lesion.jpg")
    Image.new("RGB", (40, 30)).save(inputs / "lesion.png")
    line = refused(capsys, "predict", "--run", tiny_run / "run", "--input", inputs, "--out", tmp_path / "o", "--quiet")
    assert "lesion.jpg and lesion.png" in line
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("size", ["-1", "0"])
def test_batch_sizes_below_one_are_refused(tiny_run, tmp_path, capsys, size):
    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.new("RGB", (40, 30)).save(inputs / "a.jpg")
    line = refused(capsys, "predict", "--run", tiny_run / "run", "--input", inputs, "--out", tmp_path / "o",
                   "--batch-size", size, "--quiet")
    assert "--batch-size" in line and not (tmp_path / "o").exists()
    line = refused(capsys, "evaluate", "--run", tiny_run / "run", "--data", tiny_run / "prepared",
                   "--out", tmp_path / "e", "--batch-size", size, "--quiet")
    assert "--batch-size" in line and not (tmp_path / "e").exists()


@pytest.fixture
def archive_server():

    serving = ArchiveServer({})
    yield serving
    serving.close()


def _download(to, server, inputs, truths):
    server.files.update({"in.zip": _zip(inputs), "gt.zip": truths if isinstance(truths, bytes) else _zip(truths)})
    return ["download", "isic2018", "--to", str(to), "--quiet", "--url", f"{IN18}.zip={server.base}/in.zip",
            "--url", f"{GT18}.zip={server.base}/gt.zip"]


def test_download_never_replaces_a_users_entry(archive_server, user_folder, tmp_path, capsys):
    inputs = {f"{IN18}/ISIC_0000000.jpg": b"x"}
    target = tmp_path / "to"
    (target / GT18).mkdir(parents=True)
    (target / GT18 / "mine.png").write_bytes(b"the user's")
    before = snapshot(target / GT18)
    line = refused(capsys, *_download(target, archive_server, inputs, {f"{GT18}/ISIC_0000000_segmentation.png": b"y"}))
    assert GT18 in line and "not written by frcunet download" in line
    assert snapshot(target / GT18) == before

    shutil.rmtree(target / GT18)
    for _ in range(2):  # a second download replaces what the first extracted
        assert main(_download(target, archive_server, inputs, {f"{GT18}/ISIC_0000000_segmentation.png": b"y"})) == 0
    assert (target / GT18 / "ISIC_0000000_segmentation.png").read_bytes() == b"y"

    a_file = tmp_path / "file"
    a_file.write_text("mine")
    assert "is a file" in refused(capsys, "download", "isic2018", "--to", a_file, "--quiet")
    assert "is a file" in refused(capsys, "download", "isic2018", "--to", a_file / "sub", "--quiet")
    assert a_file.read_text() == "mine"


@pytest.mark.parametrize("entries, links", [
    ({f"{GT18}/../../escaped.png": b"z"}, ()),
    ({f"{GT18}/a.png": b"z"}, [(f"{GT18}/link.png", "/etc/passwd")]),
])
def test_download_refuses_archive_members_that_escape(archive_server, tmp_path, capsys, entries, links):
    target = tmp_path / "to"
    truths = _zip(entries, links)
    line = refused(capsys, *_download(target, archive_server, {f"{IN18}/ISIC_0000000.jpg": b"x"}, truths))
    assert "outside" in line and "or is a link" in line
    assert not (tmp_path / "escaped.png").exists() and not (target / GT18).exists()


# 2. No hangs


def test_prepare_refuses_a_size_that_cannot_fit_in_memory(tiny_run, tmp_path, capsys):
    start = time.perf_counter()
    line = refused(capsys, "prepare", "isic2018", "--data-dir", tiny_run / "syn", "--out", tmp_path / "p",
                   "--size", 100000, 100000, "--split", .5, .25, .25, "--quiet")
    assert "GiB of memory" in line and time.perf_counter() - start < 60
    assert not (tmp_path / "p").exists()


def _dies_in_the_worker(value):
    if value == 3:
        os._exit(1)  # as if the kernel had killed it
    return value


def test_a_dead_decoding_worker_ends_with_an_error_not_a_hang():
    from frcunet.data.workers import ordered_map

    assert list(ordered_map(abs, [-1, -2, 3], 2)) == [1, 2, 3]
    with pytest.raises(UserError, match="a decoding process died"):
        list(ordered_map(_dies_in_the_worker, range(8), 2))


def test_a_worker_whose_parent_died_before_it_was_set_up_exits_at_once():
    # A kill that lands between a worker's fork and its PR_SET_PDEATHSIG sends it no signal: the worker sees
    # that its parent is not the one that started the pool, and leaves instead of waiting for work forever.
    import multiprocessing

    from frcunet.data.workers import _quiet_orphan_proof_worker

    spawn = multiprocessing.get_context("spawn")  # a fresh interpreter: no fork of this threaded process
    for parent, code in ((os.getpid(), 0), (os.getpid() + 1, 1)):
        worker = spawn.Process(target=_quiet_orphan_proof_worker, args=(parent,))
        worker.start()
        worker.join(timeout=120)
        assert worker.exitcode == code, (parent, worker.exitcode)


def test_a_killed_prepare_leaves_no_worker_output_and_the_next_run_cleans_up(tiny_run, tmp_path):
    out = tmp_path / "p"
    command = [sys.executable, "-m", "frcunet", "prepare", "isic2018", "--data-dir", str(tiny_run / "syn"), "--out",
               str(out), "--size", "512", "512", "--split", ".5", ".25", ".25", "--workers", "2"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not list(tmp_path.glob(".p.partial-*")) and time.time() < deadline:
        time.sleep(0.05)
    process.kill()
    _, err = process.communicate(timeout=60)
    time.sleep(1)  # orphaned workers would write their tracebacks now
    assert "Traceback" not in err
    assert list(tmp_path.glob(".p.partial-*"))  # the killed run's staging folder
    done = run_cli(*command[3:-2], "--workers", "1", "--quiet")
    assert done.returncode == 0 and "removing" in done.stderr and "interrupted run" in done.stderr
    assert not list(tmp_path.glob(".p.partial-*")) and (out / "manifest.json").is_file()


# 3. One writer per run folder


def test_a_run_folder_has_one_trainer_at_a_time(tiny_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_run / "run", run)
    before = snapshot(run)
    with exclusive_lock(tmp_path / ".run.lock", run, "trained"):
        line = refused(capsys, "train", "--data", tiny_run / "prepared", "--run", run, *TINY_TRAIN)
    assert line == f"error: {run} is being trained by process {os.getpid()}; wait for it to end, or stop it " \
                   "and run this again"
    assert snapshot(run) == before
    out = tmp_path / "prepared"
    with exclusive_lock(tmp_path / ".prepared.lock", out, "written"):
        line = refused(capsys, "prepare", "isic2018", "--data-dir", tiny_run / "syn", "--out", out,
                       "--size", 16, 16, "--split", .5, .25, .25, "--quiet")
    assert f"is being written by process {os.getpid()}" in line and not out.exists()


def test_a_lock_is_freed_when_its_holder_is_killed(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", f"""
import sys, time
sys.path.insert(0, {str(ROOT)!r})
from frcunet.core.locks import exclusive_lock
with exclusive_lock({str(tmp_path / 'x.lock')!r}, 'x', 'held'):
    print('locked', flush=True)
    time.sleep(60)
"""], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(UserError, match=f"x is being held by process {holder.pid}"):
        with exclusive_lock(tmp_path / "x.lock", "x", "held"):
            pass
    holder.kill()
    holder.wait()
    with exclusive_lock(tmp_path / "x.lock", "x", "held"):  # no stale lock
        pass
    assert not (tmp_path / "x.lock").exists()


# 4. Inputs read as they are, or refused


def test_wide_images_are_scaled_by_their_range_not_clipped(tmp_path):
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (30, 40), dtype=np.uint8)
    Image.fromarray(grey).save(tmp_path / "8bit.png")
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "16bit.png")
    Image.fromarray(grey.astype(np.float32) / 255).save(tmp_path / "float.tif")
    Image.fromarray(grey.astype(np.int32) * 257).save(tmp_path / "32bit.tif")
    reference = read_image(tmp_path / "8bit.png", (30, 40))[0].astype(int)
    for name in ("16bit.png", "float.tif", "32bit.tif"):
        image = read_image(tmp_path / name, (30, 40))[0].astype(int)
        assert np.abs(image - reference).max() <= 1, name


@pytest.mark.parametrize("levels", [(0, 1), (0, 2), (0, 100), (0, 255), (3, 200)])
def test_two_level_masks_keep_their_lesion(tmp_path, levels):
    lesion = np.zeros((32, 48), bool)
    lesion[8:24, 10:30] = True
    Image.fromarray(np.where(lesion, levels[1], levels[0]).astype(np.uint8)).save(tmp_path / "m.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "m.png", (32, 48))[0], lesion)
    Image.fromarray(np.where(lesion, levels[1] * 257, levels[0]).astype(np.uint16)).save(tmp_path / "m16.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "m16.png", (32, 48))[0], lesion)


def test_prepare_warns_about_a_split_without_lesions(tmp_path, capsys):
    for folder in ("img", "msk"):
        (tmp_path / folder).mkdir()
    for i in range(4):
        Image.new("RGB", (32, 32), (120, 80, 60)).save(tmp_path / "img" / f"c{i}.png")
        Image.new("L", (32, 32), 0).save(tmp_path / "msk" / f"c{i}.png")
    assert main(["prepare", "folder", "--data-dir", str(tmp_path / "img"), "--masks-dir", str(tmp_path / "msk"),
                 "--out", str(tmp_path / "p"), "--size", "16", "16", "--split", ".5", ".25", ".25", "--quiet"]) == 0
    assert "warning: no train mask has a lesion pixel" in capsys.readouterr().out


# 5. A failed command leaves no trace that blocks the next


def test_a_train_refused_on_its_arguments_leaves_the_run_folder_as_it_was(tiny_run, tmp_path, capsys):
    data = tiny_run / "prepared"
    odd = tmp_path / "odd"
    assert main(["prepare", "isic2018", "--data-dir", str(tiny_run / "syn"), "--out", str(odd), "--size", "24", "24",
                 "--split", ".5", ".25", ".25", "--quiet"]) == 0
    garbage = tmp_path / "garbage.weights.h5"
    garbage.write_bytes(b"not weights")
    fresh = tmp_path / "fresh"
    for mistake in (["--data", odd], ["--data", data, "--init-weights", garbage], ["--data", data, "--seed", -1]):
        refused(capsys, "train", "--run", fresh, *UNET_TRAIN, *mistake)
        assert not (fresh / "config.json").exists()
    # The corrected command then trains.
    assert main(["train", "--data", str(data), "--run", str(fresh), *map(str, UNET_TRAIN)]) == 0
    capsys.readouterr()
    before = snapshot(fresh)
    refused(capsys, "train", "--data", data, "--run", fresh, *UNET_TRAIN, "--init-weights", garbage, "--restart")
    assert snapshot(fresh) == before


def test_model_options_out_of_range_are_refused_before_anything_is_written(tiny_run, tmp_path, capsys):
    run = tmp_path / "run"
    for model, option in (("frcunet-lite", ["--width", -1]), ("frcunet-lite", ["--width", 0]),
                          ("frcunet-lite", ["--middle-units", -2]), ("unet", ["--base-filters", 0])):
        line = refused(capsys, "train", "--data", tiny_run / "prepared", "--run", run, "--model", model, *option)
        assert option[0] in line
        assert not run.exists()


def test_train_refuses_a_folder_that_holds_no_run(tiny_run, user_folder, capsys):
    before = snapshot(user_folder)
    line = refused(capsys, "train", "--data", tiny_run / "prepared", "--run", user_folder, *TINY_TRAIN, "--restart")
    assert "holds no frcunet run" in line
    assert snapshot(user_folder) == before


# 6. Every mistake is one error line


@pytest.mark.parametrize("split", [("nan", "0", "0"), (".5", ".5", "nan"), ("inf", "0", "0")])
def test_non_finite_split_fractions_are_refused(tiny_run, tmp_path, capsys, split):
    line = refused(capsys, "prepare", "isic2018", "--data-dir", tiny_run / "syn", "--out", tmp_path / "p",
                   "--size", 16, 16, "--split", *split, "--quiet")
    assert "--split takes three fractions" in line and not (tmp_path / "p").exists()


def test_prepare_mistakes_are_one_line(tiny_run, tmp_path, capsys):
    prepare = ["prepare", "isic2018", "--data-dir", tiny_run / "syn", "--size", 16, 16, "--split", .5, .25, .25,
               "--quiet"]
    assert "--seed must be 0 or more" in refused(capsys, *prepare, "--out", tmp_path / "p", "--seed", -1)
    a_file = tmp_path / "file"
    a_file.write_text("mine")
    assert "is a file" in refused(capsys, *prepare, "--out", a_file)
    assert "is a file" in refused(capsys, *prepare, "--out", a_file / "p")
    assert a_file.read_text() == "mine"


def test_a_full_disk_is_one_line_and_leaves_nothing(tiny_run, tmp_path, capsys, monkeypatch):
    from frcunet.data import prepare

    def full(self, row):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self.file.name)

    monkeypatch.setattr(prepare.NpyWriter, "append", full)
    line = refused(capsys, "prepare", "isic2018", "--data-dir", tiny_run / "syn", "--out", tmp_path / "p",
                   "--size", 16, 16, "--split", .5, .25, .25, "--quiet", "--workers", 1)
    assert "No space left on device" in line and "free space" in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("damage", ["truncate", "not an object", "missing fields"])
def test_damaged_records_are_one_line(tiny_run, tmp_path, capsys, damage):
    def spoil(path):
        text = path.read_text()
        path.write_text({"truncate": text[: len(text) // 2], "not an object": "[1, 2]",
                         "missing fields": "{}"}[damage])

    run, data = tmp_path / "run", tmp_path / "data"
    shutil.copytree(tiny_run / "run", run)
    shutil.copytree(tiny_run / "prepared", data)
    spoil(run / "config.json")
    line = refused(capsys, "evaluate", "--run", run, "--data", data, "--out", tmp_path / "o", "--quiet")
    assert str(run / "config.json") in line and "--restart" in line
    line = refused(capsys, "train", "--run", run, "--data", data, *TINY_TRAIN)
    assert str(run) in line

    shutil.rmtree(run)
    shutil.copytree(tiny_run / "run", run)
    spoil(data / "manifest.json")
    line = refused(capsys, "evaluate", "--run", run, "--data", data, "--out", tmp_path / "o", "--quiet")
    assert str(data / "manifest.json") in line and "prepare" in line


def test_a_damaged_resume_state_is_one_line(tiny_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_run / "run", run)
    state = run / "resume" / "state.json"
    state.write_text(state.read_text()[:20])
    line = refused(capsys, "train", "--run", run, "--data", tiny_run / "prepared", *TINY_TRAIN[:-2], "--epochs", 2)
    assert str(state) in line and "--restart" in line


def test_interrupt_message_says_what_was_kept(monkeypatch, capsys, tmp_path):
    from frcunet.data import synthetic

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(synthetic, "write_synthetic_isic", interrupted)
    line = refused(capsys, "synth", "--out", tmp_path / "x", code=130)
    assert "keeps its last finished epoch" in line


def test_a_late_error_is_the_only_line_even_with_backend_logging_on(tiny_run, tmp_path):
    (tmp_path / "mine.txt").write_text("keep")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run([sys.executable, "-m", "frcunet", "evaluate", "--run", str(tiny_run / "run"), "--data",
                             str(tiny_run / "prepared"), "--out", ".", "--quiet"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: --out . is the current folder or holds it; choose a separate folder"]
    assert (tmp_path / "mine.txt").read_text() == "keep"


# 7. Exact resume


def _weights(path):
    import h5py

    arrays = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, item: arrays.__setitem__(name, item[()]) if isinstance(item, h5py.Dataset) else None)
    return arrays


@pytest.mark.long
def test_a_run_killed_mid_way_and_resumed_equals_an_uninterrupted_run(tiny_run, tmp_path, request):
    # The small U-Net: what a resume restores (weights, batch-norm statistics, optimizer, data order, random
    # augmentation, history, best checkpoint) does not depend on the network, and each of the three
    # processes traces it in a third of frcunet-lite's time. Its epochs take a fraction of a second, so
    # there are enough of them that the run cannot finish between two looks at its state.
    epochs = 8

    def command(run):
        return [sys.executable, "-m", "frcunet", "train", "--data", str(tiny_run / "prepared"), "--run", str(run),
                *map(str, UNET_TRAIN[:-2]), "--epochs", str(epochs), "--augment", "flip", "--deterministic"]

    # The uninterrupted run goes alongside the one to be killed: deterministic kernels make the two
    # independent of what else runs, and their start-ups overlap.
    with open(tmp_path / "whole.log", "w") as log:
        whole = subprocess.Popen(command(tmp_path / "whole"), stdout=log, stderr=subprocess.STDOUT)
    request.addfinalizer(whole.kill)  # no orphan when an assertion below fails
    run = tmp_path / "killed"
    with open(tmp_path / "killed.log", "w") as log:
        process = subprocess.Popen(command(run), stdout=log, stderr=subprocess.STDOUT)
    state = run / "resume" / "state.json"
    deadline = time.time() + 900  # a busy 2-core machine can take minutes for two tiny epochs
    while time.time() < deadline and process.poll() is None:
        if state.is_file() and json.loads(state.read_text())["epochs_done"] >= 1:
            break
        time.sleep(0.02)
    assert process.poll() is None, (tmp_path / "killed.log").read_text()[-3000:]
    process.send_signal(9)  # SIGKILL: no clean-up of any kind
    process.wait()
    interrupted_at = json.loads(state.read_text())["epochs_done"]
    assert 1 <= interrupted_at < epochs

    resumed = subprocess.run(command(run), capture_output=True, text=True, timeout=1200)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert whole.wait(timeout=1200) == 0, (tmp_path / "whole.log").read_text()[-3000:]
    assert f"resuming {run} after epoch {interrupted_at}" in resumed.stdout
    rows = [(folder / "history.csv").read_text().splitlines() for folder in (run, tmp_path / "whole")]
    assert rows[0][0] == rows[1][0] and len(rows[0]) == len(rows[1]) == epochs + 1
    np.testing.assert_allclose(np.array([r.split(",") for r in rows[0][1:]], float),
                               np.array([r.split(",") for r in rows[1][1:]], float), rtol=0, atol=1e-6)
    for name in ("best.weights.h5", f"resume/epoch-{epochs:04d}.weights.h5"):
        got, want = _weights(run / name), _weights(tmp_path / "whole" / name)
        assert got.keys() == want.keys()
        for key in want:
            np.testing.assert_array_equal(got[key], want[key], err_msg=f"{name}: {key}")


# Security


def test_a_run_is_loaded_from_its_config_and_weights_never_from_model_keras(tiny_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_run / "run", run)
    # A model.keras could hold a Lambda layer with arbitrary code; it is never deserialised.
    (run / "model.keras").write_bytes(b"anything at all")
    assert main(["evaluate", "--run", str(run), "--data", str(tiny_run / "prepared"), "--out", str(tmp_path / "o"),
                 "--quiet"]) == 0
    assert json.loads((tmp_path / "o" / "metrics.json").read_text())["n_images"] == 6


# The command's help


def test_each_verb_takes_its_help_from_its_docstring_and_works_without_docstrings():
    verbs = ("build", "prepare", "synth", "train", "evaluate", "predict", "demo", "export", "download", "compare")
    shown = {}
    for flags in ([], ["-OO"]):  # -OO strips docstrings
        done = subprocess.run([sys.executable, *flags, "-m", "frcunet", "--help"], capture_output=True, text=True,
                              timeout=120, env=dict(os.environ))
        assert done.returncode == 0, done.stderr[-2000:]
        assert all(verb in done.stdout for verb in verbs)
        shown[bool(flags)] = done.stdout
    assert "turn a downloaded dataset into a prepared split folder" in shown[False]
    assert "turn a downloaded dataset" not in shown[True]
