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
from ..fuser.vote import binary_probs, fuse_superpixels, soft_vote
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


def select_samples(
    samples: list[Sample], split: str, meta: dict, seed: int | None, split_file: Path | None
) -> list[Sample]:
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
            log.warning(
                "%d of the checkpoint's %s images are not in this data set", len(wanted) - len(chosen), split
            )
        return chosen
    fallback_seed = int(meta.get("seed", 0)) if seed is None else seed
    return split_samples(samples, seed=fallback_seed, split_file=split_file)[split]


def build_partition(opts: EvalOptions):
    """The partitioner: SAM with the paper's AMG settings, or superpixels."""
    from ..sam.partitioner import build_partitioner

    if opts.partition == "sam" and opts.sam_checkpoint is None:
        raise UserError("--partition sam needs --sam-checkpoint (a local SAM .pth file)")
    from ..config import SamConfig, SuperpixelConfig

    return build_partitioner(
        SamConfig(
            partitioner="sam" if opts.partition == "sam" else "superpixel",
            checkpoint=str(opts.sam_checkpoint) if opts.sam_checkpoint else None,
            device=opts.device,
            superpixel=SuperpixelConfig(method=opts.superpixel_method, n_segments=opts.n_segments),
        )
    )


def evaluate_image(
    predictor, partitioner, rgb: np.ndarray, roi: tuple[int, int, int, int], wire: bool = False
):
    """(coarse probability (H, W) float32, partition labels (H, W), fused classes (H, W) uint8).

    ``wire``: the probability quantised to uint8 as ``mask.coarse`` carries it, so the fused classes
    equal the pipeline's ``mask.occlusion`` byte for byte (``replay --every-frame``).
    """
    prob = predictor.predict(rgb, roi)
    if wire:
        from ..deeplab.worker import to_uint8

        prob = to_uint8(prob).astype(np.float32) * np.float32(1 / 255)  # as CoarseMask.probability()
    labels = partitioner(rgb, prob, roi).labels
    classes, _ = soft_vote(binary_probs(prob), labels)
    if getattr(partitioner, "name", "").startswith("superpixel"):  # as the fuser does
        classes = fuse_superpixels(prob, labels, classes)
    return prob, labels, classes.astype(np.uint8)


def score_image(
    prob: np.ndarray, fused: np.ndarray, truth: np.ndarray, valid: np.ndarray
) -> tuple[BinaryMetrics, BinaryMetrics]:
    """Metrics of the coarse probability and the fused 0/1 classes on the same (ROI) pixels."""
    coarse, fused_m = BinaryMetrics(), BinaryMetrics()
    coarse.update(prob, truth, valid)
    fused_m.update(fused.astype(bool), truth, valid)
    return coarse, fused_m


def roi_mask(shape: tuple[int, int], roi: tuple[int, int, int, int]) -> np.ndarray:
    """(H, W) bool, True inside the ROI box."""
    out = np.zeros(shape, bool)
    x, y, w, h = roi
    out[y : y + h, x : x + w] = True
    return out


def panel(rgb, truth, labels, prob, fused, height: int = 240) -> np.ndarray:
    """input | truth | partition | coarse | fused, side by side."""
    images = [
        rgb,
        panels.overlay(rgb, truth),
        panels.label_colors(labels, rgb),
        panels.heatmap(prob),
        panels.overlay(rgb, fused),
    ]
    return panels.row(images, ["input", "truth", "partition", "coarse", "fused"], height=height)


def _row(name: str, coarse: BinaryMetrics, fused: BinaryMetrics) -> dict[str, Any]:
    """One per-image CSV row: coarse_* and fused_* metrics."""
    row: dict[str, Any] = {"image": name}
    for prefix, acc in (("coarse", coarse), ("fused", fused)):
        row.update({f"{prefix}_{k}": _json_float(v) for k, v in acc.compute().items()})
    return row


def _json_float(v: float) -> float | None:
    return None if math.isnan(v) else round(float(v), 6)


def evaluate(opts: EvalOptions) -> EvalResult:
    """Run the coarse model and the fusion over the chosen images; write outputs when ``opts.out``."""
    from ..deeplab.model import load_checkpoint
    from ..deeplab.predict import CoarsePredictor

    loaded = load_checkpoint(opts.checkpoint, config_key="--checkpoint")
    samples = select_samples(
        load_dataset(opts.data, opts.images).samples, opts.split, loaded.meta, opts.seed, opts.split_file
    )
    if not samples:
        raise UserError(f"no images to evaluate in split '{opts.split}' of {opts.data}")
    roi_mode = opts.roi if opts.roi is not None else loaded.meta.get("roi", "full")
    roi_mode = tuple(roi_mode) if isinstance(roi_mode, list) else roi_mode
    predictor = CoarsePredictor(loaded, device=opts.device)
    partitioner = build_partition(opts)
    total_c, total_f = BinaryMetrics(), BinaryMetrics()
    rows = []
    for i, sample in enumerate(tqdm(samples, desc="evaluate", unit="image")):
        try:
            rgb = sample.read_rgb()
        except OSError as exc:
            log.warning("%s: %s, skipped", sample.ref, exc)
            continue
        roi = roi_box(sample, roi_mode)
        prob, labels, fused = evaluate_image(predictor, partitioner, rgb, roi)
        truth, valid = sample.target(), roi_mask(rgb.shape[:2], roi)
        c, f = score_image(prob, fused, truth, valid)
        total_c.merge(c)
        total_f.merge(f)
        rows.append(_row(sample.name, c, f))
        if opts.out is not None and i < opts.panels:
            panels.save_rgb(
                Path(opts.out) / "panels" / f"{i:04d}.png", panel(rgb, truth, labels, prob, fused)
            )
    result = EvalResult(
        total_c.compute(), total_f.compute(), len(rows), getattr(partitioner, "name", "?"), rows
    )
    if opts.out is not None:
        write_outputs(Path(opts.out), result, opts)
    return result


def format_table(result: EvalResult) -> str:
    """The paper's Table I layout in percent: Coarse, Fused, and the fused - coarse delta."""
    fused_name = "Fused (SOSS)" if result.partition.startswith("sam") else f"Fused ({result.partition})"
    width = max(len(fused_name), 12)
    head = f"{'':<{width}}" + "".join(
        f"{n.capitalize() if n != 'iou' and n != 'auc' else n.upper():>11}" for n in METRIC_NAMES
    )
    lines = [head]
    for name, values, sign in (
        ("Coarse", result.coarse, ""),
        (fused_name, result.fused, ""),
        ("Delta", result.delta, "+"),
    ):
        cells = "".join(
            f"{'n/a':>11}" if math.isnan(values[k]) else f"{100 * values[k]:>{sign}11.2f}"
            for k in METRIC_NAMES
        )
        lines.append(f"{name:<{width}}{cells}")
    lines.append(f"({result.n_images} images; metrics in % for the occlusion class, pixels inside the ROI)")
    return "\n".join(lines)


def write_outputs(out: Path, result: EvalResult, opts: EvalOptions) -> None:
    """metrics.json (totals, delta, settings) and per_image.csv."""
    out.mkdir(parents=True, exist_ok=True)
    summary = {
        "coarse": {k: _json_float(v) for k, v in result.coarse.items()},
        "fused": {k: _json_float(v) for k, v in result.fused.items()},
        "delta": {k: _json_float(v) for k, v in result.delta.items()},
        "n_images": result.n_images,
        "partition": result.partition,
        "split": opts.split,
        "checkpoint": str(opts.checkpoint),
        "data": str(opts.data),
    }
    (out / "metrics.json").write_text(json.dumps(summary, indent=2))
    if result.rows:
        with (out / "per_image.csv").open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(result.rows[0]))
            w.writeheader()
            w.writerows(result.rows)
