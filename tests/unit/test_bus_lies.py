"""Lies that pass the schema, as a buggy or hostile peer on the bus would send them (real sockets
where the fault is in the transport, the pure function where it is in pure code)."""

from __future__ import annotations

import multiprocessing
import threading
import time
from typing import cast

import numpy as np
import pytest
import zmq
from conftest import free_port, wait_for
from test_mask_saved import acks, mask, saver_on_bus
from test_restarts import coarse, partition

from kinect_occlusion import messages as m
from kinect_occlusion.bus import MAX_DRAIN, Proxy, Publisher, Subscriber
from kinect_occlusion.client import OcclusionSubscriber
from kinect_occlusion.commands._pipeline import _report_video
from kinect_occlusion.config import Config, SamConfig
from kinect_occlusion.fuser.pairing import OwnPartitions
from kinect_occlusion.runtime.mask_saver import png_name
from kinect_occlusion.runtime.metrics import PipelineMetrics
from kinect_occlusion.runtime.monitor import MAX_ARRIVALS, StageStats
from kinect_occlusion.runtime.recorder import OverlayRecorder
from kinect_occlusion.runtime.remote import checked_output
from kinect_occlusion.runtime.restarts import RestartWatch, started_us
from kinect_occlusion.runtime.worker import WorkerRuntime
from kinect_occlusion.sam.worker import build, run_every_frame

FLOOD_S = 6.0  # how long the flooding peer keeps sending (a drain that never ends returns after it)


def flood(endpoint: str, seconds: float) -> None:
    """A peer sending one small valid JPEG colour frame as fast as ZeroMQ takes it, for ``seconds``
    (encoded once: sending costs a copy of a few KB, receiving a JPEG decode)."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PUB)
    sock.sndhwm = 100_000
    sock.bind(endpoint)
    image = np.random.default_rng(0).integers(0, 256, (240, 320, 3), np.uint8)
    frames = m.encode(m.ColorFrame(camera="bed1", frame_id=1, ts_us=1, image=image, encoding=m.ENC_JPEG))
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for _ in range(1000):
            sock.send_multipart(frames, copy=True)
    sock.close(linger=0)
    ctx.term()


def test_a_flood_of_valid_frames_never_keeps_drain_or_recv_latest_from_returning(ipc_dir):
    endpoint = f"ipc://{ipc_dir}/flood"
    peer = multiprocessing.get_context("spawn").Process(target=flood, args=(endpoint, FLOOD_S))
    peer.start()
    try:
        with Subscriber(endpoint, "*", [m.TOPIC_COLOR], rcvhwm=64) as sub:
            assert sub.recv(10_000) is not None  # the flood is on
            for take in (sub.drain, sub.recv_latest):
                t0 = time.monotonic()
                got = take(100)
                took = time.monotonic() - t0
                assert peer.is_alive(), "the flood ended before the call returned"
                assert took < 1.0 and 0 < len(got) <= MAX_DRAIN
    finally:
        peer.terminate()
        peer.join(10)


def forged_status(worker: str, pid: int, ts_us: int, uptime_s: float) -> m.Status:
    """A Status as it arrives: through the codec, so it passed every schema check."""
    st = m.Status(
        camera="bed1",
        frame_id=0,
        ts_us=ts_us,
        worker=worker,
        pid=pid,
        state="ready",
        info={"uptime_s": uptime_s},
    )
    return cast(m.Status, m.decode(m.encode(st)))


def test_a_huge_finite_uptime_is_no_crash_and_no_start_before_the_epoch():
    # 1e303 s is finite (the schema takes it); in µs it overflows to inf, and int(inf) raised
    st = forged_status("fuser", 3, 5_000_000, 1e303)
    assert started_us(st) == 0
    watch = RestartWatch(("fuser",))
    assert watch.seen(st) == 0  # capture and the fuser call this in their loops


def test_a_start_in_the_future_cannot_orphan_every_later_frame():
    # A Status claiming a start far in the future (ts_us = 2**62) used to set the fuser's
    # partitions_from_us there for good: every later coarse mask went out coarse-only at once
    pairs = OwnPartitions(wait_s=55.0)
    before = m.now_us()
    start = RestartWatch(("sam",)).seen(forged_status("sam", 9, 2**62, 0.0))
    assert start is not None and before <= start <= m.now_us()
    pairs.partitions_from(start)
    later = m.now_us() + 1
    pairs.add(coarse(1, origin_us=later), now=0.0)
    assert pairs.ready(now=1.0) == []  # waits for its own partition
    pairs.add(partition(1, origin_us=later), now=1.0)
    assert [(c.frame_id, p is not None) for c, p in pairs.ready(now=1.0)] == [(1, True)]


@pytest.mark.parametrize(
    "reply, why",
    [
        (np.full((2, 4, 4), np.nan, np.float32), "outside"),  # quantised to 0: "nothing occluded"
        (np.full((2, 4, 4), np.inf, np.float32), "outside"),
        (np.full((2, 4, 4), 7.5, np.float32), "outside"),  # logits, not probabilities: all occluded
        (np.full((2, 4, 4), -0.5, np.float32), "outside"),
        (np.zeros((2, 4, 4), np.bool_), "dtype"),
        (np.zeros((2, 4, 4), np.object_), "dtype"),  # a BYTES tensor
        (np.zeros((2, 4, 5), np.float32), "expected"),
        (None, "expected"),
    ],
)
def test_a_triton_reply_that_is_no_probability_map_is_refused(reply, why):
    with pytest.raises(ValueError, match=why):
        checked_output(reply, (2, 4, 4), "deeplab", 0.0, 1.0)


def test_a_triton_reply_in_range_comes_back_as_float32():
    reply = np.linspace(0, 1, 32, dtype=np.float16).reshape(2, 4, 4)
    out = checked_output(reply, (2, 4, 4), "deeplab", 0.0, 1.0)
    assert out.dtype == np.float32 and np.array_equal(out, reply.astype(np.float32))
    # An embedding has no range, but it is finite (NaN embeddings gave an empty partition, silently)
    assert checked_output(np.full((1, 3), -1e30, np.float32), (1, 3), "sam").shape == (1, 3)
    with pytest.raises(ValueError, match="outside"):
        checked_output(np.array([[0.0, np.nan, 1.0]], np.float32), (1, 3), "sam")
    with pytest.raises(ValueError, match="outside"):
        checked_output(np.array([[0.0, 1e300, 1.0]], np.float64), (1, 3), "sam")  # inf in float32


def fused_mask(origin_us: int, sent_us: int, age_ms: float) -> m.OcclusionMask:
    """A fused mask as it arrives (through the codec, so it passed every schema check)."""
    msg = m.OcclusionMask(
        camera="bed1",
        frame_id=1,
        ts_us=1,
        origin_us=origin_us,
        mask=np.zeros((4, 4), np.uint8),
        votes=np.ones((2, 2), np.float32),
        fused=True,
        partition_frame_id=1,
        partition_age_ms=age_ms,
    )
    return cast(m.OcclusionMask, m.decode(m.encode(msg, sent_us=sent_us)))


def test_a_flood_of_results_holds_bounded_arrival_times_and_still_measures_its_rate():
    # Arrival times were kept for the whole 10 s window, uncapped: memory grew with the sender's rate
    stats = StageStats()
    msg = fused_mask(origin_us=1_000_000, sent_us=1_050_000, age_ms=20.0)
    for i in range(5 * MAX_ARRIVALS):
        stats.add(msg, i / 5000.0)  # 5 kHz for 10 s
    assert len(stats.arrivals) == MAX_ARRIVALS and stats.count == 5 * MAX_ARRIVALS
    assert stats.rate() == pytest.approx(5000.0)


def test_one_lying_timestamp_or_partition_age_cannot_poison_the_metrics_for_good():
    # A histogram's _sum keeps every observation: one 1e300 ms partition age or a latency of
    # 2**63 µs made the average (sum / count) meaningless for the rest of the run
    metrics = PipelineMetrics("bed1", free_port())
    try:
        stats = StageStats()
        lies = [
            fused_mask(origin_us=1, sent_us=2**63 - 1, age_ms=1e300),  # 292,000 years late
            fused_mask(origin_us=2**62, sent_us=1, age_ms=-0.5),  # sent before it was captured
        ]
        for msg in [*lies, fused_mask(origin_us=1_000_000, sent_us=1_050_000, age_ms=20.0)]:
            metrics.observe_message(msg, stats.add(msg, 0.0))
        sample = metrics.registry.get_sample_value
        latency = {"camera": "bed1", "path": "capture_to_fused"}
        assert sample("kinect_occlusion_latency_seconds_sum", latency) == pytest.approx(0.05)
        assert sample("kinect_occlusion_latency_seconds_count", latency) == 1
        assert sample("kinect_occlusion_partition_age_seconds_sum", {"camera": "bed1"}) == pytest.approx(0.02)
        assert sample("kinect_occlusion_implausible_total", {"camera": "bed1"}) == 4  # counted
    finally:
        metrics.close()


@pytest.mark.parametrize(
    "msg",
    [
        m.ColorFrame(camera="bed1", frame_id=1, ts_us=1, image=np.zeros((0, 0, 3), np.uint8)),
        m.DepthFrame(camera="bed1", frame_id=1, ts_us=1, depth=np.zeros((0, 640), np.uint16)),
        m.Partition(camera="bed1", frame_id=1, ts_us=1, labels=np.zeros((720, 0), np.int32)),
        m.OcclusionMask(camera="bed1", frame_id=1, ts_us=1, mask=np.zeros((0, 0), np.uint8)),
    ],
    ids=lambda msg: msg.KIND,
)
def test_an_image_without_pixels_is_refused(msg):
    # Each passed the schema and raised in its consumer on every use: deeplab (ZeroDivisionError in
    # the letterbox), the fuser (ValueError in fit_labels, for every coarse mask while it was the
    # newest partition: 25 in a row end the worker), the mask saver (cv2 error: saving stops)
    with pytest.raises(m.MessageError, match="no pixels"):
        m.decode(m.encode(msg))


def test_a_forged_empty_mask_no_longer_stops_a_replay_that_saves_masks(tmp_path, endpoints):
    # Before, the saver failed to encode its PNG: saving stopped, and the replay with it (exit 1)
    errors: list[bool] = []
    forged = m.OcclusionMask(camera="bed1", epoch=5, frame_id=0, ts_us=0, mask=np.zeros((0, 0), np.uint8))
    with saver_on_bus(tmp_path, endpoints, on_error=lambda: errors.append(True)) as (pub, sub, saver):
        assert wait_for(
            lambda: pub.publish(forged) and pub.publish(mask(1)) and (1 in {f for _, f in acks(sub)})
        )
        assert saver.error is None and not errors and saver.is_alive()
        assert (tmp_path / png_name(1)).exists() and not (tmp_path / png_name(0)).exists()


def test_the_overlay_video_draws_a_mask_only_on_its_own_frame(tmp_path, endpoints, capsys):
    # Frames were held by frame_id alone and drawn with any mask: a mask of another size killed the
    # recorder thread (IndexError, a traceback), and after a capture restart (new epoch, ids from 0)
    # a mask was drawn over the old run's frame of the same id
    front, back = endpoints

    def pair(pub, epoch: int, frame_id: int, value: int, mask_shape=(48, 64), frame: bool = True) -> None:
        common = {"camera": "bed1", "epoch": epoch, "frame_id": frame_id, "ts_us": frame_id}
        if frame:
            pub.publish(m.ColorFrame(image=np.full((48, 64, 3), value, np.uint8), **common))
        pub.publish(m.OcclusionMask(mask=np.zeros(mask_shape, np.uint8), **common))

    with Proxy(front, back, hwm=100), Publisher(front, 100) as pub:
        rec = OverlayRecorder(str(tmp_path / "overlay.mp4"), back, "bed1", 15)
        rec.start()
        try:
            sent = 0  # the first run's frames, until one is drawn (subscriptions take a moment)

            def first_run() -> bool:
                nonlocal sent
                pair(pub, 1, sent, 0)
                sent += 1
                return rec.written > 0

            assert wait_for(first_run)
            pair(pub, 1, sent - 1, 0, mask_shape=(5, 7), frame=False)  # a mask of another size
            pair(pub, 2, sent - 1, 0, frame=False)  # the next run's mask, its own frame lost
            assert wait_for(lambda: rec.skipped >= 2 or not rec.is_alive())
            drawn = rec.written
            assert wait_for(lambda: pair(pub, 2, 100, 255) or rec.written > drawn)  # the next run goes on
            assert rec.is_alive() and rec.error is None and rec.skipped == 2
        finally:
            rec.stop()
    assert _report_video(0, rec, "overlay.mp4") == 0
    assert "2 masks skipped" in capsys.readouterr().out  # the replay's summary line says so


def test_coarse_masks_without_frames_never_end_the_every_frame_partition_worker(endpoints):
    # Each coarse mask past the 16 waiting, and each whose colour frame never came, was a frame
    # error of the worker itself: 25 in a row raised PersistentFailure (exit, restart, give up)
    front, back = endpoints
    rt = WorkerRuntime("sam", Config(), threading.Event(), parent_pid=1)
    cfg = SamConfig()
    with (
        Proxy(front, back, hwm=1000),
        Publisher(front, 1000) as pub,
        Subscriber(back, "bed1", [m.TOPIC_COLOR, m.TOPIC_COARSE], rcvhwm=1000) as sub,
        Publisher(front, 4) as out,
    ):
        worker = threading.Thread(target=run_every_frame, args=(rt, cfg, build(cfg), sub, out))
        worker.start()
        sent = 0

        def flood() -> bool:
            nonlocal sent
            for _ in range(50):
                pub.publish(coarse(sent, origin_us=1))  # frame ids no colour frame had
                sent += 1
            return rt.info.get("coarse_dropped", 0) >= 100 or not worker.is_alive()

        try:
            assert wait_for(flood, timeout=15)
            assert worker.is_alive() and rt.counters.consecutive_errors == 0
        finally:
            rt.stop.set()
            worker.join(5)


def test_a_sender_clock_far_ahead_never_starves_the_other_beds_of_a_client(endpoints):
    # receive() (latest-only) returned the one message with the largest sent_us of each drain and
    # dropped the others uncounted: a bed whose clock (or lie) is far ahead hid every other bed
    front, back = endpoints
    zeros = np.zeros((12, 16), np.uint8)
    raw = zmq.Context.instance().socket(zmq.PUB)
    raw.connect(front)

    def send(frame_id: int) -> None:  # bed2 (honest clock), then bed1 (sent_us 2**63 - 1)
        for cam, sent_us in (("bed2", m.now_us()), ("bed1", 2**63 - 1)):
            msg = m.OcclusionMask(camera=cam, frame_id=frame_id, ts_us=frame_id, mask=zeros)
            raw.send_multipart(m.encode(msg, sent_us=sent_us))

    try:
        with (
            Proxy(front, back, hwm=100),
            OcclusionSubscriber(back, "*", latest_only=True, rcvhwm=100) as client,
        ):
            assert wait_for(lambda: send(0) or client.receive(0.05), timeout=5)  # subscribed
            while client.receive(0.2) is not None:
                pass
            for frame_id in range(1, 21):
                send(frame_id)
            got = {(msg.camera, msg.frame_id) for msg in client.iter(timeout_s=0.5)}
            assert {("bed1", 20), ("bed2", 20)} <= got, sorted(got)
    finally:
        raw.close(linger=0)
