"""An exported model run by ONNX Runtime: the prediction path that needs neither TensorFlow nor Keras.

`frcunet export --format onnx` writes a model that takes uint8 RGB images (N, H, W, 3) at the model's size,
with the input scaling inside, and returns probabilities (N, H, W, 1); the batch dimension is dynamic.
Its metadata names the network and the SHA-1 of the weights it was exported from, so a run's export can be
checked against the run's current best weights.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from frcunet.core.errors import UserError

if TYPE_CHECKING:
    import onnxruntime


def onnxruntime_available() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


class OnnxModel:
    """An ONNX export of a frcunet model, callable on a batch of uint8 RGB images.

    Args:
        path: str or Path. The `.onnx` file.
        threads: int or None. ONNX Runtime's intra-op threads; None for its default (one per core).

    Attributes:
        size: (height, width) the model takes.
        metadata: dict of the metadata `frcunet export` wrote (empty for a foreign model).

    Raises:
        UserError: onnxruntime missing, or a file that is not an ONNX model of this form.

    Example::

        model = OnnxModel("exported/model.onnx")
        probabilities = model(images)        # uint8 (N, H, W, 3) -> float32 (N, H, W, 1)
    """

    path: Path
    size: tuple[int, int]
    metadata: dict[str, str]
    input_name: str
    session: onnxruntime.InferenceSession

    def __init__(self, path: Path | str, threads: int | None = None) -> None:
        if not onnxruntime_available():
            raise UserError("predicting with an ONNX model needs ONNX Runtime: pip install onnxruntime")
        import onnxruntime

        self.path = Path(path)
        if not self.path.is_file():
            raise UserError(f"{self.path} not found; give an .onnx file that frcunet export wrote")
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # errors only: its warnings would stand before the command's own lines
        if threads:
            options.intra_op_num_threads = int(threads)
        # Idle threads sleep instead of spinning: predict decodes and writes on the same cores between batches
        # (spinning took the cores from them: 53 against 13x images/s on 2 cores, docs/benchmarks.md).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = onnxruntime.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own classes (InvalidProtobuf, Fail, ...)
            first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0][:200]
            raise UserError(f"{self.path} is not an ONNX model ONNX Runtime can load ({first}); export one with "
                            "frcunet export --format onnx") from None
        inputs = self.session.get_inputs()
        shape = inputs[0].shape if len(inputs) == 1 else []
        if len(shape) != 4 or inputs[0].type != "tensor(uint8)" or shape[3] != 3 \
                or not all(isinstance(side, int) for side in shape[1:3]):
            raise UserError(f"{self.path} does not take uint8 RGB images (N, H, W, 3) as frcunet exports do; "
                            "export the model with frcunet export --format onnx")
        self.input_name = inputs[0].name
        self.size = (int(shape[1]), int(shape[2]))
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """Probabilities (N, H, W, 1) float32 for uint8 images (N, H, W, 3) at `size`."""
        batch = np.ascontiguousarray(images, dtype=np.uint8)
        return self.session.run(None, {self.input_name: batch})[0]
