"""The occlusion mask in depth geometry against the Azure Kinect SDK 1.4.2 (pyk4a-bundle).

For a sample of depth pixels the SDK's ``convert_2d_to_3d`` (depth → colour camera) and
``convert_3d_to_2d`` (colour camera → colour pixel) give the colour pixel each one sees; our
depth-geometry mask must hold the colour mask's value there (255 where the SDK finds no valid pixel).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "k4a"))

from scenes import ward_scene
from test_sdk_reference import sdk  # noqa: F401 — the fixture (skips without the reference venv)

from kinect_occlusion.depth.calibration import parse_calibration
from kinect_occlusion.depth.device_calibration import device_calibration_json
from kinect_occlusion.depth.mask import depth_geometry_mask
from kinect_occlusion.depth.transform import DepthToColor
from kinect_occlusion.sources.k4a_formats import COLOR_RESOLUTIONS, DEPTH_MODES

UNKNOWN = 255
N = 600  # sampled depth pixels (the SDK is called once per pixel)


def _sdk_colour_pixels(client, text: str, mode: str, res: str, uv: np.ndarray, d: np.ndarray):
    """The SDK's colour pixel (u, v) of each depth pixel ``uv`` with depth ``d``, and its validity."""
    zeros1, zeros2 = np.zeros(len(uv), np.float32), np.zeros((len(uv), 2), np.float32)
    zeros3 = np.zeros((len(uv), 3), np.float32)
    into_colour = client.sdk_points(
        text, mode, res, {"uv_depth": uv, "d_depth": d, "p_depth": zeros3, "uv_color": zeros2,
                          "d_color": zeros1, "p_color": zeros3},
    )  # fmt: skip
    points, ok3 = into_colour["p3_depth_color"].astype(np.float32), into_colour["v3_depth_color"]
    onto = client.sdk_points(
        text, mode, res, {"uv_depth": uv, "d_depth": d, "p_depth": zeros3, "uv_color": zeros2,
                          "d_color": zeros1, "p_color": points},
    )  # fmt: skip
    return onto["p2_color_color"], ok3 & onto["v2_color_color"]


@pytest.mark.parametrize("mode, res", [("NFOV_UNBINNED", "720P"), ("WFOV_2X2BINNED", "1080P")])
def test_depth_mask_takes_the_mask_value_at_the_sdk_colour_pixel(sdk, mode, res):  # noqa: F811
    text = device_calibration_json()
    (dw, dh), (cw, ch) = DEPTH_MODES[mode], COLOR_RESOLUTIONS[res]
    depth = ward_scene(dw, dh, seed=3)
    mask = np.random.default_rng(2).integers(0, 2, (ch, cw), dtype=np.uint8)  # every pixel matters
    ours = depth_geometry_mask(DepthToColor.build(parse_calibration(text, mode, res)), mask, depth, UNKNOWN)
    rng = np.random.default_rng(5)
    rows, cols = rng.integers(0, dh, N), rng.integers(0, dw, N)
    uv = np.stack([cols, rows], 1).astype(np.float32)
    pix, ok = _sdk_colour_pixels(sdk, text, mode, res, uv, depth[rows, cols].astype(np.float32))
    col, row = np.floor(pix[:, 0] + 0.5).astype(int), np.floor(pix[:, 1] + 0.5).astype(int)
    inside = ok & (col >= 0) & (col < cw) & (row >= 0) & (row < ch)
    expected = np.full(N, UNKNOWN, np.uint8)
    expected[inside] = mask[row[inside], col[inside]]
    # a point within 1e-3 px of a pixel border may round either way between the SDK and us
    ambiguous = (np.abs(pix - np.floor(pix) - 0.5) < 1e-3).any(axis=1) & inside
    assert ambiguous.sum() <= N // 100
    got = ours[rows, cols]
    assert np.array_equal(got[~ambiguous], expected[~ambiguous])
    assert (expected == UNKNOWN).sum() > 0 and inside.sum() > N // 4  # both cases are exercised
