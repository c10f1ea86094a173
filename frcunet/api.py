"""The Python API: one function per step, for notebooks and scripts.

Each takes the same settings as the matching `frcunet` verb, as keyword
arguments, and returns Python objects instead of printing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import keras
    import numpy as np

    from frcunet.inference.onnx_model import OnnxModel


def prepare(dataset: str, data_dir: Path | str | None = None, out_dir: Path | str | None = None,
            size: Sequence[int] = (256, 256), **options: Any) -> dict[str, Any]:
    """Writes a prepared split folder from a dataset as downloaded.

    Args:
        dataset: str. "isic2018", "isic2017", "ph2" or "folder".
        data_dir: str or None. The download; None for the dataset's default folder (as the CLI's).
        out_dir: str or None. The folder to write; None for `data/<dataset>`.
        size: (int, int). Height and width of the stored arrays. Defaults to (256, 256).
        **options: the other fields of `frcunet.data.prepare.PrepareConfig`: split=(0.7, 0.1, 0.2), seed=0,
            split_file=..., workers=..., skip_unpaired=..., masks_dir=..., mask_suffix=..., progress=True.

    Returns:
        The manifest written into the folder (a dict: splits with ids and original sizes, counts, source).

    Raises:
        UserError: a missing or malformed download, a bad size or split, an output folder it may not replace.

    Example (not a doctest: it needs the download)::

        manifest = frcunet.prepare("isic2018", "dataset_isic18", "data/isic2018", (192, 256),
                                   split=(0.7, 0.1, 0.2))
    """
    from frcunet.data.prepare import PrepareConfig, prepare_dataset

    manifest, _ = prepare_dataset(PrepareConfig(dataset, data_dir, out_dir, tuple(size), **options))
    return manifest.as_dict()


def train(data: Path | str = "data/isic2018", run: Path | str = "", model: str | None = None,
          recipe: str | None = None, **settings: Any) -> Path:
    """Trains a registry model on a prepared folder. Calling it again continues an interrupted run.

    Args:
        data: str or Path. A prepared folder. Defaults to "data/isic2018".
        run: str or Path. The run folder; "" for `weights/<data folder name>_<model>`.
        model: str or None. A registry model name; None for "frcunet", or for the shipped model's architecture
            when `init_weights="pretrained"`. Defaults to None.
        recipe: str or None. A named recipe of `frcunet.training.recipes` ("paper", "cpu", "finetune") whose settings
            fill those not given; None for the TrainConfig defaults (the paper's). Defaults to None.
        **settings: the other fields of `frcunet.training.trainer.TrainConfig` (epochs, batch_size, lr, loss, augment,
            model_options, precision, init_weights, max_minutes, ...). `init_weights="pretrained"` starts from
            the model shipped in the package and builds its architecture.

    Returns:
        The run folder (a Path) with best.weights.h5, model.keras, config.json and history.csv.

    Raises:
        UserError: unusable data or settings, an option that contradicts the shipped model when starting from
            it, or a run folder that holds a different run.

    Example (not a doctest: it needs prepared data, and trains)::

        run = frcunet.train("data/isic2018", "weights/lite", "frcunet-lite", epochs=5, lr=1e-3)
        tuned = frcunet.train("data/ph2", "weights/ph2_tuned", recipe="finetune", init_weights="pretrained")
    """
    from frcunet.training.trainer import TrainConfig
    from frcunet.training.trainer import train as run_training

    # The paper recipe is the TrainConfig defaults.
    config = TrainConfig.from_recipe(recipe or "paper", model, data=str(data), run=str(run), **settings)
    folder, _ = run_training(config)
    return Path(folder)


def evaluate(run: Path | str, data: Path | str = "data/isic2018", out: Path | str = "",
             **settings: Any) -> dict[str, Any]:
    """Evaluates a run on a prepared test split.

    Args:
        run: str or Path. A run folder.
        data: str or Path. A prepared folder whose test split is scored. Defaults to "data/isic2018".
        out: str or Path. The output folder; "" for `output/<run folder name>`.
        **settings: the other fields of `frcunet.evaluation.evaluate.EvaluateConfig` (threshold, tta, native, resize,
            batch_size, progress, pretrained).

    Returns:
        The metrics dict that metrics.json holds: pooled, per_image_mean, per_image_std, thresholded_jaccard,
        n_images, and with `native=True` the same at each image's original size.

    Raises:
        UserError: a missing run or data folder, weights that do not fit, an output folder it may not replace.
    """
    from frcunet.evaluation.evaluate import EvaluateConfig
    from frcunet.evaluation.evaluate import evaluate as run_evaluation

    metrics, _ = run_evaluation(EvaluateConfig(run=str(run), data=str(data), out=str(out), **settings))
    return metrics.as_dict()


def load_model(run: Path | str | None = None, runtime: str = "auto") -> keras.Model | OnnxModel:
    """A run's best model, or the shipped one.

    Args:
        run: str, Path or None. A run folder; None for the frcunet-lite trained on ISIC 2018 that ships with
            the package (frcunet/pretrained/MODEL_CARD.md: research use, dermoscopic images, not a medical
            device). Defaults to None.
        runtime: "keras" for a keras.Model (needs Keras), "onnx" for an `OnnxModel` on ONNX Runtime (the
            shipped model's ONNX file, or the run's current model.onnx from `frcunet export`), "auto" for
            Keras when it is installed, else ONNX. Defaults to "auto".

    Returns:
        A model from raw RGB images (0..255) to lesion probabilities, which `frcunet.predict` takes.

    Raises:
        UserError: a run folder without a readable config.json or best weights that fit it; a runtime that is
            not installed, or a run without an ONNX export for runtime "onnx".
    """
    import importlib.util

    from frcunet.core.errors import UserError

    if runtime not in ("auto", "keras", "onnx"):
        raise UserError(f"runtime must be 'auto', 'keras' or 'onnx', got {runtime!r}")
    keras_installed = importlib.util.find_spec("keras") is not None
    if runtime == "onnx" or (runtime == "auto" and not keras_installed):
        from frcunet.inference.prediction import run_onnx_export, shipped_onnx

        model = shipped_onnx() if run is None else run_onnx_export(run)
        if model is None:
            raise UserError("no ONNX model to load: install onnxruntime, and for a run export it first with "
                            f"frcunet export --run {run} --format onnx" if run else
                            "no ONNX model to load: install onnxruntime (pip install onnxruntime)")
        return model
    if not keras_installed:
        raise UserError("a Keras model needs Keras: pip install 'frcunet[train]' tensorflow-cpu, or use "
                        "runtime='onnx'")
    from frcunet.artifacts.runs import load_run_model

    return load_run_model(None if run is None else str(run))[0]


def predict(model_or_run: keras.Model | OnnxModel | Path | str | None = None,
            images: np.ndarray | Path | str | Sequence[np.ndarray | Path | str] | None = None,
            threshold: float | None = None, tta: bool = False,
            batch_size: int = 8) -> np.ndarray | list[np.ndarray]:
    """Lesion probability maps (or masks, given a threshold) for RGB images of any sizes.

    Args:
        model_or_run: a model from `build_model`/`load_model` (Keras or ONNX), a run folder (str or Path), or
            None for the shipped model. A run or None predicts on ONNX Runtime where an ONNX model exists and
            ONNX Runtime is installed (`frcunet predict`'s rule), else with Keras. Defaults to None.
        images: one image or a list of them: arrays of any sizes, or image files (str or Path), which are read
            as `frcunet predict` reads them (upright, JPEGs decoded at a reduced scale), so that both give the
            same masks. Arrays: (H, W, 3) uint8 RGB; also grey (H, W), RGBA (alpha dropped), other integer
            types (scaled like 16-bit files) and floats (0..1 when their maximum is at most 1, else 0..255);
            see `frcunet.data.imaging.as_rgb8`.
        threshold: float or None. None for probabilities in [0, 1]; a number strictly between 0 and 1 for
            boolean masks. Defaults to None.
        tta: bool. Average the predictions of the flipped images. Defaults to False.
        batch_size: int. Images per model call. Defaults to 8.

    Returns:
        One (H, W) array per image, at that image's own size (a single array for a single image).

    Raises:
        UserError: a threshold outside (0, 1), or an image that is neither an RGB uint8 array nor a readable file.
    """
    import numpy as np

    from frcunet.inference.prediction import check_threshold, open_model, predict_arrays

    if threshold is not None:
        check_threshold(threshold)
    model = open_model(model_or_run) if model_or_run is None or isinstance(model_or_run, (str, Path)) \
        else model_or_run
    single = isinstance(images, (str, Path)) or (isinstance(images, np.ndarray) and images.ndim != 4)
    maps = predict_arrays(model, [images] if single else list(images), batch_size, tta)
    if threshold is not None:
        maps = [m > threshold for m in maps]
    return maps[0] if single else maps
