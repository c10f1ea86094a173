"""The typed records: each JSON file the project writes has one writer and one reader, and reading what was
written gives the same record back."""

import json
import random

import numpy as np
import pytest

from conftest import SMALL_UNET


def test_a_prepared_folders_manifest_reads_back_as_written(prepared):
    from frcunet.data.manifest import Manifest, read_manifest

    manifest = read_manifest(prepared)
    assert isinstance(manifest, Manifest) and manifest.size == (32, 32)
    assert manifest.counts == {"train": 16, "val": 8, "test": 8}
    assert Manifest.from_dict(json.loads(manifest.to_json()), "again") == manifest
    entry = manifest.splits["test"][0]
    assert entry.id == manifest.ids("test")[0] and entry.original_size == (48, 64) and entry.mask_sha1


def test_a_broken_manifest_is_one_clear_error(tmp_path):
    from frcunet.core.errors import UserError
    from frcunet.data.manifest import read_manifest

    (tmp_path / "manifest.json").write_text('{"size": [32, 32]}')
    with pytest.raises(UserError, match="not a manifest.json that `frcunet prepare` wrote"):
        read_manifest(tmp_path)
    with pytest.raises(UserError, match="is missing"):
        read_manifest(tmp_path / "nothing" / "manifest.json")


def test_evaluation_metrics_read_back_as_written(tmp_path):
    from frcunet.evaluation.records import EvaluationMetrics, MetricsSummary, read_metrics, write_metrics

    summary = MetricsSummary({"f1": 0.8, "acc": 0.9}, {"dice": 0.75}, {"dice": 0.1}, {"hd95": 1}, 0.6, 0.9)
    metrics = EvaluationMetrics(summary, 6, 0.5, (32, 32), native=summary, run="r", model="unet", data="d",
                                settings={"tta": True}, versions={"frcunet": "0"}, run_progress={"finished": True})
    write_metrics(tmp_path, metrics)
    assert read_metrics(tmp_path) == metrics
    saved = json.loads((tmp_path / "metrics.json").read_text())
    # The file keeps its long-standing layout: the summary's fields at the top level.
    assert saved["pooled"]["f1"] == 0.8 and saved["grid"] == [32, 32] and saved["native"]["thresholded_jaccard"] == 0.6
    assert summary.value(("pooled", "f1")) == 0.8 and summary.value(("pooled", "auc_roc")) is None


def test_the_shipped_record_reads_back_as_written(tmp_path):
    from frcunet.artifacts.pretrained import RECORD_FILE, WEIGHTS_FILE, pretrained_record, write_shipped_record

    shipped = pretrained_record()
    write_shipped_record(tmp_path, shipped)
    (tmp_path / WEIGHTS_FILE).touch()  # the record is only read beside its weights
    assert pretrained_record(tmp_path) == shipped
    assert json.loads((tmp_path / RECORD_FILE).read_text())["size"] == list(shipped.size)


def test_a_runs_record_is_written_and_read_by_one_module(prepared, tmp_path):
    from frcunet.artifacts.runs import read_run_record, write_run_record

    values = {"model": "unet", "size": [32, 32], "model_options": SMALL_UNET, "data": str(prepared),
              "seen_ids": {"train": ["a"], "val": ["b"]}, "monitor": "val_dice", "epochs": 3, "lr": 1e-3}
    tmp_path.joinpath("run").mkdir()
    written = write_run_record(tmp_path / "run", values)
    read = read_run_record(tmp_path / "run")
    assert read == written and read.size == (32, 32) and read.seen_ids == {"train": ["a"], "val": ["b"]}
    assert (read.monitor, read.epochs, read.setting("lr"), read.setting("missing", 7)) == ("val_dice", 3, 1e-3, 7)


@pytest.mark.long
def test_training_leaves_the_callers_random_generators_as_they_were(prepared, tmp_path):
    import frcunet
    import frcunet.training.trainer  # noqa: F401  importing the stack draws from `random` itself; training must not

    random.seed(123)
    np.random.seed(123)
    expected = (random.random(), np.random.random())
    random.seed(123)
    np.random.seed(123)
    frcunet.train(prepared, tmp_path / "run", "unet", model_options=SMALL_UNET, epochs=1, batch_size=8, verbose=0)
    assert (random.random(), np.random.random()) == expected


def test_the_shipped_model_loads_in_float32_under_a_mixed_precision_policy():
    import keras

    from frcunet.artifacts.pretrained import load_pretrained_model

    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model, _ = load_pretrained_model()
        assert keras.config.dtype_policy().name == "mixed_bfloat16"  # the caller's policy is back
    finally:
        keras.config.set_dtype_policy("float32")
    assert {layer.dtype_policy.name for layer in model.layers} == {"float32"}
    assert all(weight.dtype == "float32" for weight in model.weights)
