"""Every name a user can type: the one home of the choices that the command line and the library share.

Keras-free, so the command line builds its parser without loading a backend. A test keeps MODEL_NAMES
and LOSS_NAMES equal to the registries that implement them.
"""

MODEL_NAMES = ("frcunet", "frcunet-lite", "unet", "attention-unet")
PYRAMID_MODES = ("reference", "multiscale")
NORMALIZATIONS = ("minmax", "fixed")
LOSS_NAMES = ("bce", "dice", "bce+dice")
AUGMENTATIONS = ("none", "flip", "full")
SCHEDULES = ("plateau", "cosine")
OPTIMIZERS = ("adam", "adamw")
MONITORS = ("val_loss", "val_dice", "last")
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
DISTRIBUTE_MODES = ("none", "data-parallel", "multiworker")
SPLITS = ("train", "val", "test")
TRAINABLE_SPLITS = ("train", "val")
# What a lesion mask file is called: <image id> + this (the ISIC ground truth's naming, kept for every output).
MASK_SUFFIX = "_segmentation.png"
# Image files read by prepare's folder layouts and by predict (Pillow decodes them all).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
