"""Figures/synthetic_samples.png: synthetic images with their mask outline.

    python scripts/figure_synthetic.py [--seed 0] [--out Figures/synthetic_samples.png]
"""

import argparse
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from frcunet.data.synthetic import synth_pair


def outlined(image, mask):
    lesion = mask > 0
    border = lesion ^ ndimage.binary_erosion(lesion)
    out = image.copy()
    out[ndimage.binary_dilation(border)] = (40, 230, 60)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("Figures/synthetic_samples.png"))
    args = parser.parse_args()
    columns = []
    for index in range(6):
        image, mask = synth_pair(args.seed, index)
        columns.append(np.concatenate([image, outlined(image, mask)], axis=0))
    grid = np.concatenate(columns, axis=1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(args.out)
    print(f"wrote {args.out} (top: images, bottom: exact mask outline)")


if __name__ == "__main__":
    main()
