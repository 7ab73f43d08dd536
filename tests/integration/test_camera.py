"""A live (fake) Kinect under the daemon: missing at start-up, unplugged mid-run — capture retries,
publishes its state, and the other workers keep running."""

from __future__ import annotations

import json
import os

import pytest
from conftest import wait_for
from harness import ROOT, collect, start, stop, subscriber, tiny_checkpoint, worker_pids, write_config

from kinect_occlusion import messages as m

pytestmark = pytest.mark.slow


def capture_states(ipc_dir, seconds: float, want: set[str]) -> set[str]:
    """Capture's states within ``seconds``, or until one of ``want`` came."""

    def states(msgs):
        return {s.info.get("camera_state", s.state) for s in msgs if s.worker == "capture"}

    with subscriber(ipc_dir, (m.TOPIC_STATUS,)) as sub:
        return states(collect(sub, seconds, until=lambda msgs: states(msgs) & want))


def test_missing_then_unplugged_camera_is_retried_while_the_pipeline_stays_up(tmp_path, ipc_dir):
    cfg = write_config(
        tmp_path,
        ipc_dir,
        tiny_checkpoint(tmp_path / "model.pt"),
        camera={"source": "kinect", "fps": 15, "reconnect_backoff_s": [0.2, 0.4]},
        deeplab={"runtime": "torch"},  # no ONNX export at start-up (the camera is under test)
    )
    # ~3 s missing at start (8 polls at 0.2 s, then 0.4 s), and ~3 s unplugged after capture 45
    script = {"absent_polls": 8, "drop_at": [45], "replug_after_polls": 8}
    env = {
        "PYTHONPATH": f"{ROOT / 'tests' / 'fakes'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "FAKE_PYK4A_SCRIPT": json.dumps(script),
    }
    proc = start(["run", "--config", str(cfg)], env=env)
    try:
        missing = {"connecting", "reconnecting"}
        seen = wait_for(lambda: capture_states(ipc_dir, 1.0, missing) & missing, timeout=60)
        assert seen, "capture never reported a missing camera"
        pids = worker_pids(ipc_dir)

        # the camera appears: masks flow; then it is unplugged (capture 45) and comes back
        def camera_states(msgs):
            return {
                x.info.get("camera_state", x.state)
                for x in msgs
                if isinstance(x, m.Status) and x.worker == "capture"
            }

        def n_masks(msgs):
            return sum(isinstance(x, m.OcclusionMask) for x in msgs)

        with subscriber(ipc_dir, (m.TOPIC_STATUS, m.TOPIC_OCCLUSION)) as sub:
            msgs = collect(
                sub, 40, until=lambda got: "reconnecting" in camera_states(got) and n_masks(got) >= 40
            )
        states, masks = camera_states(msgs), n_masks(msgs)
        assert {"streaming", "reconnecting"} <= states, states
        assert masks >= 40
        assert worker_pids(ipc_dir) == pids  # nothing was restarted: capture retried by itself
    finally:
        code, out = stop(proc)
    assert code == 0, out
