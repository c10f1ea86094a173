"""A prepared folder's manifest.json, typed: what was prepared, from where, how it was split, and each pair.

`write_manifest` is its one writer (frcunet.data.prepare) and `read_manifest` its one reader; every other module
reads the Manifest's fields.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from frcunet.core.errors import UserError
from frcunet.core.names import SPLITS
from frcunet.core.saving import read_json

MANIFEST = "manifest.json"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class ManifestEntry:
    """One prepared pair: its id, the files it was read from, their size and hashes."""

    id: str
    image: str
    mask: str
    original_size: tuple[int, int]  # (height, width) of the files
    image_sha1: str | None = None
    mask_sha1: str | None = None


@dataclass(frozen=True)
class Manifest:
    """Everything manifest.json holds. `splits` lists the pairs of each split in the arrays' row order."""

    size: tuple[int, int]  # (height, width) of the arrays
    splits: dict[str, list[ManifestEntry]]
    dataset: str | None = None
    source_dir: str | None = None
    split: dict = field(default_factory=dict)  # the protocol: {"protocol": "paper" | "ratio" | "file", ...}
    unused_pairs: int = 0
    lesion_fraction: dict[str, float | None] = field(default_factory=dict)
    created: str = ""
    command: list[str] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    format: int = FORMAT_VERSION

    @property
    def counts(self) -> dict[str, int]:
        return {name: len(self.splits.get(name, [])) for name in SPLITS}

    def ids(self, split: str) -> list[str]:
        """The ids of one split, in row order."""
        return [entry.id for entry in self.splits.get(split, [])]

    def as_dict(self) -> dict:
        """The JSON form, in the file's long-standing order and with lists for sizes, and the counts of each
        split (derived from the splits on reading)."""
        splits = {name: [{**asdict(entry), "original_size": list(entry.original_size)} for entry in entries]
                  for name, entries in self.splits.items()}
        return {"format": self.format, "dataset": self.dataset, "source_dir": self.source_dir, "split": self.split,
                "unused_pairs": self.unused_pairs, "size": list(self.size), "counts": self.counts,
                "lesion_fraction": self.lesion_fraction, "splits": splits, "created": self.created,
                "command": self.command, "versions": self.versions, "seconds": self.seconds}

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=1)

    @classmethod
    def from_dict(cls, values: dict, source: Path | str) -> Manifest:
        try:
            splits = {name: [ManifestEntry(**{**entry, "original_size": tuple(entry["original_size"])})
                             for entry in values["splits"][name]] for name in SPLITS}
            known = {key: values[key] for key in cls.__dataclass_fields__ if key in values and key != "splits"}
            known["size"] = tuple(values["size"])
            return cls(splits=splits, **known)
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(f"{source} is not a manifest.json that `frcunet prepare` wrote ({exc.__class__.__name__}); "
                            "prepare the folder again") from None


def manifest_path(folder: Path | str) -> Path:
    return Path(folder) / MANIFEST


def read_manifest(path: Path | str) -> Manifest:
    """The Manifest of a prepared folder (or of a manifest.json file); UserError when missing or malformed."""
    path = Path(path)
    path = manifest_path(path) if path.is_dir() else path
    values = read_json(path, "prepare the folder again", missing="prepare the folder with `frcunet prepare`")
    return Manifest.from_dict(values, path)


def read_split_ids(path: Path | str) -> dict[str, list[str]]:
    """{split: ids} of a manifest.json, for `prepare --split-file`: only the splits' ids are needed, so a file
    that lists just {"splits": {"train": [{"id": ...}, ...], ...}} serves too."""
    path = Path(path)
    try:
        splits = json.loads(path.read_text())["splits"]
        return {name: [str(entry["id"]) for entry in splits[name]] for name in SPLITS}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{path} is not a prepared manifest.json ({exc.__class__.__name__}); give one that "
                        "`frcunet prepare` wrote") from None


def write_manifest(folder: Path | str, manifest: Manifest) -> None:
    """Writes manifest.json into `folder` (a staging folder: the whole prepared folder is published at once)."""
    manifest_path(folder).write_text(manifest.to_json())


def manifest_sha1(folder: Path | str) -> str:
    """Hash of a prepared folder's manifest: names its data exactly (ids, sources, their hashes, size)."""
    return hashlib.sha1(manifest_path(folder).read_bytes()).hexdigest()
