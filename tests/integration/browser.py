"""Headless Debian chromium driven by Playwright (no browser download): launch, wait, look at pixels."""

from __future__ import annotations

import os
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from kinect_occlusion.viewer.chromium import CHROMIUM, FLAGS


def need_browser() -> None:
    """Skip where chromium or Playwright is missing (``make test`` installs both); fail on CI."""
    missing = []
    if not Path(CHROMIUM).exists():
        missing.append("Debian chromium (apt-get install chromium chromium-driver)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("playwright (pip install -e '.[dev]')")
    if missing:
        reason = "browser tests need " + " and ".join(missing) + "; 'make test' installs them"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


def launch(playwright, profile: Path):
    """Chromium with the flags this closed network needs and a fresh profile folder."""
    shutil.rmtree(profile, ignore_errors=True)
    # launch_persistent_context is Playwright's way to pass --user-data-dir
    return playwright.chromium.launch_persistent_context(
        str(profile),
        executable_path=CHROMIUM,
        args=list(FLAGS),
        headless=True,
        viewport={"width": 1280, "height": 900},
    )


def wait_js(page, expression: str, timeout: float = 30.0, arg=None):
    """Poll a JS function (evaluated over CDP, so the page's CSP stays on) until it returns truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = page.evaluate(expression, arg)
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def http_status(url: str, timeout: float = 2.0) -> int | None:
    """HTTP status of a GET (None when nothing listens)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as res:
            return res.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def png_rgb(data: bytes) -> np.ndarray:
    """RGB array of a PNG screenshot."""
    import cv2

    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return np.ascontiguousarray(img[..., ::-1])


def tinted(shot: np.ndarray, original: np.ndarray) -> np.ndarray:
    """Pixels of ``shot`` that look like ``original`` tinted by overlay.TINT (α 0.5).

    Closer to the tinted colour than to the original, and greener before (the magenta tint halves
    green; the yellow partition edges raise it).
    """
    from kinect_occlusion.overlay import TINT

    shot, orig = shot.astype(np.float32), original.astype(np.float32)
    to_tint = np.abs(shot - (0.5 * orig + 0.5 * TINT)).sum(axis=2)
    to_orig = np.abs(shot - orig).sum(axis=2)
    return (to_tint < to_orig) & (to_orig > 60) & (orig[..., 1] - shot[..., 1] > 25)
