"""FRCU-Net: deep frequency re-calibration U-Net for skin lesion segmentation, on Keras 3.

Importing the package registers its custom layers, so a saved `.keras` model
loads with plain `keras.saving.load_model`.
"""

__version__ = "0.1.0"

from frcunet._startup import import_keras_quietly  # noqa: E402

import_keras_quietly()

from frcunet.frequency_attention import FrequencyRecalibration, LaplacianPyramid  # noqa: E402
from frcunet.models import MODELS, build_model  # noqa: E402
from frcunet.preprocessing import MinMaxNormalization  # noqa: E402

__all__ = ["FrequencyRecalibration", "LaplacianPyramid", "MODELS", "MinMaxNormalization", "build_model"]
