"""The notebook API: `import frcunet` and call the steps with arrays and folders."""

import numpy as np
import pytest

import frcunet
from conftest import SMALL_UNET, run_python

pytestmark = pytest.mark.agnostic


@pytest.mark.long
def test_api_runs_the_whole_job_on_synthetic_data(tmp_path):
    from frcunet.data.synthetic import write_synthetic_isic

    write_synthetic_isic(tmp_path / "syn", 20, seed=4, size=(48, 64), progress=False)
    manifest = frcunet.prepare("isic2018", tmp_path / "syn", tmp_path / "prepared", (32, 32),
                               split=(0.5, 0.25, 0.25), workers=1, progress=False)
    assert manifest["counts"]["train"] == 10
    # The small U-Net: the job's plumbing does not depend on the network, and it traces in a fraction of the time.
    run = frcunet.train(tmp_path / "prepared", tmp_path / "run", "unet", epochs=1, batch_size=5,
                        model_options=SMALL_UNET, verbose=0)
    metrics = frcunet.evaluate(run, tmp_path / "prepared", tmp_path / "out", progress=False)
    assert set(metrics["pooled"]) >= {"f1", "js", "auc_roc"}
    image = np.zeros((40, 52, 3), np.uint8)
    probability = frcunet.predict(run, image)
    assert probability.shape == (40, 52) and probability.dtype == np.float32
    masks = frcunet.predict(frcunet.load_model(run), [image, image[:20]], threshold=0.5)
    assert [m.shape for m in masks] == [(40, 52), (20, 52)] and masks[0].dtype == bool
    assert frcunet.thresholded_jaccard([0.7]) == pytest.approx(0.7)


def test_importing_the_package_does_not_load_the_backend():
    done = run_python("import sys, frcunet, frcunet.cli, frcunet.data.prepare; print('keras' in sys.modules)")
    assert done.returncode == 0 and done.stdout.strip() == "False", done.stderr[-2000:]


def _choices(parser):
    """{(verb, option): choices} of every option of every verb that has choices."""
    import argparse

    verbs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    return {(verb, action.dest): list(action.choices) for verb, sub in verbs.items()
            for action in sub._actions if action.choices is not None}


def test_the_command_lines_choices_are_the_registries_keys():
    from frcunet.cli import make_parser
    from frcunet.data.download import ARCHIVES
    from frcunet.data.sources import SOURCES
    from frcunet.evaluation.budgets import BUDGETS
    from frcunet.inference.export import FILE_NAMES
    from frcunet.models.preprocessing import NORMALIZATIONS
    from frcunet.models.registry import MODELS
    from frcunet.training.losses import LOSSES
    from frcunet.training.recipes import RECIPES

    choices = _choices(make_parser())
    registries = {("build", "model"): MODELS, ("train", "model"): MODELS, ("compare", "models"): MODELS,
                  ("train", "recipe"): RECIPES, ("train", "loss"): LOSSES, ("train", "normalization"): NORMALIZATIONS,
                  ("compare", "budget"): BUDGETS, ("export", "format"): FILE_NAMES, ("download", "dataset"): ARCHIVES,
                  ("prepare", "dataset"): SOURCES}
    for option, registry in registries.items():
        assert choices[option] == list(registry), option


def test_the_command_line_knows_every_registry_name_without_importing_keras():
    done = run_python("import sys\nfrom frcunet.cli import make_parser\nmake_parser()\nprint('keras' in sys.modules)")
    assert done.returncode == 0 and done.stdout.strip() == "False", done.stderr[-2000:]
