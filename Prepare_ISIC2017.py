"""Prepare the ISIC2017 download for training: `python Prepare_ISIC2017.py [--data-dir DIR] [--out DIR]`.

The same as `frcunet prepare isic2017`; run with --help for every option.
"""

import sys

from frcunet.cli import main

if __name__ == "__main__":
    sys.exit(main(["prepare", "isic2017", *sys.argv[1:]]))
