"""Train/validation/test splits, always explicit and written down.

Three protocols:
- "paper": the published counts (ISIC 2018 1815/259/520 and ISIC 2017
  1400/200/400 in sorted id order; PH2 80/20/100 after a seeded shuffle).
- "ratio": fractions after a seeded shuffle, for any number of pairs.
- "file": the ids of each split read from an earlier manifest.json.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from frcunet.core.errors import UserError
from frcunet.core.names import SPLITS
from frcunet.data.manifest import read_split_ids

PAPER_COUNTS = {"isic2018": (1815, 259, 520), "isic2017": (1400, 200, 400), "ph2": (80, 20, 100)}
PAPER_SHUFFLED = {"ph2"}


def _shuffled(ids, seed):
    # numpy's PCG64 permutation is identical on every platform for a given seed.
    return [ids[i] for i in np.random.default_rng(seed).permutation(len(ids))]


def _cut(ids, counts):
    bounds = np.cumsum((0,) + tuple(counts))
    return {name: ids[bounds[i]: bounds[i + 1]] for i, name in enumerate(SPLITS)}


def paper_split(dataset: str, ids: Sequence[str], seed: int = 0) -> dict[str, list[str]]:
    """The published protocol; the number of pairs must be the published one."""
    if dataset not in PAPER_COUNTS:
        raise UserError(f"no paper protocol for {dataset}; use --split TRAIN VAL TEST (fractions)")
    counts = PAPER_COUNTS[dataset]
    if len(ids) != sum(counts):
        raise UserError(
            f"the paper protocol for {dataset} needs {sum(counts)} pairs ({'/'.join(map(str, counts))}) but the "
            f"folder has {len(ids)}; use --split 0.7 0.1 0.2 --seed 0 for a ratio split instead"
        )
    ids = sorted(ids)
    return _cut(_shuffled(ids, seed) if dataset in PAPER_SHUFFLED else ids, counts)


def ratio_split(ids: Sequence[str], fractions: Sequence[float], seed: int = 0) -> dict[str, list[str]]:
    """Seeded shuffle, then counts from the fractions (rounded; the test split takes the rest)."""
    fractions = [float(f) for f in fractions]
    if len(fractions) != 3 or not all(math.isfinite(f) and f >= 0 for f in fractions) \
            or abs(sum(fractions) - 1.0) > 1e-6:
        raise UserError(f"--split takes three fractions that add up to 1, got {fractions}")
    n = len(ids)
    train = int(round(fractions[0] * n))
    val = int(round(fractions[1] * n))
    if train + val > n or (train == 0 and fractions[0] > 0):
        raise UserError(f"{n} pairs are too few for the split {fractions}")
    return _cut(_shuffled(sorted(ids), seed), (train, val, n - train - val))


def split_from_manifest(path: Path | str, ids: Iterable[str]) -> dict[str, list[str]]:
    """The split of an earlier manifest, by id; every id it names must be present."""
    path = Path(path)
    wanted = read_split_ids(path)
    seen = {}
    for name in SPLITS:
        for i in wanted[name]:
            if i in seen:
                where = f"twice in {name}" if seen[i] == name else f"in both {seen[i]} and {name}"
                raise UserError(f"{path} lists {i} {where}; the splits must be disjoint (fix the manifest or use "
                                "another --split-file)")
            seen[i] = name
    available = set(ids)
    missing = sorted(i for split in wanted.values() for i in split if i not in available)
    if missing:
        raise UserError(f"{len(missing)} ids of {path} are not in the data folder (e.g. {', '.join(missing[:5])})")
    return wanted

