"""Atomic writes: a file appears complete under its name, or not at all."""

from __future__ import annotations

import itertools
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from frcunet.core.errors import UserError

if TYPE_CHECKING:
    import keras

log = logging.getLogger(__name__)  # shown by the command line; silent in a host program unless it asks


def read_json(path: Path | str, remedy: str, missing: str | None = None) -> dict[str, Any]:
    """A JSON object from `path`; a truncated, hand-broken or unreadable file is a UserError that ends with
    `remedy`. With `missing`, a missing file is a UserError that ends with it (else FileNotFoundError)."""
    path = Path(path)
    try:
        value = json.loads(path.read_text())
    except FileNotFoundError:
        if missing is None:
            raise
        raise UserError(f"{path} is missing; {missing}") from None
    except (ValueError, UnicodeDecodeError):
        value = None
    except OSError as exc:
        raise UserError(f"cannot read {path} ({exc.strerror or exc.__class__.__name__}); {remedy}") from None
    if not isinstance(value, dict):
        raise UserError(f"{path} is damaged (not a JSON object); {remedy}")
    return value


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yields a temporary path beside `path`; renames it onto `path` on success.

    The temporary name keeps the suffix, since Keras picks the format from it.
    On any exception the temporary file is removed and `path` is untouched.
    """
    path = Path(path)
    if path.parent and not path.parent.exists():
        raise UserError(f"folder {path.parent} does not exist; create it or choose another output path")
    handle, temporary = tempfile.mkstemp(prefix=f".{path.stem}.", suffix="".join(path.suffixes), dir=path.parent)
    os.close(handle)
    os.unlink(temporary)  # writers such as h5py want to create the file themselves
    try:
        yield Path(temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def save_model_atomic(model: keras.Model, path: Path | str) -> None:
    """`model.save` to a `.keras` path, atomically."""
    if not str(path).endswith(".keras"):
        raise UserError(f"{path}: a model is saved as a .keras file; use that suffix")
    with atomic_path(path) as temporary:
        model.save(temporary)


def save_weights_atomic(model: keras.Model, path: Path | str) -> None:
    """`model.save_weights` to a `.weights.h5` path, atomically."""
    with atomic_path(path) as temporary:
        model.save_weights(temporary)


# Written into every folder the project writes whole; it holds the folder's kind ("evaluation", "export"...).
# Only a folder carrying the same kind is ever replaced: anything else may be a user's.
OWNER_MARKER = ".frcunet-output"


def folder_kind(path: Path | str) -> str | None:
    """The kind in `path`'s marker, or None when the project did not write the folder."""
    try:
        return (Path(path) / OWNER_MARKER).read_text().strip() or None
    except OSError:
        return None


def folders_overlap(a: Path | str, b: Path | str) -> bool:
    """Whether two paths are the same folder or one lies inside the other."""
    a, b = Path(a).resolve(), Path(b).resolve()
    return a == b or a in b.parents or b in a.parents


def check_folder_path(path: Path | str, flag: str = "--out") -> None:
    """Refuses a folder path that is, or lies under, an existing file."""
    path = Path(path)
    for parent in [path, *path.parents]:
        if parent.exists() and not parent.is_dir():
            raise UserError(f"{flag} {path}: {parent} is a file, not a folder; choose a folder path")


def check_output_folder(path: Path | str, kind: str, flag: str = "--out", keep_clear: Iterable[Path | str | None] = (),
                        legacy_marker: str | None = None) -> None:
    """Refuses, with an error that says what to do, an output folder the project may not replace.

    Allowed: a new path, an empty folder, or a folder whose marker says `kind` (or that holds
    `legacy_marker`, a file older versions wrote there). `keep_clear` are folders (a run, a data
    folder) that the output must not equal, sit inside, or contain.
    """
    path = Path(path)
    check_folder_path(path, flag)
    here = Path.cwd()
    if path.resolve() == here or path.resolve() in here.parents:
        raise UserError(f"{flag} {path} is the current folder or holds it; choose a separate folder")
    holder = next((parent for parent in path.absolute().parents if folder_kind(parent)), None)
    if holder:
        raise UserError(f"{flag} {path} would overlap {holder}, a folder of frcunet {folder_kind(holder)} output "
                        "that a rerun replaces whole; choose a separate folder")
    for other in keep_clear:
        if other and Path(other).exists() and folders_overlap(path, other):
            raise UserError(f"{flag} {path} would overlap {other}, which this command reads; choose a separate folder")
    if not path.is_dir() or not any(path.iterdir()):
        return
    if folder_kind(path) == kind or (legacy_marker and (path / legacy_marker).is_file()):
        return
    raise UserError(f"{flag} {path} is a folder that frcunet did not write as its {kind} output; it is left "
                    "untouched: choose a new or empty folder (or delete it yourself)")


# Written into each staging folder as it is made and removed just before it is published: a killed run's
# leftover is removed only when it carries this, since any other `.NAME.partial-*` folder may be the user's.
STAGING_MARKER = ".frcunet-staging"


def _remove_stale_staging(path):
    """Removes the staging folders that killed runs left beside `path`, saying so."""
    for stale in path.parent.glob(f".{path.name}.partial-*"):
        if (stale / STAGING_MARKER).is_file():
            log.warning(f"removing {stale}, left by an interrupted run")
            shutil.rmtree(stale, ignore_errors=True)


def _make_staging(path):
    """A new, marked staging folder beside `path`; a name already taken (by anyone) is skipped, not reused."""
    prefix = path.parent / f".{path.name}.partial-{os.getpid()}"
    for attempt in itertools.count():
        staging = prefix.with_name(f"{prefix.name}-{attempt}" if attempt else prefix.name)
        try:
            staging.mkdir()
        except FileExistsError:
            continue
        (staging / STAGING_MARKER).write_text(f"frcunet staging folder for {path.name}; removed by the next run\n")
        return staging


def _publish(staging, path, kind):
    """Renames the finished staging folder onto `path`; an old folder goes only once the new one is in place."""
    (staging / STAGING_MARKER).unlink(missing_ok=True)
    (staging / OWNER_MARKER).write_text(kind + "\n")
    if not path.exists():
        os.replace(staging, path)
        return
    retired = path.parent / f".{path.name}.old-{os.getpid()}"
    os.replace(path, retired)
    os.replace(staging, path)
    shutil.rmtree(retired, ignore_errors=True)


@contextmanager
def atomic_folder(path: Path | str, kind: str, **check: Any) -> Iterator[Path]:
    """Yields a hidden staging folder beside `path`; on success it replaces `path` by renames.

    `path` must pass check_output_folder for `kind` (extra arguments go to it), and one process at
    a time may write it (an OS lock, freed when the process dies). The published folder carries the
    kind's marker. Staging folders of earlier, killed runs (those carrying STAGING_MARKER) are removed
    first, saying so. On any exception the staging folder is removed and `path` is untouched.
    """
    from frcunet.core.locks import exclusive_lock

    path = Path(path)
    check_output_folder(path, kind, **check)
    path.parent.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(path.parent / f".{path.name}.lock", path, "written"):
        check_output_folder(path, kind, **check)  # again: another process may have written it meanwhile
        _remove_stale_staging(path)
        staging = _make_staging(path)
        try:
            yield staging
            _publish(staging, path, kind)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)


class OwnedEntries:
    """The names the project wrote into a folder that it shares with the user (predict, download).

    A record file in the folder lists them, one JSON string a line (any file name fits, newlines and
    undecodable bytes included); an existing entry that is not listed is the user's and is never replaced.
    New names are appended, so that recording as files appear costs the same for the millionth as for the
    first; a line cut short by a crash is ignored when read.
    """

    record: Path
    names: set[str]

    def __init__(self, folder: Path | str, record_name: str) -> None:
        self.record = Path(folder) / record_name
        self.names, self._appendable = _read_record(self.record)

    def foreign(self, names: Iterable[str]) -> list[str]:
        """Those of `names` that exist in the folder and were not written by the project."""
        return [name for name in names if (self.record.parent / name).exists() and name not in self.names]

    def add(self, names: Iterable[str]) -> None:
        """Records `names` as the project's, appending them to the record."""
        new = sorted(set(names) - self.names)
        if not new:
            return
        self.names.update(new)
        if not self._appendable:
            self._write()  # an older format: rewritten whole once, then appended to
            return
        with open(self.record, "a") as f:
            f.write("".join(json.dumps(name) + "\n" for name in new))

    def discard(self, names: Iterable[str]) -> None:
        """Forgets `names` (the record is rewritten atomically)."""
        gone = self.names & set(names)
        if gone:
            self.names -= gone
            self._write()

    def _write(self):
        with atomic_path(self.record) as temporary:
            # ASCII escapes keep names that are not valid UTF-8 (surrogate escapes) writable and exact.
            temporary.write_text("".join(json.dumps(name) + "\n" for name in sorted(self.names)))
        self._appendable = True


def _read_record(record: Path) -> tuple[set[str], bool]:
    """(names, whether new names may be appended) of a record: JSON strings a line; a JSON list or plain
    names a line, as earlier versions wrote, are read too and rewritten at the next addition."""
    if not record.is_file():
        return set(), True
    text = record.read_text(errors="surrogateescape")
    try:
        whole = json.loads(text)
    except ValueError:
        whole = None
    if isinstance(whole, list) and all(isinstance(name, str) for name in whole):
        return set(whole), False
    names, plain = set(), False
    for line in text.split("\n"):
        if not line:
            continue
        try:
            name = json.loads(line)
        except ValueError:
            name = None
        if isinstance(name, str):
            names.add(name)
        elif line.startswith('"'):
            continue  # a line cut short by a crash
        else:
            names.add(line)  # a plain name, as versions before JSON wrote them
            plain = True
    return names, not plain
