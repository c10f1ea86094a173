"""The `frcunet` command: one verb per step of the pipeline.

Every verb is a thin layer over a library function. A UserError from any of
them becomes one `error:` line on stderr and exit status 2, with no traceback.
"""

from __future__ import annotations

import argparse
import inspect
import logging
import shlex
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from frcunet.core.errors import UserError
from frcunet.core.names import (
    AUGMENTATIONS,
    DISTRIBUTE_MODES,
    LOSS_NAMES,
    MODEL_NAMES,
    MONITORS,
    NORMALIZATIONS,
    OPTIMIZERS,
    PRECISIONS,
    PYRAMID_MODES,
    SCHEDULES,
    TRAINABLE_SPLITS,
)

if TYPE_CHECKING:
    from frcunet.training.trainer import TrainConfig

EXIT_USER_ERROR = 2


def _verb(subparsers, name, run_command):
    """A sub-command whose parsed arguments go to `run_command`; its docstring gives the help texts."""
    # `python -OO` strips docstrings: the verb then keeps its name as help, and still works.
    summary, _, description = inspect.cleandoc(run_command.__doc__ or name).partition("\n\n")
    parser = subparsers.add_parser(name, help=summary[:1].lower() + summary[1:].rstrip("."),
                                   description=" ".join(description.split()) or None)
    parser.set_defaults(run_command=run_command)
    return parser


def _add_quiet(parser, what="no progress bar"):
    parser.add_argument("--quiet", action="store_true", help=what)


def _add_mask_flags(parser):
    """The flags of the verbs that turn probabilities into masks (evaluate, predict)."""
    parser.add_argument("--threshold", type=float, default=0.5, help="probability at which a pixel is lesion")
    parser.add_argument("--tta", action="store_true", help="average the predictions of the flipped images")
    parser.add_argument("--batch-size", type=int, default=8)


def _add_build(subparsers):
    parser = _verb(subparsers, "build", _run_build)
    parser.add_argument("--model", choices=MODEL_NAMES, default="frcunet")
    parser.add_argument("--size", nargs=2, type=int, metavar=("H", "W"), default=(256, 256))
    parser.add_argument("--pyramid", choices=PYRAMID_MODES, help="frcunet models only")
    parser.add_argument("--backbone-weights", metavar="PATH_OR_NAME")
    parser.add_argument("--out", metavar="FILE.keras", help="save the built model here")


def _run_build(args):
    """Build a registry model, print its size, optionally initialise and save it.

    Build a model from the registry and report its parameter count. With --backbone-weights the Xception encoder
    is initialised from a DeepLabv3+ weight file (a path, or the public file's name to fetch it into the Keras
    cache). With --out the model is saved as .keras.
    """
    from frcunet.core.saving import save_model_atomic
    from frcunet.models.registry import build_model

    model = build_model(args.model, (args.size[0], args.size[1], 3), **_given(args, ("pyramid",)))
    print(f"{args.model}: {model.count_params():,} parameters at {args.size[0]}x{args.size[1]}")
    if args.backbone_weights:
        from frcunet.models.backbone_weights import load_backbone_weights

        print(load_backbone_weights(model, args.backbone_weights).summary())
    if args.out:
        save_model_atomic(model, args.out)
        print(f"saved {args.out}")


def _add_prepare(subparsers):
    from frcunet.data.imaging import DEFAULT_MAX_PIXELS
    from frcunet.data.sources import SOURCES

    parser = _verb(subparsers, "prepare", _run_prepare)
    parser.add_argument("dataset", choices=list(SOURCES), help="layout of --data-dir")
    parser.add_argument("--data-dir", help="the extracted download (default: dataset_isic18/, dataset_isic17/, "
                        "dataset_ph2/); for 'folder' the images folder")
    parser.add_argument("--masks-dir", help="'folder' only: the masks folder")
    parser.add_argument("--mask-suffix", default="", help="'folder' only: mask name = image stem + this suffix")
    parser.add_argument("--out", help="prepared folder to write (default: data/<dataset>)")
    parser.add_argument("--size", nargs=2, type=int, metavar=("H", "W"), default=(256, 256))
    parser.add_argument("--split", nargs=3, type=float, metavar=("TRAIN", "VAL", "TEST"),
                        help="fractions of a seeded random split instead of the paper protocol")
    parser.add_argument("--seed", type=int, default=0, help="shuffle seed (ratio split, PH2 paper split)")
    parser.add_argument("--split-file", metavar="MANIFEST", help="reuse the split of an earlier manifest.json")
    parser.add_argument("--workers", type=int, help="decoding processes (default: all cores)")
    parser.add_argument("--skip-unpaired", action="store_true", help="drop images without mask and vice versa")
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, help="refuse larger images")
    _add_quiet(parser)


def _run_prepare(args):
    """Turn a downloaded dataset into a prepared split folder.

    Decode, resize and split a dataset as downloaded into data_{train,val,test}.npy, mask_{train,val,test}.npy
    and manifest.json. Default split: the paper's protocol.
    """
    from frcunet.data.prepare import PrepareConfig, preparation_report, prepare_dataset

    manifest, out_dir = prepare_dataset(PrepareConfig(
        dataset=args.dataset, data_dir=args.data_dir, out_dir=args.out, size=tuple(args.size), split=args.split,
        seed=args.seed, split_file=args.split_file, workers=args.workers, skip_unpaired=args.skip_unpaired,
        max_pixels=args.max_pixels, masks_dir=args.masks_dir, mask_suffix=args.mask_suffix,
        progress=not args.quiet))
    print(preparation_report(manifest, out_dir))


def _add_synth(subparsers):
    parser = _verb(subparsers, "synth", _run_synth)
    parser.add_argument("--out", required=True, help="folder to create (replaced only if an earlier synth wrote it)")
    parser.add_argument("--n", type=int, default=200, help="number of pairs (default 200)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", nargs=2, type=int, metavar=("H", "W"), default=(192, 256))
    _add_quiet(parser)


def _run_synth(args):
    """Write a synthetic dataset in the ISIC 2018 layout.

    Write N synthetic dermoscopy images with exact masks, laid out as the ISIC 2018 Task 1 download, for demos
    and tests. The same seed writes the same files.
    """
    from frcunet.data.synthetic import write_synthetic_isic

    write_synthetic_isic(args.out, args.n, args.seed, tuple(args.size), progress=not args.quiet)
    print(f"wrote {args.n} synthetic pairs to {args.out}")


def _add_train(subparsers):
    from frcunet.training.recipes import RECIPES

    parser = _verb(subparsers, "train", _run_train)
    parser.add_argument("--data", default="data/isic2018", help="prepared folder (default: data/isic2018)")
    parser.add_argument("--run", help="run folder (default: weights/<data folder name>_<model>)")
    parser.add_argument("--model", choices=MODEL_NAMES,
                        help="default: frcunet, or the shipped model's with --init-weights pretrained")
    parser.add_argument("--recipe", choices=list(RECIPES), default="paper",
                        help="the settings every unset flag takes (default: paper)")
    parser.add_argument("--pyramid", choices=PYRAMID_MODES, help="frcunet models: pyramid kind")
    parser.add_argument("--width", type=float, help="frcunet models: channel width multiplier")
    parser.add_argument("--middle-units", type=int, help="frcunet models: Xception middle-flow units")
    parser.add_argument("--decoder-bn", choices=("on", "off"), help="frcunet models: batch norm in the decoder "
                        "(not in the released network)")
    parser.add_argument("--normalization", choices=NORMALIZATIONS,
                        help="input scaling: per-image min-max (released) or fixed x/127.5-1")
    parser.add_argument("--base-filters", type=int, help="unet models: filters of the first level")
    parser.add_argument("--epochs", type=int, help="most epochs (paper: 100)")
    parser.add_argument("--max-minutes", type=float, help="wall-clock budget: stop after the last epoch that fits; "
                        "a cosine schedule spans the budget")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--lr", type=float, help="(peak) learning rate")
    parser.add_argument("--schedule", choices=SCHEDULES)
    parser.add_argument("--warmup-epochs", type=float, help="cosine: linear warm-up length")
    parser.add_argument("--optimizer", choices=OPTIMIZERS)
    parser.add_argument("--weight-decay", type=float, help="adamw: decoupled weight decay")
    parser.add_argument("--ema", choices=("on", "off"), help="evaluate and keep a moving average of the weights")
    parser.add_argument("--bn-recalibration", type=int, metavar="IMAGES",
                        help="before each validation, re-estimate batch norm statistics on this many training "
                        "images (0: off; cpu recipe: 256)")
    parser.add_argument("--freeze-bn", choices=("on", "off"),
                        help="batch norm layers keep the statistics and scales they start with (fine-tuning; "
                        "finetune recipe: on)")
    parser.add_argument("--epoch-images", type=int, metavar="N",
                        help="an epoch shows at least N images: a smaller training set is repeated within it "
                        "(finetune recipe: 80)")
    parser.add_argument("--loss", choices=LOSS_NAMES)
    parser.add_argument("--augment", nargs="?", const="flip", choices=AUGMENTATIONS,
                        help="none, flip (flips and turns; the flag alone) or full (plus scale, rotation, colour)")
    parser.add_argument("--train-splits", nargs="+", choices=TRAINABLE_SPLITS,
                        help="splits to fit on; 'train val' for a final model (needs --monitor last)")
    parser.add_argument("--early-stop", type=int, default=0, metavar="N", help="stop after N epochs without progress")
    parser.add_argument("--monitor", choices=MONITORS,
                        help="which epoch's weights to keep (last: the final epoch)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", nargs=2, type=int, metavar=("H", "W"), help="expected size of the prepared arrays")
    parser.add_argument("--precision", choices=PRECISIONS,
                        help="auto: mixed_bfloat16 only on CPUs with native bfloat16 (default: paper float32)")
    parser.add_argument("--jit", action="store_true", help="compile with XLA")
    parser.add_argument("--deterministic", action="store_true",
                        help="deterministic kernels, so that a resumed run equals an uninterrupted one (slower)")
    parser.add_argument("--distribute", choices=DISTRIBUTE_MODES, default="none")
    parser.add_argument("--cpu-replicas", type=int, default=0,
                        help="TensorFlow: split the CPU into N devices for --distribute data-parallel (testing)")
    parser.add_argument("--init-weights", metavar="WEIGHTS",
                        help="start from a run's best.weights.h5, or 'pretrained' for the model shipped in the "
                        "package, whose architecture is then used (fine-tuning)")
    parser.add_argument("--backbone-weights", metavar="PATH_OR_NAME", help="DeepLabv3+ Xception weights")
    parser.add_argument("--loader-workers", type=int, default=1, help="input pipeline processes")
    parser.add_argument("--restart", action="store_true", help="discard an earlier run in the run folder")
    _add_quiet(parser, "one line per epoch instead of a progress bar")


MODEL_FLAGS = ("pyramid", "width", "middle_units", "decoder_bn", "base_filters", "normalization")
# Training settings a recipe provides; a flag given on the command line replaces the recipe's value.
RECIPE_FLAGS = ("epochs", "max_minutes", "batch_size", "lr", "schedule", "warmup_epochs", "optimizer",
                "weight_decay", "ema", "bn_recalibration", "freeze_bn", "epoch_images", "loss", "augment", "monitor",
                "precision")
ON_OFF_FLAGS = ("ema", "freeze_bn", "decoder_bn")


def _given(args, names):
    """The flags among `names` given on the command line, on/off ones as booleans."""
    given = {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}
    return {name: value == "on" if name in ON_OFF_FLAGS else value for name, value in given.items()}


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig of `frcunet train`: the recipe's settings with the flags given on top (TrainConfig.from_recipe
    checks that the model options apply to the model)."""
    from frcunet.training.trainer import TrainConfig

    settings = _given(args, RECIPE_FLAGS)
    if args.train_splits:
        settings["train_splits"] = tuple(args.train_splits)
    return TrainConfig.from_recipe(
        args.recipe, args.model, model_options=_given(args, MODEL_FLAGS), data=args.data, run=args.run or "",
        early_stop=args.early_stop, seed=args.seed, size=tuple(args.size) if args.size else None, jit=args.jit,
        deterministic=args.deterministic, distribute=args.distribute, cpu_replicas=args.cpu_replicas,
        init_weights=args.init_weights, backbone_weights=args.backbone_weights, loader_workers=args.loader_workers,
        restart=args.restart, verbose=2 if args.quiet else 1, **settings)


def _run_train(args):
    """Train a model on a prepared folder (resumable).

    Train a registry model on a prepared split folder into a run folder. Without --recipe the defaults are the
    paper's: frcunet, BCE, Adam 1e-4, batch 12, 100 epochs, no augmentation, LR x0.1 after 7 epochs without
    val_loss progress, best weights on val_loss. --recipe cpu is the measured best 60-minute CPU recipe for
    frcunet-lite (see docs/results.md); --recipe finetune, with --init-weights pretrained, fine-tunes the model
    shipped in the package on your own prepared images (Adam 1e-3, 30 epochs, batch norm frozen; about two
    minutes for 80 images at 128x128 on 2 cores). Flags given with a recipe override it. Run the same command
    again after an interruption to continue from the last finished epoch.
    """
    from frcunet.training.trainer import train

    run, _ = train(train_config(args))
    print(f"run folder: {run} (best.weights.h5, model.keras, config.json, history.csv)")


def _check_threshold(threshold):
    from frcunet.inference.prediction import check_threshold

    check_threshold(threshold, "--threshold")


def _add_evaluate(subparsers):
    parser = _verb(subparsers, "evaluate", _run_evaluate)
    parser.add_argument("--run", help="run folder (default: weights/<data folder name>_frcunet)")
    parser.add_argument("--pretrained", action="store_true",
                        help="score the model shipped with the package instead of a run (add --resize when the "
                        "prepared size is not its 128x128)")
    parser.add_argument("--data", default="data/isic2018", help="prepared folder (default: data/isic2018)")
    parser.add_argument("--out", help="output folder (default: output/<run folder name>; replaced only if an "
                        "earlier evaluate wrote it)")
    _add_mask_flags(parser)
    parser.add_argument("--native", action="store_true",
                        help="also score at each image's original size against the original mask files")
    parser.add_argument("--resize", action="store_true",
                        help="test images of another size: predict at the model's size and map back")
    parser.add_argument("--allow-seen", action="store_true",
                        help="score test images that the run trained or validated on (refused otherwise)")
    _add_quiet(parser, "no progress bars")


def _run_evaluate(args):
    """Score a run's best model on a prepared test split.

    Predict the test split of a prepared folder with a run's best weights and write metrics.json, per_image.csv,
    results.md, ROC.png, Precision_recall.png, overlays.png, masks/<id>_segmentation.png (at each image's
    original size) and report.html, a page with every test image (sortable, with thumbnails; it needs no
    network).
    """
    from frcunet.evaluation.evaluate import EvaluateConfig, evaluate, printed_tables

    _check_threshold(args.threshold)
    metrics, out = evaluate(EvaluateConfig(
        run=args.run or "", data=args.data, out=args.out or "", threshold=args.threshold, tta=args.tta,
        native=args.native, resize=args.resize, batch_size=args.batch_size, progress=not args.quiet,
        pretrained=args.pretrained, allow_seen=args.allow_seen))
    progress = metrics.run_progress
    if progress and not progress["finished"]:
        print(f"warning: {metrics.run} has not finished training ({progress['epochs_done']} of "
              f"{progress['epochs_planned']} epochs): scored its best epoch so far (epoch {progress['best_epoch']}); "
              "metrics.json records it", file=sys.stderr)
    print(printed_tables(metrics))
    print(f"outputs in {out}")


def _add_predict(subparsers):
    parser = _verb(subparsers, "predict", _run_predict)
    parser.add_argument("--run", help="run folder with config.json and best.weights.h5 (default: the trained "
                        "frcunet-lite shipped with the package, see its MODEL_CARD.md); its model.onnx is used "
                        "when it was exported from the current best weights")
    parser.add_argument("--onnx", metavar="FILE", help="an ONNX model that frcunet export wrote, instead of --run")
    parser.add_argument("--input", required=True, help="an image file or a folder of images")
    parser.add_argument("--out", required=True, help="folder for the masks (created if missing; other files in "
                        "it are kept, and only masks that predict wrote are replaced)")
    _add_mask_flags(parser)
    parser.add_argument("--probabilities", action="store_true", help="also write <stem>_probability.png (0..255)")
    parser.add_argument("--workers", type=int, help="threads that decode and write while the network predicts "
                        "(default: one per core, and one more)")
    parser.add_argument("--report", action="store_true", help="also write report.html (and report/): a gallery of "
                        "the masks drawn on their images, to check them by eye")
    _add_quiet(parser)


def _run_predict(args):
    """Segment new images with a trained run.

    Write <stem>_segmentation.png (0/255, at the input's own size, upright as viewers show the photo) for an
    image or for every JPEG, PNG, BMP or TIFF in a folder, with a run's model, an ONNX export (--onnx) or,
    without either, the frcunet-lite trained on ISIC 2018 that ships with the package. ONNX models run on ONNX
    Runtime without TensorFlow or Keras. Unreadable files are reported and skipped; the exit status is then
    non-zero. With --report, report.html in the output folder shows every mask drawn on its image.
    """
    from frcunet.inference.prediction import predict_files

    _check_threshold(args.threshold)
    if args.onnx and args.run:
        raise UserError("--onnx and --run each name the model; give one of them")
    if args.workers is not None and args.workers < 1:
        raise UserError("--workers must be at least 1")
    written, failed = predict_files(args.run, args.input, args.out, args.threshold, args.probabilities, args.tta,
                                    args.batch_size, progress=not args.quiet, onnx=args.onnx, workers=args.workers,
                                    report=args.report, before_keras=_import_keras_if_installed)
    print(f"wrote {written} masks to {args.out}")
    if args.report:
        from pathlib import Path

        print(f"gallery of the masks: {Path(args.out) / 'report.html'}")
    if failed:
        raise UserError(f"{len(failed)} of {written + len(failed)} inputs could not be read and were skipped: "
                        + "; ".join(failed))


def _add_demo(subparsers):
    parser = _verb(subparsers, "demo", _run_demo)
    parser.add_argument("--folder", default="demo", help="where everything is written (default: demo/)")
    parser.add_argument("--pairs", type=int, default=300)
    parser.add_argument("--size", nargs=2, type=int, metavar=("H", "W"), default=(64, 64))
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)


def _run_demo(args):
    """The whole job on synthetic data: synth, prepare, train, evaluate.

    Write synthetic ISIC-layout data, prepare it, train frcunet-lite for a few epochs and evaluate it, all under
    one folder; prints the untrained and trained test Dice.
    """
    from frcunet.demo import DemoConfig, run_demo

    run_demo(DemoConfig(args.folder, args.pairs, tuple(args.size), args.epochs, args.seed))


def _add_export(subparsers):
    from frcunet.inference.export import FILE_NAMES

    parser = _verb(subparsers, "export", _run_export)
    parser.add_argument("--run", help="run folder with config.json and best.weights.h5")
    parser.add_argument("--pretrained", action="store_true", help="export the model shipped with the package")
    parser.add_argument("--format", choices=list(FILE_NAMES), default="savedmodel")
    parser.add_argument("--out", help="folder to write (replaced only if an earlier export wrote it); --format onnx "
                        "of a --run without --out writes the run's own model.onnx, which predict --run uses")


def _run_export(args):
    """Export a run's best model, or the shipped one, for serving (SavedModel, .keras, ONNX or LiteRT).

    savedmodel: a TensorFlow SavedModel whose 'serve' signature takes uint8 RGB images (N, H, W, 3) and returns
    probabilities (N, H, W, 1). onnx (ONNX Runtime) and litert (LiteRT, formerly TensorFlow Lite): the same
    input and output, the batch dimension dynamic. keras: a standalone model.keras.
    """
    from frcunet._startup import native_stderr_captured
    from frcunet.inference.export import export_model

    with native_stderr_captured():  # the converters' native log lines; replayed if the export fails
        written = export_model(args.format, args.out, args.run, args.pretrained)
    print(f"wrote {written}")


def _add_download(subparsers):
    from frcunet.data.download import ARCHIVES

    parser = _verb(subparsers, "download", _run_download)
    parser.add_argument("dataset", choices=list(ARCHIVES))
    parser.add_argument("--to", help="folder to extract into (default: dataset_isic18/, dataset_isic17/, dataset_ph2/)")
    parser.add_argument("--url", action="append", default=[], metavar="NAME=URL", help="mirror for one archive")
    parser.add_argument("--delete-archives", action="store_true", help="remove the archives after extraction")
    _add_quiet(parser, "no progress bars")


def _run_download(args):
    """Fetch and extract a dataset's official archives (resumable).

    Download the official training archives of a dataset, resuming interrupted transfers, verify them, and
    extract them into the layout the Prepare scripts read. Mirrors: --url NAME=URL, or FRCUNET_MIRROR=BASE_URL
    (files fetched as BASE_URL/NAME).
    """
    from frcunet.data.download import download_dataset
    from frcunet.data.sources import SOURCES

    overrides = {}
    for item in args.url:
        if "=" not in item:
            raise UserError(f"--url takes NAME=URL, got {item!r}")
        name, url = item.split("=", 1)
        overrides[name] = url
    to = args.to or SOURCES[args.dataset].default_dir
    entries = download_dataset(args.dataset, to, overrides, not args.delete_archives, progress=not args.quiet)
    print(f"{args.dataset} is in {to}: {', '.join(entries)}")


def _add_compare(subparsers):
    from frcunet.evaluation.budgets import BUDGETS

    parser = _verb(subparsers, "compare", _run_compare)
    parser.add_argument("--data", required=True, help="prepared folder to train and test on")
    parser.add_argument("--out", default="output/compare")
    parser.add_argument("--budget", choices=list(BUDGETS), default="cpu")
    parser.add_argument("--models", nargs="+", choices=MODEL_NAMES,
                        help="models to compare, the first tested against the others (default: the budget's)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="training seeds (default: 0 1 2)")
    parser.add_argument("--transfer", help="prepared folder whose test split each model is also scored on, untuned")
    parser.add_argument("--finetune", help="prepared folder to fine-tune each model on (from its weights) and score")
    parser.add_argument("--epochs", type=int, default=0, help="override the budget's epoch count")
    parser.add_argument("--minutes", type=float, default=0.0, help="override the budget's minutes per training")


def _run_compare(args):
    """Train and evaluate several models with one recipe and budget over several seeds.

    Train each model on the same prepared split with the same recipe and budget for each seed, evaluate it on
    the same test split, and write comparison.md: mean ± sd over the seeds of the paper columns, per-image
    Dice/IoU/HD95, ISIC thresholded Jaccard, epochs, minutes and images/s, and a paired per-image Wilcoxon
    signed-rank test of the first model against each other one. Budgets: cpu (the cpu recipe, 15 minutes per
    training, frcunet-lite against unet and attention-unet of similar size) and paper (full models, the paper's
    recipe; for a GPU). An interrupted comparison continues where it stopped.
    """
    from frcunet.evaluation.compare import CompareConfig, run_comparison

    report = run_comparison(CompareConfig(args.data, args.out, args.budget, args.models or [], tuple(args.seeds),
                                          args.transfer or "", args.finetune or "", args.epochs, args.minutes,
                                          command=shlex.join(["frcunet", *args.argv])))
    print(report.read_text())
    print(f"written to {report}")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="frcunet", description="FRCU-Net skin lesion segmentation.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_build(subparsers)
    _add_prepare(subparsers)
    _add_synth(subparsers)
    _add_train(subparsers)
    _add_evaluate(subparsers)
    _add_predict(subparsers)
    _add_demo(subparsers)
    _add_export(subparsers)
    _add_download(subparsers)
    _add_compare(subparsers)
    return parser


# Verbs that never load Keras: they start in a fraction of a second. predict loads it only for a model that
# has no ONNX file (_run_predict).
KERAS_FREE_VERBS = {"prepare", "synth", "download", "predict"}


def _import_keras_if_installed():
    import importlib.util

    if importlib.util.find_spec("keras") is not None:
        from frcunet._startup import import_keras_quietly

        import_keras_quietly()


class _ConsoleHandler(logging.Handler):
    """Shows the library's messages: information on stdout as it is, warnings on stderr as `warning: ...`.

    The streams are looked up for each message, so a replaced sys.stdout (a test, a notebook) is used.
    """

    def emit(self, record: logging.LogRecord) -> None:
        message = self.format(record)
        if record.levelno >= logging.WARNING:
            print(f"warning: {message}", file=sys.stderr)
        else:
            print(message)


def _show_library_messages():
    logger = logging.getLogger("frcunet")
    if not any(isinstance(handler, _ConsoleHandler) for handler in logger.handlers):
        logger.addHandler(_ConsoleHandler())
        logger.setLevel(logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    import signal
    import threading

    argv = list(sys.argv[1:] if argv is None else argv)
    args = make_parser().parse_args(argv)
    args.argv = argv  # what was asked for, as given (compare records it)
    _show_library_messages()
    # SIGTERM (kill, a job scheduler, a closing session) ends the command as Ctrl-C does: the same clean-up and
    # one error line, where it used to die with status 143 and no word. A second SIGTERM kills at once.
    # Python lets only the main thread set a handler, and can restore only one set from Python (not None).
    terminated = []
    previous = signal.getsignal(signal.SIGTERM)

    def stop_on_sigterm(signum, frame):
        terminated.append(signum)
        signal.signal(signal.SIGTERM, previous)
        raise KeyboardInterrupt

    handling_sigterm = threading.current_thread() is threading.main_thread() and previous is not None
    if handling_sigterm:
        signal.signal(signal.SIGTERM, stop_on_sigterm)
    try:
        if args.command not in KERAS_FREE_VERBS:
            from frcunet._startup import import_keras_quietly

            import_keras_quietly()
        args.run_command(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except ModuleNotFoundError as exc:
        # The prediction-only install (numpy, Pillow, ONNX Runtime, tqdm) has no Keras, SciPy or Matplotlib.
        print(f"error: frcunet {args.command} needs {exc.name}, which the prediction-only install leaves out: "
              "pip install 'frcunet[train]' tensorflow-cpu (from a clone: pip install '.[train]' tensorflow-cpu, "
              "or make venv)", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        stopped = "terminated (SIGTERM)" if terminated else "interrupted"
        print(f"error: {stopped}; no partial output was published (a training keeps its last finished epoch): run "
              "the same command again to resume", file=sys.stderr)
        return 130
    except OSError as exc:
        # A full or read-only disk, a permission: the file system's own words, no traceback.
        where = f" {exc.filename}" if exc.filename else ""
        print(f"error: cannot use{where}: {exc.strerror or exc}; free space, fix the permissions or choose "
              "another folder", file=sys.stderr)
        return EXIT_USER_ERROR
    finally:
        if handling_sigterm:
            signal.signal(signal.SIGTERM, previous)
    return 0


if __name__ == "__main__":
    sys.exit(main())
