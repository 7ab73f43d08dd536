"""Depth geometry without the SDK: projections round-trip, depth→colour fills surfaces, keeps the
nearer one, does not smear across depth edges, and masks map back into the depth camera."""

from __future__ import annotations

import numpy as np
import pytest

from kinect_occlusion.depth.calibration import parse_calibration
from kinect_occlusion.depth.device_calibration import device_calibration_json
from kinect_occlusion.depth.projection import (
    convert_2d_to_3d,
    convert_3d_to_2d,
    point_cloud,
    unproject,
    xy_table,
)
from kinect_occlusion.depth.transform import DepthToColor, color_to_depth_map, mask_to_depth


@pytest.fixture(scope="module")
def cal():
    return parse_calibration(device_calibration_json(), "NFOV_2X2BINNED", "720P")


@pytest.fixture(scope="module")
def transform(cal):
    return DepthToColor.build(cal)


def test_unproject_then_project_returns_the_pixel(cal):
    v, u = np.mgrid[0:288:7, 0:320:7]
    uv = np.stack([u.ravel(), v.ravel()], 1).astype(np.float32)
    points, ok = unproject(cal.depth, uv, np.full(len(uv), 1500.0))
    assert ok.mean() > 0.95
    back, ok2 = convert_3d_to_2d(cal, points[ok], "depth", "depth")
    assert ok2.all()
    np.testing.assert_allclose(back, uv[ok], atol=1e-3)


def test_depth_to_colour_and_back_through_3d(cal):
    uv = np.array([[160.0, 144.0], [40.0, 30.0], [300.0, 250.0]], np.float32)
    points, ok = convert_2d_to_3d(cal, uv, np.full(3, 2000.0, np.float32), "depth", "color")
    assert ok.all()
    pix, ok = convert_3d_to_2d(cal, points, "color", "color")
    back, ok_back = convert_2d_to_3d(cal, pix, points[:, 2], "color", "depth")
    assert ok.all() and ok_back.all()
    np.testing.assert_allclose(back[:, 2], 2000.0, atol=0.05)


def test_a_flat_wall_maps_without_holes(transform):
    out = transform(np.full((288, 320), 2000, np.uint16))
    inner = out[180:540, 320:960]  # well inside the depth camera's view
    assert (inner > 0).all()  # triangles fill between the depth samples: no forward-warp holes
    # the colour camera is tilted ~6°: its depth of the wall varies smoothly around 2000 mm
    assert 1850 < inner.min() <= inner.max() < 2150
    assert np.abs(np.diff(inner.astype(int), axis=1)).max() <= 1


def test_a_near_object_occludes_the_far_wall(transform, cal):
    depth = np.full((288, 320), 3000, np.uint16)
    depth[120:170, 140:190] = 800  # a hand in front of the wall
    out = transform(depth)
    centre, _ = convert_2d_to_3d(cal, np.array([[165.0, 145.0]]), np.array([800.0]), "depth", "color")
    ((u, v),), _ = convert_3d_to_2d(cal, centre, "color", "color")
    assert abs(int(out[int(round(v)), int(round(u))]) - centre[0, 2]) <= 1  # the nearer surface wins
    near = (out > 0) & (out < 1000)
    far = out > 2500  # the wall, ~2850–3150 mm along the tilted colour axis
    assert near.sum() > 2000 and far.sum() > 100_000
    # across the edge no quad is drawn: nothing between the two surfaces
    assert not ((out > 1000) & (out < 2500)).any()


def test_one_missing_depth_pixel_leaves_no_hole_but_a_missing_area_does(transform, cal):
    full = transform(np.full((288, 320), 2000, np.uint16))
    depth = np.full((288, 320), 2000, np.uint16)
    depth[100, 100] = 0  # one invalid corner: its quads are drawn with an interpolated corner
    depth[200:230, 200:230] = 0
    holes = (full > 0) & (transform(depth) == 0)
    corners = np.array([[100, 100], [199.5, 199.5], [229.5, 229.5], [101, 101]], np.float32)
    pts, _ = convert_2d_to_3d(cal, corners, np.full(4, 2000.0), "depth", "color")
    pix, _ = convert_3d_to_2d(cal, pts, "color", "color")
    (u0, v0), (u1, v1), (u2, v2) = np.round(pix[:3]).astype(int)
    # Dropping its 4 quads would empty 4 depth px² (~19 colour px here); with an interpolated corner
    # each quad keeps its other triangle, so (as the SDK) only a diamond of about half stays empty
    four_quads = 4 * np.prod(np.abs(pix[3] - pix[0]))
    assert 0.3 * four_quads < holes[v0 - 5 : v0 + 6, u0 - 5 : u0 + 6].sum() < 0.8 * four_quads
    holes[v0 - 5 : v0 + 6, u0 - 5 : u0 + 6] = False
    rows, cols = np.nonzero(holes)  # the rest: the 30×30 missing area, ≈ as large in colour
    assert rows.min() >= v1 - 1 and rows.max() <= v2 + 1 and cols.min() >= u1 - 1 and cols.max() <= u2 + 1
    assert holes.sum() > 0.8 * (u2 - u1) * (v2 - v1)


def test_point_cloud_is_depth_times_the_table(cal):
    depth = np.full((288, 320), 1500, np.uint16)
    depth[0, 0] = 0
    cloud = point_cloud(xy_table(cal.depth), depth)
    assert cloud.dtype == np.int16 and cloud.shape == (288, 320, 3)
    assert (cloud[0, 0] == 0).all() and cloud[144, 160, 2] == 1500
    expected, _ = convert_2d_to_3d(cal, np.array([[160.0, 144.0]]), np.array([1500.0]), "depth", "depth")
    np.testing.assert_allclose(cloud[144, 160], expected[0], atol=0.51)


def test_a_colour_mask_lands_on_the_depth_pixels_that_see_it(transform, cal):
    depth = np.full((288, 320), 2000, np.uint16)
    depth[:, :10] = 0
    mask = np.zeros((720, 1280), np.uint8)
    mask[:, :640] = 1  # left half of the colour image
    in_depth = mask_to_depth(transform, mask, depth, fill=255)
    row, col, ok = color_to_depth_map(transform, depth)
    assert (in_depth[:, :10] == 255).all()  # no depth: nothing to map
    # each depth pixel gets the mask value under its own projection into colour
    v, u = np.mgrid[0:288, 0:320]
    pts, _ = convert_2d_to_3d(cal, np.stack([u.ravel(), v.ravel()], 1), depth.ravel(), "depth", "color")
    pix, _ = convert_3d_to_2d(cal, pts, "color", "color")
    left = (pix[:, 0] < 639).reshape(288, 320) & ok
    right = (pix[:, 0] > 640).reshape(288, 320) & ok
    assert left.sum() > 10_000 and right.sum() > 10_000
    assert (in_depth[left] == 1).all() and (in_depth[right] == 0).all()


def test_wrong_depth_or_mask_size_is_a_clear_error(transform):
    with pytest.raises(ValueError, match=r"depth must be uint16 \(288, 320\), got uint16 \(576, 640\)"):
        transform(np.zeros((576, 640), np.uint16))
    with pytest.raises(ValueError, match="depth must be uint16"):
        transform(np.zeros((288, 320), np.float32))
    with pytest.raises(ValueError, match=r"mask must be \(720, 1280\)"):
        mask_to_depth(transform, np.zeros((288, 320), np.uint8), np.zeros((288, 320), np.uint16))


def test_a_wild_but_finite_calibration_maps_nothing_without_warnings(recwarn):
    import json

    from kinect_occlusion.depth.device_calibration import device_calibration

    doc = device_calibration()
    depth_cam = doc["CalibrationInformation"]["Cameras"][0]
    depth_cam["Intrinsics"]["ModelParameters"][4:10] = [1e30, -1e30, 1e30, 1e-30, 1e30, 1e30]
    depth_cam["MetricRadius"] = 1e30
    transform = DepthToColor.build(parse_calibration(json.dumps(doc), "NFOV_2X2BINNED", "720P"))
    out = transform(np.full((288, 320), 1000, np.uint16))
    assert out.shape == (720, 1280) and (out == 0).mean() > 0.99
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]
