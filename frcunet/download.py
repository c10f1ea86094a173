"""Dataset download: official archives, resumable, verified, extracted into the layout Prepare reads.

Each archive is fetched to `<name>.part` beside its final name with HTTP
range requests, so an interrupted transfer continues where it stopped; its
size is checked against the server's, a zip's CRCs are checked, and only
then is it renamed and extracted (through a staging folder). Mirrors: `--url
NAME=URL` for one file, or FRCUNET_MIRROR=BASE_URL for all (BASE_URL/NAME).
"""

import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from tqdm import tqdm

from frcunet.errors import UserError
from frcunet.saving import OWNER_MARKER, OwnedEntries, atomic_folder, check_folder_path

MIRROR_ENV = "FRCUNET_MIRROR"
ISIC = "https://isic-challenge-data.s3.amazonaws.com"
ARCHIVES = {
    "isic2018": {
        "ISIC2018_Task1-2_Training_Input.zip": f"{ISIC}/2018/ISIC2018_Task1-2_Training_Input.zip",
        "ISIC2018_Task1_Training_GroundTruth.zip": f"{ISIC}/2018/ISIC2018_Task1_Training_GroundTruth.zip",
    },
    "isic2017": {
        "ISIC-2017_Training_Data.zip": f"{ISIC}/2017/ISIC-2017_Training_Data.zip",
        "ISIC-2017_Training_Part1_GroundTruth.zip": f"{ISIC}/2017/ISIC-2017_Training_Part1_GroundTruth.zip",
    },
    # The authors' own link; the archive is a RAR, extracted with unrar, 7z or bsdtar when one is installed.
    "ph2": {"PH2Dataset.rar": "https://www.dropbox.com/s/k88qukc20ljnbuo/PH2Dataset.rar?dl=1"},
}
CHUNK = 1 << 20
TIMEOUT_S = 60


def archive_urls(dataset, overrides=None):
    """File name -> URL for a dataset, after --url overrides and the mirror variable."""
    if dataset not in ARCHIVES:
        raise UserError(f"unknown dataset {dataset!r}; choose one of {', '.join(ARCHIVES)}")
    urls = dict(ARCHIVES[dataset])
    mirror = os.environ.get(MIRROR_ENV)
    if mirror:
        urls = {name: f"{mirror.rstrip('/')}/{name}" for name in urls}
    for name, url in (overrides or {}).items():
        if name not in urls:
            raise UserError(f"--url {name}=...: {dataset} has no file {name} (it has {', '.join(urls)})")
        urls[name] = url
    return urls


def _total_size(response, already):
    """Full size of the file from Content-Range (a resumed transfer) or Content-Length."""
    content_range = response.headers.get("Content-Range")
    if content_range and "/" in content_range:
        total = content_range.rsplit("/", 1)[1]
        return int(total) if total.isdigit() else None
    length = response.headers.get("Content-Length")
    return int(length) + already if length and length.isdigit() else None


def fetch(url, target, progress=True):
    """Downloads `url` to `target`, resuming `target.part`; verifies the size the server announced."""
    partial = target.with_name(target.name + ".part")
    already = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={already}-"} if already else {})
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and already:  # asked past the end: the part is already whole
            partial.replace(target)
            return target
        raise
    with response:
        if already and response.status != 206:
            already = 0  # the server ignored the range: start over
        total = _total_size(response, already)
        with open(partial, "ab" if already else "wb") as out, tqdm(
                total=total, initial=already, unit="B", unit_scale=True, desc=target.name, disable=not progress,
                file=sys.stderr) as bar:
            while True:
                try:
                    chunk = response.read(CHUNK)
                except (OSError, ValueError) as exc:  # connection reset, incomplete read
                    raise urllib.error.URLError(exc) from None
                if not chunk:
                    break
                out.write(chunk)
                bar.update(len(chunk))
    size = partial.stat().st_size
    if total is not None and size != total:
        raise urllib.error.URLError(f"got {size} of {total} bytes")
    partial.replace(target)
    return target


def verify_archive(path):
    """Checks a zip's structure and CRCs (a RAR is checked when extracted)."""
    if path.suffix != ".zip":
        return
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError) as exc:
        raise UserError(f"{path} is not a valid zip archive ({exc}); it was deleted, run the command again") from None
    if bad is not None:
        raise UserError(f"{path} is corrupt ({bad} fails its CRC check); it was deleted, run the command again")


RAR_TOOLS = {
    "unrar": lambda archive, folder: ["unrar", "x", "-o+", "-idq", str(archive), f"{folder}/"],
    "7z": lambda archive, folder: ["7z", "x", "-y", "-bd", f"-o{folder}", str(archive)],
    "bsdtar": lambda archive, folder: ["bsdtar", "-xf", str(archive), "-C", str(folder)],
}


def _check_zip_members(archive, opened, staging):
    """Every member must land inside the staging folder, and none may be a symbolic link.

    zipfile already cleans member names; this check does not rely on it.
    """
    root = staging.resolve()
    for member in opened.infolist():
        target = (staging / member.filename).resolve()
        is_link = (member.external_attr >> 16) & 0o170000 == 0o120000
        if is_link or (target != root and root not in target.parents):
            raise UserError(f"{archive} holds {member.filename!r}, which would land outside {staging.parent} "
                            "or is a link; the archive is not the official one: delete it and download again")


def _extract(archive, staging):
    if archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as opened:
            _check_zip_members(archive, opened, staging)
            opened.extractall(staging)
        return
    tool = next((name for name in RAR_TOOLS if shutil.which(name)), None)
    if tool is None:
        raise UserError(f"{archive} is a RAR archive and no unrar, 7z or bsdtar is installed; install one, or "
                        f"extract it by hand into {archive.parent}")
    if subprocess.run(RAR_TOOLS[tool](archive, staging), capture_output=True).returncode != 0:
        raise UserError(f"{tool} could not extract {archive}; it may be corrupt: delete it and run again")


# Lists the entries that downloads extracted into a --to folder: only those are ever replaced.
EXTRACTED_RECORD = ".frcunet-extracted"


def _install(archive, target_dir):
    """Extracts through a staging folder and moves the archive's top-level entries into target_dir.

    An entry already in target_dir is replaced only when an earlier download put it there.
    """
    staging_root = target_dir / f".extract-{archive.stem}"
    ours = OwnedEntries(target_dir, EXTRACTED_RECORD)
    with atomic_folder(staging_root, "download staging") as staging:
        _extract(archive, staging)
        entries = sorted(entry.name for entry in staging.iterdir() if entry.name != OWNER_MARKER)
        foreign = ours.foreign(entries)
        if foreign:
            raise UserError(f"{target_dir} already holds {', '.join(foreign)}, not written by frcunet download; "
                            "it is left untouched: move it away or choose another --to")
        ours.add(entries)  # first: a kill during the moves leaves entries that the next run may replace
        for name in entries:
            destination = target_dir / name
            if destination.exists():
                shutil.rmtree(destination) if destination.is_dir() else destination.unlink()
            os.replace(staging / name, destination)
    shutil.rmtree(staging_root, ignore_errors=True)


def download_dataset(dataset, to_dir, url_overrides=None, keep_archives=True, progress=True):
    """Fetches, verifies and extracts a dataset's archives into `to_dir`; returns the extracted entries."""
    urls = archive_urls(dataset, url_overrides)
    to_dir = Path(to_dir)
    check_folder_path(to_dir, "--to")
    to_dir.mkdir(parents=True, exist_ok=True)
    archives = []
    for name, url in urls.items():
        target = to_dir / name
        if not target.exists():
            try:
                fetch(url, target, progress)
            except (urllib.error.URLError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                manual = "; ".join(f"{n} from {u}" for n, u in urls.items())
                raise UserError(
                    f"could not download {name} ({reason}); run the command again to resume, or download by hand "
                    f"({manual}) into {to_dir} and run it again to extract"
                ) from None
        try:
            verify_archive(target)
        except UserError:
            target.unlink()
            raise
        archives.append(target)
    for archive in archives:
        _install(archive, to_dir)
        if not keep_archives:
            archive.unlink()
    return sorted(p.name for p in to_dir.iterdir() if not p.name.startswith(".") and p not in archives)
