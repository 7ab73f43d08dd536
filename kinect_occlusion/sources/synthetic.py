"""Synthetic bedside scenes: a top-down cot, a child and labelled occlusions, deterministic by seed.

A scene is built once per ``(seed, width, height)`` as a static base (floor, bed rails, sheet, pillow)
plus an ordered list of layers (body parts, then occlusions; later layers lie on top). Each frame only
re-renders what moves with ``t`` (the breathing torso and swaying cables) and composites the layers
inside their bounding boxes, so a 1280×720 frame costs a few milliseconds.

Instance masks are amodal (the whole object as drawn, even where a later instance covers it) and each
instance's mask is exactly ``cv2.fillPoly`` of its polygon, so exported polygons and masks agree.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from ..errors import SourceError
from .base import Frame, Source, StopEvent, pace
from .synthetic_layers import BodyPlan, Layer, Moving
from .synthetic_layout import build_items

# The occlusion label set (order gives COCO category ids 1..12)
LABELS: tuple[str, ...] = (
    "bandage",
    "pipe/cable",
    "toy",
    "diaper",
    "patch",
    "pacifier",
    "hat",
    "glove",
    "sock/shoe",
    "oxygen mask",
    "tag",
    "blanket",
)
MIN_SIZE = 64
SHEETS = (
    (236, 238, 240),
    (200, 222, 240),
    (206, 232, 210),
    (245, 235, 200),
    (230, 215, 235),
    (250, 250, 250),
)
SKIN_TONES = ((255, 224, 196), (241, 194, 158), (224, 172, 105), (198, 134, 66), (141, 85, 36), (92, 58, 38))
NOISE_BANK = 3


@dataclass
class Instance:
    """One labelled occlusion: ``polygon`` (N×2 float32 x, y pixels) and its H×W bool ``mask``."""

    label: str
    polygon: np.ndarray
    mask: np.ndarray


@dataclass
class Scene:
    """A rendered frame: RGB, ground truth (1 = occlusion), depth in mm, instances, bed ROI (x, y, w, h)."""

    rgb: np.ndarray
    truth: np.ndarray
    depth: np.ndarray
    instances: list[Instance]
    roi: tuple[int, int, int, int]


@dataclass
class _Static:
    """The parts of a scene that do not depend on ``t``."""

    base_rgb: np.ndarray
    base_depth: np.ndarray
    illum: np.ndarray
    noise: list[tuple[np.ndarray, np.ndarray]]
    items: list[Layer | Moving]
    roi: tuple[int, int, int, int]


def render_scene(seed: int, width: int = 1280, height: int = 720, t: float = 0.0) -> Scene:
    """Render scene ``seed`` at time ``t`` seconds (breathing, cable sway); deterministic in (seed, t)."""
    if width < MIN_SIZE or height < MIN_SIZE:
        raise ValueError(f"synthetic scene size {width}x{height} is below {MIN_SIZE}x{MIN_SIZE}")
    st = _static_scene(int(seed), int(width), int(height))
    rgb, depth = st.base_rgb.copy(), st.base_depth.copy()
    truth = np.zeros((height, width), np.uint8)
    instances: list[Instance] = []
    # Composite layers bottom to top; occlusion layers become instances
    for item in st.items:
        layer = item if isinstance(item, Layer) else item.at(t)
        layer.paint(rgb, depth)
        if layer.label is not None and layer.polygon is not None:
            mask = np.zeros((height, width), bool)
            mask[layer.window] = layer.mask
            truth[layer.window][layer.mask] = 1
            instances.append(Instance(layer.label, layer.polygon, mask))
    return Scene(_finish(st, rgb, t), truth, depth, instances, st.roi)


def scene_roi(scene: Scene) -> tuple[int, int, int, int]:
    """Bounding box (x, y, w, h) of the bed, which holds the patient and every occlusion."""
    return scene.roi


def _finish(st: _Static, rgb: np.ndarray, t: float) -> np.ndarray:
    """Camera effects: slight blur, uneven lighting and per-frame sensor noise."""
    out = cv2.GaussianBlur(rgb, (3, 3), 0)
    out = cv2.multiply(out, st.illum, scale=1 / 255)
    pos, neg = st.noise[int(math.floor(t * 30)) % len(st.noise)]
    out = cv2.add(out, pos)
    return cv2.subtract(out, neg)


@lru_cache(maxsize=4)
def _static_scene(seed: int, width: int, height: int) -> _Static:
    """Build (once per seed and size) the base image, depth, lighting and layers."""
    rng = np.random.default_rng(seed)
    grain = rng.normal(0.0, 1.0, (height, width)).astype(np.float32)
    bed = _bed_box(rng, width, height)
    plan = _body_plan(rng, bed)
    base_rgb, base_depth = _render_base(rng, grain, bed, plan)
    items = build_items(rng, plan, grain, base_depth)
    illum = _illumination(rng, width, height)
    noise = [_noise_pair(rng, width, height) for _ in range(NOISE_BANK)]
    x0, y0, x1, y1 = _rail_box(bed, width, height)
    return _Static(base_rgb, base_depth, illum, noise, items, (x0, y0, x1 - x0, y1 - y0))


def _bed_box(rng: np.random.Generator, w: int, h: int) -> tuple[float, float, float, float]:
    """The mattress rectangle (x0, y0, x1, y1) near the image centre."""
    bw, bh = w * rng.uniform(0.74, 0.86), h * rng.uniform(0.70, 0.82)
    cx, cy = w * (0.5 + rng.uniform(-0.03, 0.03)), h * (0.5 + rng.uniform(-0.03, 0.03))
    return cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2


def _rail_box(bed: tuple[float, float, float, float], w: int, h: int) -> tuple[int, int, int, int]:
    """The bed frame around the mattress, clipped to the image (integer x0, y0, x1, y1)."""
    m = 0.025 * h
    x0, y0 = max(0, int(bed[0] - m)), max(0, int(bed[1] - m))
    return x0, y0, min(w, int(math.ceil(bed[2] + m))), min(h, int(math.ceil(bed[3] + m)))


def _body_plan(rng: np.random.Generator, bed: tuple[float, float, float, float]) -> BodyPlan:
    """Where the child lies: head end, tilt, size and skin tone."""
    bw, bh = bed[2] - bed[0], bed[3] - bed[1]
    length = min(bw * rng.uniform(0.52, 0.72), 1.55 * bh)
    angle = rng.uniform(-0.15, 0.15) + (math.pi if rng.random() < 0.5 else 0.0)
    axis = np.array([math.cos(angle), math.sin(angle)], np.float32)
    centre = np.array([(bed[0] + bed[2]) / 2, (bed[1] + bed[3]) / 2], np.float32)
    centre += np.array([rng.uniform(-0.05, 0.05) * bw, rng.uniform(-0.06, 0.06) * bh], np.float32)
    tone = np.array(SKIN_TONES[rng.integers(len(SKIN_TONES))], np.float32) + rng.uniform(-12, 12, 3)
    skin = tuple(int(c) for c in np.clip(tone, 0, 255))
    return BodyPlan(centre - axis * length / 2, axis, length, skin, bed)  # type: ignore[arg-type]


def _smooth_field(rng: np.random.Generator, w: int, h: int, cells: int = 8) -> np.ndarray:
    """A smooth random field in [-1, 1] (wrinkles, folds, lighting)."""
    small = rng.uniform(-1, 1, (cells, max(2, cells * w // max(h, 1)))).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC).clip(-1, 1)


def _render_base(
    rng: np.random.Generator, grain: np.ndarray, bed: tuple[float, float, float, float], plan: BodyPlan
) -> tuple[np.ndarray, np.ndarray]:
    """Floor, bed frame, patterned sheet and pillow, with their depth (mm from a ceiling camera)."""
    h, w = grain.shape
    bed_mm = rng.uniform(1200, 1500)
    # Floor: grey tiles, far below the mattress
    floor = np.array([rng.uniform(120, 170)] * 3, np.float32) + rng.uniform(-10, 10, 3)
    rgb = np.empty((h, w, 3), np.float32)
    rgb[:] = floor
    tile = max(8, w // 8)
    rgb[::tile, :] *= 0.8
    rgb[:, ::tile] *= 0.8
    depth = np.full((h, w), bed_mm + rng.uniform(550, 750), np.float32)
    # Bed frame (rails), a little above the mattress
    rail = _rounded_rect_mask(w, h, _rail_box(bed, w, h), 0.04 * h)
    rgb[rail] = np.array([rng.uniform(60, 110), rng.uniform(70, 120), rng.uniform(80, 140)], np.float32)
    depth[rail] = bed_mm - 60
    # Mattress with a patterned, wrinkled sheet and a slight tilt
    mattress = _rounded_rect_mask(w, h, tuple(int(v) for v in bed), 0.03 * h)
    sheet = _sheet_texture(rng, w, h)
    rgb[mattress] = sheet[mattress]
    tilt = rng.uniform(-40, 40) * (np.arange(w, dtype=np.float32) / w - 0.5)
    depth[mattress] = (bed_mm + tilt[None, :] + 6 * _smooth_field(rng, w, h))[mattress]
    # Pillow under the head: a bright hard negative (not an occlusion)
    _add_pillow(rng, rgb, depth, plan)
    rgb += 4.0 * grain[..., None]
    depth += rng.normal(0, 1.5, (h, w)).astype(np.float32)
    return rgb.clip(0, 255).astype(np.uint8), depth.clip(1, 65535).astype(np.uint16)


def _sheet_texture(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """Sheet colour, a faint print (stripes or dots) and soft wrinkles."""
    colour = np.array(SHEETS[rng.integers(len(SHEETS))], np.float32) + rng.uniform(-8, 8, 3)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    period = rng.uniform(14, 40) * w / 1280
    kind = rng.integers(3)
    if kind == 0:
        pattern = 0.05 * (np.sin(2 * np.pi * (xs + 0.3 * ys) / period) > 0.6)
    elif kind == 1:
        pattern = 0.07 * ((np.sin(2 * np.pi * xs / period) * np.sin(2 * np.pi * ys / period)) > 0.8)
    else:
        pattern = np.zeros_like(xs)
    shade = 1.0 - pattern + 0.06 * _smooth_field(rng, w, h, 12)
    return colour[None, None, :] * shade[..., None]


def _add_pillow(rng: np.random.Generator, rgb: np.ndarray, depth: np.ndarray, plan: BodyPlan) -> None:
    """A rounded pillow under the head."""
    h, w = depth.shape
    c, r = plan.point(0.11, 0.0), 0.11 * plan.length
    c = c - plan.axis * 0.4 * r
    half = np.abs(plan.axis) * 1.5 * r + np.abs(plan.normal) * 2.0 * r
    box = (int(c[0] - half[0]), int(c[1] - half[1]), int(c[0] + half[0]), int(c[1] + half[1]))
    mask = _rounded_rect_mask(w, h, box, 0.6 * r)
    rgb[mask] = np.array([245, 245, 242], np.float32) * rng.uniform(0.92, 1.0)
    depth[mask] -= 60


def _rounded_rect_mask(w: int, h: int, box: tuple, radius: float) -> np.ndarray:
    """H×W bool mask of a rounded rectangle (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = (int(v) for v in box)
    r = max(1, int(min(radius, (x1 - x0) / 2, (y1 - y0) / 2)))
    mask = np.zeros((h, w), np.uint8)
    cv2.rectangle(mask, (x0 + r, y0), (x1 - r, y1), 1, -1)
    cv2.rectangle(mask, (x0, y0 + r), (x1, y1 - r), 1, -1)
    for cx, cy in ((x0 + r, y0 + r), (x1 - r, y0 + r), (x0 + r, y1 - r), (x1 - r, y1 - r)):
        cv2.circle(mask, (cx, cy), r, 1, -1)
    return mask.astype(bool)


def _illumination(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """Uneven lighting as an H×W×3 uint8 gain (255 = 1.0): a smooth field and a vignette."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    r2 = ((xs - w / 2) / (w / 2)) ** 2 + ((ys - h / 2) / (h / 2)) ** 2
    gain = 0.93 + 0.05 * _smooth_field(rng, w, h, 4) - 0.08 * r2 + rng.uniform(-0.03, 0.03)
    tint = np.array([1.0, 1.0, 1.0], np.float32) + rng.uniform(-0.03, 0.03, 3)
    return (255 * gain[..., None] * tint).clip(0, 255).astype(np.uint8)


def _noise_pair(rng: np.random.Generator, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """Sensor noise as (positive, negative) uint8 images for saturating add/subtract."""
    n = rng.normal(0.0, 2.5, (h, w, 3)).astype(np.float32)
    return n.clip(0, 255).astype(np.uint8), (-n).clip(0, 255).astype(np.uint8)


class SyntheticSource(Source):
    """Frames of one animated synthetic scene, with ground truth in ``Frame.truth``.

    Args:
        width, height: frame size in pixels.
        fps: frame rate; ``ts_us = frame_id * 1e6 / fps``.
        seed: scene seed.
        n_frames: stop after this many frames (None: endless).
        realtime: pace frames at ``fps`` (else as fast as they render).
        depth: also produce the depth image (aligned to colour).
        stop: ends the stream when set (seen within ``WAIT_SLICE_S`` while pacing).
    """

    def __init__(
        self,
        width: int = 1280,
        height: int = 720,
        fps: float = 30,
        seed: int = 0,
        n_frames: int | None = None,
        realtime: bool = False,
        depth: bool = True,
        stop: StopEvent | None = None,
    ) -> None:
        if width < MIN_SIZE or height < MIN_SIZE:
            raise SourceError(
                f"camera.synthetic_size: {width}x{height} is too small (at least {MIN_SIZE}x{MIN_SIZE})"
            )
        if fps <= 0:
            raise SourceError(f"camera.fps: must be positive for the synthetic source, got {fps}")
        self.width, self.height, self.fps, self.seed = width, height, fps, seed
        self.n_frames, self.realtime, self.depth = n_frames, realtime, depth
        self.state = "stopped"
        self.stop = stop

    def open(self) -> None:
        """Build the static scene now so the first frame is not late."""
        _static_scene(self.seed, self.width, self.height)
        self.state = "streaming"

    def close(self) -> None:
        """Nothing to release."""
        self.state = "stopped"

    def frames(self) -> Iterator[Frame]:
        """Yield frames (paced when ``realtime``)."""
        return pace(self._render(), self.realtime, self.stop)

    def _render(self) -> Iterator[Frame]:
        frame_id = 0
        while self.n_frames is None or frame_id < self.n_frames:
            scene = render_scene(self.seed, self.width, self.height, t=frame_id / self.fps)
            yield Frame(
                frame_id=frame_id,
                ts_us=int(round(frame_id * 1e6 / self.fps)),
                color=scene.rgb,
                depth=scene.depth if self.depth else None,
                truth=scene.truth,
                extra={"aligned_to_color": True} if self.depth else {},
            )
            frame_id += 1
