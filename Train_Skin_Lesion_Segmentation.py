"""Train FRCU-Net as the paper did: `python Train_Skin_Lesion_Segmentation.py [options]`.

With no arguments: frcunet on data/isic2018 (written by Prepare_ISIC2018.py), 100 epochs, best weights in
weights/isic2018_frcunet/. The same as `frcunet train`; run with --help for every option.
"""

import sys

from frcunet.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
