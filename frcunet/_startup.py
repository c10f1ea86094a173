"""The command line's import of the Keras backend, without TensorFlow's native start-up banner.

TensorFlow's C++ layer writes info lines ("oneDNN custom operations are on",
absl's "All log messages before absl::InitializeLog()") straight to file
descriptor 2 while it loads, ignoring TF_CPP_MIN_LOG_LEVEL. They would stand
before every one-line `error:` message of the command line, so the import runs
with descriptor 2 pointed at a temporary file, which is replayed if the import
fails. FRCUNET_BACKEND_LOGS=1 leaves stderr alone.

Only `frcunet.cli` calls this, before a verb that needs Keras: the library itself never touches the
host program's stderr.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator

from frcunet.core.errors import UserError


@contextlib.contextmanager
def native_stderr_captured() -> Iterator[None]:
    """Points file descriptor 2 at a temporary file for the block; replays it if the block fails unexpectedly.

    TensorFlow's C++ layer logs to the descriptor directly (its import banner, the LiteRT converter's
    "NodeDef mentions attribute" line), past Python's sys.stderr. FRCUNET_BACKEND_LOGS=1 leaves it alone.
    """
    if os.environ.get("FRCUNET_BACKEND_LOGS") == "1":
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    python_stderr = sys.stderr
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        # Python's own messages (the library's warnings) still reach the terminal through a copy of it.
        sys.stderr = os.fdopen(os.dup(saved), "w", buffering=1)
        try:
            yield
        except (UserError, OSError, KeyboardInterrupt):
            raise  # a mistake, a full disk, an interrupt: the one line the command prints says it all
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            python_stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            sys.stderr.close()
            sys.stderr = python_stderr
            os.dup2(saved, 2)
            os.close(saved)


def import_keras_quietly() -> None:
    if "keras" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with native_stderr_captured():
        import keras

        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf  # the second banner comes with the first device query

            tf.config.list_physical_devices("CPU")
