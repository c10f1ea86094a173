"""Atomic writes: a file appears complete under its name, or not at all."""

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from frcunet.errors import UserError


@contextmanager
def atomic_path(path):
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


def save_model_atomic(model, path):
    """`model.save` to a `.keras` path, atomically."""
    if not str(path).endswith(".keras"):
        raise UserError(f"{path}: a model is saved as a .keras file; use that suffix")
    with atomic_path(path) as temporary:
        model.save(temporary)


def save_weights_atomic(model, path):
    """`model.save_weights` to a `.weights.h5` path, atomically."""
    with atomic_path(path) as temporary:
        model.save_weights(temporary)


@contextmanager
def atomic_folder(path):
    """Yields a hidden staging folder beside `path`; on success it replaces `path` by renames.

    Staging folders of earlier, killed runs are removed first. On any exception
    the staging folder is removed and `path` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.partial-*"):
        shutil.rmtree(stale, ignore_errors=True)
    staging = path.parent / f".{path.name}.partial-{os.getpid()}"
    staging.mkdir()
    try:
        yield staging
        if path.exists():
            # The old folder goes only once the new one is in place.
            retired = path.parent / f".{path.name}.old-{os.getpid()}"
            os.replace(path, retired)
            os.replace(staging, path)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staging, path)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
