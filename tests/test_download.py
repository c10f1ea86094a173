"""Dataset download against a local HTTP server on 127.0.0.1: resume, verification, extraction, offline."""

import http.server
import io
import threading
import zipfile

import pytest

from conftest import cli, run_cli
from frcunet.core.errors import UserError
from frcunet.core.saving import OwnedEntries
from frcunet.data.download import download_dataset
from frcunet.data.sources import isic2018_pairs

IN18, GT18 = "ISIC2018_Task1-2_Training_Input", "ISIC2018_Task1_Training_GroundTruth"


def _zip(entries, links=()):
    """A zip of {name: bytes}, plus (name, target) symbolic-link entries."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        for name, target in links:
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o120777 << 16  # a symbolic link entry
            archive.writestr(info, target)
    return buffer.getvalue()


def _isic_archives():
    from PIL import Image

    def png(mode, size):
        out = io.BytesIO()
        Image.new(mode, size).save(out, "PNG")
        return out.getvalue()

    inputs = {f"{IN18}/ISIC_000000{i}.jpg": png("RGB", (40, 30)) for i in range(3)}
    inputs[f"{IN18}/LICENSE.txt"] = b"CC BY-NC"
    truths = {f"{GT18}/ISIC_000000{i}_segmentation.png": png("L", (40, 30)) for i in range(3)}
    return {f"{IN18}.zip": _zip(inputs), f"{GT18}.zip": _zip(truths)}


class ArchiveServer:
    """Serves named byte strings with Range support; can cut a transfer after `cut_after` bytes."""

    def __init__(self, files):
        self.files, self.cut_after, self.ranges = dict(files), None, []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                data = server.files.get(self.path.lstrip("/"))
                if data is None:
                    self.send_error(404)
                    return
                start = 0
                requested = self.headers.get("Range")
                server.ranges.append(requested)
                if requested:
                    start = int(requested.split("=")[1].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                body = data[start:]
                if server.cut_after is not None:
                    body, server.cut_after = body[: server.cut_after], None  # drop the connection once
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    serving = ArchiveServer(_isic_archives())
    yield serving
    serving.close()


def test_download_extracts_the_layout_prepare_reads(server, tmp_path, monkeypatch):
    monkeypatch.setenv("FRCUNET_MIRROR", server.base)
    done = run_cli("download", "isic2018", "--to", tmp_path / "dataset_isic18", "--quiet")
    assert done.returncode == 0, done.stderr[-2000:]
    assert [p.id for p in isic2018_pairs(tmp_path / "dataset_isic18")] == [f"ISIC_000000{i}" for i in range(3)]
    # No staging left; the record of what was extracted, so that only that is ever replaced.
    assert [p.name for p in (tmp_path / "dataset_isic18").glob(".*")] == [".frcunet-extracted"]


def test_an_interrupted_transfer_resumes_with_a_range_request(server, tmp_path, monkeypatch):
    monkeypatch.setenv("FRCUNET_MIRROR", server.base)
    size = len(server.files[f"{IN18}.zip"])
    server.cut_after = size // 2
    with pytest.raises(UserError, match="run the command again to resume"):
        download_dataset("isic2018", tmp_path, progress=False)
    partial = tmp_path / f"{IN18}.zip.part"
    assert partial.stat().st_size == size // 2
    download_dataset("isic2018", tmp_path, progress=False)
    assert f"bytes={size // 2}-" in server.ranges
    assert (tmp_path / f"{IN18}.zip").stat().st_size == size and not partial.exists()
    assert len(isic2018_pairs(tmp_path)) == 3


def test_a_corrupt_archive_is_rejected_and_removed(server, tmp_path):
    good = server.files[f"{GT18}.zip"]
    server.files["broken.zip"] = good[:40] + bytes(len(good) - 80) + good[-40:]
    with pytest.raises(UserError, match="not a valid zip|corrupt"):
        download_dataset("isic2018", tmp_path, {f"{GT18}.zip": f"{server.base}/broken.zip",
                                                f"{IN18}.zip": f"{server.base}/{IN18}.zip"}, progress=False)
    assert not (tmp_path / f"{GT18}.zip").exists() and not (tmp_path / GT18).exists()


def test_offline_names_the_files_to_fetch_by_hand(tmp_path, monkeypatch):
    monkeypatch.setenv("FRCUNET_MIRROR", "http://127.0.0.1:9")  # nothing listens on port 9
    done = run_cli("download", "isic2018", "--to", tmp_path, "--quiet")
    assert done.returncode == 2
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith("error: could not download") and f"{GT18}.zip" in line and str(tmp_path) in line


# Re-extracting replaces only the files an earlier download wrote, whatever else lies beside them.


def _redownload(target):
    """The same download again, through the command line (the archives kept from the first are reused)."""
    return cli("download", "isic2018", "--to", target, "--quiet")


def test_a_redownload_keeps_the_users_files_in_an_extracted_folder(server, tmp_path, monkeypatch):
    monkeypatch.setenv("FRCUNET_MIRROR", server.base)
    good = tmp_path / "good"
    assert _redownload(good).returncode == 0
    note = good / IN18 / "my_note.txt"
    note.write_text("the user's")
    (good / IN18 / "ISIC_0000000.jpg").write_bytes(b"damaged")  # the download's own file: extracted again
    done = _redownload(good)
    assert done.returncode == 0, done.stderr
    assert note.read_text() == "the user's"
    with zipfile.ZipFile(good / f"{IN18}.zip") as archive:
        assert (good / IN18 / "ISIC_0000000.jpg").read_bytes() == archive.read(f"{IN18}/ISIC_0000000.jpg")
    assert len(isic2018_pairs(good)) == 3
    record = OwnedEntries(good, ".frcunet-extracted").names
    assert f"{IN18}/ISIC_0000000.jpg" in record and f"{IN18}/my_note.txt" not in record


def test_a_folder_that_an_older_version_extracted_keeps_the_users_files(server, tmp_path, monkeypatch):
    monkeypatch.setenv("FRCUNET_MIRROR", server.base)
    good = tmp_path / "good"
    assert _redownload(good).returncode == 0
    # Older versions recorded whole top-level folders, one name a line.
    (good / ".frcunet-extracted").write_text(f"{GT18}\n{IN18}\n")
    note = good / IN18 / "my_note.txt"
    note.write_text("the user's")
    done = _redownload(good)
    assert done.returncode == 0, done.stderr
    assert note.read_text() == "the user's" and len(isic2018_pairs(good)) == 3
    record = OwnedEntries(good, ".frcunet-extracted").names
    assert f"{IN18}/LICENSE.txt" in record and IN18 not in record and GT18 not in record


def test_a_users_file_where_a_new_archive_puts_one_is_refused(server, tmp_path, monkeypatch):
    monkeypatch.setenv("FRCUNET_MIRROR", server.base)
    good = tmp_path / "good"
    download_dataset("isic2018", good, keep_archives=False, progress=False)
    with zipfile.ZipFile(io.BytesIO(server.files[f"{IN18}.zip"])) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    server.files[f"{IN18}.zip"] = _zip({**members, f"{IN18}/extra.txt": b"from the archive"})
    (good / IN18 / "extra.txt").write_text("the user's")
    before = {p: p.read_bytes() for p in (good / IN18).iterdir()}
    done = _redownload(good)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: {good} already holds {IN18}/extra.txt, not written by frcunet download; it is left untouched: "
        "move it away or choose another --to"]
    assert {p: p.read_bytes() for p in (good / IN18).iterdir()} == before
