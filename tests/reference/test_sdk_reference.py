"""Our recordings, reader and depth geometry against the Azure Kinect SDK 1.4.2 (pyk4a-bundle).

Each check runs the SDK in its own venv as a subprocess (tools/k4a/sdk_client.py).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

# The SDK client helpers live in tools/k4a (with the reference venv's runner)
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "k4a"))

from compare import compare_depth, format_stats, left_border_blocks
from scenes import ward_scene

from kinect_occlusion.depth.calibration import parse_calibration
from kinect_occlusion.depth.device_calibration import device_calibration_json
from kinect_occlusion.depth.projection import convert_2d_to_3d, convert_3d_to_2d, point_cloud, xy_table
from kinect_occlusion.depth.transform import DepthToColor
from kinect_occlusion.sources.k4a_formats import COLOR_RESOLUTIONS, DEPTH_MODES
from kinect_occlusion.sources.mkv import MkvSource
from kinect_occlusion.sources.mkv_writer import K4AMkvWriter

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "recordings" / "sample.mkv"


@pytest.fixture(scope="session")
def sdk():
    """The tools/k4a/sdk_client module, once the reference environment is known to be there."""
    import sdk_client

    try:
        sdk_client.sdk_python()
    except sdk_client.SdkUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{exc} (CI must create it: `make test` depends on `make sdk-env`)")
        pytest.skip(str(exc))
    return sdk_client


def _assert_same_frames(path: Path, ref: dict) -> int:
    """Our reader's colour, depth, IR and timestamps equal the SDK playback's; returns the frame count."""
    src = MkvSource(path, ir=True)
    frames = list(src.frames())
    assert len(frames) == int(ref["n"]) > 0
    for i, frame in enumerate(frames):
        for name, ours in (("color", frame.color), ("depth", frame.depth), ("ir", frame.ir)):
            theirs = ref[f"{name}_{i}"]
            if ours is None:
                assert theirs.size == 0, f"frame {i}: the SDK has {name}, we do not"
                continue
            assert np.array_equal(ours, theirs), f"frame {i}: {name} differs from the SDK's"
            assert frame.ts_us == int(ref[f"ts_{name}"][i]), f"frame {i}: {name} timestamp"
    return len(frames)


def test_reader_returns_the_sdk_playback_frames_of_the_bundled_sample(sdk):
    assert _assert_same_frames(SAMPLE, sdk.sdk_playback(SAMPLE)) == 15


@pytest.mark.parametrize(
    "color_mode, depth_mode, fps",
    [
        ("MJPG_720P", "NFOV_UNBINNED", 30),
        ("BGRA32_1080P", "WFOV_2X2BINNED", 15),
        ("NV12_720P", "NFOV_2X2BINNED", 5),
        ("YUY2_720P", "OFF", 30),
        ("OFF", "PASSIVE_IR", 30),
        ("MJPG_1536P", "WFOV_UNBINNED", 15),
    ],
)
def test_sdk_opens_what_our_writer_writes(sdk, tmp_path, color_mode, depth_mode, fps):
    rng = np.random.default_rng(0)
    path = tmp_path / "rec.mkv"
    res = color_mode.partition("_")[2]
    depth_size = DEPTH_MODES.get(depth_mode)
    period = 1_000_000 // fps
    imu = _imu_samples(5_000_000, 2 * period)
    writer = K4AMkvWriter(path, color_mode=color_mode, depth_mode=depth_mode, fps=fps, uid_seed=1, imu=True)
    with writer:
        writer.calibration_json = device_calibration_json("000123456789")
        for i in range(2):
            size = COLOR_RESOLUTIONS.get(res, (1, 1))
            color = None if color_mode == "OFF" else rng.integers(0, 255, (size[1], size[0], 3), np.uint8)
            depth = None if depth_size is None else ward_scene(*depth_size, seed=i)
            ir = None if depth is None else (depth // 3).astype(np.uint16)
            ts = 5_000_000 + i * period
            writer.write(color, None if depth_mode == "PASSIVE_IR" else depth, ir, ts)
            writer.write_imu(imu[(imu[:, 0] >= ts) & (imu[:, 0] < ts + period)])
    ref = sdk.sdk_playback(path)
    assert str(ref["depth_mode"]) == depth_mode and bool(ref["imu_track"])
    # every IMU sample as written (readings are float32 in the file, timestamps µs)
    assert len(ref["imu"]) == len(imu) > 10
    np.testing.assert_array_equal(ref["imu"], imu.astype(np.float32).astype(np.float64))
    if depth_mode == "PASSIVE_IR":  # our reader needs a COLOR or DEPTH track; the SDK reads the IR
        assert int(ref["n"]) == 2 and np.array_equal(ref["ir_1"], (ward_scene(1024, 1024, seed=1) // 3))
        return
    assert _assert_same_frames(path, ref) == 2


def _imu_samples(start_us: int, span_us: int) -> np.ndarray:
    """IMU samples at 1.6 kHz: acc_ts ax ay az gyro_ts gx gy gz (a device lying still, gravity on x)."""
    ts = start_us + np.arange(0, span_us, 625)
    rng = np.random.default_rng(3)
    acc = np.array([-9.81, 0.05, 0.12]) + rng.normal(0, 0.01, (len(ts), 3))
    gyro = rng.normal(0, 0.002, (len(ts), 3))
    return np.column_stack([ts, acc, ts + 70, gyro])


def _sample_points(cal, rng, n=400) -> dict[str, np.ndarray]:
    arrays = {}
    for cam, intr in (("depth", cal.depth), ("color", cal.color)):
        uv = rng.random((n, 2)) * [intr.width - 1, intr.height - 1]
        uv[:4] = [[0, 0], [intr.width - 1, intr.height - 1], [intr.cx, intr.cy], [intr.width - 1, 0]]
        arrays[f"uv_{cam}"] = uv.astype(np.float32)
        arrays[f"d_{cam}"] = rng.uniform(250, 6000, n).astype(np.float32)
        arrays[f"d_{cam}"][-5:] = 0  # depth 0: invalid
        xyz = np.concatenate([rng.uniform(-2500, 2500, (n, 2)), rng.uniform(-100, 6000, (n, 1))], axis=1)
        arrays[f"p_{cam}"] = xyz.astype(np.float32)
    return arrays


@pytest.mark.parametrize(
    "depth_mode, color_res",
    [
        ("NFOV_UNBINNED", "720P"),
        ("NFOV_2X2BINNED", "1080P"),
        ("WFOV_UNBINNED", "1440P"),
        ("WFOV_2X2BINNED", "1536P"),
        ("PASSIVE_IR", "2160P"),
        ("NFOV_UNBINNED", "3072P"),
    ],
)
def test_2d_3d_projections_equal_the_sdk(sdk, depth_mode, color_res):
    text = device_calibration_json()
    cal = parse_calibration(text, depth_mode, color_res)
    arrays = _sample_points(cal, np.random.default_rng(7))
    ref = sdk.sdk_points(text, depth_mode, color_res, arrays)
    for src in ("depth", "color"):
        for dst in ("depth", "color"):
            p3, ok3 = convert_2d_to_3d(cal, arrays[f"uv_{src}"], arrays[f"d_{src}"], src, dst)
            p2, ok2 = convert_3d_to_2d(cal, arrays[f"p_{src}"], src, dst)
            assert np.array_equal(ok3, ref[f"v3_{src}_{dst}"]), f"2d→3d validity {src}→{dst}"
            assert np.array_equal(ok2, ref[f"v2_{src}_{dst}"]), f"3d→2d validity {src}→{dst}"
            assert ok2.mean() > 0.5 and ok3.mean() > 0.5
            np.testing.assert_allclose(p3[ok3], ref[f"p3_{src}_{dst}"][ok3], atol=1e-3, rtol=0)
            np.testing.assert_allclose(p2[ok2], ref[f"p2_{src}_{dst}"][ok2], atol=1e-3, rtol=0)


# Share of identical pixels required: the goal, ≥ 99.9 % (NFOV measured 99.99 %). WFOV: 99.29 % overall;
# the SDK's GPU transform engine leaves most quads empty from the first one in view in each row of depth
# quads to the end of its 8-column block (compare.left_border_blocks; ~1.5 % of the image at the
# colour image's left border), which its documented algorithm (rgbz.c, ours) draws; outside them
# WFOV is held to the same goal.
MIN_IDENTICAL = 0.999


@pytest.mark.parametrize(
    "depth_mode, color_res",
    [("NFOV_UNBINNED", "720P"), ("NFOV_2X2BINNED", "1080P"), ("WFOV_2X2BINNED", "720P")],
)
def test_depth_to_color_and_point_cloud_match_the_sdk(sdk, depth_mode, color_res):
    text = device_calibration_json()
    cal = parse_calibration(text, depth_mode, color_res)
    depth = ward_scene(*DEPTH_MODES[depth_mode], seed=len(color_res))[
        None
    ]  # one scene: the SDK is slow on Mesa
    ref = sdk.sdk_transform(text, depth_mode, color_res, depth)
    transform = DepthToColor.build(cal)
    for i in range(len(depth)):
        ours, theirs = transform(depth[i]), ref["transformed"][i]
        stats = compare_depth(ours, theirs)
        print(format_stats(f"{depth_mode}→{color_res} scene {i}", stats))
        assert stats["coverage_ref"] > 0.3  # the scene is in view: not a trivially empty comparison
        assert stats["both_mean_abs_mm"] < 0.05, format_stats("depth→colour", stats)
        if depth_mode.startswith("WFOV"):
            _assert_equal_but_the_left_border_blocks(transform, depth[i], ours, theirs)
        else:
            assert stats["identical"] >= MIN_IDENTICAL, format_stats("depth→colour", stats)
        assert np.array_equal(point_cloud(xy_table(cal.depth), depth[i]), ref["cloud"][i])


def _assert_equal_but_the_left_border_blocks(transform, depth, ours, theirs) -> None:
    """The differences lie in the SDK engine's left-border blocks; outside them, the goal holds."""
    u, v, _, valid = transform.correspondences(depth)
    blocks = left_border_blocks(u, v, valid, transform.color_shape)
    differ = ours != theirs
    outside = (~differ[~blocks]).mean()
    print(
        f"  left-border blocks: {blocks.mean():.2%} of pixels, {(differ & blocks).sum()} of "
        f"{differ.sum()} differing pixels; outside them identical {outside:.3%}"
    )
    assert blocks.mean() < 0.03 and (differ & blocks).sum() > 0.9 * differ.sum()
    assert outside >= MIN_IDENTICAL
