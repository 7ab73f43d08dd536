"""Layout of a synthetic scene: where the child's limbs lie and which occlusions go where.

``build_items`` returns every layer in drawing order: legs, breathing torso, arms, head, then the
occlusions (diaper, blanket, socks, gloves, bandages, tags, hat, oxygen mask or pacifier, ECG patches,
toys) and last the swaying cables, so later instances lie on top.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .synthetic_layers import (
    BodyPlan,
    Cable,
    Colour,
    Layer,
    Moving,
    Paint,
    Part,
    Torso,
    body_layer,
    occlusion_layer,
    superellipse,
)

WHITES: tuple[Colour, ...] = ((242, 242, 238), (232, 226, 212), (214, 228, 242), (236, 236, 246))
BRIGHT: tuple[Colour, ...] = (
    (230, 40, 40),
    (40, 120, 230),
    (250, 200, 30),
    (60, 190, 80),
    (240, 120, 200),
    (255, 140, 0),
    (140, 80, 220),
)
CABLES: tuple[Colour, ...] = (
    (245, 245, 245),
    (150, 150, 155),
    (60, 90, 200),
    (230, 200, 40),
    (40, 160, 90),
    (30, 30, 35),
    (210, 60, 60),
)


@dataclass
class Limb:
    """A limb from ``start`` (shoulder/hip) to ``end`` (hand/foot) with half-width ``hw`` pixels."""

    start: np.ndarray
    end: np.ndarray
    hw: float

    def at(self, f: float) -> np.ndarray:
        return self.start + f * (self.end - self.start)

    @property
    def angle(self) -> float:
        d = self.end - self.start
        return math.atan2(float(d[1]), float(d[0]))


def _pick(rng: np.random.Generator, palette: tuple[Colour, ...], jitter: float = 12) -> Colour:
    c = np.array(palette[rng.integers(len(palette))], np.float32) + rng.uniform(-jitter, jitter, 3)
    return tuple(int(v) for v in np.clip(c, 0, 255))  # type: ignore[return-value]


def _limbs(rng: np.random.Generator, plan: BodyPlan) -> tuple[list[Limb], list[Limb]]:
    """Arms (beside the body, or raised over the head) and legs."""
    arms, legs, length = [], [], plan.length
    for side in (-1.0, 1.0):
        phi = rng.uniform(0.25, 0.8) if rng.random() < 0.8 else rng.uniform(2.1, 2.6)
        d = math.cos(phi) * plan.axis + side * math.sin(phi) * plan.normal
        shoulder = plan.point(0.27, side * 0.12)
        arms.append(Limb(shoulder, shoulder + d * 0.30 * length, 0.034 * length))
        foot = plan.point(0.98, side * rng.uniform(0.05, 0.12))
        legs.append(Limb(plan.point(0.57, side * 0.065), foot, 0.05 * length))
    return arms, legs


def _limb_parts(limb: Limb) -> list[Part]:
    c = (limb.start + limb.end) / 2
    half = float(np.linalg.norm(limb.end - limb.start)) / 2 + 0.8 * limb.hw
    return [(superellipse(c, half, limb.hw, limb.angle), 0)]


def _body(
    rng: np.random.Generator,
    plan: BodyPlan,
    size: tuple[int, int],
    grain: np.ndarray,
    arms: list[Limb],
    legs: list[Limb],
) -> list[Layer | Moving]:
    """Legs, breathing torso, arms and head, in drawing order."""
    skin = Paint(plan.skin, shade=0.3, grain=4.0)
    items: list[Layer | Moving] = [body_layer(_limb_parts(leg), size, skin, 70, grain) for leg in legs]
    centre, axes = plan.point(0.40, 0.0), (0.19 * plan.length, 0.13 * plan.length)
    full = body_layer(
        [(superellipse(centre, axes[0] * 1.026, axes[1] * 1.026, plan.angle), 0)],
        size,
        skin,
        rng.uniform(110, 150),
        grain,
    )
    items.append(Torso(full, centre, axes, plan.angle, rng.uniform(1.5, 3.0), rng.uniform(0, 2 * math.pi)))
    items += [body_layer(_limb_parts(arm), size, skin, 50, grain) for arm in arms]
    head = superellipse(plan.point(0.11, 0.0), 0.11 * plan.length, 0.10 * plan.length, plan.angle)
    items.append(body_layer([(head, 0)], size, skin, 100, grain))
    return items


def _blanket(rng: np.random.Generator, plan: BodyPlan) -> list[Part]:
    """A wavy-edged sheet over the legs, from the hips to past the feet."""
    u0, half = rng.uniform(0.5, 0.66), rng.uniform(0.2, 0.3)
    corners = [(u0, -half), (1.06, -half), (1.06, half), (u0, half), (u0, -half)]
    pts = []
    for (ua, va), (ub, vb) in zip(corners[:-1], corners[1:], strict=True):
        for f in np.linspace(0, 1, 10, endpoint=False):
            wobble = 0.012 * math.sin(f * 9 + rng.uniform(0, 6))
            pts.append(plan.point(ua + f * (ub - ua) + wobble, va + f * (vb - va) + wobble))
    return [(np.array(pts, np.float32), 0)]


def _cable_start(rng: np.random.Generator, plan: BodyPlan, far_from: np.ndarray | None = None) -> np.ndarray:
    """A point on the bed edge (long sides or head end); with ``far_from``, on the farther long side."""
    x0, y0, x1, y1 = plan.bed
    side = int(rng.integers(3))
    if far_from is not None:
        side = 1 if abs(far_from[1] - y0) < abs(far_from[1] - y1) else 0
    if side == 2:  # from the head end, past the pillow
        head_end = plan.point(-0.1, rng.uniform(-0.3, 0.3))
        return np.array([np.clip(head_end[0], x0, x1), np.clip(head_end[1], y0, y1)], np.float32)
    return np.array([rng.uniform(x0, x1), y0 if side == 0 else y1], np.float32)


def _cable(rng: np.random.Generator, plan: BodyPlan, target: np.ndarray, size: tuple[int, int]) -> Cable:
    """A cable from a point on the bed edge to ``target``, bending sideways without loops."""
    start = _cable_start(rng, plan)
    if np.linalg.norm(target - start) < 0.3 * plan.length:  # too short to read as a cable: other side
        start = _cable_start(rng, plan, far_from=target)
    span = target - start
    normal = np.array([-span[1], span[0]], np.float32) / max(float(np.linalg.norm(span)), 1.0)
    bend = rng.uniform(-0.3, 0.3, 2) * float(np.linalg.norm(span))
    ctrl = np.stack(
        [start, start + span / 3 + normal * bend[0], start + 2 * span / 3 + normal * bend[1], target]
    )
    ctrl = np.clip(ctrl, 0, (size[0] - 1, size[1] - 1)).astype(np.float32)
    scale = size[0] / 1280
    thickness = int(max(3, round(rng.uniform(3, 10) * scale)))
    return Cable(
        ctrl,
        normal,
        max(1.0, rng.uniform(1.5, 5) * scale),
        rng.uniform(0.15, 0.5),
        rng.uniform(0, 2 * math.pi),
        thickness,
        _pick(rng, CABLES, 8),
        size,
    )


def _small_things(
    rng: np.random.Generator, plan: BodyPlan, arms: list[Limb], legs: list[Limb], blanket: bool
) -> list[tuple[str, list[Part], Paint, int]]:
    """Diaper, socks, gloves, bandages and tags as (label, parts, paint, lift_mm)."""
    out: list[tuple[str, list[Part], Paint, int]] = []
    length, ang = plan.length, plan.angle
    if rng.random() < 0.5:
        shape = superellipse(plan.point(0.58, 0.0), 0.08 * length, 0.13 * length, ang, 3.0)
        out.append(
            ("diaper", [(shape, 0)], Paint(_pick(rng, WHITES), _pick(rng, BRIGHT), "dot", shade=0.2), 20)
        )
    for leg in [] if blanket else legs:
        if rng.random() < 0.35:
            shape = superellipse(leg.at(0.97), 1.7 * leg.hw, 1.3 * leg.hw, leg.angle, 3.0)
            out.append(
                (
                    "sock/shoe",
                    [(shape, 0)],
                    Paint(_pick(rng, BRIGHT), _pick(rng, WHITES), "stripes", period=6.0, angle=leg.angle),
                    12,
                )
            )
    for arm in arms:
        if rng.random() < 0.35:
            shape = superellipse(arm.at(0.95), 1.8 * arm.hw, 1.5 * arm.hw, arm.angle)
            out.append(("glove", [(shape, 0)], Paint(_pick(rng, WHITES + BRIGHT[1:2])), 10))
    limbs = arms + ([] if blanket else legs)
    for _ in range(rng.integers(0, 3)):
        limb = limbs[rng.integers(len(limbs))]
        band = superellipse(
            limb.at(rng.uniform(0.3, 0.7)), rng.uniform(0.03, 0.05) * length, 1.35 * limb.hw, limb.angle, 6.0
        )
        out.append(
            (
                "bandage",
                [(band, 0)],
                Paint(_pick(rng, WHITES), (200, 196, 186), "stripes", 5.0, limb.angle + 0.8, 0.15),
                6,
            )
        )
    if rng.random() < 0.4:
        limb = limbs[rng.integers(len(limbs))]
        tag = superellipse(limb.at(0.82), 0.7 * limb.hw, 1.5 * limb.hw, limb.angle, 6.0)
        out.append(
            ("tag", [(tag, 0)], Paint((246, 246, 246), (40, 40, 40), "stripes", 4.0, limb.angle, 0.1), 4)
        )
    return out


def _head_things(rng: np.random.Generator, plan: BodyPlan) -> list[tuple[str, list[Part], Paint, int]]:
    """Hat, oxygen mask or pacifier on the head."""
    out: list[tuple[str, list[Part], Paint, int]] = []
    rh, head, ang = 0.11 * plan.length, plan.point(0.11, 0.0), plan.angle
    if rng.random() < 0.35:
        hat = superellipse(head - plan.axis * 0.5 * rh, 0.6 * rh, 1.08 * rh, ang, 2.5)
        paint = Paint(_pick(rng, BRIGHT), _pick(rng, WHITES), "stripes", max(3.0, 0.2 * rh), ang)
        out.append(("hat", [(hat, 0)], paint, 25))
    if rng.random() < 0.3:
        mask = superellipse(head + plan.axis * 0.3 * rh, 0.42 * rh, 0.5 * rh, ang, 2.5)
        out.append(("oxygen mask", [(mask, 0)], Paint((190, 235, 212), shade=0.4, grain=2.0), 40))
    elif rng.random() < 0.35:
        mouth = head + plan.axis * 0.55 * rh
        shield = superellipse(mouth, 0.18 * rh, 0.34 * rh, ang)
        knob = superellipse(mouth + plan.axis * 0.2 * rh, 0.14 * rh, 0.14 * rh, ang)
        out.append(
            ("pacifier", [(shield, 0), (knob, 0)], Paint(_pick(rng, BRIGHT), _pick(rng, WHITES), "dot"), 25)
        )
    return out


def _patches_and_toys(rng: np.random.Generator, plan: BodyPlan) -> list[tuple[str, list[Part], Paint, int]]:
    """ECG patches on the chest and toys on the sheet."""
    out: list[tuple[str, list[Part], Paint, int]] = []
    length = plan.length
    for _ in range(rng.integers(1, 5) if rng.random() < 0.85 else 0):
        r = rng.uniform(0.022, 0.032) * length
        shape = superellipse(
            plan.point(rng.uniform(0.27, 0.5), rng.uniform(-0.09, 0.09)),
            r,
            r,
            rng.uniform(0, math.pi),
            2.0 if rng.random() < 0.6 else 5.0,
        )
        out.append(
            ("patch", [(shape, 0)], Paint(_pick(rng, WHITES, 6), (150, 150, 150), "dot", shade=0.1), 3)
        )
    x0, y0, x1, y1 = plan.bed
    for _ in range(rng.integers(0, 3)):
        r = rng.uniform(0.04, 0.08) * length
        c = plan.point(rng.uniform(0.15, 0.95), rng.choice([-1.0, 1.0]) * rng.uniform(0.25, 0.38))
        c = np.array([np.clip(c[0], x0 + r, x1 - r), np.clip(c[1], y0 + r, y1 - r)], np.float32)
        k, phase = rng.integers(3, 6), rng.uniform(0, 2 * math.pi)
        th = np.linspace(0, 2 * np.pi, 60, endpoint=False)
        rad = r * (1 + 0.3 * np.sin(k * th + phase))
        shape = np.stack([c[0] + rad * np.cos(th), c[1] + rad * np.sin(th)], axis=1).astype(np.float32)
        paint = Paint(
            _pick(rng, BRIGHT), _pick(rng, BRIGHT), ("plain", "stripes", "dot")[rng.integers(3)], 0.3 * r
        )
        out.append(("toy", [(shape, 0)], paint, int(rng.uniform(30, 80))))
    return out


def build_items(
    rng: np.random.Generator, plan: BodyPlan, grain: np.ndarray, base_depth: np.ndarray
) -> list[Layer | Moving]:
    """Every layer of a scene in drawing order: body, then occlusions (later ones on top)."""
    h, w = base_depth.shape
    size = (w, h)
    arms, legs = _limbs(rng, plan)
    items = _body(rng, plan, size, grain, arms, legs)
    blanket = rng.random() < 0.55
    specs = _small_things(rng, plan, arms, legs, blanket)
    if blanket:
        paint = Paint(
            _pick(rng, BRIGHT + WHITES, 20),
            _pick(rng, BRIGHT + WHITES, 20),
            ("plain", "stripes", "checks")[rng.integers(3)],
            0.03 * plan.length,
            rng.uniform(0, 3),
        )
        specs.insert(
            1 if specs and specs[0][0] == "diaper" else 0, ("blanket", _blanket(rng, plan), paint, 30)
        )
    specs += _head_things(rng, plan) + _patches_and_toys(rng, plan)
    for label, parts, paint, lift in specs:
        alpha = 0.55 if label == "oxygen mask" else 1.0
        layer = occlusion_layer(label, parts, size, paint, lift, grain, alpha)
        if layer is not None:
            items.append(layer)
    # Cables last: to patches, hands, the mouth or the chest
    targets = [
        p.polygon.mean(axis=0)
        for p in items
        if isinstance(p, Layer) and p.label == "patch" and p.polygon is not None
    ]
    targets += [arm.at(0.9) for arm in arms] + [plan.point(0.17, 0.0), plan.point(0.4, 0.05)]
    for _ in range(rng.integers(1, 5)):
        items.append(_cable(rng, plan, np.asarray(targets[rng.integers(len(targets))], np.float32), size))
    return items
