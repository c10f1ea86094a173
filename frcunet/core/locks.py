"""One writer per folder: an exclusive OS lock that the kernel frees when its process dies.

A kill -9 therefore leaves no stale lock. The holder's process id is written into the lock
file so that a second writer can say who holds it. Where `fcntl` is missing (Windows), no
lock is taken.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from frcunet.core.errors import UserError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None


def _open_locked(lock_file, guarded, doing):
    """A descriptor of `lock_file` holding its exclusive lock, or a UserError naming the holder."""
    while True:
        try:
            descriptor = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise UserError(f"cannot create {lock_file} ({exc.strerror}); choose a writable folder") from None
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(descriptor, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(descriptor)
            raise UserError(f"{guarded} is being {doing} by process {holder}; wait for it to end, "
                            "or stop it and run this again") from None
        # The holder before us removes the file as it finishes; a lock on a removed file guards nothing.
        try:
            if os.stat(lock_file).st_ino == os.fstat(descriptor).st_ino:
                return descriptor
        except FileNotFoundError:
            pass
        os.close(descriptor)


@contextmanager
def exclusive_lock(lock_file: Path | str, guarded: Path | str, doing: str) -> Iterator[None]:
    """Holds an exclusive lock on `lock_file` for the block, or refuses: `<guarded> is being <doing> by process N`.

    The lock file exists only while it is held (a killed holder leaves it, unlocked, for the next one).
    """
    if fcntl is None:
        yield
        return
    descriptor = _open_locked(Path(lock_file), guarded, doing)
    try:
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, str(os.getpid()).encode(), 0)
        yield
    finally:
        Path(lock_file).unlink(missing_ok=True)  # while still locked, see _open_locked
        os.close(descriptor)  # closing releases the lock
