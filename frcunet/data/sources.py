"""Dataset layouts as downloaded: each source lists (id, image, mask) pairs sorted by id.

A source reads the official folder names exactly, ignores files that are not
images to segment (licence texts, ISIC 2017 superpixel maps, PH2 colour-class
masks), and reports unpaired files by id instead of guessing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from frcunet.core.errors import UserError
from frcunet.core.names import IMAGE_SUFFIXES

log = logging.getLogger(__name__)  # shown by the command line; silent in a host program unless it asks


@dataclass(frozen=True)
class Pair:
    """One image and its ground-truth mask."""

    id: str
    image: Path
    mask: Path


@dataclass(frozen=True)
class Source:
    """How to find a dataset's pairs: its default folder and layout description."""

    name: str
    default_dir: str
    layout: str


ISIC2018 = Source(
    "isic2018", "dataset_isic18",
    "ISIC2018_Task1-2_Training_Input/ISIC_*.jpg and ISIC2018_Task1_Training_GroundTruth/ISIC_*_segmentation.png",
)
ISIC2017 = Source(
    "isic2017", "dataset_isic17",
    "ISIC-2017_Training_Data/ISIC_*.jpg and ISIC-2017_Training_Part1_GroundTruth/ISIC_*_segmentation.png",
)
PH2 = Source(
    "ph2", "dataset_ph2",
    "PH2Dataset/PH2 Dataset images/IMDxxx/IMDxxx_Dermoscopic_Image/IMDxxx.bmp and "
    "IMDxxx/IMDxxx_lesion/IMDxxx_lesion.bmp",
)
FOLDER = Source("folder", "", "an images folder and a masks folder whose files pair by name")


def _require_folder(path, source):
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"{path} not found; expected {source.layout}")
    return path


def _files_by_stem(folder, suffixes):
    return {p.stem: p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in suffixes}


def match_pairs(images: Mapping[str, Path], masks: Mapping[str, Path], source: Source, skip_unpaired: bool = False,
                warn: Callable[[str], object] | None = None) -> list[Pair]:
    """Pairs two id -> path maps; unpaired ids are an error or, if asked, dropped with a warning."""
    if not images:
        raise UserError(f"no images found; expected {source.layout}")
    lonely_images = sorted(set(images) - set(masks))
    lonely_masks = sorted(set(masks) - set(images))
    if lonely_images or lonely_masks:
        problems = []
        if lonely_images:
            problems.append(f"{len(lonely_images)} images without mask ({_preview(lonely_images)})")
        if lonely_masks:
            problems.append(f"{len(lonely_masks)} masks without image ({_preview(lonely_masks)})")
        if not skip_unpaired:
            raise UserError("; ".join(problems) + "; add the missing files or pass --skip-unpaired")
        (warn or log.warning)("skipping " + "; ".join(problems))
    return [Pair(i, images[i], masks[i]) for i in sorted(set(images) & set(masks))]


def _preview(ids, limit=10):
    shown = ", ".join(ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def _isic_pairs(root, source, images_name, masks_name, skip_unpaired):
    root = _require_folder(root, source)
    image_dir = _require_folder(root / images_name, source)
    mask_dir = _require_folder(root / masks_name, source)
    images = {
        stem: path for stem, path in _files_by_stem(image_dir, (".jpg", ".jpeg", ".png")).items()
        if stem.startswith("ISIC_") and not stem.endswith("_superpixels")
    }
    masks = {
        stem[: -len("_segmentation")]: path for stem, path in _files_by_stem(mask_dir, (".png",)).items()
        if stem.endswith("_segmentation")
    }
    return match_pairs(images, masks, source, skip_unpaired)


def isic2018_pairs(root: Path | str, skip_unpaired: bool = False) -> list[Pair]:
    return _isic_pairs(
        root, ISIC2018, "ISIC2018_Task1-2_Training_Input", "ISIC2018_Task1_Training_GroundTruth", skip_unpaired
    )


def isic2017_pairs(root: Path | str, skip_unpaired: bool = False) -> list[Pair]:
    return _isic_pairs(
        root, ISIC2017, "ISIC-2017_Training_Data", "ISIC-2017_Training_Part1_GroundTruth", skip_unpaired
    )


def ph2_pairs(root: Path | str, skip_unpaired: bool = False) -> list[Pair]:
    """Reads `PH2 Dataset images/IMDxxx/...` under `root`, or under `root/PH2Dataset`."""
    root = _require_folder(root, PH2)
    candidates = [root / "PH2 Dataset images", root / "PH2Dataset" / "PH2 Dataset images"]
    images_root = next((c for c in candidates if c.is_dir()), None)
    if images_root is None:
        raise UserError(f"no 'PH2 Dataset images' folder in {root}; expected {PH2.layout}")
    images, masks = {}, {}
    for case in sorted(p for p in images_root.iterdir() if p.is_dir()):
        image = case / f"{case.name}_Dermoscopic_Image" / f"{case.name}.bmp"
        mask = case / f"{case.name}_lesion" / f"{case.name}_lesion.bmp"
        if image.is_file():
            images[case.name] = image
        if mask.is_file():
            masks[case.name] = mask
    return match_pairs(images, masks, PH2, skip_unpaired)


def folder_pairs(image_dir: Path | str, mask_dir: Path | str, mask_suffix: str = "", skip_unpaired: bool = False
                 ) -> list[Pair]:
    """Any two folders: image `<id>.<ext>` pairs with mask `<id><mask_suffix>.<ext>`."""
    image_dir = _require_folder(image_dir, FOLDER)
    mask_dir = _require_folder(mask_dir, FOLDER)
    if mask_suffix.lower().endswith(IMAGE_SUFFIXES):
        stem = mask_suffix[: mask_suffix.rfind(".")]
        raise UserError(f"--mask-suffix {mask_suffix} ends with a file extension; give the part between the "
                        f"image's name and the mask's extension (--mask-suffix {stem}: case1.jpg pairs with "
                        f"case1{stem}.png, any image extension)")
    images = _files_by_stem(image_dir, IMAGE_SUFFIXES)
    masks = {}
    for stem, path in _files_by_stem(mask_dir, IMAGE_SUFFIXES).items():
        if stem.endswith(mask_suffix):
            masks[stem[: len(stem) - len(mask_suffix)] if mask_suffix else stem] = path
    return match_pairs(images, masks, FOLDER, skip_unpaired)


SOURCES = {"isic2018": ISIC2018, "isic2017": ISIC2017, "ph2": PH2, "folder": FOLDER}
