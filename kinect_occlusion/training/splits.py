"""Deterministic train/val/test splits by image, or splits read from a file."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import UserError

if TYPE_CHECKING:
    from .data import Sample

log = logging.getLogger(__name__)


def split_samples(
    samples: list[Sample],
    seed: int = 0,
    split_file: Path | None = None,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
) -> dict[str, list[Sample]]:
    """Split by image into train/val/test.

    Without ``split_file``: sort by name, permute with ``numpy.random.default_rng(seed)``, take
    round(n * val) for val and round(n * test) for test (at least 1 each when n ≥ 3), the rest train.
    With ``split_file`` (JSON ``{"train": [names], "val": [...], "test": [...]}``): names match the
    image file name or the name in the annotation file; unknown names are warned about once.
    """
    if split_file is not None:
        return _split_from_file(samples, Path(split_file))
    ordered = sorted(samples, key=lambda s: s.name)
    order = np.random.default_rng(seed).permutation(len(ordered))
    n = len(ordered)
    n_val, n_test = (max(1 if n >= 3 else 0, round(n * f)) for f in fractions[1:])
    shuffled = [ordered[i] for i in order]
    return {
        "val": shuffled[:n_val],
        "test": shuffled[n_val : n_val + n_test],
        "train": shuffled[n_val + n_test :],
    }


SPLIT_PARTS = ("train", "val", "test")


def read_split_file(path: Path, label: str = "split file") -> dict[str, list[str]]:
    """The image names per part of a split file: a JSON object whose keys are among train/val/test and
    whose values are lists of strings. Anything else is a ``UserError`` (``label`` names the file)."""
    try:
        spec = json.loads(Path(path).read_text())
    except (OSError, ValueError, RecursionError) as exc:
        raise UserError(f"{label} {path}: not a readable JSON file ({type(exc).__name__})") from None
    parts_ok = isinstance(spec, dict) and set(spec) <= set(SPLIT_PARTS)
    if not parts_ok or not all(
        isinstance(names, list) and all(isinstance(n, str) for n in names) for names in spec.values()
    ):
        raise UserError(f'{label} {path}: must be {{"train": [names], "val": [names], "test": [names]}}')
    return spec


def _split_from_file(samples: list[Sample], path: Path) -> dict[str, list[Sample]]:
    spec = read_split_file(path)
    lookup: dict[str, Sample] = {}
    for s in samples:
        for key in (s.name, *s.aliases):
            lookup.setdefault(key, s)
    out: dict[str, list[Sample]] = {part: [] for part in SPLIT_PARTS}
    missing = []
    for part, names in spec.items():
        for name in names:
            found = lookup.get(name) or lookup.get(Path(name).name)
            (out[part].append(found) if found else missing.append(name))
    if missing:
        log.warning("%s: %d names not in the data set (e.g. %s)", path.name, len(missing), missing[0])
    return out
