"""The live view in a real browser (headless Debian chromium via Playwright) on a running pipeline.

One pipeline (`run` with ``viewer.enabled``) serves every test here; the ward test adds a second bus
with two fake beds and a standalone ``kinect-occlusion view`` on both buses.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest
from browser import http_status, launch, need_browser, png_rgb, tinted, wait_js
from conftest import free_port, wait_for
from harness import ROOT, start, stop, write_config

from kinect_occlusion import messages as m
from kinect_occlusion.bus import Proxy, Publisher

pytestmark = pytest.mark.slow

TOKEN = "test-token-0123456789abcdef"
FPS = 15
SIZE = (640, 360)
DEMO_MODEL = ROOT / "recordings" / "demo_model.pt"


def save_shot(name: str, data: bytes) -> None:
    """Keep a screenshot for a person to look at when $KO_SCREENSHOT_DIR is set."""
    folder = os.environ.get("KO_SCREENSHOT_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / name).write_bytes(data)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """`run` on a synthetic scene with the demo model and the viewer on; yields (url, ipc dir)."""
    need_browser()
    tmp = tmp_path_factory.mktemp("viewer")
    ipc = Path(tempfile.mkdtemp(prefix="ko-", dir="/tmp"))
    port = free_port()
    cfg = write_config(
        tmp,
        ipc,
        DEMO_MODEL,
        camera={"synthetic_size": list(SIZE), "fps": FPS},
        fuser={"wait_for_partition_ms": 80},
        viewer={"enabled": True, "port": port, "token": TOKEN},
    )
    proc = start(["run", "--config", str(cfg)])
    url = f"http://127.0.0.1:{port}"
    try:
        up = wait_for(lambda: http_status(url) is not None or proc.poll() is not None, 60)
        assert up and proc.poll() is None, stop(proc)[1]
        yield url, ipc
    finally:
        code, out = stop(proc)
        shutil.rmtree(ipc, ignore_errors=True)
    assert code == 0, out
    assert http_status(url) is None, "the viewer outlived its pipeline"


@pytest.fixture(scope="module")
def browser(pipeline, tmp_path_factory):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        context = launch(p, tmp_path_factory.mktemp("chromium-profile"))
        yield context
        context.close()


def paused_canvas_shot(page) -> tuple[int, np.ndarray, bytes]:
    """Pause the page, then (frame id shown, canvas pixels, PNG) of the bed's canvas."""
    page.click("#pause")
    frame_id = int(page.evaluate("() => document.querySelector('canvas').dataset.frameId"))
    box = page.locator("canvas").bounding_box()
    size = page.evaluate(
        "() => [document.querySelector('canvas').width, document.querySelector('canvas').height]"
    )
    clip = {"x": round(box["x"]), "y": round(box["y"]), "width": size[0], "height": size[1]}
    png = page.screenshot(clip=clip)
    return frame_id, png_rgb(png), png


def tint_on_truth(frame_id: int, shot: np.ndarray) -> tuple[int, float]:
    """(tinted pixels, share of them on the scene's true occlusion) for a canvas screenshot."""
    import cv2

    from kinect_occlusion.sources.synthetic import render_scene
    from kinect_occlusion.viewer.render import downscale

    scene = render_scene(0, SIZE[0], SIZE[1], t=frame_id / FPS)
    original = downscale(scene.rgb, 640)
    assert shot.shape == original.shape, (shot.shape, original.shape)
    truth = cv2.dilate(scene.truth, np.ones((9, 9), np.uint8)).astype(bool)
    tint = tinted(shot, original)
    return int(tint.sum()), float((tint & truth).sum() / max(1, tint.sum()))


def test_bed_page_shows_the_live_overlay_with_the_tint_on_the_occlusion(pipeline, browser):
    url, _ = pipeline
    page = browser.new_page()
    page.goto(f"{url}/bed/bed1?token={TOKEN}")
    assert page.url == f"{url}/bed/bed1", "the token must leave the address bar"
    assert wait_js(page, "() => document.querySelector('canvas').dataset.fused === 'true'", 60)
    assert wait_js(page, "() => document.querySelector('table').textContent.includes('fuser')", 10)
    first_id, first, png1 = paused_canvas_shot(page)
    save_shot("bed-1.png", page.screenshot())
    n_tint, on_truth = tint_on_truth(first_id, first)
    assert n_tint > 200 and on_truth > 0.8, (n_tint, on_truth)

    page.click("#pause")  # resume, wait for a newer fused picture
    assert wait_js(
        page,
        "(id) => { const c = document.querySelector('canvas');"
        " return Number(c.dataset.frameId) >= id && c.dataset.fused === 'true'; }",
        20,
        first_id + FPS,
    )
    second_id, second, png2 = paused_canvas_shot(page)
    save_shot("bed-2.png", page.screenshot())
    assert second_id >= first_id + FPS and png1 != png2
    changed = float((np.abs(first.astype(np.int16) - second.astype(np.int16)).sum(axis=2) > 40).mean())
    assert changed > 0.002, changed  # the scene moved in one second: at least ~460 pixels differ
    n_tint, on_truth = tint_on_truth(second_id, second)
    assert n_tint > 200 and on_truth > 0.8, (n_tint, on_truth)
    text = page.inner_text("body")
    assert "capture→fused p50" in text and "partition age" in text and "restarts" in text
    page.close()


# ----------------------------------------------------------------------------- ward


def feed_fake_beds(frontend: str, stop_event: threading.Event) -> None:
    """Two more beds on another bus: synthetic frames, their true masks (bed3 coarse-only), heartbeats."""
    from kinect_occlusion.sources.synthetic import render_scene

    scenes = {
        cam: [render_scene(seed, 320, 240, t=i / 5) for i in range(4)]
        for cam, seed in (("bed2", 1), ("bed3", 2))
    }
    with Publisher(frontend, sndhwm=64) as pub:
        frame_id = 0
        while not stop_event.wait(0.1):
            for cam, frames in scenes.items():
                scene, origin = frames[frame_id % len(frames)], m.now_us()
                common = {
                    "camera": cam,
                    "frame_id": frame_id,
                    "ts_us": frame_id * 100_000,
                    "origin_us": origin,
                }
                pub.publish(m.ColorFrame(image=scene.rgb, **common))
                fused = cam == "bed2"  # a fused mask carries its votes and partition
                votes = np.zeros((2 if fused else 0, 2), np.float32)
                part = frame_id if fused else -1
                mask = m.OcclusionMask(
                    mask=scene.truth, fused=fused, votes=votes, partition_frame_id=part, **common
                )
                pub.publish(mask)
                pub.publish(
                    m.Status(
                        **common, worker="capture", pid=os.getpid(), state="streaming", info={"rate_hz": 10.0}
                    )
                )
            frame_id += 1


@pytest.fixture
def second_bus():
    """Another pipeline's bus (a real proxy) with two fake beds on it; yields its subscriber endpoint."""
    ipc = Path(tempfile.mkdtemp(prefix="ko-", dir="/tmp"))
    stop_event = threading.Event()
    with Proxy(f"ipc://{ipc}/in", f"ipc://{ipc}/out", hwm=16):
        feeder = threading.Thread(target=feed_fake_beds, args=(f"ipc://{ipc}/in", stop_event), daemon=True)
        feeder.start()
        try:
            yield f"ipc://{ipc}/out"
        finally:
            stop_event.set()
            feeder.join(5)
    shutil.rmtree(ipc, ignore_errors=True)


BADGES = (
    "() => Object.fromEntries([...document.querySelectorAll('section.tile')].map("
    "t => [t.dataset.camera, t.querySelector('.badge').textContent]))"
)


def tile_frames(page) -> dict[str, int]:
    return page.evaluate(
        "() => Object.fromEntries([...document.querySelectorAll('section.tile')].map("
        "t => [t.dataset.camera, Number(t.querySelector('canvas').dataset.frameId)]))"
    )


def test_ward_page_shows_every_bed_live(pipeline, second_bus, browser):
    url, ipc = pipeline
    port = free_port()
    view = start(
        ["view", "-e", f"ipc://{ipc}/out", "-e", second_bus, "--camera", "*", "--port", str(port)],
        env={"KINECT_OCCLUSION_VIEWER_TOKEN": TOKEN},
    )
    try:
        assert wait_for(lambda: http_status(f"http://127.0.0.1:{port}/") is not None, 30), stop(view)[1]
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{port}/?token={TOKEN}")
        assert wait_js(
            page, "() => document.querySelectorAll('section.tile canvas[data-fused]').length === 3", 30
        )
        first = tile_frames(page)
        assert set(first) == {"bed1", "bed2", "bed3"}
        assert wait_js(
            page,
            "(first) => [...document.querySelectorAll('section.tile')].every("
            "t => Number(t.querySelector('canvas').dataset.frameId) > first[t.dataset.camera])",
            15,
            first,
        ), (first, tile_frames(page))
        # bed3 sends coarse-only masks: marked; bed2 fused: unmarked. Waits: under load the proxy may
        # drop masks for a second, and the tile then honestly says NO MASK
        marked = wait_js(page, BADGES + ".bed3 === 'COARSE ONLY'", 10)
        unmarked = wait_js(page, BADGES + ".bed2 === ''", 10)
        assert marked and unmarked, page.evaluate(BADGES)
        assert wait_js(
            page,
            "() => [...document.querySelectorAll('.tile .line')].every(l => l.textContent.includes('p95'))",
            5,
        )
        assert list(tile_frames(page)) == ["bed1", "bed2", "bed3"]
        save_shot("ward.png", page.screenshot())
        page.close()
    finally:
        code, out = stop(view)
    assert code == 0 and "Traceback" not in out, out


# ----------------------------------------------------------------------------- access


WS_PROBE = """(path) => new Promise((resolve) => {
    const ws = new WebSocket(`ws://${location.host}${path}`);
    ws.onopen = () => { ws.close(); resolve("open"); };
    ws.onerror = () => resolve("refused");
    setTimeout(() => resolve("timeout"), 5000);
})"""


def ws_attempt(url: str, headers: dict | None = None) -> int | str:
    """HTTP status of a refused WebSocket handshake, or the type of the first message received.

    (aiohttp client in a thread: Playwright's sync API owns this thread's event loop.)
    """
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _ws_attempt(url, headers)).result(timeout=30)


async def _ws_attempt(url: str, headers: dict | None) -> int | str:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        try:
            async with session.ws_connect(url, headers=headers or {}) as ws:
                msg = await ws.receive(timeout=10)
                return msg.type.name
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status


def test_page_and_websocket_refused_without_the_token(pipeline, browser):
    url, _ = pipeline
    browser.clear_cookies()
    page = browser.new_page()
    for address in (f"{url}/bed/bed1", f"{url}/", f"{url}/bed/bed1?token=wrong-{TOKEN}"):
        response = page.goto(address)
        assert response.status == 401 and "token is required" in page.inner_text("body"), address
        assert response.headers["cache-control"] == "no-store"
    # The browser's own WebSocket from that origin, without the cookie: refused
    assert page.evaluate(WS_PROBE, "/ws?camera=bed1") == "refused"
    assert page.evaluate(WS_PROBE, f"/ws?camera=bed1&token=wrong-{TOKEN}") == "refused"
    # With the token the same probe opens (so the probe can tell)
    page.goto(f"{url}/bed/bed1?token={TOKEN}")
    assert page.evaluate(WS_PROBE, "/ws?camera=bed1") == "open"
    page.close()
    ws = url.replace("http://", "ws://") + "/ws?camera=bed1"
    assert ws_attempt(ws) == 401
    assert ws_attempt(f"{ws}&token=x{TOKEN[1:]}") == 401
    assert ws_attempt(ws, {"Authorization": f"Bearer {TOKEN}", "Origin": "http://evil.example"}) == 403
    assert ws_attempt(f"{ws}&token={TOKEN}") in ("BINARY", "TEXT")
