"""FRCU-Net: deep frequency re-calibration U-Net for skin lesion segmentation, on Keras 3.

    import frcunet
    model = frcunet.build_model("frcunet-lite", (192, 256, 3))
    frcunet.prepare("isic2018", "dataset_isic18", "data/isic2018", (192, 256), split=(0.7, 0.1, 0.2))
    run = frcunet.train("data/isic2018", "weights/lite", "frcunet-lite", epochs=20, lr=1e-3)
    metrics = frcunet.evaluate(run, "data/isic2018")
    masks = frcunet.predict(run, images, threshold=0.5)

The package imports lazily: data preparation needs neither Keras nor its
backend (which cost seconds and ~650 MB to import), so they load only when a
model-related name is first used. `import frcunet.models.registry` (or any model
function) registers the custom layers, after which a saved `.keras` model
loads with plain `keras.saving.load_model`.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "build_model": "frcunet.models.registry",
    "MODELS": "frcunet.models.registry",
    "LaplacianPyramid": "frcunet.models.frequency_attention",
    "FrequencyRecalibration": "frcunet.models.frequency_attention",
    "MinMaxNormalization": "frcunet.models.preprocessing",
    "prepare": "frcunet.api",
    "train": "frcunet.api",
    "evaluate": "frcunet.api",
    "predict": "frcunet.api",
    "load_model": "frcunet.api",
    "pooled_metrics": "frcunet.evaluation.metrics",
    "per_image_metrics": "frcunet.evaluation.metrics",
    "thresholded_jaccard": "frcunet.evaluation.metrics",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> object:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'frcunet' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_LAZY))
