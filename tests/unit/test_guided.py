"""Guided prompting: points where the coarse mask matters, none on confident background."""

from __future__ import annotations

import cv2
import numpy as np

from kinect_occlusion.sam.guided import guided_points, uniform_grid

H, W = 720, 1280


def on(prob: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Probability under each normalised point."""
    cols = np.clip((points[:, 0] * prob.shape[1]).astype(int), 0, prob.shape[1] - 1)
    rows = np.clip((points[:, 1] * prob.shape[0]).astype(int), 0, prob.shape[0] - 1)
    return prob[rows, cols]


def wavy_cable() -> np.ndarray:
    """A 4-px-wide wavy vertical cable between two grid columns of the 40×40 grid."""
    prob = np.zeros((H, W), np.float32)
    ys = np.arange(H)
    xs = 32 + 8 * np.sin(ys / 40.0)
    cv2.polylines(prob, [np.stack([xs, ys], 1).round().astype(np.int32)], False, 1.0, 4)
    return prob


def test_thin_cable_missed_by_grid_gets_skeleton_points():
    prob = wavy_cable()
    assert (on(prob, uniform_grid(40)) < 0.5).all(), "precondition: the uniform grid misses the cable"
    points = guided_points(prob, dilate_px=0, skeleton_step_px=12)
    hits = on(prob, points) >= 0.5
    assert hits.sum() >= 30  # ~720 px of cable / 12 px steps
    assert not (~hits).any(), "with dilate_px=0 only the cable itself is prompted"


def test_confident_background_gets_none():
    prob = np.zeros((H, W), np.float32)
    prob[100:200, 100:300] = 1.0
    points = guided_points(prob, dilate_px=15)
    assert len(points) > 0
    px = points * [W, H]
    # Every point lies on or within dilate_px (+ rounding) of the blob
    dx = np.maximum(np.maximum(100 - px[:, 0], px[:, 0] - 300), 0)
    dy = np.maximum(np.maximum(100 - px[:, 1], px[:, 1] - 200), 0)
    assert (np.hypot(dx, dy) <= 17).all()
    assert len(points) < 0.1 * 1600


def test_uncertain_band_is_prompted():
    prob = np.full((H, W), 0.3, np.float32)
    assert len(guided_points(prob, max_points=5000)) == 1600
    assert len(guided_points(np.full((H, W), 0.1, np.float32))) == 0


def test_all_zero_gives_no_points():
    points = guided_points(np.zeros((H, W), np.float32))
    assert points.shape == (0, 2)


def test_points_normalised_unique_and_in_roi():
    prob = wavy_cable()
    prob[300:500, 600:900] = 0.9
    prob = cv2.GaussianBlur(prob, (0, 0), 3)
    roi = (0, 0, 800, 720)
    points = guided_points(prob, roi)
    assert points.ndim == 2 and points.shape[1] == 2
    assert (points >= 0).all() and (points <= 1).all()
    assert (points[:, 0] * W <= 800).all()
    pix = np.unique((points * [W, H]).astype(int), axis=0)
    assert len(pix) == len(points)


def test_max_points_keeps_skeleton_points():
    prob = wavy_cable()
    prob[:, 400:] = 0.5  # a huge positive area → many grid points
    full = guided_points(prob, dilate_px=0)
    capped = guided_points(prob, dilate_px=0, max_points=60)
    assert len(full) > 60 and len(capped) == 60
    # The cable's skeleton points survive the cap
    cable = wavy_cable()
    assert (on(cable, capped) >= 0.5).sum() >= 30
