"""The viewer without a browser: its hub on a real bus (garbage, bounds, idle), and its start-up lines."""

from __future__ import annotations

import asyncio
import re
import socket
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
import zmq
from conftest import free_port, wait_for
from harness import cli, start, stop, write_config

from kinect_occlusion import messages as m
from kinect_occlusion.bus import Proxy, Publisher
from kinect_occlusion.viewer.hub import MAX_COLOR_FRAMES, ViewerHub, ViewOptions
from kinect_occlusion.viewer.render import JPEG_MAGIC, unpack_frame


def publish_loop(frontend: str, stop: threading.Event, bad_mask: bool = False) -> None:
    """bed1 frames and masks at ~50 Hz, each preceded by garbage the hub must drop."""
    ctx = zmq.Context.instance()
    raw = ctx.socket(zmq.PUB)
    raw.connect(frontend)
    rgb = np.full((240, 320, 3), 90, np.uint8)
    mask = np.zeros((0, 5) if bad_mask else (240, 320), np.uint8)
    with Publisher(frontend, sndhwm=64) as pub:
        frame_id = 0
        while not stop.wait(0.02):
            raw.send_multipart([b"mask.occlusion/bed1/", b"\xc1 not msgpack", b"x"])
            common = {"camera": "bed1", "frame_id": frame_id, "ts_us": frame_id, "origin_us": m.now_us()}
            pub.publish(m.ColorFrame(image=rgb, **common))
            votes = np.zeros((2, 2), np.float32)  # a fused mask carries its votes and partition
            pub.publish(
                m.OcclusionMask(mask=mask, fused=True, votes=votes, partition_frame_id=frame_id, **common)
            )
            frame_id += 1
    raw.close(linger=0)


@pytest.fixture
def bus(endpoints):
    with Proxy(*endpoints, hwm=64):
        yield endpoints


def test_hub_subscribes_only_while_watched_and_drops_garbage(bus):
    frontend, backend = bus
    stop = threading.Event()
    feeder = threading.Thread(target=publish_loop, args=(frontend, stop), daemon=True)
    hub = ViewerHub([backend], "*", ViewOptions(max_fps=30, max_width=160), idle_close_s=0.2)
    hub.start()
    feeder.start()
    try:
        assert not wait_for(lambda: hub.subscribed, 0.5)  # nobody watching: no subscription at all
        hub.watch("*")
        assert wait_for(lambda: hub.packets("*"), 10)
        (camera, _, packet), *_ = hub.packets("*")
        meta, jpeg = unpack_frame(packet)
        assert camera == "bed1" and meta["has_mask"] and meta["fused"] and jpeg.startswith(JPEG_MAGIC)
        import cv2

        assert cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).shape == (120, 160, 3)
        assert wait_for(lambda: hub.counters()["invalid"] >= 3, 5), hub.counters()
        assert hub.held("bed1")[0] <= 2  # frames older than the newest mask are let go
        hub.unwatch("*")
        assert wait_for(lambda: not hub.subscribed, 5)
    finally:
        stop.set()
        feeder.join(5)
        hub.stop()
    assert not hub.is_alive()


def test_hub_bounds_frames_without_masks_and_counts_bad_masks(bus):
    frontend, backend = bus
    hub = ViewerHub([backend], "bed1", ViewOptions(max_fps=30, max_width=160))
    hub.start()
    hub.watch("bed1")
    stop = threading.Event()
    try:
        assert wait_for(lambda: hub.subscribed, 5)
        with Publisher(frontend, sndhwm=256) as pub:
            # Subscriptions reach a fresh publisher asynchronously: send until the hub sees frames
            rgb = np.zeros((240, 320, 3), np.uint8)
            for frame_id in range(400):
                pub.publish(m.ColorFrame(camera="bed1", frame_id=frame_id, ts_us=frame_id, image=rgb))
                if frame_id % 50 == 49 and hub.held("bed1")[0] >= MAX_COLOR_FRAMES:
                    break
                stop.wait(0.002)
        assert wait_for(lambda: hub.held("bed1")[0] == MAX_COLOR_FRAMES, 5), hub.held("bed1")
        # A mask without pixels (nothing to draw) is refused on the wire now, counted as invalid
        # (with the feeder's garbage), never a render error; the hub goes on
        feeder = threading.Thread(target=publish_loop, args=(frontend, stop, True), daemon=True)
        feeder.start()
        assert wait_for(lambda: hub.counters().get("invalid", 0) >= 4, 10), hub.counters()
        assert hub.counters().get("render_errors", 0) == 0 and hub.is_alive()
    finally:
        stop.set()
        hub.stop()


def one_line_error(res: subprocess.CompletedProcess, *needles: str) -> None:
    lines = [line for line in res.stderr.splitlines() if not line.startswith("WARNING ")]
    assert res.returncode == 2 and len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_view_refuses_an_open_bind_without_token_and_a_busy_port(tmp_path, ipc_dir):
    cfg = str(write_config(tmp_path, ipc_dir, None))
    one_line_error(cli("view", "--config", cfg, "--bind", "0.0.0.0"), "refusing", "0.0.0.0", "token")
    one_line_error(cli("view", "--config", cfg, "--bind", "::", "--token", "short"), "at least 16")
    one_line_error(cli("view", "--config", cfg, "--camera", "bed 1/x"), "--camera 'bed 1/x': a camera id is")
    one_line_error(
        cli("view", "--config", cfg, "-e", "foo://bar"), "--endpoint foo://bar: endpoint must start"
    )
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        one_line_error(
            cli("view", "--config", cfg, "--port", str(port)), f"cannot listen on 127.0.0.1:{port}"
        )
        # The daemon checks its viewer port before starting any worker
        cfg2 = write_config(tmp_path, ipc_dir, None, viewer={"enabled": True, "port": port})
        one_line_error(cli("run", "--config", str(cfg2), timeout=90), "viewer: cannot listen", "viewer.port")
    bad = write_config(
        tmp_path, ipc_dir, None, viewer={"enabled": True, "bind": "0.0.0.0", "port": free_port()}
    )
    one_line_error(cli("run", "--config", str(bad)), "viewer: refusing to serve patient video on 0.0.0.0")


def test_hub_survives_an_endpoint_it_cannot_connect():
    hub = ViewerHub(["tcp://no such host:x"], "*", ViewOptions())
    hub.start()
    hub.watch("*")
    try:
        assert wait_for(lambda: hub.counters().get("connect_errors", 0) >= 1, 5)
        assert hub.is_alive() and not hub.subscribed
    finally:
        hub.stop()


VIEWER_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d [\d:,]{12} viewer +INFO +kinect_occlusion\.viewer\.hub: viewer: subscribed"
)


def _viewer_lines(text: str) -> list[str]:
    return [x for x in text.splitlines() if VIEWER_LINE.match(x)]


async def _watch_until_logged(url: str, log_file: Path) -> list[str]:
    """Open a page's WebSocket (the viewer then subscribes, and logs it) until the log file says so."""
    import aiohttp

    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        await ws.receive(timeout=20)
        for _ in range(200):
            if lines := _viewer_lines(log_file.read_text()):
                return lines
            await asyncio.sleep(0.1)
    return []


def test_the_daemons_viewer_logs_through_the_supervisor_like_a_worker(tmp_path, ipc_dir):
    pytest.importorskip("aiohttp")
    port, log_file = free_port(), tmp_path / "daemon.log"
    cfg = write_config(
        tmp_path, ipc_dir, None, viewer={"enabled": True, "port": port}, logging={"file": str(log_file)}
    )
    proc = start(["run", "--config", str(cfg)])
    try:
        assert wait_for(lambda: log_file.exists() and "started viewer" in log_file.read_text(), 60)
        url = f"ws://127.0.0.1:{port}/ws?camera=bed1"
        # The supervisor's format in its log file, with the process name "viewer"
        assert wait_for(lambda: _try(asyncio.run, _watch_until_logged(url, log_file)), 30), (
            log_file.read_text()
        )
    finally:
        code, out = stop(proc)
    assert code == 0, out
    assert _viewer_lines(out), out[-2000:]  # and on its stderr


def _try(fn, *args):
    """``fn(*args)``, or None while the viewer does not answer yet."""
    try:
        return fn(*args)
    except OSError:
        return None
