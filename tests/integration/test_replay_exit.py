"""Capture's end of a recording: the worker exits cleanly, so the file is replayed exactly once."""

from __future__ import annotations

import pytest
from harness import collect, start, stop, subscriber, write_config, write_recording

from kinect_occlusion import messages as m

pytestmark = pytest.mark.slow


def test_replay_at_max_rate_ends_without_a_capture_restart(tmp_path, ipc_dir):
    """Regression (issue #10, defect 5): capture aborted in libzmq at exit and was restarted."""
    rec = tmp_path / "rec.mkv"
    write_recording(rec, n_frames=20, fps=15)
    # A large HWM keeps frames flowing while capture exits (what made the freed buffers be read)
    cfg = write_config(tmp_path, ipc_dir, None, bus={"sndhwm": 64, "rcvhwm": 64})
    with subscriber(ipc_dir, (m.TOPIC_COLOR,)) as sub:
        proc = start(["replay", str(rec), "--config", str(cfg), "--rate", "max"])
        msgs = collect(sub, 60, until=lambda _: proc.poll() is not None)
        code, out = stop(proc)
    assert code == 0, out
    assert "capture exited" not in out and "restarting" not in out, out
    ids = [x.frame_id for x in msgs if isinstance(x, m.ColorFrame)]
    assert ids and all(a < b for a, b in zip(ids, ids[1:], strict=False)), ids
    assert "capture finished (end of source)" in out
