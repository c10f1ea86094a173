"""The networks: the registry (`build_model`), FRCU-Net's frequency re-calibration, the baselines' parts,
input scaling and batch norm utilities.

Importing this package registers the custom layers, so that a saved `.keras` model then loads with plain
`keras.saving.load_model`.
"""

from frcunet.models.registry import MODELS, build_model, build_model_to_load

__all__ = ["MODELS", "build_model", "build_model_to_load"]
