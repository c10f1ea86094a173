"""Dataset download: official archives, resumable, verified, extracted into the layout Prepare reads.

Each archive is fetched to `<name>.part` beside its final name with HTTP
range requests, so an interrupted transfer continues where it stopped; its
size is checked against the server's, a zip's CRCs are checked, and only
then is it renamed and extracted (through a staging folder). Mirrors: `--url
NAME=URL` for one file, or FRCUNET_MIRROR=BASE_URL for all (BASE_URL/NAME).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
import zipfile
from collections.abc import Mapping
from pathlib import Path

from tqdm import tqdm

from frcunet.core.errors import UserError
from frcunet.core.saving import OWNER_MARKER, STAGING_MARKER, OwnedEntries, atomic_folder, check_folder_path

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


def archive_urls(dataset: str, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
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


def fetch(url: str, target: Path, progress: bool = True) -> Path:
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


def verify_archive(path: Path) -> None:
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


# Lists, one path a file, what downloads extracted into a --to folder: only those files are ever replaced.
# Earlier versions listed whole top-level entries instead; such a folder name is still honoured.
EXTRACTED_RECORD = ".frcunet-extracted"


def _present(path):
    return path.exists() or path.is_symlink()


def _top(path):
    return path.split("/", 1)[0]


def _staged_paths(staging):
    """The archive's folders (parents first) and files in the staging folder, as relative POSIX paths."""
    folders, files = [], []
    for root, dir_names, file_names in os.walk(staging):
        relative = Path(root).relative_to(staging)
        if relative == Path("."):
            file_names = [name for name in file_names if name not in (OWNER_MARKER, STAGING_MARKER)]
        folders += [(relative / name).as_posix() for name in sorted(dir_names)]
        files += [(relative / name).as_posix() for name in sorted(file_names)]
    return folders, files


def _whole_folders(recorded, target_dir):
    """Recorded top-level names that are folders: an earlier version recorded the folder, not its files."""
    return {name for name in recorded if "/" not in name and (target_dir / name).is_dir()}


def _foreign_paths(target_dir, folders, files, owned, recorded):
    """The archive's paths where target_dir already holds something that no download extracted.

    `owned` are the archive's files that an earlier download extracted; `recorded`, the record's names.
    """
    claimed_tops = {_top(name) for name in recorded}
    tops = sorted({_top(path) for path in folders + files})
    foreign = [top for top in tops if _present(target_dir / top) and top not in claimed_tops]
    foreign += [path for path in folders
                if _present(target_dir / path) and not (target_dir / path).is_dir() and path not in recorded]
    foreign += [path for path in files
                if _present(target_dir / path) and ((target_dir / path).is_dir() or path not in owned)]
    return list(dict.fromkeys(foreign))


def _move_into(staging, target_dir, folders, files):
    """Moves the staged files onto their paths in target_dir, each by one rename; folders there are kept."""
    for folder in folders:
        destination = target_dir / folder
        if not destination.is_dir():
            destination.unlink(missing_ok=True)  # a file that an earlier download extracted (see _foreign_paths)
            destination.mkdir()
    for path in files:
        os.replace(staging / path, target_dir / path)


def _install(archive, target_dir):
    """Extracts through a staging folder and moves the archive's files into target_dir.

    A file already in target_dir is replaced only when an earlier download extracted it; anything else in
    an extracted folder (a note the user added) stays as it is. A top-level entry that no download
    extracted, or a user's file at one of the archive's paths, is refused.
    """
    staging_root = target_dir / f".extract-{archive.stem}"
    ours = OwnedEntries(target_dir, EXTRACTED_RECORD)
    with atomic_folder(staging_root, "download staging") as staging:
        _extract(archive, staging)
        folders, files = _staged_paths(staging)
        # In a folder that an earlier version recorded whole, the archive's own paths are the extracted ones.
        whole = _whole_folders(ours.names, target_dir) & {_top(path) for path in files}
        owned = {path for path in files if path in ours.names or _top(path) in whole}
        foreign = _foreign_paths(target_dir, folders, files, owned, ours.names)
        if foreign:
            shown = ", ".join(foreign[:3]) + (" ..." if len(foreign) > 3 else "")
            raise UserError(f"{target_dir} already holds {shown}, not written by frcunet download; it is left "
                            "untouched: move it away or choose another --to")
        ours.add(files)  # first: a kill during the moves leaves files that the next run may replace
        _move_into(staging, target_dir, folders, files)
        ours.discard(whole)  # now recorded file by file
    shutil.rmtree(staging_root, ignore_errors=True)


def download_dataset(dataset: str, to_dir: Path | str, url_overrides: Mapping[str, str] | None = None,
                     keep_archives: bool = True, progress: bool = True) -> list[str]:
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
