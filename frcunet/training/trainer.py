"""Training: a registry model on a prepared folder, into a resumable run folder.

Run folder (`weights/<dataset>_<model>` by default):
    best.weights.h5   the best epoch's weights (on --monitor), written atomically
    model.keras       the best model, uncompiled, loadable with keras.saving.load_model
    config.json       every setting, data manifest hash, versions, git commit
    history.csv       one row per epoch: loss, dice, learning_rate, val_loss, val_dice
    logs/             TensorBoard logs (when TensorFlow is installed)
    resume/           what an interrupted run continues from

Whatever stops a run (kill -9, SIGTERM, Ctrl-C, a full disk), the same command continues from the last
finished epoch, or writes the model.keras that a kill after the last epoch left unwritten. A fresh run
stopped before it kept an epoch takes its files out again.
"""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import json
import logging
import math
import numbers
import random
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from frcunet.artifacts.pretrained import (
    PRETRAINED_NAME,
    load_pretrained_weights,
    pretrained_architecture,
    pretrained_record,
    pretrained_source,
)
from frcunet.artifacts.runs import (
    BEST_WEIGHTS,
    CONFIG_FILE,
    HISTORY_FILE,
    LOGS_DIR,
    MODEL_FILE,
    RESUME_DIR,
    RUN_FILES,
    RUN_ONNX_FILE,
    default_run_folder,
    load_weights_or_explain,
    read_run_record,
    write_run_record,
)
from frcunet.core.errors import UserError
from frcunet.core.names import MONITORS, OPTIMIZERS, PRECISIONS, SCHEDULES
from frcunet.core.provenance import file_sha1, git_commit, versions
from frcunet.core.saving import atomic_path, check_folder_path, save_model_atomic
from frcunet.data.augmentation import check_augmentation
from frcunet.data.pipeline import PreparedFolder, SegmentationBatches
from frcunet.models.batch_norm import batch_norm_layers
from frcunet.models.registry import MODELS, build_model, build_model_to_load, check_model_options
from frcunet.training.callbacks import (
    STATE_FILE,
    AtomicBestCheckpoint,
    AtomicHistory,
    RecalibrateBatchNorm,
    ResumableState,
    StopOnNonFiniteLoss,
    publish_staged_best,
    read_resume_state,
    reporting_full_disk,
    update_resume_state,
)
from frcunet.training.distribute import distribution_scope, synchronize_batch_norm, this_worker
from frcunet.training.losses import LOSSES, PooledDice
from frcunet.training.recipes import recipe_settings
from frcunet.training.schedules import BudgetedSchedule

log = logging.getLogger(__name__)  # shown by the command line; silent in a host program unless it asks

# Settings that define a run; a resumed run must agree on all of them.
RUN_DEFINING_SETTINGS = ("data_manifest_sha1", "model", "model_options", "size", "batch_size", "lr", "loss",
    "augment", "monitor", "seed", "precision", "init_weights", "backbone_weights", "schedule", "warmup_epochs",
    "optimizer", "weight_decay", "ema", "bn_recalibration", "freeze_bn", "epoch_images", "train_splits",
    "deterministic", "precision_used")


@dataclass
class TrainConfig:
    """Every setting of a training run; the defaults are the paper's."""

    data: str = "data/isic2018"
    run: str = ""  # default: weights/<dataset>_<model>
    model: str | None = None  # None: frcunet, or the shipped model's architecture with init_weights="pretrained"
    model_options: dict[str, Any] = field(default_factory=dict)  # e.g. {"pyramid": "multiscale", "width": 0.5}
    epochs: int = 100
    batch_size: int = 12
    lr: float = 1e-4
    loss: str = "bce"
    augment: str = "none"  # none, flip or full (frcunet.data.augmentation); True means flip
    early_stop: int = 0  # patience in epochs; 0 = off
    monitor: str = "val_loss"  # or val_dice; "last" keeps the last epoch's weights
    schedule: str = "plateau"  # plateau: x0.1 after 7 epochs without val_loss progress; cosine: warm-up + cosine
    warmup_epochs: float = 0.0  # cosine only: linear warm-up from 0
    optimizer: str = "adam"  # adam or adamw
    weight_decay: float = 0.0  # adamw only (decoupled)
    ema: bool = False  # keep an exponential moving average of the weights and evaluate/save it
    bn_recalibration: int = 0  # re-estimate batch norm statistics on this many training images before validating
    freeze_bn: bool = False  # batch norm layers keep their (e.g. pretrained) statistics and scales: not trained
    epoch_images: int = 0  # an epoch shows at least this many images: a smaller training set is repeated
    max_minutes: float = 0.0  # 0 = no budget; else stop after the last epoch that fits, cosine spans the budget
    train_splits: tuple[str, ...] = ("train",)  # ("train", "val") fits a final model on both (use monitor "last")
    seed: int = 0
    size: tuple[int, int] | None = None  # checked against the prepared arrays when given
    precision: str = "float32"  # "auto": mixed_bfloat16 where the CPU has native bfloat16, else float32
    jit: bool = False
    deterministic: bool = False  # deterministic kernels: a resumed run equals an uninterrupted one
    distribute: str = "none"
    cpu_replicas: int = 0
    init_weights: str | None = None  # a run's best.weights.h5, or "pretrained" for the model shipped in the package
    backbone_weights: str | None = None
    loader_workers: int = 1
    restart: bool = False
    verbose: int = 1

    @classmethod
    def from_recipe(cls, recipe: str = "paper", model: str | None = None, model_options: dict[str, Any] | None = None,
                    **settings: Any) -> TrainConfig:
        """The settings of a named recipe (frcunet.training.recipes) for `model`, with `settings` on top.

        The recipe fills every setting not given, and its model options for `model` sit under the ones
        given. Starting from the shipped model (init_weights="pretrained") its record fixes the network, so
        the recipe's model options do not apply; options given are checked against the shipped ones when
        training starts. The command line, `compare`, the demo and `frcunet.train` all build their config here.

        >>> config = TrainConfig.from_recipe("cpu", "frcunet-lite", epochs=3)
        >>> config.epochs, config.lr, config.model_options["width"]
        (3, 0.001, 0.125)
        """
        from_shipped = settings.get("init_weights") == PRETRAINED_NAME
        architecture = model or (pretrained_record().model if from_shipped else "frcunet")
        recipe_train, recipe_options = recipe_settings(recipe, architecture)
        options = {**({} if from_shipped else recipe_options), **(model_options or {})}
        return cls(model=model, model_options=options, **{**recipe_train, **settings})


def cpu_has_native_bfloat16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """True when the CPU computes bfloat16 in hardware (AVX-512 BF16 or AMX); elsewhere it is emulated."""
    try:
        flags = Path(cpuinfo).read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str) -> str:
    """The dtype policy for `precision`; "auto" picks mixed_bfloat16 only where it is fast.

    Measured on a 2-core AMD EPYC without AVX-512 (docs/benchmarks.md): mixed_bfloat16 trains frcunet-lite
    about 5 times slower than float32 there, while on CPUs with native bfloat16 it is about 1.5 times faster.
    On an accelerator "auto" keeps float32; ask for mixed precision explicitly there.
    """
    if precision != "auto":
        return precision
    accelerated = any(d.device_kind != "cpu" for d in _jax_devices()) if keras.backend.backend() == "jax" else False
    return "mixed_bfloat16" if cpu_has_native_bfloat16() and not accelerated else "float32"


def _use_deterministic_kernels():
    """TensorFlow's op determinism (it stays on in this process); JAX on CPU and torch's CPU kernels used
    here are deterministic already, torch is asked for it. On a JAX GPU set
    XLA_FLAGS=--xla_gpu_deterministic_ops=true before starting Python."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    elif backend == "torch":
        import torch

        torch.use_deterministic_algorithms(True, warn_only=True)


def _jax_devices():
    import jax

    return jax.devices()


def _resolve_architecture(config):
    """Fills config.model (and, starting from the shipped model, its options) before anything else reads it."""
    if config.init_weights == PRETRAINED_NAME:
        config.model, config.model_options = pretrained_architecture(config.model, config.model_options)
    elif config.model is None:
        config.model = "frcunet"


# The range of every float setting of TrainConfig: (test, what the message asks for).
FLOAT_SETTINGS = {
    "lr": (lambda v: v > 0, "positive"),
    "warmup_epochs": (lambda v: v >= 0, "0 or more"),
    "weight_decay": (lambda v: v >= 0, "0 or more"),
    "max_minutes": (lambda v: v >= 0, "0 or more (0: no budget)"),
}


def _check_float_settings(config):
    """Every float setting (and float model option) must be a finite number in its range.

    NaN passes every `< 0` test: --max-minutes nan failed only after a whole epoch, and --lr inf or
    --weight-decay nan trained to NaN; both were written into config.json first.
    """
    for name, (fits, wanted) in FLOAT_SETTINGS.items():
        _check_finite(getattr(config, name), name, fits, wanted)
    for name, value in config.model_options.items():
        if isinstance(value, float):
            _check_finite(value, name)  # their ranges: frcunet.models.registry.check_model_options


def _check_finite(value, name, fits=lambda value: True, wanted=""):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
            or not fits(value):
        wanted = f", {wanted}" if wanted else ""
        raise UserError(f"--{name.replace('_', '-')} must be a finite number{wanted}; got {value}")


# Settings that take one of a fixed set of names, and that set.
CHOICE_SETTINGS = {"precision": PRECISIONS, "monitor": MONITORS, "schedule": SCHEDULES, "optimizer": OPTIMIZERS}


def _validate(config):
    """Every check of a TrainConfig that needs no data: one UserError naming the flag, before anything runs."""
    _resolve_architecture(config)
    if config.model not in MODELS:
        raise UserError(f"unknown model {config.model!r}; choose one of {', '.join(MODELS)}")
    check_model_options(config.model_options, config.model)
    if config.loss not in LOSSES:
        raise UserError(f"unknown loss {config.loss!r}; choose one of {', '.join(LOSSES)}")
    for name, choices in CHOICE_SETTINGS.items():
        if getattr(config, name) not in choices:
            raise UserError(f"--{name} must be one of {', '.join(choices)}")
    try:
        config.augment = check_augmentation(config.augment)
    except ValueError as exc:
        raise UserError(f"--augment: {exc}") from None
    _check_counts(config)
    _check_float_settings(config)
    _check_combinations(config)


def _check_counts(config):
    if config.seed < 0:
        raise UserError(f"--seed must be 0 or more, got {config.seed}")
    if config.epochs < 1 or config.batch_size < 1 or not config.lr > 0:
        raise UserError("--epochs and --batch-size must be at least 1 and --lr positive")
    if config.bn_recalibration < 0 or config.epoch_images < 0:
        raise UserError("--bn-recalibration and --epoch-images must not be negative")
    config.train_splits = tuple(config.train_splits)
    if not config.train_splits or set(config.train_splits) - {"train", "val"}:
        raise UserError("--train-splits takes train and/or val (the test split is never trained on)")


def _check_combinations(config):
    """Settings that are each valid but do not go together."""
    if config.freeze_bn and not (config.init_weights or config.backbone_weights):
        raise UserError("--freeze-bn keeps batch norm as the weights start, and untrained it normalises nothing: "
                        "add --init-weights pretrained (or a run's best.weights.h5), or --freeze-bn off")
    if config.freeze_bn and config.bn_recalibration:
        raise UserError("--freeze-bn keeps batch norm statistics as they are, --bn-recalibration re-estimates "
                        "them; choose one (--bn-recalibration 0 with --freeze-bn on)")
    if config.weight_decay and config.optimizer != "adamw":
        raise UserError("--weight-decay needs --optimizer adamw (Adam's L2 decay is not decoupled)")
    if config.distribute == "multiworker" and config.max_minutes:
        raise UserError("--max-minutes plans the epochs from each worker's own clock, so workers could plan "
                        "different counts and wait on each other for ever; give --epochs instead")
    if "val" in config.train_splits and config.monitor != "last":
        raise UserError("--train-splits with val trains on the validation images, so they cannot pick the best "
                        "epoch; add --monitor last")


def _check_data(config, prepared):
    train, val = prepared.split("train"), prepared.split("val")
    if train.size != val.size:
        raise UserError(f"train images are {train.size} but validation images {val.size}; prepare again")
    if config.size and tuple(config.size) != train.size:
        raise UserError(f"--size {config.size[0]} {config.size[1]} does not match the prepared arrays "
                        f"({train.size[0]}x{train.size[1]}); prepare again with --size or drop --size")
    return train.size


def _load_init_weights(model, path, config, size):
    """--init-weights: earlier weights of the same architecture and input size (PH2 fine-tuning)."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"--init-weights {path} is a folder; give a run's weights file ({path / BEST_WEIGHTS} "
                        "if it is a run folder), or 'pretrained' for the model shipped in the package")
    if not path.is_file():
        raise UserError(f"--init-weights {path} not found; give a run's best.weights.h5, or 'pretrained' for the "
                        "model shipped in the package")
    earlier = read_run_record(path.parent)
    if earlier is not None:
        if earlier.model != config.model or earlier.model_options != config.model_options:
            raise UserError(f"{path} holds {earlier.model} {earlier.model_options or ''} weights, "
                            f"not {config.model} {config.model_options or ''}; use weights of the same model")
        if earlier.size != tuple(size):
            raise UserError(f"{path} was trained at {earlier.size[0]}x{earlier.size[1]}, this data is "
                            f"{size[0]}x{size[1]}; prepare the data at the same --size")
    load_weights_or_explain(model, path, config.model, "use weights of the same model")


def _init_weights_source(config):
    """{"file", "sha1"} of the weights a fine-tuning starts from (None without --init-weights)."""
    if not config.init_weights:
        return None
    if config.init_weights == PRETRAINED_NAME:
        return pretrained_source()
    path = Path(config.init_weights)
    return {"file": str(path), "sha1": file_sha1(path)} if path.is_file() else None


def _seen_ids(config, prepared):
    """{"train": ids, "val": ids, "init_weights": ids} the run fits and validates on, from the manifest, and
    those its starting weights saw (the shipped model's, or an earlier run's): what evaluate checks a test split
    against. None when neither is known."""
    seen = {}
    if prepared.manifest is not None:
        seen = {name: prepared.manifest.ids(name) for name in ("train", "val")}
    inherited = _inherited_seen_ids(config.init_weights)
    if inherited:
        seen["init_weights"] = inherited
    return seen or None


def _inherited_seen_ids(init_weights):
    """The ids the weights a run starts from were trained or validated on (sorted; [] when unknown)."""
    if not init_weights:
        return []
    if init_weights == PRETRAINED_NAME:
        seen = pretrained_record().seen_ids
    else:
        earlier = read_run_record(Path(init_weights).parent) if Path(init_weights).is_file() else None
        seen = (earlier.seen_ids or {}) if earlier else {}
    return sorted({i for ids in seen.values() for i in ids})


def _run_config(config, size, prepared):
    record = asdict(config)
    record.update({
        "seen_ids": _seen_ids(config, prepared),
        "init_weights_source": _init_weights_source(config),
        "run": str(config.run), "size": list(size), "train_splits": list(config.train_splits),
        "data_manifest_sha1": prepared.manifest_sha1,
        "precision_used": resolve_precision(config.precision),
        "versions": versions(), "git_commit": git_commit(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    })
    return record


def _as_json(value):
    """`value` as JSON holds it, for comparing with a recorded setting (a tuple default equals a recorded list)."""
    return json.loads(json.dumps(value))


def _check_resumable(run, record):
    """An existing run folder must hold the same run; returns the resume state or None."""
    try:
        earlier = read_run_record(run)
    except UserError as exc:
        raise UserError(f"{exc}; or use another --run") from None
    if earlier is None:
        return None
    # A run recorded before a setting existed ran with that setting's default.
    defaults = {key: item.default for key, item in TrainConfig.__dataclass_fields__.items()}
    # A recorded value that is not a setting (precision_used) cannot be inferred for an older run: not compared.
    comparable = [key for key in RUN_DEFINING_SETTINGS if earlier.has_setting(key) or key in defaults]
    differing = [key for key in comparable
                 if _as_json(earlier.setting(key, defaults.get(key))) != _as_json(record.get(key))]
    if differing:
        raise UserError(f"{run} holds a run with other settings ({', '.join(differing)}); use another --run, "
                        "or --restart to replace it")
    return read_resume_state(run / RESUME_DIR)


def _trim_history(path, epochs_done):
    """Drops history rows of epochs after the resumed one (a kill can leave one)."""
    if not path.is_file():
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    kept = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) < epochs_done] if rows else []
    with reporting_full_disk(path), atomic_path(path) as temporary, open(temporary, "w", newline="") as f:
        csv.writer(f).writerows(kept)


EMA_MOMENTUM = 0.99  # per step: an average over the last ~100 steps, about one ISIC epoch at batch 16


def _optimizer(config):
    ema = dict(use_ema=True, ema_momentum=EMA_MOMENTUM) if config.ema else {}
    if config.optimizer == "adamw":
        return keras.optimizers.AdamW(config.lr, weight_decay=config.weight_decay, **ema)
    return keras.optimizers.Adam(config.lr, **ema)


def _recalibration(config, prepared):
    """The RecalibrateBatchNorm callback that --bn-recalibration asks for, as a list of 0 or 1."""
    if not config.bn_recalibration:
        return []
    images = SegmentationBatches(prepared, config.train_splits, config.batch_size, shuffle=True, seed=config.seed)
    return [RecalibrateBatchNorm(images, min(len(images), math.ceil(config.bn_recalibration / config.batch_size)))]


def _callbacks(config, run, resume_state, steps_per_epoch, prepared):
    mode = {"val_loss": "min", "val_dice": "max", "last": "last"}[config.monitor]
    monitor = "loss" if config.monitor == "last" else config.monitor
    best = AtomicBestCheckpoint(run / BEST_WEIGHTS, monitor, mode, staging=run / RESUME_DIR)
    stateful = {"best": best}
    if config.schedule == "plateau":
        stateful["reduce_lr"] = keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.1, patience=7,
                                                                  min_delta=1e-4, verbose=config.verbose)
    if config.schedule == "cosine" or config.max_minutes:
        stateful["budget"] = BudgetedSchedule(config.lr, config.epochs, steps_per_epoch, config.max_minutes,
                                              cosine=config.schedule == "cosine",
                                              warmup_epochs=config.warmup_epochs, fix_plan=config.deterministic)
    if config.early_stop and config.monitor != "last":
        stateful["early_stop"] = keras.callbacks.EarlyStopping(monitor=config.monitor, mode=mode,
                                                               patience=config.early_stop, verbose=config.verbose)
    nan_guard = StopOnNonFiniteLoss()
    # The EMA swap comes first: validation, the checkpoint and the resume state all see the averaged weights
    # (and batch norm statistics re-estimated for them).
    swap = [keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if config.ema else []
    logs = [AtomicHistory(run / HISTORY_FILE)]
    if importlib.util.find_spec("tensorflow") is not None:
        logs.append(keras.callbacks.TensorBoard(str(run / LOGS_DIR), write_graph=False))
    # The resume state comes last, so that it describes exactly what is on disk: the history row is
    # written before it, and the best checkpoint is published after it (see ResumableState).
    resumable = ResumableState(run / RESUME_DIR, stateful, resume_state.callbacks if resume_state else None,
                               nan_guard, resume_state.seed_states if resume_state else None, best)
    return [*swap, *_recalibration(config, prepared), nan_guard, *stateful.values(), *logs, resumable], best, nan_guard


# The run's own files that training writes through frcunet.core.saving.atomic_path.
ATOMIC_RUN_FILES = (BEST_WEIGHTS, MODEL_FILE, CONFIG_FILE, HISTORY_FILE)


def _temporary_name_pattern(name):
    """How atomic_path names a temporary of `name`: a dot, the stem, mkstemp's 8 random characters, the suffixes."""
    path = Path(name)
    return re.compile(rf"\.{re.escape(path.stem)}\.[a-z0-9_]{{8}}{re.escape(''.join(path.suffixes))}")


STALE_TEMPORARIES = [_temporary_name_pattern(name) for name in ATOMIC_RUN_FILES]


def _remove_stale_temporaries(run):
    """Removes the temporaries of its own files that a killed training left (the lock is held, so no
    writer is alive); any other hidden file may be the user's."""
    for path in run.glob(".*"):
        if path.is_file() and any(pattern.fullmatch(path.name) for pattern in STALE_TEMPORARIES):
            log.warning(f"removing {path}, left by an interrupted run")
            path.unlink()


def _start_fresh(run):
    for name in (BEST_WEIGHTS, MODEL_FILE, RUN_ONNX_FILE, HISTORY_FILE):
        (run / name).unlink(missing_ok=True)
    if (run / RESUME_DIR).is_dir():
        for old in (run / RESUME_DIR).iterdir():  # hidden temporaries of a killed run too
            old.unlink()


def train(config: TrainConfig) -> tuple[Path, keras.callbacks.History | None]:
    """Trains as `config` says; returns (run folder, keras History or None if nothing was left to do).

    One process at a time trains a run folder (an OS lock beside it). Nothing in the folder changes until
    every setting has been checked and the model built, so a command refused on its arguments leaves an
    earlier run as it was.
    """
    from frcunet.core.locks import exclusive_lock

    _validate(config)
    prepared = PreparedFolder(config.data)
    size = _check_data(config, prepared)
    run = Path(config.run or default_run_folder(config.data, config.model))
    worker = this_worker(config.distribute)
    if worker.index:
        # Every worker trains the same model; the chief's folder is the run, the others keep theirs beside
        # it, so that workers sharing a disk (or one machine) do not write over each other.
        run = run.with_name(f"{run.name}.worker{worker.index}")
    config.run = str(run)
    check_folder_path(run, "--run")
    foreign = {p.name for p in run.iterdir() if p.name[0] != "."} - RUN_FILES if run.is_dir() else set()
    if foreign and not (run / CONFIG_FILE).is_file():
        raise UserError(f"--run {run} is a folder that holds no frcunet run; it is left untouched: choose a new "
                        "or empty folder")
    # Each writer names the file a full disk stopped; this names the run for the others (the lock file,
    # TensorBoard's event files).
    with reporting_full_disk(run):
        run.parent.mkdir(parents=True, exist_ok=True)
        with exclusive_lock(run.parent / f".{run.name}.lock", run, "trained"), _restored_keras_globals():
            return _train_locked(config, run, size, worker, prepared)


@contextlib.contextmanager
def _restored_keras_globals():
    """Training sets Keras' global dtype policy and distribution, and seeds Python's and numpy's global
    generators (keras.utils.set_random_seed); the caller gets its own back, even on failure, so that a second
    call in one process (a notebook, `compare`) starts from the same state and a host program's random draws
    do not change because it trained a model."""
    policy, distribution = keras.config.dtype_policy(), keras.distribution.distribution()
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        yield
    finally:
        keras.config.set_dtype_policy(policy)
        keras.distribution.set_distribution(distribution)
        random.setstate(python_state)
        np.random.set_state(numpy_state)


def _train_locked(config, run, size, worker, prepared):
    record = _run_config(config, size, prepared)
    resume_state = None if config.restart else _check_resumable(run, record)
    epochs_done = resume_state.epochs_done if resume_state else 0
    if epochs_done >= config.epochs or (resume_state is not None and resume_state.stopped_early):
        _finish_finished_run(config, size, run, resume_state)
        log.info(f"{run} already holds a finished run of {epochs_done} epochs; nothing to train (--restart to redo)")
        return run, None

    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        _use_deterministic_kernels()
    keras.config.set_dtype_policy(resolve_precision(config.precision))
    scope, replicas = distribution_scope(config.distribute, config.cpu_replicas)
    with contextlib.ExitStack() as opened:
        with scope:
            model = _compiled_model(config, size, fresh=not resume_state)
            synchronize_batch_norm(model, replicas)
            # Every check has passed: only now does the run folder change.
            opened.enter_context(_opened_run_folder(run, record, fresh=not resume_state))
            if resume_state:
                _restore_interrupted(model, config, run, resume_state)
        history = _fit(model, config, run, resume_state, replicas, worker, prepared)
    _export_best_model(config, size, run)
    return run, history


def _fit(model, config, run, resume_state, replicas, worker, prepared):
    """model.fit from the resumed epoch (or the first) to config.epochs; a UserError if the loss diverged."""
    epochs_done = resume_state.epochs_done if resume_state else 0
    on_jax = keras.backend.backend() == "jax"
    # TensorFlow shards the input among workers itself; on JAX each process feeds its part of every batch.
    part = (worker.index, worker.count) if on_jax else (0, 1)
    batches = dict(batch_size=config.batch_size, seed=config.seed, part=part, workers=config.loader_workers,
                   use_multiprocessing=config.loader_workers > 1)
    train_data = SegmentationBatches(prepared, config.train_splits, shuffle=True, augment=config.augment,
                                     epoch=epochs_done, epoch_images=config.epoch_images, **batches)
    val_data = SegmentationBatches(prepared, "val", **batches)
    if on_jax:
        _check_batches_split(train_data, val_data, replicas)
    callbacks, _, nan_guard = _callbacks(config, run, resume_state, len(train_data), prepared)
    # Keras' fit ends an epoch of its input before the first one (`epoch_iterator.reset()`), which would
    # move the order and flips one epoch on; the epoch is set again once training begins, so that every
    # input path (the native one included) draws epoch e's order for epoch e.
    callbacks.insert(0, keras.callbacks.LambdaCallback(
        on_train_begin=lambda logs: setattr(train_data, "epoch", epochs_done)))
    if replicas > 1:
        log.info(f"data-parallel over {replicas} replicas, {config.batch_size // replicas} images each per step")
    train_input, steps_per_epoch = _fit_input(config, train_data)
    # shuffle=False: the pipeline orders each epoch from (seed, epoch); Keras' own batch shuffle would draw
    # from Python's global random, which a resumed run does not continue.
    history = model.fit(train_input, steps_per_epoch=steps_per_epoch, validation_data=val_data, shuffle=False,
                        epochs=config.epochs, initial_epoch=epochs_done, callbacks=callbacks, verbose=config.verbose)
    if nan_guard.where:
        epoch, batch = nan_guard.where
        kept = f"best weights so far kept in {run / BEST_WEIGHTS}" if (run / BEST_WEIGHTS).is_file() \
            else "no epoch finished, so no weights were kept"
        raise UserError(f"loss became NaN at epoch {epoch}, batch {batch}; {kept}; {_divergence_hint(config)}")
    return history


def _check_batches_split(train_data, val_data, replicas):
    """JAX splits every batch evenly over the devices or fails mid-epoch: refuse a batch that cannot split."""
    for name, data in (("training", train_data), ("validation", val_data)):
        uneven = [size for size in data.batch_sizes() if size % replicas]
        if uneven:
            raise UserError(f"--distribute on JAX splits every batch evenly over {replicas} devices, but a "
                            f"{name} batch holds {uneven[0]} images ({data.batch_size} per batch); choose a "
                            f"--batch-size for which every batch, the last one too, divides by {replicas}")


def _divergence_hint(config):
    """The settings that can make the loss diverge, named without claiming which one did."""
    causes = [f"--lr (now {config.lr:g})"]
    if config.weight_decay:
        causes.append(f"--weight-decay (now {config.weight_decay:g})")
    lower = "lower values" if len(causes) > 1 else "a lower one"
    hint = f"too high a {' or '.join(causes)} can cause this: try {lower}"
    precision = resolve_precision(config.precision)
    if precision != "float32":
        hint += f"; so can {precision}: try --precision float32"
    return hint


def _compiled_model(config, size, fresh):
    """The model, compiled; a fresh run first takes --backbone-weights and --init-weights."""
    model = build_model(config.model, (*size, 3), **config.model_options)
    if config.freeze_bn:
        # Not trainable, a Keras 3 BatchNormalization also normalises with its moving statistics in training.
        for layer in batch_norm_layers(model):
            layer.trainable = False
    if fresh:
        # Before compiling: a fine-tuned model starts with a fresh optimizer, not the source run's.
        if config.backbone_weights:
            from frcunet.models.backbone_weights import load_backbone_weights

            log.info(load_backbone_weights(model, config.backbone_weights).summary())
        if config.init_weights == PRETRAINED_NAME:
            load_pretrained_weights(model)
        elif config.init_weights:
            _load_init_weights(model, config.init_weights, config, size)
    model.compile(optimizer=_optimizer(config), loss=LOSSES[config.loss], metrics=[PooledDice(name="dice")],
                  jit_compile=True if config.jit else "auto")
    # Built now, not while TensorFlow traces the first step: variables created inside that trace make
    # TensorFlow trace the whole training step a second time, which doubles its start-up.
    model.optimizer.build(model.trainable_variables)
    return model


def _open_run_folder(run, record, fresh):
    """Clears a run folder's own files for a fresh run, and writes its config.json."""
    if fresh:
        _start_fresh(run)
        (run / CONFIG_FILE).unlink(missing_ok=True)
    run.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(run)
    with reporting_full_disk(run / CONFIG_FILE):
        write_run_record(run, record)


@contextlib.contextmanager
def _opened_run_folder(run, record, fresh):
    """_open_run_folder, for the block. A fresh run that ends (an error, an interrupt) before it keeps an
    epoch takes out again what it added, so that no folder with only config.json is left behind."""
    had_folder, had_logs = run.is_dir(), (run / LOGS_DIR).is_dir()
    try:
        _open_run_folder(run, record, fresh)
        yield
    except BaseException:
        if fresh and not (run / RESUME_DIR / STATE_FILE).is_file():
            _remove_unkept_start(run, had_folder, had_logs)
        raise


def _remove_unkept_start(run, had_folder, had_logs):
    """Removes a fresh run's own files: an earlier run's are gone already (_start_fresh), a user's stay."""
    for name in (CONFIG_FILE, HISTORY_FILE):
        (run / name).unlink(missing_ok=True)
    shutil.rmtree(run / RESUME_DIR, ignore_errors=True)
    if not had_logs:
        shutil.rmtree(run / LOGS_DIR, ignore_errors=True)
    if not had_folder and not any(run.iterdir()):
        run.rmdir()


def _restore_interrupted(model, config, run, resume_state):
    """Weights, optimizer, history and best checkpoint as the interrupted run left them after its last epoch.

    The optimizer is already built (_compiled_model), so its variables load with the weights.
    """
    epochs_done = resume_state.epochs_done
    model.load_weights(run / RESUME_DIR / resume_state.weights)
    if config.ema:
        _swap_ema(model.optimizer)  # the resume file holds the average in the model, see _callbacks
    _trim_history(run / HISTORY_FILE, epochs_done)
    publish_staged_best(run / RESUME_DIR, resume_state, run / BEST_WEIGHTS)
    log.info(f"resuming {run} after epoch {epochs_done}")


def _fit_input(config, train_data):
    """(x, steps_per_epoch) for model.fit: a native tf.data pipeline on TensorFlow where it applies.

    Fed from Python, TensorFlow trained about twice as slowly on a 2-core CPU; the native pipeline yields
    the same batches (frcunet.data.native_pipeline). It holds the arrays in memory, so it is skipped for
    several loader processes (the user asked for the Python pipeline) and for the "full" augmentation.
    """
    from frcunet.data.native_pipeline import NATIVE_AUGMENTATIONS, native_dataset

    if (keras.backend.backend() == "tensorflow" and config.augment in NATIVE_AUGMENTATIONS
            and config.distribute == "none" and config.loader_workers <= 1):
        return native_dataset(train_data, config.epochs), len(train_data)
    return train_data, None


def _swap_ema(optimizer):
    """Exchanges the model's weights with their moving averages (what SwapEMAWeights does at epoch start)."""
    for variable, average in zip(optimizer._trainable_variables, optimizer._model_variables_moving_average,
                                 strict=True):
        current = keras.ops.convert_to_numpy(variable)
        variable.assign(average)
        average.assign(current)


def _export_best_model(config, size, run):
    """model.keras: a fresh, uncompiled model holding the best weights (no training objects inside)."""
    keras.config.set_dtype_policy("float32")
    model = build_model_to_load(config.model, (*size, 3), lambda fresh: fresh.load_weights(run / BEST_WEIGHTS),
                                **config.model_options)
    with reporting_full_disk(run / MODEL_FILE):
        save_model_atomic(model, run / MODEL_FILE)
    update_resume_state(run / RESUME_DIR, model_exported=True)


def _finish_finished_run(config, size, run, resume_state):
    """Does what a kill after the last epoch left undone: the last best weights published, model.keras
    written, stale temporaries removed."""
    _remove_stale_temporaries(run)
    publish_staged_best(run / RESUME_DIR, resume_state, run / BEST_WEIGHTS)
    exported = resume_state.model_exported is not False and (run / MODEL_FILE).is_file()  # None: older runs
    if not exported and (run / BEST_WEIGHTS).is_file():
        log.info(f"writing {run / MODEL_FILE}, which the interrupted run did not finish")
        _export_best_model(config, size, run)
