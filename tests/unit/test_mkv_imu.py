"""The writer's IMU track: k4arecord's layout (checked against the SDK in tests/reference), bad input."""

from __future__ import annotations

import av
import numpy as np
import pytest

from kinect_occlusion.sources.mkv import MkvSource
from kinect_occlusion.sources.mkv_writer import K4AMkvWriter, synthetic_calibration_json

ROW = [1_000_000, -9.81, 0.0, 0.1, 1_000_070, 0.001, 0.0, -0.002]


def test_imu_track_is_a_subtitle_track_tagged_as_k4arecord_does_and_frames_still_read(tmp_path):
    path = tmp_path / "imu.mkv"
    samples = np.array([[ROW[0] + 625 * i, *ROW[1:4], ROW[4] + 625 * i, *ROW[5:]] for i in range(100)])
    with K4AMkvWriter(
        path, depth_mode="NFOV_2X2BINNED", fps=15, calibration_json=synthetic_calibration_json(), imu=True
    ) as w:
        w.write(np.zeros((720, 1280, 3), np.uint8), np.full((288, 320), 1000, np.uint16), None, ROW[0])
        w.write_imu(samples)  # 62 ms of samples: more than one 32 ms cluster
    data = path.read_bytes()
    assert b"S_K4A/IMU" in data and b"K4A_IMU_TRACK" in data and b"K4A_IMU_MODE" in data
    assert data.count(b"\x1f\x43\xb6\x75") == 1 + 2  # one capture cluster, two IMU clusters
    with av.open(str(path)) as container:
        titles = [s.metadata.get("title") for s in container.streams if s.type != "attachment"]
        assert titles == ["COLOR", "DEPTH", "IR", "IMU"]
    with MkvSource(path) as src:
        frames = list(src)
    assert len(frames) == 1 and frames[0].depth.max() == 1000


def test_imu_samples_need_the_track_and_time_order(tmp_path):
    with K4AMkvWriter(tmp_path / "a.mkv", calibration_json=synthetic_calibration_json()) as w:
        with pytest.raises(ValueError, match="no IMU track"):
            w.write_imu(np.array([ROW]))
    with K4AMkvWriter(tmp_path / "b.mkv", calibration_json=synthetic_calibration_json(), imu=True) as w:
        with pytest.raises(ValueError, match="IMU timestamps go backwards"):
            w.write_imu(np.array([ROW, [ROW[0] - 1, *ROW[1:]]]))
