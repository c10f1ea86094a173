"""Evaluate a trained run: `python Evaluate_Skin.py [--run DIR] [--data DIR] [--out DIR]`.

With no arguments: the best weights of weights/isic2018_frcunet on the test split of data/isic2018, outputs in
output/isic2018_frcunet/. The same as `frcunet evaluate`; run with --help for every option.
"""

import sys

from frcunet.cli import main

if __name__ == "__main__":
    sys.exit(main(["evaluate", *sys.argv[1:]]))
