"""What produced a result: library versions, the code's git commit, and the files it read (their SHA-1)."""

from __future__ import annotations

import hashlib
import importlib.metadata
import subprocess
import sys
from pathlib import Path

from frcunet import __version__

LIBRARIES = ("keras", "numpy", "pillow", "h5py", "tensorflow-cpu", "tensorflow", "jax", "jaxlib")


def versions() -> dict[str, str]:
    """Versions of Python, this package and the installed libraries it may use."""
    found = {"python": sys.version.split()[0], "frcunet": __version__}
    for name in LIBRARIES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    if "keras" in sys.modules:
        found["keras_backend"] = sys.modules["keras"].backend.backend()
    return found


def git_commit() -> str | None:
    """The commit of the checkout this package runs from (with "+dirty"), or None."""
    folder = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True,
                                timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=folder,
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")


def file_sha1(path: Path | str, chunk: int = 1 << 20) -> str:
    """The SHA-1 of a file, read in chunks (a full model's weights are 275 MB)."""
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()
