"""Prepare the ph2 download for training: `python Prepare_ph2.py [--data-dir DIR] [--out DIR]`.

The same as `frcunet prepare ph2`; run with --help for every option.
"""

import sys

from frcunet.cli import main

if __name__ == "__main__":
    sys.exit(main(["prepare", "ph2", *sys.argv[1:]]))
