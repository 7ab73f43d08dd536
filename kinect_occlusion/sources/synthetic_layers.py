"""Layers of a synthetic scene: the child's body parts and the labelled occlusions over it.

A shape is a list of parts ``(points, thickness)``: thickness 0 fills the polygon, > 0 strokes an
open polyline. Shapes are rasterised inside their bounding box only. Occlusion masks are re-made from
their outer contour so that ``cv2.fillPoly(polygon)`` reproduces the mask exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

Colour = tuple[int, int, int]
Part = tuple[np.ndarray, int]


@dataclass
class BodyPlan:
    """Body frame: ``point(u, v)`` maps fractions of the body length (u from the head top towards the
    feet, v to the side) to image pixels."""

    origin: np.ndarray
    axis: np.ndarray
    length: float
    skin: Colour
    bed: tuple[float, float, float, float]

    @property
    def normal(self) -> np.ndarray:
        return np.array([-self.axis[1], self.axis[0]], np.float32)

    @property
    def angle(self) -> float:
        return math.atan2(float(self.axis[1]), float(self.axis[0]))

    def point(self, u: float, v: float) -> np.ndarray:
        return self.origin + self.length * (u * self.axis + v * self.normal)


@dataclass
class Paint:
    """How a layer is coloured: two colours mixed by a pattern, edge shading and grain."""

    c1: Colour
    c2: Colour | None = None
    kind: str = "plain"  # plain, stripes, checks, dot
    period: float = 8.0
    angle: float = 0.0
    shade: float = 0.25
    grain: float = 5.0


@dataclass
class Layer:
    """A shape over the scene, stored inside its bounding box (origin ``x0, y0``)."""

    label: str | None
    x0: int
    y0: int
    mask: np.ndarray
    rgb: np.ndarray
    lift: np.ndarray | int
    alpha: float = 1.0
    polygon: np.ndarray | None = None

    @property
    def window(self) -> tuple[slice, slice]:
        h, w = self.mask.shape
        return slice(self.y0, self.y0 + h), slice(self.x0, self.x0 + w)

    def paint(self, rgb: np.ndarray, depth: np.ndarray) -> None:
        """Draw onto ``rgb`` and raise ``depth`` (closer to the camera) under the mask."""
        win, m = self.window, self.mask
        src = self.rgb
        if self.alpha < 1.0:
            src = cv2.addWeighted(self.rgb, self.alpha, rgb[win], 1.0 - self.alpha, 0)
        rgb[win][m] = src[m]
        d = depth[win]
        d[m] -= self.lift[m] if isinstance(self.lift, np.ndarray) else np.uint16(self.lift)


@dataclass
class Torso:
    """The breathing torso: the mask grows and shrinks with ``t``; colour and height are fixed."""

    full: Layer
    centre: np.ndarray
    axes: tuple[float, float]
    angle: float
    period: float
    phase: float

    def at(self, t: float) -> Layer:
        s = 1.0 + 0.025 * (0.5 + 0.5 * math.sin(2 * math.pi * t / self.period + self.phase))
        pts = superellipse(self.centre, self.axes[0] * s, self.axes[1] * s, self.angle) - (
            self.full.x0,
            self.full.y0,
        )
        m = np.zeros(self.full.mask.shape, np.uint8)
        cv2.fillPoly(m, [np.round(pts).astype(np.int32)], 1)
        return Layer(
            None, self.full.x0, self.full.y0, m.astype(bool) & self.full.mask, self.full.rgb, self.full.lift
        )


@dataclass
class Cable:
    """A tube or cable (cubic Bezier stroke) whose middle sways slowly with ``t``."""

    ctrl: np.ndarray
    normal: np.ndarray
    amp: float
    freq: float
    phase: float
    thickness: int
    colour: Colour
    size: tuple[int, int]
    lift: int = 8
    highlight: Colour = field(init=False)

    def __post_init__(self) -> None:
        self.highlight = tuple(int(min(255, c * 0.6 + 110)) for c in self.colour)  # type: ignore[assignment]

    def at(self, t: float) -> Layer:
        off = self.amp * math.sin(2 * math.pi * self.freq * t + self.phase)
        ctrl = self.ctrl.copy()
        ctrl[1] += self.normal * off
        ctrl[2] += self.normal * 0.6 * off
        pts = bezier(ctrl)
        layer = occlusion_layer("pipe/cable", [(pts, self.thickness)], self.size, None, self.lift)
        assert layer is not None  # control points are kept inside the image
        # Solid colour with a lighter centre line (a round tube seen from above)
        layer.rgb[:] = self.colour
        centre = np.round(pts - (layer.x0, layer.y0)).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(layer.rgb, [centre], False, self.highlight, max(1, self.thickness // 3))
        return layer


Moving = Torso | Cable


def superellipse(
    c: np.ndarray, a: float, b: float, angle: float, exp: float = 2.0, n: int = 64
) -> np.ndarray:
    """Points of a (super)ellipse: semi-axes ``a`` along ``angle`` and ``b`` across; exp 2 = ellipse."""
    th = np.linspace(0, 2 * np.pi, n, endpoint=False)
    cos, sin = np.cos(th), np.sin(th)
    x = a * np.sign(cos) * np.abs(cos) ** (2 / exp)
    y = b * np.sign(sin) * np.abs(sin) ** (2 / exp)
    ca, sa = math.cos(angle), math.sin(angle)
    return np.stack([c[0] + x * ca - y * sa, c[1] + x * sa + y * ca], axis=1).astype(np.float32)


def bezier(ctrl: np.ndarray, n: int = 48) -> np.ndarray:
    """Points of the cubic Bezier curve with 4 control points."""
    t = np.linspace(0, 1, n, dtype=np.float32)[:, None]
    return (
        (1 - t) ** 3 * ctrl[0]
        + 3 * (1 - t) ** 2 * t * ctrl[1]
        + 3 * (1 - t) * t**2 * ctrl[2]
        + t**3 * ctrl[3]
    ).astype(np.float32)


def rasterise(parts: list[Part], size: tuple[int, int]) -> tuple[int, int, np.ndarray] | None:
    """Draw ``parts`` into a uint8 mask cropped to their bounding box; (x0, y0, mask) or None if off-image."""
    w, h = size
    pts = np.concatenate([p for p, _ in parts])
    pad = max(th for _, th in parts) // 2 + 2
    x0, y0 = max(0, int(pts[:, 0].min()) - pad), max(0, int(pts[:, 1].min()) - pad)
    x1, y1 = min(w, int(pts[:, 0].max()) + pad + 1), min(h, int(pts[:, 1].max()) + pad + 1)
    if x1 <= x0 or y1 <= y0:
        return None
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    for p, th in parts:
        q = np.round(p - (x0, y0)).astype(np.int32).reshape(-1, 1, 2)
        if th == 0:
            cv2.fillPoly(mask, [q], 1)
        else:
            cv2.polylines(mask, [q], False, 1, th)
    return x0, y0, mask


def outline(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Largest outer contour (N×2 int32) and the mask re-filled from it, or None when empty."""
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    best = max(contours, key=lambda c: (cv2.contourArea(c), len(c)))
    if len(best) < 3:
        return None
    filled = np.zeros_like(mask)
    cv2.fillPoly(filled, [best], 1)
    return best.reshape(-1, 2), filled.astype(bool)


def relief(mask: np.ndarray) -> np.ndarray:
    """0 at the middle of the shape, 1 at its edge (for rounded shading and height)."""
    d = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 3)
    return 1.0 - d / max(float(d.max()), 1.0)


def texture(paint: Paint, mask: np.ndarray, x0: int, y0: int, grain: np.ndarray) -> np.ndarray:
    """Colour a cropped shape: pattern mix of c1/c2, darker towards the edges, plus grain."""
    h, w = mask.shape
    r = relief(mask)
    ys, xs = np.mgrid[y0 : y0 + h, x0 : x0 + w].astype(np.float32)
    proj = xs * math.cos(paint.angle) + ys * math.sin(paint.angle)
    if paint.kind == "stripes":
        p = (np.sin(2 * np.pi * proj / paint.period) > 0).astype(np.float32)
    elif paint.kind == "checks":
        across = -xs * math.sin(paint.angle) + ys * math.cos(paint.angle)
        p = ((np.floor(proj / paint.period) + np.floor(across / paint.period)) % 2).astype(np.float32)
    elif paint.kind == "dot":
        p = (r < 0.4).astype(np.float32)
    else:
        p = np.zeros((h, w), np.float32)
    c1 = np.array(paint.c1, np.float32)
    c2 = np.array(paint.c2 if paint.c2 is not None else paint.c1, np.float32)
    img = c1 * (1 - p[..., None]) + c2 * p[..., None]
    img *= (1.0 - paint.shade * r**2)[..., None]
    img += paint.grain * grain[y0 : y0 + h, x0 : x0 + w, None]
    return img.clip(0, 255).astype(np.uint8)


def occlusion_layer(
    label: str | None,
    parts: list[Part],
    size: tuple[int, int],
    paint: Paint | None,
    lift: int,
    grain: np.ndarray | None = None,
    alpha: float = 1.0,
) -> Layer | None:
    """A labelled shape whose polygon (image pixels) and mask agree exactly; None when off-image."""
    w, h = size
    parts = [(np.clip(p, 0, (w - 1, h - 1)).astype(np.float32), th) for p, th in parts]
    raster = rasterise(parts, size)
    if raster is None:
        return None
    x0, y0, m = raster
    out = outline(m)
    if out is None:
        return None
    poly, mask = out
    rgb = np.zeros((*mask.shape, 3), np.uint8)
    if paint is not None and grain is not None:
        rgb = texture(paint, mask, x0, y0, grain)
    return Layer(label, x0, y0, mask, rgb, lift, alpha, (poly + (x0, y0)).astype(np.float32))


def body_layer(
    parts: list[Part], size: tuple[int, int], paint: Paint, height_mm: float, grain: np.ndarray
) -> Layer:
    """An unlabelled body part: skin texture, rounded height profile."""
    raster = rasterise(parts, size)
    assert raster is not None  # the body lies on the bed, inside the image
    x0, y0, m = raster
    mask = m.astype(bool)
    lift = (height_mm * np.sqrt(np.clip(1.0 - relief(mask) ** 2, 0, 1))).astype(np.uint16)
    return Layer(None, x0, y0, mask, texture(paint, mask, x0, y0, grain), lift)
