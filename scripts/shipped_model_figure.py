"""README figure: the shipped model on full-resolution ISIC 2018 images, masks at each image's own size.

    python scripts/shipped_model_figure.py --data ../shared/data/ISIC2018_fullres \
        --out Figures/shipped_model_fullres.png

Segments every image of an ISIC-layout folder with `frcunet.load_model()` (no run folder), checks that
each mask comes back at the image's size, scores it against the official mask and draws the overlays.
"""

import argparse
from pathlib import Path

import numpy as np


def main():
    from PIL import Image

    import frcunet
    from frcunet.artifacts.pretrained import pretrained_record
    from frcunet.data.imaging import read_mask
    from frcunet.data.sources import isic2018_pairs
    from frcunet.evaluation.metrics import per_image_metrics
    from frcunet.evaluation.plots import plot_cases

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/ISIC2018_fullres")
    parser.add_argument("--out", default="Figures/shipped_model_fullres.png")
    args = parser.parse_args()

    model = frcunet.load_model()
    held_out = set(pretrained_record().held_out_test_ids)
    cases = []
    for pair in isic2018_pairs(args.data):
        image = np.asarray(Image.open(pair.image).convert("RGB"))
        truth = read_mask(pair.mask, image.shape[:2])[0].astype(bool)
        mask = frcunet.predict(model, image, threshold=0.5)
        assert mask.shape == image.shape[:2], (mask.shape, image.shape)
        dice = per_image_metrics(truth[None], mask[None].astype(np.float32))["dice"][0]
        seen = "held out" if pair.id in held_out else "in training"
        label = f"{pair.id} ({seen})\n{image.shape[1]}x{image.shape[0]}, Dice {dice:.3f}"
        print(label.replace("\n", ": "))
        cases.append((label, image, truth, mask))
    plot_cases(cases, Path(args.out), "shipped frcunet-lite on full-resolution ISIC 2018 images")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
