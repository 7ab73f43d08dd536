"""Per-camera observability on a ward server: bedside heartbeats, fused rate per bed, Prometheus."""

from __future__ import annotations

import os
import time
import urllib.request

import numpy as np
from conftest import free_port, wait_for

from kinect_occlusion import messages as m
from kinect_occlusion.bus import Proxy, Publisher, Subscriber
from kinect_occlusion.runtime.metrics import PipelineMetrics, per_camera
from kinect_occlusion.runtime.monitor import BusMonitor


def mask(camera: str, frame_id: int) -> m.OcclusionMask:
    now = m.now_us()
    return m.OcclusionMask(
        camera=camera,
        epoch=1,
        frame_id=frame_id,
        ts_us=now,
        origin_us=now - 30_000,
        mask=np.zeros((4, 4), np.uint8),
        votes=np.ones((2, 2), np.float32),
        fused=True,
        partition_frame_id=frame_id,
        partition_age_ms=120.0,
    )


def test_ward_monitor_keeps_bedside_beats_apart_and_reports_each_bed(tmp_path):
    front, back = f"ipc://{tmp_path}/in", f"ipc://{tmp_path}/out"
    with (
        Proxy(front, back, hwm=1000),
        Subscriber(back, "*", BusMonitor.TOPICS, rcvhwm=1000) as sub,
        Publisher(front, 1000) as pub,
    ):
        mon = BusMonitor(sub, own_pid=os.getpid(), camera="ward")
        beat = m.Status(camera="bed2", frame_id=0, ts_us=0, worker="capture", pid=999, state="streaming")

        def arrived() -> bool:
            pub.publish(beat)
            mon.poll(50)
            return ("bed2", "capture") in mon.bedsides

        assert wait_for(arrived, 5.0)
        assert mon.rejected == 0  # a bedside's heartbeat is not a forged child's
        for i in range(6):
            pub.publish(mask("bed1", i))
            pub.publish(mask("bed3", i))
            time.sleep(0.02)  # arrivals spread in time: a rate needs two of them
        assert wait_for(lambda: (mon.poll(50), sum(s.count for s in mon.fused_by_camera.values()) == 12)[1])
        report = mon.camera_report()
        assert report.startswith("beds: bed1 ") and ", bed3 " in report and " ms" in report


def test_per_camera_status_info_is_checked_before_it_becomes_a_label():
    info = {
        "bed1": {"rate_hz": 4.5, "frames_out": 10},
        "bad/id": {"rate_hz": 1.0, "frames_out": 1},
        "bed2": {"rate_hz": float("nan"), "frames_out": 1},
        "bed3": "not a dict",
        "bed4": {"rate_hz": True, "frames_out": 1},
        # The ranges the supervisor holds heartbeats to (no negative or astronomic gauge)
        "bed5": {"rate_hz": -3.0, "frames_out": 1},
        "bed6": {"rate_hz": 1.0, "frames_out": -1},
        "bed7": {"rate_hz": 1.0, "frames_out": 1e300},
        "bed8": {"frames_out": 2},
    }
    assert per_camera(info) == [("bed1", 4.5, 10.0), ("bed8", 0.0, 2.0)]
    assert per_camera(["bed1"]) == []


def test_prometheus_labels_results_by_camera():
    port = free_port()
    metrics = PipelineMetrics("ward", port)
    try:
        metrics.observe_message(mask("bed7", 1), 30.0)
        metrics.observe_status(
            m.Status(
                camera="ward",
                frame_id=0,
                ts_us=0,
                worker="deeplab",
                pid=1,
                state="running",
                info={"rate_hz": 9.0, "cameras": {"bed7": {"rate_hz": 3.0, "frames_out": 5}}},
            )
        )
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    finally:
        metrics.close()
    assert 'kinect_occlusion_latency_seconds_count{camera="bed7",path="capture_to_fused"} 1.0' in text
    assert 'kinect_occlusion_partition_age_seconds_count{camera="bed7"} 1.0' in text
    assert 'kinect_occlusion_rate_hz{camera="bed7",worker="deeplab"} 3.0' in text
    assert 'kinect_occlusion_rate_hz{camera="ward",worker="deeplab"} 9.0' in text


def test_two_bedsides_for_one_camera_are_told_apart_from_a_restart(tmp_path):
    front, back = f"ipc://{tmp_path}/in", f"ipc://{tmp_path}/out"
    with (
        Proxy(front, back, hwm=1000),
        Subscriber(back, "*", [m.TOPIC_STATUS], rcvhwm=1000) as sub,
        Publisher(front, 1000) as pub,
    ):
        mon = BusMonitor(sub, own_pid=os.getpid(), camera="ward")

        def beat(camera: str, pid: int) -> m.Status:
            return m.Status(camera=camera, frame_id=0, ts_us=0, worker="supervisor", pid=pid, state="running")

        def arrived(camera: str, pid: int) -> bool:
            mon.poll(50)
            got = mon.bedsides.get((camera, "supervisor"))
            return got is not None and got[0].pid == pid

        def send(camera: str, pid: int) -> None:
            assert wait_for(lambda: (pub.publish(beat(camera, pid)), arrived(camera, pid))[1], 5.0)

        # bed1's bedside restarted: one pid replaced by another, no alarm
        for pid in (100, 100, 101, 101):
            send("bed1", pid)
        assert mon.duplicates == 0
        # bed2 published by two bedsides at once: their pids alternate
        for pid in (200, 201, 200):
            send("bed2", pid)
        assert mon.duplicates == 1
