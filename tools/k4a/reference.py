"""The Azure Kinect SDK (pyk4a-bundle) as a reference: runs in .venv-k4a (numpy<2), never imports ours.

Called by tools/k4a/sdk_client.py (tests/reference, tools/bench_depth.py) as a subprocess, under
``xvfb-run -a`` where the SDK's depth→colour (OpenGL through Mesa) is needed. Arrays go in and out
as .npz files.

    reference.py points    CAL_JSON DEPTH_MODE COLOR_RES IN.npz OUT.npz
    reference.py transform CAL_JSON DEPTH_MODE COLOR_RES IN.npz OUT.npz [REPEAT]
    reference.py peer      CAL_JSON DEPTH_MODE COLOR_RES IN.npz OUT.npz REPEAT   (open-azure-kinect)
    reference.py playback  FILE.mkv OUT.npz [MAX_FRAMES]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from pyk4a import Calibration, CalibrationType, ColorResolution, DepthMode, PyK4APlayback
from pyk4a import transformation as tr

SIZES = {"RES_720P": (1280, 720), "RES_1080P": (1920, 1080), "RES_1440P": (2560, 1440)}
SIZES.update({"RES_1536P": (2048, 1536), "RES_2160P": (3840, 2160), "RES_3072P": (4096, 3072)})
CAMERAS = {"depth": CalibrationType.DEPTH, "color": CalibrationType.COLOR}


def calibration(path: str, depth_mode: str, color_res: str) -> Calibration:
    raw = Path(path).read_text()
    return Calibration.from_raw(raw, DepthMode[depth_mode], ColorResolution[f"RES_{color_res}"])


def _one(fn, *args):
    try:
        return fn(*args), True
    except ValueError:  # pyk4a raises ValueError for an invalid (not failed) conversion
        return None, False


def points(cal: Calibration, data: dict) -> dict:
    """SDK 2d→3d and 3d→2d for every source/target pair, point by point."""
    out = {}
    for src in CAMERAS:
        for dst in CAMERAS:
            uv, depth, p3 = data[f"uv_{src}"], data[f"d_{src}"], data[f"p_{src}"]
            res3 = np.zeros((len(uv), 3), np.float64)
            ok3 = np.zeros(len(uv), bool)
            for i in range(len(uv)):
                value, ok3[i] = _one(
                    cal.convert_2d_to_3d,
                    tuple(map(float, uv[i])),
                    float(depth[i]),
                    CAMERAS[src],
                    CAMERAS[dst],
                )
                if ok3[i]:
                    res3[i] = value
            res2 = np.zeros((len(p3), 2), np.float64)
            ok2 = np.zeros(len(p3), bool)
            for i in range(len(p3)):
                value, ok2[i] = _one(
                    cal.convert_3d_to_2d, tuple(map(float, p3[i])), CAMERAS[src], CAMERAS[dst]
                )
                if ok2[i]:
                    res2[i] = value
            out.update(
                {
                    f"p3_{src}_{dst}": res3,
                    f"v3_{src}_{dst}": ok3,
                    f"p2_{src}_{dst}": res2,
                    f"v2_{src}_{dst}": ok2,
                }
            )
    return out


def stable(call, tries: int = 6) -> np.ndarray:
    """Call until two results agree. On Mesa the SDK's GPU depth engine returned, right after an
    image with other content, a partly stale or garbage image (seen here); the next call is right."""
    prev = call().copy()
    for _ in range(tries):
        cur = call().copy()
        if np.array_equal(prev, cur):
            return cur
        prev = cur
    raise RuntimeError("the SDK's depth→colour did not settle")


def transform(cal: Calibration, data: dict, repeat: int) -> dict:
    """SDK depth→colour (and point cloud) of each depth image; ms per call over ``repeat`` calls."""
    depth = [np.array(d) for d in data["depth"]]  # pyk4a misreads views into a larger array: own copies
    # pyk4a returns views of the SDK's image buffers, reused by its next call: copy at once
    out = [stable(lambda d=d: tr.depth_image_to_color_camera(d, cal, True)) for d in depth]
    clouds = [tr.depth_image_to_point_cloud(d, cal, True, True).copy() for d in depth]
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        tr.depth_image_to_color_camera(depth[0], cal, True)
        times.append((time.perf_counter() - t0) * 1000)
    return {"transformed": np.stack(out), "cloud": np.stack(clouds), "ms": np.array(times)}


def peer(raw: str, depth_mode: str, color_res: str, data: dict, repeat: int) -> dict:
    """open-azure-kinect's depth→colour (nearest-neighbour forward warp) of each depth image; ms a call."""
    import json

    from openk4a.calibration import CameraType
    from openk4a.playback import OpenK4APlayback
    from openk4a.transform import CameraTransform
    from openk4a.types import ColorResolution as PeerRes
    from openk4a.types import DepthMode as PeerDepth

    pb = OpenK4APlayback("unused.mkv")  # its calibration parser, without a file (it needs ffmpeg)
    pb._calibration_raw = json.loads(raw)
    pb._depth_mode, pb._color_resolution = PeerDepth[depth_mode], PeerRes[f"RESOLUTION_{color_res}"]
    pb._extract_calibration_info()
    transform = CameraTransform(pb.get_calibration(CameraType.Color), pb.get_calibration(CameraType.Depth))
    depth = [np.array(d) for d in data["depth"]]
    out = [transform.align_image_depth_to_color(d, d)[..., 0] for d in depth]
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        transform.align_image_depth_to_color(depth[0], depth[0])
        times.append((time.perf_counter() - t0) * 1000)
    return {"transformed": np.stack(out), "ms": np.array(times)}


def decode_color(color, fmt: str, config: dict):
    """The SDK's colour buffer → H×W×3 RGB (MJPG decoded by OpenCV, raw formats converted)."""
    import cv2

    if color is None:
        return None
    buf = np.ascontiguousarray(color).reshape(-1)
    w, h = SIZES[config["color_resolution"].name]
    if fmt == "COLOR_MJPG":
        return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    if fmt == "COLOR_NV12":
        return cv2.cvtColor(buf.reshape(h * 3 // 2, w), cv2.COLOR_YUV2RGB_NV12)
    if fmt == "COLOR_YUY2":
        return cv2.cvtColor(buf.reshape(h, w, 2), cv2.COLOR_YUV2RGB_YUY2)
    return np.ascontiguousarray(buf.reshape(h, w, 4)[..., 2::-1])


def playback(path: str, max_frames: int) -> dict:
    """Every capture: decoded colour (RGB), depth, IR, timestamps; and the IMU sample count."""
    pb = PyK4APlayback(path)
    pb.open()
    frames: dict[str, list] = {k: [] for k in ("color", "depth", "ir", "ts_color", "ts_depth", "ts_ir")}
    try:
        _ = pb.calibration  # the SDK's parse of the attachment, IMU included
        for _ in range(max_frames):
            try:
                cap = pb.get_next_capture()
            except EOFError:
                break
            color = decode_color(cap.color, pb.configuration["color_format"].name, pb.configuration)
            for key, value, ts in (
                ("color", color, "color_timestamp_usec"),
                ("depth", cap.depth, "depth_timestamp_usec"),
                ("ir", cap.ir, "ir_timestamp_usec"),
            ):
                frames[key].append(np.array(value) if value is not None else np.zeros(0, np.uint8))
                frames[f"ts_{key}"].append(getattr(cap, ts) if value is not None else -1)
        imu = []  # acc_ts_us ax ay az gyro_ts_us gx gy gz, as tools write them
        while True:
            try:
                sample = pb.get_next_imu_sample()
            except EOFError:
                break
            if sample is None:
                break
            imu.append(
                [
                    sample["acc_timestamp"],
                    *sample["acc_sample"],
                    sample["gyro_timestamp"],
                    *sample["gyro_sample"],
                ]
            )
        config = pb.configuration
    finally:
        pb.close()
    out = {k: np.array(v) for k, v in frames.items() if k.startswith("ts_")}
    for k in ("color", "depth", "ir"):
        for i, img in enumerate(frames[k]):
            out[f"{k}_{i}"] = img
    out.update(n=np.array(len(frames["depth"])), imu=np.array(imu, np.float64).reshape(-1, 8))
    out.update(
        depth_mode=np.array(config["depth_mode"].name), imu_track=np.array(config["imu_track_enabled"])
    )
    return out


def main(argv: list[str]) -> int:
    cmd = argv[0]
    if cmd == "points":
        result = points(calibration(*argv[1:4]), dict(np.load(argv[4])))
        np.savez(argv[5], **result)
    elif cmd == "transform":
        repeat = int(argv[6]) if len(argv) > 6 else 0
        np.savez(argv[5], **transform(calibration(*argv[1:4]), dict(np.load(argv[4])), repeat))
    elif cmd == "peer":
        raw = Path(argv[1]).read_text()
        np.savez(argv[5], **peer(raw, argv[2], argv[3], dict(np.load(argv[4])), int(argv[6])))
    elif cmd == "playback":
        np.savez(argv[2], **playback(argv[1], int(argv[3]) if len(argv) > 3 else 1000))
    else:
        print(f"unknown command {cmd!r}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
