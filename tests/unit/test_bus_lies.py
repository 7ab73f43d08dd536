"""Lies that pass the schema, as a buggy or hostile peer on the bus would send them (real sockets
where the fault is in the transport, the pure function where it is in pure code)."""

from __future__ import annotations

import multiprocessing
import time

import numpy as np
import zmq

from kinect_occlusion import messages as m
from kinect_occlusion.bus import MAX_DRAIN, Subscriber

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


def test_a_flood_of_small_valid_messages_never_keeps_drain_or_recv_latest_from_returning(ipc_dir):
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
