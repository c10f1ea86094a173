"""Regenerates the figures of docs/results.md in Figures/ from a trained run.

    python scripts/make_figures.py --run weights/isic128_lite --data data/isic128 [--eval output/isic128_lite]

Writes method.png (a diagram of the network), frequency_bands.png (the five
bands of one real test image's bottleneck and their mean gate values),
training_curves.png (from history.csv), synthetic_samples.png and, with
--eval, overlays.png copied from an evaluation folder.
"""

import argparse
import csv
import shutil
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

BOXES = [  # (x, y, width, label, colour)
    (0.02, 0.45, 0.10, "RGB image\nmin-max\nnormalised", "#dddddd"),
    (0.16, 0.45, 0.14, "aligned Xception-65\nentry / 16 middle /\nexit flow (OS 16)", "#9ecae1"),
    (0.34, 0.45, 0.12, "bottleneck\nconv 1024, 512, 256\nBN, ReLU", "#9ecae1"),
    (0.50, 0.45, 0.14, "Laplacian pyramid\nG1..G4 (3/5/7/9)\nL0 = x, Li = G(i-1) - Gi", "#fdae6b"),
    (0.68, 0.45, 0.13, "shared SE gate\nGAP-256-32-256\nper band, x band", "#fdae6b"),
    (0.85, 0.45, 0.13, "1x1 fusion\nconv 256 x2\nBN, dropout", "#fdae6b"),
]


def method_figure(path):
    figure, axis = plt.subplots(figsize=(12, 4))
    axis.axis("off")
    for x, y, width, label, colour in BOXES:
        axis.add_patch(FancyBboxPatch((x, y), width, 0.3, boxstyle="round,pad=0.01", facecolor=colour,
                                      edgecolor="black"))
        axis.text(x + width / 2, y + 0.15, label, ha="center", va="center", fontsize=8)
    # Each box with the next: strict=False, since the pairs are one fewer than the boxes.
    for (x0, _, w0, _, _), (x1, _, _, _, _) in zip(BOXES, BOXES[1:], strict=False):
        axis.add_patch(FancyArrowPatch((x0 + w0 + 0.005, 0.6), (x1 - 0.005, 0.6), arrowstyle="->",
                                       mutation_scale=12))
    axis.add_patch(FancyBboxPatch((0.34, 0.05), 0.64, 0.2, boxstyle="round,pad=0.01", facecolor="#a1d99b",
                                  edgecolor="black"))
    axis.text(0.66, 0.15, "U-Net decoder: up x2 + conv, concat skip (1/8, 1/4, 1/2 from the encoder), convs; "
              "up to full size; head conv 64, 64, 2 -> 1x1 sigmoid = lesion probability", ha="center",
              va="center", fontsize=8)
    axis.add_patch(FancyArrowPatch((0.915, 0.44), (0.915, 0.26), arrowstyle="->", mutation_scale=12))
    axis.add_patch(FancyArrowPatch((0.23, 0.44), (0.36, 0.26), arrowstyle="->", mutation_scale=12,
                                   linestyle="--"))
    axis.text(0.22, 0.33, "skips", fontsize=8)
    axis.set(xlim=(0, 1), ylim=(0, 0.85))
    axis.set_title("FRCU-Net: frequency re-calibration in the bottleneck of a U-shaped network", fontsize=11)
    figure.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(figure)


def bands_figure(run, data, path, index):
    import keras

    from frcunet.artifacts.runs import load_run_model
    from frcunet.data.pipeline import open_split

    model, record = load_run_model(run)
    image = np.asarray(open_split(data, "test").images[index: index + 1], dtype=np.float32)
    pyramid = model.get_layer("laplacian_pyramid")
    recalibration = model.get_layer("frequency_recalibration")
    probe = keras.Model(model.input, pyramid.output)
    bands = [keras.ops.convert_to_numpy(b) for b in probe(image)]
    gates = [keras.ops.convert_to_numpy(g)[0] for g in recalibration.gates(bands)]
    figure, axes = plt.subplots(2, len(bands) + 1, figsize=(3 * (len(bands) + 1), 5.8),
                                gridspec_kw={"height_ratios": [3, 1.4]})
    axes[0, 0].imshow(image[0].astype(np.uint8))
    axes[0, 0].set_title("test image", fontsize=9)
    names = ["L0 = x", "L1", "L2", "L3", "L4"]  # one per band: the frcunet pyramid has five
    for column, (band, gate, name) in enumerate(zip(bands, gates, names, strict=True), start=1):
        axes[0, column].imshow(np.abs(band[0]).mean(axis=-1), cmap="magma")
        axes[0, column].set_title(f"{name}: mean |band| over channels", fontsize=9)
        axes[1, column].bar(np.arange(gate.size), np.sort(gate)[::-1], width=1.0, color="#fd8d3c")
        axes[1, column].set(ylim=(0, 1), xticks=[])
        axes[1, column].set_title(f"gates sorted: mean {gate.mean():.3f}, sd {gate.std():.3f}", fontsize=8)
    for axis in axes[0]:
        axis.axis("off")
    axes[1, 0].axis("off")
    figure.suptitle(f"Bottleneck bands of {record.model} ({Path(run).name}) for a {image.shape[1]}x{image.shape[2]} "
                    "test image, and each band's channel gates", fontsize=10)
    figure.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(figure)


def curves_figure(run, path):
    with open(Path(run) / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    epochs = [int(r["epoch"]) + 1 for r in rows]
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    left.plot(epochs, [float(r["loss"]) for r in rows], label="train")
    left.plot(epochs, [float(r["val_loss"]) for r in rows], label="validation")
    left.set(xlabel="epoch", ylabel="loss", title="loss")
    right.plot(epochs, [float(r["dice"]) for r in rows], label="train")
    right.plot(epochs, [float(r["val_dice"]) for r in rows], label="validation")
    right.set(xlabel="epoch", ylabel="Dice (pooled, threshold 0.5)", title="Dice")
    for axis in (left, right):
        axis.legend()
        axis.grid(alpha=0.3)
    figure.suptitle(f"Training curves of {Path(run).name}", fontsize=10)
    figure.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(figure)


def synthetic_figure(path, seed=0):
    from PIL import Image
    from scipy import ndimage

    from frcunet.data.synthetic import synth_pair

    columns = []
    for index in range(6):
        image, mask = synth_pair(seed, index)
        outlined = image.copy()
        lesion = mask > 0
        outlined[ndimage.binary_dilation(lesion ^ ndimage.binary_erosion(lesion))] = (40, 230, 60)
        columns.append(np.concatenate([image, outlined], axis=0))
    Image.fromarray(np.concatenate(columns, axis=1)).save(path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--eval", help="an evaluation folder whose overlays.png to copy")
    parser.add_argument("--index", type=int, default=0, help="test image for the bands figure")
    parser.add_argument("--out", type=Path, default=Path("Figures"))
    args = parser.parse_args()
    args.out.mkdir(exist_ok=True)
    method_figure(args.out / "method.png")
    synthetic_figure(args.out / "synthetic_samples.png")
    bands_figure(args.run, args.data, args.out / "frequency_bands.png", args.index)
    curves_figure(args.run, args.out / "training_curves.png")
    if args.eval:
        shutil.copyfile(Path(args.eval) / "overlays.png", args.out / "overlays.png")
    print(f"figures written to {args.out}")


if __name__ == "__main__":
    main()
