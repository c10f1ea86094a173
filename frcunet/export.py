"""Export a run's best model for serving: a TensorFlow SavedModel or a standalone .keras file.

The SavedModel's `serve` signature takes a batch of uint8 RGB images of the
run's size, (N, H, W, 3), and returns float32 probabilities (N, H, W, 1); the
input normalisation is inside. TensorFlow is needed for SavedModel export
(whatever backend trained the run, since the weights are backend-neutral).
"""

import importlib.util
from pathlib import Path

from frcunet.errors import UserError
from frcunet.names import EXPORT_FORMATS
from frcunet.saving import atomic_folder, check_output_folder, save_model_atomic

FORMATS = EXPORT_FORMATS


def export_run(run, fmt, out):
    """Writes the export into the folder `out` (replaced atomically); returns the path of what was written."""
    from frcunet.runs import load_run_model

    if fmt not in FORMATS:
        raise UserError(f"--format must be one of {', '.join(FORMATS)}")
    if fmt == "savedmodel" and importlib.util.find_spec("tensorflow") is None:
        raise UserError("SavedModel export needs TensorFlow: pip install tensorflow-cpu (or use --format keras)")
    out = Path(out)
    check_output_folder(out, "export", keep_clear=(run,))
    model, record = load_run_model(run)
    with atomic_folder(out, "export", keep_clear=(run,)) as staging:
        if fmt == "keras":
            save_model_atomic(model, staging / "model.keras")
        else:
            _write_saved_model(model, record.size, staging / "savedmodel")
    return out / ("model.keras" if fmt == "keras" else "savedmodel")


def _write_saved_model(model, size, path):
    import keras
    import tensorflow as tf

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name="serve",
        fn=lambda images: model(keras.ops.cast(images, "float32"), training=False),
        input_signature=[tf.TensorSpec((None, *size, 3), tf.uint8, name="images")],
    )
    archive.write_out(str(path), verbose=False)
