"""FRCU-Net: deep frequency re-calibration U-Net for skin lesion segmentation, on Keras 3.

Importing the package registers its custom layers, so a saved `.keras` model
loads with plain `keras.saving.load_model`.
"""

import os

__version__ = "0.1.0"

# TensorFlow's C++ start-up chatter would bury the one-line `error:` messages;
# a user who wants it sets the variable themselves.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from frcunet.frequency_attention import FrequencyRecalibration, LaplacianPyramid  # noqa: E402
from frcunet.models import MODELS, build_model  # noqa: E402
from frcunet.preprocessing import MinMaxNormalization  # noqa: E402

__all__ = ["FrequencyRecalibration", "LaplacianPyramid", "MODELS", "MinMaxNormalization", "build_model"]
