"""An encrypted bus end to end: the daemon on tcp:// with CURVE; only authorised keys get masks,
and a subscriber-role key (a monitoring app) cannot publish into the pipeline's streams."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from conftest import free_port
from harness import ROOT, start, stop, tiny_checkpoint, write_config

from kinect_occlusion import messages as m
from kinect_occlusion.bus import Publisher, Subscriber, load_curve
from kinect_occlusion.commands.keys import generate

pytestmark = pytest.mark.slow


def test_curve_pipeline_serves_only_authorised_subscribers(tmp_path, ipc_dir):
    keys, intruder = tmp_path / "keys", tmp_path / "intruder"
    generate(keys, ["client"], ["monitor"])
    generate(intruder, ["client"])
    front, back = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    cfg = write_config(
        tmp_path,
        ipc_dir,
        tiny_checkpoint(tmp_path / "model.pt"),
        bus={"frontend": front, "backend": back, "curve": {"enabled": True, "keys_dir": str(keys)}},
        deeplab={"runtime": "torch"},  # no ONNX export at start-up (the bus is under test)
    )
    good = load_curve(str(keys), "server.key_secret", "monitor.key_secret", "authorized", server=False)
    bad_pair = load_curve(str(intruder), "server.key_secret", "client.key_secret", "authorized", server=False)
    bad = type(good)(good.server_public, None, bad_pair.client_public, bad_pair.client_secret)
    proc = start(["run", "--config", str(cfg)])
    try:
        with (
            Subscriber(back, "bed1", [m.TOPIC_OCCLUSION, m.TOPIC_COLOR], 100, bad) as spy,
            Subscriber(back, "bed1", [m.TOPIC_OCCLUSION], 100, good) as sub,
        ):
            got = None
            for _ in range(600):  # up to 60 s for model loading and the first masks
                got = sub.recv(100)
                if got is not None:
                    break
            assert isinstance(got, m.OcclusionMask)
            # the monitor's key subscribes, but what it publishes never reaches a subscriber
            fake = m.OcclusionMask(
                camera="bed1", frame_id=10**9, ts_us=0, mask=np.ones((720, 1280), np.uint8)
            )
            with Publisher(front, 100, good) as pub:
                for _ in range(20):
                    pub.publish(fake)
                    got = sub.recv(100)
                    assert got is None or got.frame_id < 10**9
            assert spy.recv(1000) is None and spy.stats.received == 0
        # the CLI tools use the client key named in the config (both at once: status waits 2 s)
        tools = [
            subprocess.Popen(
                [sys.executable, "-m", "kinect_occlusion", *args, "--config", str(cfg)],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for args in (["subscribe", "--count", "2"], ["status", "--json", "--wait", "2"])
        ]
        for tool in tools:
            _, err = tool.communicate(timeout=60)
            assert tool.returncode == 0, err
    finally:
        code, out = stop(proc)
    assert code == 0, out
