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

import os
import sys
import tempfile


def import_keras_quietly():
    if os.environ.get("FRCUNET_BACKEND_LOGS") == "1" or "keras" in sys.modules:
        import keras  # noqa: F401

        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import keras  # noqa: F401

            if keras.backend.backend() == "tensorflow":
                import tensorflow as tf  # the second banner comes with the first device query

                tf.config.list_physical_devices("CPU")
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)

