"""Train FRCU-Net with the paper's recipe: `python Train_Skin_Lesion_Segmentation.py [options]`.

With no arguments: frcunet on data/isic2018 (written by Prepare_ISIC2018.py), 100 epochs, best weights in
weights/isic2018_frcunet/. The same as `frcunet train`; run with --help for every option.

Unlike the released script, it trains from scratch: the release always started the encoder from the
DeepLabv3+ Xception PASCAL VOC weights, which this script loads only when asked with
`--backbone-weights deeplabv3_xception_tf_dim_ordering_tf_kernels.h5` (fetched once when online; offline
the error says where to put the file). docs/differences.md lists the rest.

To fine-tune the model shipped in the package on PH2 (or your own prepared folder) instead:
`python Train_Skin_Lesion_Segmentation.py --data data/ph2 --init-weights pretrained --recipe finetune`.
"""

import sys

from frcunet.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
