"""The `frcunet` command: one verb per step of the pipeline.

Every verb is a thin layer over a library function. A UserError from any of
them becomes one `error:` line on stderr and exit status 2, with no traceback.
"""

import argparse
import sys

from frcunet.errors import UserError

EXIT_USER_ERROR = 2


def _add_build(subparsers):
    parser = subparsers.add_parser(
        "build", help="build a registry model, print its size, optionally initialise and save it",
        description="Build a model from the registry and report its parameter count. With --backbone-weights "
        "the Xception encoder is initialised from a DeepLabv3+ weight file (a path, or the public file's name "
        "to fetch it into the Keras cache). With --out the model is saved as .keras.",
    )
    from frcunet.models import MODELS

    parser.add_argument("--model", choices=sorted(MODELS), default="frcunet")
    parser.add_argument("--size", nargs=2, type=int, metavar=("H", "W"), default=(256, 256))
    parser.add_argument("--pyramid", choices=("reference", "multiscale"), help="frcunet models only")
    parser.add_argument("--backbone-weights", metavar="PATH_OR_NAME")
    parser.add_argument("--out", metavar="FILE.keras", help="save the built model here")
    parser.set_defaults(run=_run_build)


def _run_build(args):
    from frcunet.models import build_model
    from frcunet.saving import save_model_atomic

    overrides = {"pyramid": args.pyramid} if args.pyramid else {}
    if overrides and not args.model.startswith("frcunet"):
        raise UserError("--pyramid applies to frcunet and frcunet-lite only")
    model = build_model(args.model, (args.size[0], args.size[1], 3), **overrides)
    print(f"{args.model}: {model.count_params():,} parameters at {args.size[0]}x{args.size[1]}")
    if args.backbone_weights:
        from frcunet.backbone_weights import load_backbone_weights

        print(load_backbone_weights(model, args.backbone_weights).summary())
    if args.out:
        save_model_atomic(model, args.out)
        print(f"saved {args.out}")


def make_parser():
    parser = argparse.ArgumentParser(prog="frcunet", description="FRCU-Net skin lesion segmentation.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_build(subparsers)
    return parser


def main(argv=None):
    args = make_parser().parse_args(argv)
    try:
        args.run(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("error: interrupted; nothing partial was kept, run the same command again", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
