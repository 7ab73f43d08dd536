"""Ward transport defaults (issue #12): colour frames published to a tcp:// frontend travel as JPEG,
and a latest-wins reader decodes only the newest message of each topic. Real sockets throughout."""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np
import pytest
import zmq
from conftest import free_port, wait_for

from kinect_occlusion import messages as m
from kinect_occlusion.bus import Proxy, Publisher, Subscriber
from kinect_occlusion.capture.worker import publish_frame
from kinect_occlusion.config import BusConfig
from kinect_occlusion.sources.base import Frame


def _scene(h: int = 72, w: int = 96) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // w, y * 255 // h, (x + y) % 256], -1).astype(np.uint8)


def _published_colour(front: str, back: str, bus: BusConfig) -> m.ColorFrame:
    """What a subscriber receives when capture's ``publish_frame`` sends one colour frame."""
    rt = SimpleNamespace(camera="bed1", bus=bus, frontend=front)
    frame = Frame(frame_id=3, ts_us=1000, color=_scene())
    with (
        Proxy(front, back),
        Publisher(front) as pub,
        Subscriber(back, "bed1", [m.TOPIC_COLOR]) as sub,
    ):
        got = wait_for(lambda: publish_frame(pub, rt, frame, None, epoch=1) or sub.recv(50), timeout=5)
    assert isinstance(got, m.ColorFrame)
    return got


@pytest.mark.parametrize(
    ("scheme", "setting", "expected"),
    [("tcp", "auto", "jpeg"), ("ipc", "auto", "raw"), ("tcp", "raw", "raw"), ("ipc", "jpeg", "jpeg")],
)
def test_capture_encodes_colour_by_bus(endpoints, scheme, setting, expected):
    if scheme == "tcp":
        endpoints = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    got = _published_colour(*endpoints, BusConfig(color_encoding=setting, jpeg_quality=95))
    assert got.encoding == expected
    assert got.frame_id == 3 and got.image.shape == (72, 96, 3)
    error = np.abs(got.image.astype(int) - _scene().astype(int)).mean()
    assert error == 0 if expected == "raw" else 0 < error < 4


def test_default_bus_config_sends_jpeg_only_over_tcp():
    bus = BusConfig()
    assert bus.color_encoding == "auto"
    assert bus.color_encoding_for("tcp://10.0.0.5:5555") == "jpeg"
    assert bus.color_encoding_for("ipc:///tmp/kinect-occlusion/bed1-in") == "raw"


def test_latest_wins_decodes_only_the_newest_of_each_topic(endpoints):
    """Superseded messages are counted stale without being decoded: broken JPEGs queued behind a
    good newest frame are never read (decoding them all, then keeping one, counted each as invalid)."""
    front, back = endpoints
    good = [bytes(f) for f in m.encode(m.ColorFrame(camera="bed1", frame_id=9, ts_us=9, image=_scene()))]
    spec = m.encode(m.ColorFrame(camera="bed1", frame_id=1, ts_us=1, image=_scene(), encoding="jpeg"))
    broken = [bytes(spec[0]), bytes(spec[1]), bytes(spec[2])[:40]]  # a truncated JPEG: refused when decoded
    n_broken = 20
    with Proxy(front, back, hwm=100), Subscriber(back, "bed1", [m.TOPIC_COLOR], rcvhwm=100) as sub:
        raw = zmq.Context.instance().socket(zmq.PUB)
        raw.sndhwm = 100
        raw.connect(front)
        try:
            assert wait_for(lambda: raw.send_multipart(good) or sub.recv(50), timeout=5) is not None
            while sub.recv(100) is not None:
                pass
            for _ in range(n_broken):
                raw.send_multipart(broken)
            raw.send_multipart(good)
            time.sleep(0.3)  # let the whole burst reach the subscriber's queue (no count to wait on)
            newest: dict = {}
            deadline = time.monotonic() + 5
            while m.TOPIC_COLOR not in newest and time.monotonic() < deadline:
                newest = sub.recv_latest(100)
        finally:
            raw.close(linger=0)
    assert newest[m.TOPIC_COLOR].frame_id == 9
    assert sub.stats.stale + sub.stats.invalid == n_broken
    assert sub.stats.invalid < n_broken


def test_tcp_kernel_buffers_are_bounded_only_when_asked(endpoints):
    """Linux autotunes a loopback tcp buffer to MBs (~8 raw 640×360 frames queued ahead of the ZeroMQ
    queue, seen with ``ss`` on a ward server): ``bus.tcp_buffer_kb`` caps every tcp:// side."""
    front, back = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    kb = BusConfig().tcp_buffer_kb
    assert kb == 256
    with (
        Proxy(front, back, tcp_buffer_kb=kb) as proxy,
        Publisher(front, tcp_buffer_kb=kb) as pub,
        Subscriber(back, "bed1", [m.TOPIC_COLOR], tcp_buffer_kb=kb) as sub,
        Subscriber(back, "bed1", [m.TOPIC_COLOR]) as unbounded,
        Subscriber(endpoints[1], "bed1", [m.TOPIC_COLOR], tcp_buffer_kb=kb) as local,
    ):
        assert proxy.tcp_buffer_kb == kb
        assert pub.sock.sndbuf == kb * 1024 and sub.sock.rcvbuf == kb * 1024
        assert unbounded.sock.rcvbuf == -1 and local.sock.rcvbuf == -1  # OS default; ipc:// untouched
        frame = m.ColorFrame(camera="bed1", frame_id=1, ts_us=1, image=_scene(360, 640))
        got = wait_for(lambda: pub.publish(frame) and sub.recv(50), timeout=5)
        assert got is not None and got.image.shape == (360, 640, 3)  # a frame larger than the buffer
