"""Opening a run folder: its settings and its best model, with errors that say what to run."""

import warnings
from pathlib import Path

from frcunet.errors import UserError
from frcunet.saving import read_json


def read_run_config(run):
    run = Path(run)
    config_path = run / "config.json"
    if not config_path.is_file():
        raise UserError(f"no run in {run} (config.json missing); run python Train_Skin_Lesion_Segmentation.py "
                        "or frcunet train first, or pass --run")
    if not (run / "best.weights.h5").is_file():
        raise UserError(f"{run} has no best.weights.h5 yet; let its training finish at least one epoch")
    config = read_json(config_path, "train the run again with --restart")
    if not {"model", "size"} <= config.keys():
        raise UserError(f"{config_path} lacks the model or size; train the run again with --restart")
    return config


def load_run_model(run):
    """(model, config) of a run: its architecture rebuilt from config.json, its best weights loaded.

    `run` None means the trained model shipped inside the package (`frcunet.pretrained`).
    """
    from frcunet.models import build_model

    if run is None:
        from frcunet.pretrained import load_pretrained_model

        return load_pretrained_model()

    config = read_run_config(run)
    model = build_model(config["model"], (*config["size"], 3), **config.get("model_options", {}))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # a mismatch is reported as one error below
            model.load_weights(Path(run) / "best.weights.h5")
    except (ValueError, KeyError, OSError) as exc:
        first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
        raise UserError(f"{Path(run) / 'best.weights.h5'} does not fit the {config['model']} its config.json "
                        f"describes ({first}); train the run again") from None
    return model, config
