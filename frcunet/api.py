"""The Python API: one function per step, for notebooks and scripts.

Each takes the same settings as the matching `frcunet` verb, as keyword
arguments, and returns Python objects instead of printing.
"""

from pathlib import Path


def prepare(dataset, data_dir=None, out_dir=None, size=(256, 256), **options):
    """Writes a prepared split folder from a dataset as downloaded; returns its manifest (a dict).

    Args:
        dataset: "isic2018", "isic2017", "ph2" or "folder".
        data_dir, out_dir: the download and the folder to write (defaults as the CLI's).
        size: (height, width) of the stored arrays.
        **options: split=(0.7, 0.1, 0.2), seed=0, split_file=..., workers=..., skip_unpaired=...,
            masks_dir=..., mask_suffix=..., progress=True.

    Example (not a doctest: it needs the download)::

        manifest = frcunet.prepare("isic2018", "dataset_isic18", "data/isic2018", (192, 256),
                                   split=(0.7, 0.1, 0.2))
    """
    from frcunet.data.prepare import PrepareConfig, prepare_dataset

    manifest, _ = prepare_dataset(PrepareConfig(dataset, data_dir, out_dir, tuple(size), **options))
    return manifest


def train(data="data/isic2018", run="", model="frcunet", **settings):
    """Trains a registry model on a prepared folder; returns the run folder (a Path).

    Settings are the fields of `frcunet.training.TrainConfig` (epochs, batch_size, lr, loss, augment,
    model_options, precision, init_weights, ...). Calling it again continues an interrupted run.

    Example (not a doctest: it needs prepared data, and trains)::

        run = frcunet.train("data/isic2018", "weights/lite", "frcunet-lite", epochs=5, lr=1e-3)
    """
    from frcunet.training import TrainConfig
    from frcunet.training import train as run_training

    folder, _ = run_training(TrainConfig(data=str(data), run=str(run), model=model, **settings))
    return Path(folder)


def evaluate(run, data="data/isic2018", out="", **settings):
    """Evaluates a run on a prepared test split; returns the metrics dict that metrics.json holds.

    Settings are the fields of `frcunet.evaluation.EvaluateConfig` (threshold, tta, native, resize, ...).
    """
    from frcunet.evaluation import EvaluateConfig
    from frcunet.evaluation import evaluate as run_evaluation

    metrics, _ = run_evaluation(EvaluateConfig(run=str(run), data=str(data), out=str(out), **settings))
    return metrics


def load_model(run=None):
    """A run's best model (a keras.Model taking raw RGB images), rebuilt from its config.json.

    Without `run`, the frcunet-lite model trained on ISIC 2018 that ships with the package (see
    frcunet/pretrained/MODEL_CARD.md: research use, dermoscopic images, not a medical device).
    """
    from frcunet.runs import load_run_model

    return load_run_model(None if run is None else str(run))[0]


def predict(model_or_run, images, threshold=None, tta=False, batch_size=8):
    """Lesion probability maps (or masks, given a threshold) for RGB images of any sizes.

    Args:
        model_or_run: a keras.Model from `build_model`/`load_model`, a run folder, or None for the shipped model.
        images: one (H, W, 3) array or a list of them, uint8 RGB.
        threshold: None for probabilities in [0, 1]; a number for boolean masks.

    Returns:
        One (H, W) array per image, at that image's own size (a single array for a single image).
    """
    import numpy as np

    from frcunet.prediction import predict_arrays

    model = load_model(model_or_run) if model_or_run is None or isinstance(model_or_run, (str, Path)) \
        else model_or_run
    single = isinstance(images, np.ndarray) and images.ndim == 3
    maps = predict_arrays(model, [images] if single else list(images), batch_size, tta)
    if threshold is not None:
        maps = [m > threshold for m in maps]
    return maps[0] if single else maps
