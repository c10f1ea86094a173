"""Atomic folders and the records of what the project wrote: only its own files are ever removed or replaced."""

import json
import logging
import os
import subprocess
import sys

from frcunet.core.saving import OwnedEntries, atomic_folder

RECORD = ".record"


def _kill_inside_atomic_folder(out):
    """Runs atomic_folder in a fresh interpreter that dies (no clean-up) while it writes the staging folder."""
    code = ("import os, sys\n"
            "from frcunet.core.saving import atomic_folder\n"
            "with atomic_folder(sys.argv[1], 'evaluation') as staging:\n"
            "    (staging / 'metrics.json').write_text('{}')\n"
            "    os._exit(9)\n")
    subprocess.run([sys.executable, "-c", code, str(out)], timeout=60)


def test_only_staging_folders_the_project_made_are_removed(tmp_path, caplog):
    out = tmp_path / "o_big"
    backup = tmp_path / ".o_big.partial-mybackup"  # the user's, named like a staging folder
    backup.mkdir()
    (backup / "results.txt").write_text("the user's")
    _kill_inside_atomic_folder(out)
    killed = [p for p in tmp_path.glob(".o_big.partial-*") if p != backup]
    assert len(killed) == 1 and (killed[0] / "metrics.json").is_file()

    with caplog.at_level(logging.WARNING, logger="frcunet.core.saving"), atomic_folder(out, "evaluation") as staging:
        (staging / "metrics.json").write_text("{}")
    assert not killed[0].exists()
    assert f"removing {killed[0]}, left by an interrupted run" in caplog.text
    assert str(backup) not in caplog.text
    assert (backup / "results.txt").read_text() == "the user's"
    # The published folder holds what was written and the kind's marker, nothing about staging.
    assert sorted(p.name for p in out.iterdir()) == [".frcunet-output", "metrics.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".o_big.partial-mybackup", "o_big"]


def test_a_staging_name_taken_by_a_users_folder_is_not_reused(tmp_path):
    out = tmp_path / "o"
    taken = tmp_path / f".o.partial-{os.getpid()}"  # e.g. an older version's leftover, under a reused process id
    taken.mkdir()
    (taken / "keep.txt").write_text("kept")
    with atomic_folder(out, "evaluation") as staging:
        assert staging != taken
        (staging / "metrics.json").write_text("{}")
    assert (taken / "keep.txt").read_text() == "kept" and (out / "metrics.json").is_file()


def test_the_record_holds_any_file_name(tmp_path):
    names = ["lesion\nsecond line_segmentation.png", "plain_segmentation.png", "bytes-\udcff_segmentation.png"]
    for name in names:
        (tmp_path / name).write_bytes(b"mask")
    OwnedEntries(tmp_path, RECORD).add(names)
    assert [json.loads(line) for line in (tmp_path / RECORD).read_text().splitlines()] == sorted(names)
    reread = OwnedEntries(tmp_path, RECORD)
    assert reread.foreign(names) == []  # a second run does not refuse its own masks
    assert reread.names == set(names)


def test_a_record_in_the_older_one_name_a_line_format_still_counts(tmp_path):
    (tmp_path / RECORD).write_text("a_segmentation.png\nb_segmentation.png\n")
    for name in ("a_segmentation.png", "b_segmentation.png", "mine.png"):
        (tmp_path / name).write_bytes(b"x")
    ours = OwnedEntries(tmp_path, RECORD)
    assert ours.foreign(["a_segmentation.png", "b_segmentation.png", "mine.png"]) == ["mine.png"]
    ours.add(["c_segmentation.png"])  # rewritten in the new format, nothing lost
    assert [json.loads(line) for line in (tmp_path / RECORD).read_text().splitlines()] == [
        "a_segmentation.png", "b_segmentation.png", "c_segmentation.png"]


def test_names_leave_the_record_atomically(tmp_path):
    ours = OwnedEntries(tmp_path, RECORD)
    ours.add(["a", "b"])
    ours.discard(["a", "never recorded"])
    assert OwnedEntries(tmp_path, RECORD).names == {"b"}
    assert sorted(p.name for p in tmp_path.iterdir()) == [RECORD]  # no temporary file left


def test_names_are_appended_and_a_line_cut_short_is_ignored(tmp_path):
    ours = OwnedEntries(tmp_path, RECORD)
    ours.add(["a"])
    ours.add(["b", "a"])
    assert (tmp_path / RECORD).read_text() == '"a"\n"b"\n'  # appended, each name once
    with open(tmp_path / RECORD, "a") as f:
        f.write('"c_segmen')  # a kill in the middle of an append
    assert OwnedEntries(tmp_path, RECORD).names == {"a", "b"}
    (tmp_path / RECORD).write_text('["x", "y"]')  # the JSON list of the version before
    older = OwnedEntries(tmp_path, RECORD)
    older.add(["z"])
    assert OwnedEntries(tmp_path, RECORD).names == {"x", "y", "z"}
