"""FRCU-Net: deep frequency re-calibration U-Net for skin lesion segmentation, on Keras 3.

The package imports lazily: data preparation needs neither Keras nor its
backend (which costs seconds and ~650 MB to import), so they load only when a
model-related name is first used. `import frcunet.models` (or using
`frcunet.build_model`) registers the custom layers, after which a saved
`.keras` model loads with plain `keras.saving.load_model`.
"""

import importlib

__version__ = "0.1.0"

_LAZY = {
    "build_model": "frcunet.models",
    "MODELS": "frcunet.models",
    "LaplacianPyramid": "frcunet.frequency_attention",
    "FrequencyRecalibration": "frcunet.frequency_attention",
    "MinMaxNormalization": "frcunet.preprocessing",
}

__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'frcunet' has no attribute {name!r}")
