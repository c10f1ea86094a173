"""Atomic writes: a file appears complete under its name, or not at all."""

import os
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
