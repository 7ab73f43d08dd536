"""The daemon under faults: killed workers, persistent failures, garbage on the bus, slow and
vanished subscribers, its log file rotated or on a full disk, SIGTERM. Real processes and sockets;
only the camera and weights are fake."""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import zmq
from conftest import wait_for
from harness import (
    FAULT_RUNTIME,
    Daemons,
    SharedDaemon,
    alive,
    collect,
    rss_mb,
    stop,
    subscriber,
    worker_pids,
)

from kinect_occlusion import messages as m
from kinect_occlusion.runtime.stages import NAMES

pytestmark = pytest.mark.slow

WORKERS = NAMES


@pytest.fixture
def daemon(tmp_path, ipc_dir):
    """Launches daemons on an endless synthetic camera; stops them at the end."""
    daemons = Daemons(tmp_path, ipc_dir)
    yield daemons.launch
    daemons.stop_all()


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One daemon for the tests that leave it running (one start-up, not one per test); a test that
    stops it leaves the next one a fresh daemon. Fast hang detection (``FAULT_RUNTIME``: 3 s) for the
    hung-worker test; the other tests' workers beat every 0.25 s, so 3 s of silence is a hang there too."""
    tmp = tmp_path_factory.mktemp("faults")
    daemon = SharedDaemon(tmp, runtime=FAULT_RUNTIME, logging={"file": str(tmp / "pipeline.log")})
    yield daemon
    daemon.close()


def every_worker_said(msgs) -> bool:
    """Whether ``msgs`` (Status) hold one of every worker's heartbeats."""
    return set(WORKERS) <= {s.worker for s in msgs}


def masks_flow(ipc_dir, n: int = 3, timeout: float = 20.0) -> bool:
    with subscriber(ipc_dir) as sub:
        return len(collect(sub, timeout, until=lambda msgs: len(msgs) >= n)) >= n


def test_each_killed_worker_is_restarted_and_masks_resume(shared):
    proc, ipc_dir = shared.get(), shared.ipc_dir
    pids = worker_pids(ipc_dir)
    assert set(pids) == set(WORKERS)
    assert masks_flow(ipc_dir)
    for name in WORKERS:
        os.kill(pids[name], signal.SIGKILL)
        new = wait_for(
            lambda n=name, old=pids[name]: (p := worker_pids(ipc_dir, 5)).get(n) not in (None, old) and p, 30
        )
        assert new, f"{name} was not restarted"
        assert masks_flow(ipc_dir), f"masks did not resume after killing {name}"
        for other in WORKERS:
            if other != name:
                assert new[other] == pids[other], f"{other} restarted when {name} was killed"
        pids = new
    assert proc.poll() is None  # test_sigterm_... stops it: exit 0, none of these workers left alive


def test_worker_failing_on_every_frame_is_given_up_without_taking_the_daemon_down(daemon, ipc_dir, tmp_path):
    # the partition worker: coarse masks still flow, so the daemon stays up, degraded and saying so
    log = tmp_path / "daemon.log"
    proc = daemon(
        env={"KINECT_OCCLUSION_FAULT": "sam=raise"},
        log=log,
        runtime={"restart_backoff_s": [0.2, 0.4], "max_restarts": 2, "restart_window_s": 120},
    )

    def given_up(msg):
        return msg.worker == "supervisor" and msg.info["workers"]["sam"]["failed"]

    def gave_up():  # stops at the first supervisor Status saying so, not at the end of a 2 s window
        with subscriber(ipc_dir, (m.TOPIC_STATUS,)) as sub:
            msgs = collect(sub, 2, until=lambda ms: bool(ms) and given_up(ms[-1]))
        return msgs[-1] if msgs and given_up(msgs[-1]) else None

    status = wait_for(gave_up, timeout=90, interval=0.2)
    assert status is not None and status.state == "degraded"
    assert status.info["workers"]["sam"]["restarts"] == 2
    assert proc.poll() is None  # the daemon stays up, the others keep running
    assert all(status.info["workers"][w]["alive"] for w in ("capture", "deeplab", "fuser"))
    with subscriber(ipc_dir) as sub:  # coarse masks go on, flagged unfused
        masks = collect(sub, 10, until=lambda msgs: len(msgs) >= 3)
    assert len(masks) >= 3 and not any(x.fused for x in masks)
    # the warning repeats every report interval (1 s)
    assert wait_for(lambda: log.read_text().count("DEGRADED: sam was given up") >= 2, 5), log.read_text()
    code, _ = stop(proc)
    out = log.read_text()
    assert code == 4, out  # exit code says a worker was given up
    assert "giving up on it" in out and "injected fault" in out


def test_garbage_on_the_bus_is_counted_and_survived(shared):
    proc, ipc_dir = shared.get(), shared.ipc_dir
    pids = worker_pids(ipc_dir)
    assert masks_flow(ipc_dir)
    rss0 = {w: rss_mb(p) for w, p in pids.items()}
    ctx = zmq.Context()
    raw = ctx.socket(zmq.PUB)
    raw.connect(f"ipc://{ipc_dir}/in")
    time.sleep(0.5)
    rng = np.random.default_rng(1)
    good = [
        bytes(f)
        for f in m.encode(
            m.ColorFrame(camera="bed1", frame_id=10**6, ts_us=0, image=np.zeros((240, 320, 3), np.uint8))
        )
    ]
    header = m.encode(
        m.CoarseMask(
            camera="bed1", frame_id=1, ts_us=0, prob=np.zeros((240, 320), np.uint8), roi=(0, 0, 320, 320)
        )
    )
    for i in range(300):
        for topic in (b"frame.color/bed1/", b"mask.coarse/bed1/", b"partition/bed1/"):
            raw.send_multipart([topic, rng.bytes(int(rng.integers(0, 200))), rng.bytes(64)])
        wrong_schema = good[1].replace(b"\xa6schema\x02", b"\xa6schema\x07", 1)
        raw.send_multipart([good[0], wrong_schema, good[2]])
        raw.send_multipart([good[0], good[1], good[2][:1000]])  # lying shape
        raw.send_multipart(
            [header[0], header[1], b"\x00" * (60 * 1024 * 1024 if i == 0 else 10)]
        )  # oversized
        time.sleep(0.01)
    raw.close(linger=1000)
    ctx.term()
    assert masks_flow(ipc_dir)
    after = worker_pids(ipc_dir)
    assert after == pids, "a worker restarted because of garbage"
    with subscriber(ipc_dir, (m.TOPIC_STATUS,)) as sub:
        # one Status of each worker is enough (every heartbeat carries the counts): not a 2 s window
        statuses = {s.worker: s for s in collect(sub, 2, until=every_worker_said)}
    assert statuses["deeplab"].info["invalid"] > 0 and statuses["fuser"].info["invalid"] > 0
    for w, p in pids.items():
        assert rss_mb(p) - rss0[w] < 100, f"{w} grew from {rss0[w]:.0f} to {rss_mb(p):.0f} MB"
    assert proc.poll() is None and "Traceback" not in shared.output()


def test_slow_and_vanished_subscribers_do_not_slow_the_pipeline(shared):
    proc, ipc_dir = shared.get(), shared.ipc_dir
    pids = worker_pids(ipc_dir)
    assert masks_flow(ipc_dir)
    # a subscriber that vanishes without unsubscribing, and one that sleeps 200 ms per message
    gone = subscriber(ipc_dir, (m.TOPIC_COLOR, m.TOPIC_OCCLUSION), rcvhwm=4)
    gone.close()
    latency_ms, ids = [], []
    with subscriber(ipc_dir, (m.TOPIC_COLOR,), rcvhwm=4) as slow:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 4.0:
            frame = slow.recv_latest(500).get(m.TOPIC_COLOR)
            if frame is not None:
                latency_ms.append((m.now_us() - frame.sent_us) / 1000)
                ids.append(frame.frame_id)
                time.sleep(0.2)
        with subscriber(ipc_dir, (m.TOPIC_STATUS,)) as sub:
            statuses = {s.worker: s for s in collect(sub, 1.5, until=every_worker_said)}
    # the slow subscriber keeps up with the newest frame: no backlog builds up anywhere
    assert len(ids) >= 10
    assert max(latency_ms[1:]) < 500, latency_ms
    assert (ids[-1] - ids[0]) / len(ids) > 2  # ~3 frames apart at 15 fps / 5 per s: it skips, never queues
    assert statuses["capture"].info["rate_hz"] > 12  # configured 15 fps
    assert statuses["fuser"].info["rate_hz"] > 5
    assert proc.poll() is None and worker_pids(ipc_dir) == pids


def test_a_hung_worker_is_killed_and_restarted(shared):
    proc, ipc_dir = shared.get(), shared.ipc_dir  # hang_timeout_s 3 (FAULT_RUNTIME)
    pids = worker_pids(ipc_dir)
    assert masks_flow(ipc_dir)
    os.kill(pids["sam"], signal.SIGSTOP)  # alive but silent: no heartbeat, no work
    new = wait_for(lambda: (p := worker_pids(ipc_dir, 5)).get("sam") not in (None, pids["sam"]) and p, 40)
    assert new, "the hung sam worker was not replaced"
    assert not alive(pids["sam"])
    assert all(new[w] == pids[w] for w in ("capture", "deeplab", "fuser"))
    assert masks_flow(ipc_dir)
    assert proc.poll() is None
    assert "sam looks hung" in shared.output()


def log_lines(path) -> list[str]:
    """The lines of the log file at ``path`` (none when it does not exist)."""
    try:
        return path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return []


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_the_log_file_follows_logrotate_and_survives_a_full_disk(shared):
    proc, ipc_dir = shared.get(), shared.ipc_dir
    log = Path(shared.sections["logging"]["file"])
    pids = worker_pids(ipc_dir)
    assert wait_for(lambda: log_lines(log), 10)
    try:
        # logrotate's default (rename): records go to a new file at the configured path, a restarted
        # worker's own records (through the log sink) too
        os.rename(log, log.with_suffix(".log.1"))
        os.kill(pids["sam"], signal.SIGKILL)
        new = wait_for(lambda: (p := worker_pids(ipc_dir, 5)).get("sam") not in (None, pids["sam"]) and p, 30)
        assert new, "sam was not restarted"
        started = f"started sam (pid {new['sam']})"
        assert started not in log.with_suffix(".log.1").read_text(), "records went to the renamed file"
        assert started in log.read_text()
        assert wait_for(lambda: any(r.split()[2:3] == ["sam"] for r in log_lines(log)), 20), log_lines(log)
        # copytruncate: copied, then emptied in place; appending starts again at 0 (no hole of NULs)
        shutil.copyfile(log, log.with_suffix(".log.2"))
        os.truncate(log, 0)
        assert wait_for(lambda: log_lines(log), 10)
        assert not log.read_bytes().startswith(b"\0")
        # a full disk: the path now names /dev/full (every write fails with ENOSPC)
        said = "logging.file: cannot write"
        before = shared.output().count(said)  # a fresh daemon's output file starts empty
        log.unlink()
        log.symlink_to("/dev/full")
        assert wait_for(lambda: said in shared.output()[-20_000:], 10), shared.output()[-2000:]
        infos = shared.output().count(" INFO ")
        assert wait_for(lambda: shared.output().count(" INFO ") >= infos + 2, 10)  # records still on stderr
        text = shared.output()
        assert text.count(said) == before + 1 and "No space left on device" in text, text[-3000:]
        assert "--- Logging error ---" not in text and "Traceback" not in text, text[-3000:]
        # space again (the link removed): a new file at the path, and one line saying so
        log.unlink()
        assert wait_for(lambda: log_lines(log), 10)
        assert "logging.file: writing" in shared.output()
        assert proc.poll() is None
    finally:
        if log.is_symlink():
            log.unlink()


def test_sigterm_stops_every_process_within_the_bound(shared):
    """Last on the shared daemon: whatever the tests above did to it, SIGTERM stops it cleanly."""
    proc, ipc_dir = shared.get(), shared.ipc_dir
    pids = worker_pids(ipc_dir)
    assert masks_flow(ipc_dir)
    t0 = time.monotonic()
    code, _ = stop(proc)
    assert code == 0, shared.output()
    assert time.monotonic() - t0 < 10
    assert not any(alive(p) for p in pids.values())
