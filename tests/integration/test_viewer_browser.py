"""The live view in a real browser (headless Debian chromium via Playwright) on a running pipeline.

One pipeline (`run` with ``viewer.enabled``) serves every test here; the ward test adds a second bus
with two fake beds and a standalone ``kinect-occlusion view`` on both buses.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from browser import http_status, launch, need_browser, png_rgb, tinted, wait_js
from conftest import free_port, wait_for
from harness import ROOT, start, stop, write_config

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
    save_shot(f"canvas-{first_id}.png", png1)
    n_tint, on_truth = tint_on_truth(first_id, first)
    assert n_tint > 200 and on_truth > 0.8, (n_tint, on_truth)

    page.click("#pause")  # resume, wait for a newer fused picture
    assert wait_js(
        page,
        "(id) => { const c = document.querySelector('canvas');"
        " return Number(c.dataset.frameId) > id && c.dataset.fused === 'true'; }",
        20,
        first_id,
    )
    second_id, second, png2 = paused_canvas_shot(page)
    save_shot("bed-2.png", page.screenshot())
    assert second_id > first_id and png1 != png2
    assert np.abs(first.astype(np.int16) - second.astype(np.int16)).mean() > 0.5
    n_tint, on_truth = tint_on_truth(second_id, second)
    assert n_tint > 200 and on_truth > 0.8, (n_tint, on_truth)
    text = page.inner_text("body")
    assert "capture→fused p50" in text and "partition age" in text and "restarts" in text
    page.close()
