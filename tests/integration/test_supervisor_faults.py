"""The supervisor under attack and under stuck workers: forged heartbeats, a compute step that never
returns, SIGKILL of the supervisor itself, a worker given up. Real processes and sockets; only the
camera and the weights are fake."""

from __future__ import annotations

import os
import signal
import time

import pytest
from conftest import wait_for
from harness import FAULT_RUNTIME, Daemons, SharedDaemon, alive, collect, stop, subscriber, worker_pids

from kinect_occlusion import messages as m
from kinect_occlusion.bus import Publisher

pytestmark = pytest.mark.slow

RUNTIME = {**FAULT_RUNTIME, "shutdown_timeout_s": 2.0}


@pytest.fixture
def daemon(tmp_path, ipc_dir):
    """Launches daemons with fast heartbeats (``RUNTIME``, overridable); stops them at the end."""
    daemons = Daemons(tmp_path, ipc_dir)
    yield lambda env=None, **runtime: daemons.launch(env, runtime={**RUNTIME, **runtime})
    daemons.stop_all()


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One daemon for the spin-once test and both kinds of forged Status (one start-up, not three): its
    sam worker spins in its first compute step (creating ``shared.marker``), is killed once, restarted."""
    tmp = tmp_path_factory.mktemp("shared")
    marker = tmp / "spun"
    env = {"KINECT_OCCLUSION_FAULT": f"sam=spin-once:{marker}"}
    daemon = SharedDaemon(tmp, env=env, runtime={**RUNTIME, "compute_timeout_s": 3.0})
    daemon.marker = marker  # type: ignore[attr-defined]
    yield daemon
    daemon.close()


def supervisor_status(ipc_dir, seconds: float = 2.0) -> m.Status | None:
    with subscriber(ipc_dir, (m.TOPIC_STATUS,)) as sub:
        got = collect(sub, seconds, until=lambda msgs: any(s.worker == "supervisor" for s in msgs))
    return next((s for s in reversed(got) if s.worker == "supervisor"), None)


def worker_state(ipc_dir, worker: str, state: str) -> bool:
    def said(msgs):
        return any(s.worker == worker and s.state == state for s in msgs)

    with subscriber(ipc_dir, (m.TOPIC_STATUS,)) as sub:  # stops at the first Status saying so
        return said(collect(sub, 1.0, until=said))


def fused_masks_flow(ipc_dir, n: int = 3, timeout: float = 30.0) -> bool:
    with subscriber(ipc_dir) as sub:
        msgs = collect(sub, timeout, until=lambda got: sum(x.fused for x in got) >= n)
    return sum(x.fused for x in msgs) >= n


def test_a_worker_spinning_in_compute_is_killed_once_and_restarted(shared):
    """First on the shared daemon (its sam spins once); the forged-Status tests below run after it."""
    proc, ipc_dir, marker = shared.get(), shared.ipc_dir, shared.marker
    pids = worker_pids(ipc_dir)
    assert wait_for(marker.exists, 30), "sam never reached its compute step"
    new = wait_for(lambda: (p := worker_pids(ipc_dir, 5)).get("sam") not in (None, pids["sam"]) and p, 30)
    assert new, "the sam worker stuck in compute was not replaced"
    assert not alive(pids["sam"])
    assert all(new[w] == pids[w] for w in ("capture", "deeplab", "fuser"))
    assert fused_masks_flow(ipc_dir), "fused masks did not come back after the restart"
    assert proc.poll() is None
    out = shared.output()
    assert out.count("sam looks hung (computing for") == 1, out


LIES = {
    "wrong type": [{"loop_age_s": "x"}, {"rate_hz": "fast"}, {"last_frame_id": None}],
    "out of range": [{"loop_age_s": 1e9}, {"loop_age_s": float("nan")}, {"rate_hz": -1}],
}


@pytest.mark.parametrize("kind", LIES)
def test_forged_status_with_a_real_pid_kills_nobody_and_is_counted(shared, kind):
    proc, ipc_dir = shared.get(), shared.ipc_dir
    # past the shared daemon's one spin of sam (killed and replaced) before taking the pids
    assert wait_for(lambda: "sam looks hung" in shared.output(), 60)
    assert fused_masks_flow(ipc_dir)
    pids = worker_pids(ipc_dir)
    before = supervisor_status(ipc_dir)
    assert before is not None
    lies = LIES[kind]
    sent = 0
    with Publisher(f"ipc://{ipc_dir}/in", sndhwm=1000) as pub:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 5.0:  # longer than hang_timeout_s (3 s)
            for name, pid in [*pids.items(), ("sam", 1), ("ghost", pids["sam"])]:
                for info in lies:
                    pub.publish(
                        m.Status(
                            camera="bed1",
                            frame_id=0,
                            ts_us=0,
                            worker=name,
                            pid=pid,
                            state="running",
                            info=info,
                        )
                    )
                    sent += 1
            time.sleep(0.05)
    status = supervisor_status(ipc_dir)
    assert proc.poll() is None, "the supervisor died"
    # every forged Status is counted (a few may be dropped at the monitor's HWM before it sees them)
    assert status is not None and status.info["invalid"] - before.info["invalid"] >= sent // 3, (status, sent)
    assert worker_pids(ipc_dir) == pids, "a worker was killed because of a forged Status"
    assert fused_masks_flow(ipc_dir)
    out = shared.output()
    assert out.count("looks hung") == 1 and "Traceback" not in out, out  # only sam's spin
    if kind == list(LIES)[-1]:  # the last kind stops the shared daemon: a clean exit after both
        code, _ = stop(proc)
        assert code == 0, shared.output()


def test_sigterm_stops_a_worker_stuck_in_compute_with_sigkill(daemon, ipc_dir):
    proc = daemon(env={"KINECT_OCCLUSION_FAULT": "sam=spin"})
    pids = worker_pids(ipc_dir)
    assert wait_for(lambda: worker_state(ipc_dir, "sam", "computing"), 30)
    t0 = time.monotonic()
    code, out = stop(proc)
    assert code == 0, out
    assert time.monotonic() - t0 < RUNTIME["shutdown_timeout_s"] + 5
    assert "sam did not stop in time: killing it" in out
    assert not any(alive(p) for p in pids.values())


def test_sigkill_of_the_supervisor_leaves_no_worker_alive(daemon, ipc_dir):
    proc = daemon(env={"KINECT_OCCLUSION_FAULT": "sam=spin"})  # one worker stuck in compute too
    pids = worker_pids(ipc_dir)
    assert wait_for(lambda: worker_state(ipc_dir, "sam", "computing"), 30)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(5)
    survivors = wait_for(lambda: not any(alive(p) for p in pids.values()), 5.0)
    left = {w: p for w, p in pids.items() if alive(p)}
    for p in left.values():
        os.kill(p, signal.SIGKILL)
    assert survivors, f"workers still alive 5 s after the supervisor died: {left}"


def test_a_vital_worker_given_up_stops_the_daemon_with_code_4(daemon, ipc_dir):
    proc = daemon(env={"KINECT_OCCLUSION_FAULT": "deeplab=raise"}, max_restarts=1, restart_window_s=120)
    pids = worker_pids(ipc_dir)
    try:
        out, _ = proc.communicate(timeout=90)
    except Exception:
        stop(proc)
        raise
    assert proc.returncode == 4, out
    assert "deeplab failed 2 times" in out and "stopping: deeplab was given up" in out, out
    assert not any(alive(p) for w, p in pids.items() if w != "deeplab")
