"""Partitioners: the fine branch behind one call, ``partitioner(rgb, prob, roi) -> PartitionResult``.

``SamPartitioner`` runs SAM's automatic mask generator (uniform grid, or guided prompts from the
coarse mask); ``SuperpixelPartitioner`` serves when no SAM checkpoint is configured.
``build_partitioner`` picks one from the config values and logs which one runs and why.
Heavy imports (torch, segment_anything) happen only when a SAM partitioner is built.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import cv2
import numpy as np

from ..config import SamConfig
from ..geometry import Box, clip_roi, resolve_device
from .superpixel import METHODS, Method, superpixel_partition

log = logging.getLogger(__name__)

SMALL_WIDTH = 64  # width of the grey thumbnail compared by frame_changed


@dataclass
class PartitionResult:
    """A label image (0 = uncovered) and what it cost."""

    labels: np.ndarray  # H×W int32
    name: str
    scores: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))  # (n, 2) iou, stability
    decoder_calls: int = 0
    ms: float = 0.0


class Partitioner(ABC):
    """Maps an RGB frame (plus, optionally, the coarse probability and ROI) to a label image."""

    name: str = "partitioner"
    # Checked between units of long work (SAM: each crop and decoder batch); True → raise Cancelled.
    # The worker sets it to its stop event's ``is_set`` so a minutes-long partition ends on SIGTERM.
    should_stop: Callable[[], bool] | None = None

    @abstractmethod
    def __call__(
        self, rgb: np.ndarray, prob: np.ndarray | None = None, roi: Box | None = None
    ) -> PartitionResult:
        """Partition ``rgb`` (H×W×3 uint8); labels are 0 outside ``roi`` when one is given.

        An ``roi`` with nothing inside the frame is a ValueError (``geometry.clip_roi``).
        """


def paste_labels(crop_labels: np.ndarray, box: Box, shape: tuple[int, int]) -> np.ndarray:
    """Place ROI labels into a full-frame int32 label image (0 outside the ROI)."""
    x, y, w, h = box
    if (x, y, w, h) == (0, 0, shape[1], shape[0]):
        return crop_labels.astype(np.int32, copy=False)
    full = np.zeros(shape, np.int32)
    full[y : y + h, x : x + w] = crop_labels
    return full


class SuperpixelPartitioner(Partitioner):
    """Superpixels (SEEDS/SLIC/Felzenszwalb) over the ROI; no scores, no decoder calls."""

    def __init__(
        self,
        method: Method = "seeds",
        n_segments: int = 300,
        work_scale: float = 0.5,
        compactness: float = 10.0,
    ) -> None:
        if method not in METHODS:
            raise ValueError(f"unknown superpixel method {method!r}; expected one of {METHODS}")
        self.method: Method = method
        self.n_segments = n_segments
        self.work_scale, self.compactness = work_scale, compactness
        self.name = f"superpixel/{method}"

    def __call__(
        self, rgb: np.ndarray, prob: np.ndarray | None = None, roi: Box | None = None
    ) -> PartitionResult:
        """Superpixels of the ROI crop, pasted into the frame (0 outside)."""
        t0 = time.perf_counter()
        box = clip_roi(roi, rgb.shape[1], rgb.shape[0])
        x, y, w, h = box
        crop = rgb[y : y + h, x : x + w]
        labels = superpixel_partition(
            crop,
            self.method,
            n_segments=self.n_segments,
            compactness=self.compactness,
            work_scale=self.work_scale,
        )
        labels = paste_labels(labels, box, rgb.shape[:2])
        return PartitionResult(labels=labels, name=self.name, ms=(time.perf_counter() - t0) * 1000)


SAM_NAMES = {768: "vit_b", 1024: "vit_l", 1280: "vit_h"}  # encoder width → model type


class SamPartitioner(Partitioner):
    """SAM's automatic mask generator on the ROI crop: uniform grid, or guided prompts from the coarse mask.

    Args:
        sam: a SAM model (``build_sam`` or ``build_tiny_sam``), already on its device.
        amg: ``SamAutomaticMaskGenerator`` overrides of the paper settings (see ``amg_kwargs``);
            also ``decoder_arithmetic`` (``exact``, or ``factored``: the fast generator only).
        guided: prompt where the coarse mask says it matters (``guided_points``) instead of the grid;
            falls back to the grid when a call brings no probability map.
        guided_kwargs: ``guided_points`` keyword arguments (low, high, dilate_px, …).
        work_size: shrink the crop so its long side is at most this many pixels before SAM (the
            encoder sees 1024 px anyway; smaller input makes mask post-processing cheaper).
        half: on CUDA, run the image encoder under bf16 autocast (decoder stays float32).
        sdpa: route SAM's attention through ``scaled_dot_product_attention`` (``enable_sdpa``):
            same outputs up to float rounding, fused kernels on CUDA.
        amg_impl: ``fast`` (``amg.FastMaskGenerator``: the reference's masks, kept on the device) or
            ``reference`` (segment-anything's generator; ``points_per_batch="auto"`` means 64 there).
    """

    def __init__(
        self,
        sam: Any,
        amg: dict[str, Any] | None = None,
        guided: bool = False,
        guided_kwargs: dict[str, Any] | None = None,
        work_size: int | None = None,
        half: bool = False,
        sdpa: bool = False,
        amg_impl: Literal["fast", "reference"] = "fast",
    ) -> None:
        import torch

        from .partition import AutocastEncoder, amg_kwargs

        self.amg = amg_kwargs(**(amg or {}))
        self.grid_side = int(self.amg.get("points_per_side") or 0)
        self.guided, self.guided_kwargs, self.work_size = guided, dict(guided_kwargs or {}), work_size
        if half and sam.device.type == "cuda" and not isinstance(sam.image_encoder, AutocastEncoder):
            sam.image_encoder = AutocastEncoder(sam.image_encoder, torch.bfloat16)
        if sdpa:
            from .sdpa import enable_sdpa

            enable_sdpa(sam)
        self.sam = sam
        if amg_impl not in ("fast", "reference"):
            raise ValueError(f"unknown sam.amg {amg_impl!r}; expected fast or reference")
        self.amg_impl = amg_impl
        if self.amg.get("decoder_arithmetic", "exact") != "exact" and amg_impl != "fast":
            raise ValueError("sam.decoder_arithmetic: factored needs sam.amg: fast")
        self.grid_generator = self._make_generator(self.amg)
        encoder = getattr(sam.image_encoder, "encoder", sam.image_encoder)  # unwrap AutocastEncoder
        # A TritonImageEncoder names its model; a local encoder is known by its width
        kind = getattr(encoder, "model_type", None) or SAM_NAMES.get(
            encoder.patch_embed.proj.out_channels, "custom"
        )
        self.name = f"sam/{kind}" + ("/guided" if guided else "")

    def _make_generator(self, kwargs: dict[str, Any]) -> Any:
        """A generator of the configured implementation with these ``SamAutomaticMaskGenerator`` arguments."""
        if self.amg_impl == "fast":
            from .amg import FastMaskGenerator

            return FastMaskGenerator(self.sam, **kwargs)
        from .partition import mask_generator

        kwargs = {k: v for k, v in kwargs.items() if k != "decoder_arithmetic"}  # exact there
        if kwargs.get("points_per_batch") == "auto":
            kwargs = {**kwargs, "points_per_batch": 64}
        return mask_generator(self.sam, **kwargs)  # the reference generator, cancellable per batch

    def _generator(self, points: np.ndarray | None) -> Any:
        """The grid generator, or one prompting at ``points`` (N×2 in [0, 1]) with the same settings."""
        if points is None:
            return self.grid_generator
        layers = int(self.amg.get("crop_n_layers", 0)) + 1
        return self._make_generator({**self.amg, "points_per_side": None, "point_grids": [points] * layers})

    def _points(self, prob: np.ndarray | None, box: Box, shape: tuple[int, int]) -> np.ndarray | None:
        """Guided prompts in crop-normalised coordinates, or None for the uniform grid."""
        if not self.guided or prob is None:
            return None
        from .guided import guided_points

        if prob.shape != shape:
            prob = cv2.resize(prob.astype(np.float32), (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
        x, y, w, h = box
        kwargs = {"grid": self.grid_side or 40, **self.guided_kwargs}
        return guided_points(prob[y : y + h, x : x + w].astype(np.float32, copy=False), None, **kwargs)

    def __call__(
        self, rgb: np.ndarray, prob: np.ndarray | None = None, roi: Box | None = None
    ) -> PartitionResult:
        """Partition the ROI crop with SAM; labels pasted into the frame (0 outside the ROI).

        Raises ``errors.Cancelled`` within one decoder batch once ``should_stop()`` is True.
        """
        import torch

        from .partition import decoder_prompts, sam_partition

        t0 = time.perf_counter()
        shape = rgb.shape[:2]
        box = clip_roi(roi, shape[1], shape[0])
        x, y, w, h = box
        points = self._points(prob, box, shape)
        # Guided with nothing worth prompting: no SAM call at all
        if points is not None and len(points) == 0:
            return PartitionResult(
                labels=np.zeros(shape, np.int32), name=self.name, ms=(time.perf_counter() - t0) * 1000
            )
        crop = rgb[y : y + h, x : x + w]
        # Optionally shrink the crop (labels come back with nearest neighbour)
        scale = min(1.0, self.work_size / max(w, h)) if self.work_size else 1.0
        if scale < 1.0:
            crop = cv2.resize(
                crop, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
            )
        generator = self._generator(points)
        with torch.inference_mode():
            if self.amg_impl == "fast":
                generator.should_stop = self.should_stop
                labels, scores = generator.labels(np.ascontiguousarray(crop, dtype=np.uint8))
            else:
                labels, scores = sam_partition(generator, crop, self.should_stop)
        if scale < 1.0:
            labels = cv2.resize(labels, (w, h), interpolation=cv2.INTER_NEAREST)
        return PartitionResult(
            labels=paste_labels(labels, box, shape),
            scores=scores,
            name=self.name,
            decoder_calls=decoder_prompts(generator, crop.shape[:2]),
            ms=(time.perf_counter() - t0) * 1000,
        )


def small_gray(rgb: np.ndarray, width: int = SMALL_WIDTH) -> np.ndarray:
    """A small float32 grey thumbnail of ``rgb`` (``width`` wide) for cheap change detection."""
    h, w = rgb.shape[:2]
    height = max(1, round(h * width / max(1, w)))
    grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    return cv2.resize(grey, (width, height), interpolation=cv2.INTER_AREA).astype(np.float32)


def frame_changed(prev_small: np.ndarray | None, cur_small: np.ndarray, threshold: float) -> bool:
    """Whether the mean absolute grey difference (0–255) reaches ``threshold``.

    A missing or differently sized previous thumbnail always counts as changed.
    """
    if prev_small is None or prev_small.shape != cur_small.shape:
        return True
    return float(np.mean(np.abs(cur_small - prev_small))) >= threshold


def build_partitioner(cfg: SamConfig) -> Partitioner:
    """The partitioner the ``sam`` config section describes.

    ``auto`` runs SAM when ``sam.checkpoint`` is set, else superpixels. ``sam`` without a
    checkpoint is a CheckpointError (config key ``sam.checkpoint``). Logs at INFO which runs and why.
    A new SAM option is a field of ``SamConfig`` read here — nothing else to touch.
    """
    from ..errors import CheckpointError

    if cfg.partitioner == "superpixel" or (cfg.partitioner == "auto" and not cfg.checkpoint):
        sp = cfg.superpixel
        part = SuperpixelPartitioner(sp.method, sp.n_segments, sp.work_scale)
        why = (
            "sam.partitioner=superpixel"
            if cfg.partitioner == "superpixel"
            else ("no sam.checkpoint configured; SAM vit_b at 40×40 takes minutes per frame on CPU")
        )
        log.info("partitioner: %s (%s)", part.name, why)
        return part
    if not cfg.checkpoint:
        raise CheckpointError("sam.partitioner=sam needs sam.checkpoint (a local SAM .pth file)")
    return build_sam_partitioner(cfg)


def load_sam(cfg: SamConfig) -> Any:
    """The SAM model of ``sam.checkpoint`` on ``sam.device`` (CheckpointError when unusable)."""
    from .partition import build_sam

    dev = resolve_device(cfg.device, "sam.device")
    return build_sam(cfg.model_type, cfg.checkpoint, dev)  # type: ignore[arg-type]


def build_sam_partitioner(cfg: SamConfig, sam: Any = None) -> SamPartitioner:
    """SAM from ``sam.checkpoint`` (or ``sam``, already loaded) with the section's generator settings
    (paper defaults). With ``sam.encoder: triton`` the model's encoder is swapped for Triton's only
    once the server answers, so a caller waiting for the server retries with the same loaded ``sam``."""
    if sam is None:
        sam = load_sam(cfg)
    dev = resolve_device(cfg.device, "sam.device")
    if cfg.encoder == "triton":  # the embedding comes from Triton; prompts and masks stay here
        from .triton_encoder import use_triton_encoder

        use_triton_encoder(sam, cfg.triton_url, cfg.triton_model, cfg.triton_timeout_ms, cfg.model_type)
    amg = {
        "points_per_side": cfg.points_per_side,
        "points_per_batch": cfg.points_per_batch,
        "pred_iou_thresh": cfg.pred_iou_thresh,
        "stability_score_thresh": cfg.stability_score_thresh,
        "min_mask_region_area": cfg.min_mask_region_area,
        "decoder_arithmetic": cfg.decoder_arithmetic,
    }
    guided = cfg.guided.model_dump()
    enabled = guided.pop("enabled")
    sam_part = SamPartitioner(
        sam,
        amg,
        guided=enabled,
        guided_kwargs=guided,
        work_size=cfg.work_size,
        half=cfg.half and cfg.encoder == "local",
        sdpa=cfg.sdpa,
        amg_impl=cfg.amg,
    )
    mode = "guided prompts" if enabled else f"{sam_part.grid_side}×{sam_part.grid_side} grid"
    where = (
        f"encoder on Triton {cfg.triton_url}, decoder on {dev}" if cfg.encoder == "triton" else f"on {dev}"
    )
    log.info(
        "partitioner: %s (%s %s, %s, %s generator; checkpoint %s)",
        sam_part.name,
        cfg.model_type,
        where,
        mode,
        cfg.amg,
        cfg.checkpoint,
    )
    return sam_part
