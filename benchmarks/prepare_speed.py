"""Preparation speed and peak memory, against the reference's naive approach in the same run.

    python benchmarks/prepare_speed.py [--shared ../shared/data] [--copies 6] [--workers N] [--memory-only]

Speed: full-resolution ISIC-style JPEGs, made by upscaling the four
ISIC2018_fullres pairs to sizes from 1024x768 to 4000x3000, prepared at
256x256 (a) naively as the reference did (one process, full decode, float64
arrays kept in lists) and (b) by `frcunet prepare` (draft decoding, worker
processes, uint8 memory-mapped output).

Memory: peak resident memory of each approach preparing 2594 pairs at 256x256
(the real ../shared/data/ISIC2018 pairs, repeated under new ids up to the size
of the official set), each in a fresh process: the release's own way (float64
arrays allocated up front and filled), the naive way above, and frcunet prepare.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from frcunet.data.prepare import PrepareConfig, prepare_dataset  # noqa: E402

IN18, GT18 = "ISIC2018_Task1-2_Training_Input", "ISIC2018_Task1_Training_GroundTruth"
SIZES = [(1024, 768), (1504, 1129), (2048, 1536), (2592, 1944), (3024, 2016), (4000, 3000)]


def make_fullres_download(shared, folder, copies):
    """ISIC 2018 layout of upscaled real pairs: len(SIZES) * copies * 4 images."""
    (folder / IN18).mkdir(parents=True)
    (folder / GT18).mkdir(parents=True)
    sources = sorted((shared / "ISIC2018_fullres" / IN18).glob("*.jpg"))
    index = 0
    for _ in range(copies):
        for size in SIZES:
            for image_path in sources:
                name = f"ISIC_{index:07d}"
                mask_path = shared / "ISIC2018_fullres" / GT18 / f"{image_path.stem}_segmentation.png"
                Image.open(image_path).convert("RGB").resize(size, Image.Resampling.BILINEAR).save(
                    folder / IN18 / f"{name}.jpg", quality=90)
                Image.open(mask_path).convert("L").resize(size, Image.Resampling.NEAREST).save(
                    folder / GT18 / f"{name}_segmentation.png")
                index += 1
    return index


def naive_prepare(folder, size=(256, 256)):
    """The reference's way: sequential, full decode, float64 arrays in memory."""
    images, masks = [], []
    for image_path in sorted((folder / IN18).glob("*.jpg")):
        mask_path = folder / GT18 / f"{image_path.stem}_segmentation.png"
        image = Image.open(image_path).convert("RGB").resize(size[::-1], Image.Resampling.BILINEAR)
        mask = Image.open(mask_path).convert("L").resize(size[::-1], Image.Resampling.BILINEAR)
        images.append(np.asarray(image, dtype=np.float64))
        masks.append(np.asarray(mask, dtype=np.float64))
    return np.array(images), np.array(masks)


def released_prepare(folder, size=(256, 256)):
    """The release's Prepare_ISIC2018.py: float64 arrays for all 2594 pairs allocated up front, filled in
    place (bilinear resize), then sliced into the splits (views, no copy)."""
    paths = sorted((folder / IN18).glob("*.jpg"))
    images = np.zeros((len(paths), *size, 3))
    masks = np.zeros((len(paths), *size))
    for index, image_path in enumerate(paths):
        mask_path = folder / GT18 / f"{image_path.stem}_segmentation.png"
        images[index] = np.asarray(Image.open(image_path).convert("RGB").resize(size[::-1], Image.Resampling.BILINEAR))
        masks[index] = np.asarray(Image.open(mask_path).convert("L").resize(size[::-1], Image.Resampling.BILINEAR))
    return images, masks


def link_official_size(shared, folder, count=2594):
    (folder / IN18).mkdir(parents=True)
    (folder / GT18).mkdir(parents=True)
    sources = sorted((shared / "ISIC2018" / IN18).glob("ISIC_*.jpg"))
    for i in range(count):
        image = sources[i % len(sources)]
        (folder / IN18 / f"ISIC_{i:07d}.jpg").symlink_to(image.resolve())
        (folder / GT18 / f"ISIC_{i:07d}_segmentation.png").symlink_to(
            (shared / "ISIC2018" / GT18 / f"{image.stem}_segmentation.png").resolve())


def peak_memory_mib(mode, folder, out, workers):
    """Runs one approach in a fresh process; returns (peak RSS of it, of its largest child) in MiB."""
    code = f"""
import resource, sys
sys.path.insert(0, {str(ROOT)!r})
from pathlib import Path
import benchmarks.prepare_speed as b
if {mode!r} == "naive":
    b.naive_prepare(Path({str(folder)!r}))
elif {mode!r} == "released":
    b.released_prepare(Path({str(folder)!r}))
else:
    b.prepare_dataset(b.PrepareConfig("isic2018", {str(folder)!r}, {str(out)!r}, (256, 256),
                                      workers={workers}, progress=False))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    own, child = map(int, done.stdout.split()[-2:])
    return own / 1024, child / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--copies", type=int, default=2, help="repeats of the 24 upscaled images")
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--memory-only", action="store_true", help="only the peak-memory comparison")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        if not args.memory_only:
            speed(args, scratch)
        memory(args, scratch)


def speed(args, scratch):
    count = make_fullres_download(args.shared, scratch / "fullres", args.copies)
    megapixels = sum(w * h for w, h in SIZES) * 4 * args.copies / count / 1e6
    print(f"{count} full-resolution JPEGs, mean {megapixels:.1f} MP, prepared at 256x256, {os.cpu_count()} cores")

    start = time.perf_counter()
    naive_prepare(scratch / "fullres")
    naive_seconds = time.perf_counter() - start

    start = time.perf_counter()
    prepare_dataset(PrepareConfig("isic2018", scratch / "fullres", scratch / "ours", (256, 256), split=(0.7, 0.1, 0.2),
                    workers=args.workers, progress=False))
    ours_seconds = time.perf_counter() - start
    print("| approach | seconds | images/s | speed-up |\n| --- | --- | --- | --- |")
    print(f"| naive (reference) | {naive_seconds:.1f} | {count / naive_seconds:.2f} | 1.00 |")
    print(f"| frcunet prepare ({args.workers} workers) | {ours_seconds:.1f} | {count / ours_seconds:.2f} | "
          f"{naive_seconds / ours_seconds:.2f} |")


def memory(args, scratch):
    link_official_size(args.shared, scratch / "official")
    released_own, _ = peak_memory_mib("released", scratch / "official", None, args.workers)
    naive_own, _ = peak_memory_mib("naive", scratch / "official", None, args.workers)
    ours_own, ours_child = peak_memory_mib("ours", scratch / "official", scratch / "official_out", args.workers)
    from frcunet.data.manifest import read_manifest

    manifest = read_manifest(scratch / "official_out")
    print(f"\npeak memory preparing {sum(manifest.counts.values())} pairs at 256x256 (resident set)")
    print("| approach | main process MiB | largest worker MiB | ratio to the release |\n| --- | --- | --- | --- |")
    print(f"| the release (float64 arrays allocated up front) | {released_own:.0f} | - | 1.00 |")
    print(f"| naive (float64 lists, stacked at the end) | {naive_own:.0f} | - | {naive_own / released_own:.2f} |")
    print(f"| frcunet prepare | {ours_own:.0f} | {ours_child:.0f} | {ours_own / released_own:.2f} |")


if __name__ == "__main__":
    main()
