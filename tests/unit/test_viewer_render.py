"""Viewer pure parts: pictures for the browser, the status summary, who may watch, the config."""

from __future__ import annotations

import math
import time
from types import SimpleNamespace

import numpy as np
import pytest

from kinect_occlusion.config import validate
from kinect_occlusion.errors import UserError
from kinect_occlusion.overlay import TINT
from kinect_occlusion.viewer.render import (
    camera_summary,
    display_size,
    pack_frame,
    render_view,
    shrink_nearest,
    unpack_frame,
)
from kinect_occlusion.viewer.security import bind_problem, check_bind, is_loopback, token_matches


def test_display_size_keeps_aspect_and_never_upscales():
    assert display_size(1280, 720, 640) == (640, 360)
    assert display_size(320, 240, 640) == (320, 240)
    assert display_size(4096, 3072, 64) == (64, 48)


def test_shrink_nearest_picks_exact_source_pixels():
    labels = np.arange(16, dtype=np.int32).reshape(4, 4)
    assert shrink_nearest(labels, (2, 2)).tolist() == [[0, 2], [8, 10]]
    assert shrink_nearest(labels, (4, 4)) is labels


def test_render_view_tints_exactly_the_mask_at_display_size():
    rgb = np.full((720, 1280, 3), 100, np.uint8)
    mask = np.zeros((180, 320), np.uint8)  # a mask at another resolution is mapped onto the picture
    mask[:90, :160] = 1  # top-left quarter
    out = render_view(rgb, mask, None, fused=True, max_width=640)
    assert out.shape == (360, 640, 3)
    expected = (0.5 * 100 + 0.5 * TINT).astype(np.uint8)
    assert (out[:180, :320] == expected).all()
    assert (out[180:, :] == 100).all() and (out[:, 320:] == 100).all()


def test_render_view_marks_coarse_only_and_draws_partition_edges():
    rgb = np.full((240, 320, 3), 100, np.uint8)
    mask = np.zeros((240, 320), np.uint8)
    labels = np.zeros((240, 320), np.int32)
    labels[:, 160:] = 1
    coarse = render_view(rgb, mask, None, fused=False, max_width=320)
    assert (coarse[0, :] == (220, 0, 0)).all() and (coarse[120, 4:-4] == 100).all()
    fused = render_view(rgb, mask, labels, fused=True, max_width=320)
    assert (fused[100, 159] == (255, 230, 0)).all() and (fused[0, 0] == 100).all()
    plain = render_view(rgb, None, None, fused=True, max_width=320)
    assert (plain == 100).all()
    with pytest.raises(ValueError, match="empty mask"):
        render_view(rgb, np.zeros((0, 5), np.uint8), None, fused=True, max_width=320)


def test_frame_message_round_trip_and_malformed():
    data = pack_frame({"camera": "bed1", "frame_id": 7}, b"\xff\xd8jpeg")
    assert unpack_frame(data) == ({"camera": "bed1", "frame_id": 7}, b"\xff\xd8jpeg")
    for bad in (b"", b"\x00\x00", b"\x00\x00\x00\x09{}"):
        with pytest.raises(ValueError):
            unpack_frame(bad)


def status(worker: str, state: str = "ready", **info) -> SimpleNamespace:
    return SimpleNamespace(worker=worker, state=state, info=info)


def test_summary_of_untrusted_status_never_fails_and_keeps_only_sane_values():
    now = time.monotonic()
    statuses = {
        "capture": (status("capture", "streaming", rate_hz=15.0, errors=0), now),
        "deeplab": (status("deeplab", "x" * 500, rate_hz="fast", errors=True, last_error=["no"]), now),
        "fuser": (status("fuser", rate_hz=math.nan), now - 60),  # silent for a minute
        "supervisor": (
            status(
                "supervisor", "running", workers={"capture": {"restarts": 2, "alive": True}, "sam": "junk"}
            ),
            now,
        ),
    }
    out = camera_summary(statuses, [100.0, 200.0, 300.0], [True, False, True, True], -1.0, now)
    w = out["workers"]
    assert out["pipeline"] == "running" and set(w) == {"capture", "deeplab", "fuser", "sam"}
    assert w["capture"] == {
        "state": "streaming",
        "rate_hz": 15.0,
        "errors": 0.0,
        "last_error": "",
        "restarts": 2.0,
        "alive": True,
        "failed": False,
    }
    assert (
        len(w["deeplab"]["state"]) == 20
        and w["deeplab"]["rate_hz"] is None
        and w["deeplab"]["errors"] is None
    )
    assert w["fuser"]["state"] == "silent" and w["fuser"]["rate_hz"] is None
    assert w["sam"]["state"] == "unknown" and w["sam"]["restarts"] is None
    assert out["latency_ms"] == {"p50": 200.0, "p95": 290.0} and out["fused_share"] == 0.75
    assert out["partition_age_ms"] is None  # -1: no partition used


def test_loopback_needs_no_token_anything_else_does():
    assert (
        is_loopback("127.0.0.1")
        and is_loopback("127.8.0.1")
        and is_loopback("::1")
        and is_loopback("localhost")
    )
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3") and not is_loopback("ward.local")
    assert bind_problem("127.0.0.1", None) is None
    assert "without a token" in (bind_problem("0.0.0.0", None) or "")
    assert bind_problem("0.0.0.0", "a" * 16) is None
    assert "at least 16" in (bind_problem("127.0.0.1", "short") or "")
    with pytest.raises(UserError, match="^viewer: refusing"):
        check_bind("::", "")


def test_token_compare():
    assert token_matches(None, None) and token_matches("anything", None)
    assert token_matches("s" * 20, "s" * 20)
    assert not token_matches(None, "s" * 20) and not token_matches("s" * 19, "s" * 20)
    assert not token_matches("é" * 20, "s" * 20)


def test_viewer_config_section():
    cfg = validate({})
    assert not cfg.viewer.enabled and cfg.viewer.bind == "127.0.0.1" and cfg.viewer.token is None
    with pytest.raises(UserError, match="viewer: refusing to serve patient video on 0.0.0.0"):
        validate({"viewer": {"bind": "0.0.0.0"}})
    with pytest.raises(UserError, match="viewer.max_fps"):
        validate({"viewer": {"max_fps": 0}})
    assert validate({"viewer": {"bind": "0.0.0.0", "token": "t" * 16}}).viewer.token == "t" * 16
