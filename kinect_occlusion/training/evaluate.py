"""Evaluate coarse (DeepLabV3+) vs fused (soft vote over SAM / superpixel segments), as in Table I.

For each image: coarse probability (``CoarsePredictor``), partition of the ROI, fused classes =
``soft_vote([1 - p, p], labels)``. Both outputs are scored against the annotation union inside the
ROI with :class:`~kinect_occlusion.training.metrics.BinaryMetrics` (the fused AUC comes from its
binary decision). Writes ``metrics.json``, ``per_image.csv`` and ``panels/NNNN.png``
(input | truth | partition | coarse | fused).
"""

from __future__ import annotations

import csv
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ..errors import UserError
from ..fuser.vote import binary_probs, soft_vote
from . import panels
from .data import Sample, load_dataset, roi_box, split_samples
from .metrics import METRIC_NAMES, BinaryMetrics

log = logging.getLogger(__name__)


@dataclass
class EvalOptions:
    """What ``evaluate`` runs on and where it writes."""

    data: Path
    checkpoint: Path
    images: Path | None = None
    split: str = "test"  # test | val | train | all
    split_file: Path | None = None
    seed: int | None = None  # None: the checkpoint's training seed (else 0)
    partition: str = "superpixel"  # sam | superpixel
    sam_checkpoint: Path | None = None
    superpixel_method: str = "seeds"
    n_segments: int = 300
    roi: str | tuple[int, int, int, int] | None = None  # None: the checkpoint's training ROI mode
    out: Path | None = None
    panels: int = 20
    device: str = "auto"


@dataclass
class EvalResult:
    """Metrics over all evaluated pixels plus one row per image."""

    coarse: dict[str, float]
    fused: dict[str, float]
    n_images: int
    partition: str
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def delta(self) -> dict[str, float]:
        """fused - coarse per metric."""
        return {k: self.fused[k] - self.coarse[k] for k in METRIC_NAMES}


def select_samples(samples: list[Sample], split: str, meta: dict, seed: int | None,
                   split_file: Path | None) -> list[Sample]:
    """The images to evaluate: ``all``, or a split — from ``split_file``, else the split names stored in
    the checkpoint by ``train``, else the deterministic split with ``seed``."""
    if split == "all":
        return samples
    if split not in ("train", "val", "test"):
        raise UserError(f"--split {split!r}: expected test, val, train or all")
    stored = (meta.get("split") or {}).get(split)
    if split_file is None and seed is None and stored is not None:
        wanted = set(stored)
        chosen = [s for s in samples if s.name in wanted or wanted & set(s.aliases)]
        if len(chosen) < len(wanted):
            log.warning("%d of the checkpoint's %s images are not in this data set", len(wanted) - len(chosen), split)
        return chosen
    fallback_seed = int(meta.get("seed", 0)) if seed is None else seed
    return split_samples(samples, seed=fallback_seed, split_file=split_file)[split]


def build_partition(opts: EvalOptions):
    """The partitioner: SAM with the paper's AMG settings, or superpixels."""
    from ..sam.partitioner import build_partitioner

    if opts.partition == "sam" and opts.sam_checkpoint is None:
        raise UserError("--partition sam needs --sam-checkpoint (a local SAM .pth file)")
    return build_partitioner(
        "sam" if opts.partition == "sam" else "superpixel",
        sam_checkpoint=str(opts.sam_checkpoint) if opts.sam_checkpoint else None, device=opts.device, amg={},
        superpixel={"method": opts.superpixel_method, "n_segments": opts.n_segments},
    )


def evaluate_image(predictor, partitioner, rgb: np.ndarray, roi: tuple[int, int, int, int]):
    """(coarse probability (H, W) float32, partition labels (H, W), fused classes (H, W) uint8)."""
    prob = predictor.predict(rgb, roi)
    labels = partitioner(rgb, prob, roi).labels
    classes, _ = soft_vote(binary_probs(prob), labels)
    return prob, labels, classes.astype(np.uint8)


def roi_mask(shape: tuple[int, int], roi: tuple[int, int, int, int]) -> np.ndarray:
    """(H, W) bool, True inside the ROI box."""
    out = np.zeros(shape, bool)
    x, y, w, h = roi
    out[y : y + h, x : x + w] = True
    return out


def panel(rgb, truth, labels, prob, fused, height: int = 240) -> np.ndarray:
    """input | truth | partition | coarse | fused, side by side."""
    images = [rgb, panels.overlay(rgb, truth), panels.label_colors(labels, rgb), panels.heatmap(prob),
              panels.overlay(rgb, fused)]
    return panels.row(images, ["input", "truth", "partition", "coarse", "fused"], height=height)
