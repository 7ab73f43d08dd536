"""Process lifecycle faults on real processes: Ctrl-C to the whole process group while workers
start, SIGINT and SIGTERM back to back during a restart back-off, the supervisor stopped (SIGSTOP)
longer than the hang timeout, the ipc folder removed mid-run, a tcp port held by a plain listener.
Each ends with the documented exit code, one line at most, no traceback, no process left, and the
ipc endpoints free for the next ``run``."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from conftest import wait_for
from harness import (
    Daemons,
    SharedDaemon,
    alive,
    cli,
    collect,
    subscriber,
    tiny_checkpoint,
    worker_pids,
    write_config,
)

from kinect_occlusion.bus import Proxy

pytestmark = pytest.mark.slow

# 3 s of silence is a hang; a crashed worker waits 1 s before its restart (time to signal the
# supervisor during the back-off)
RUNTIME = {"hang_timeout_s": 3.0, "restart_backoff_s": [1.0, 2.0], "shutdown_timeout_s": 3.0}


def children(pid: int) -> set[int]:
    """The processes ``pid`` started (its workers and multiprocessing's resource tracker)."""
    kids: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids |= {int(k) for k in (task / "children").read_text().split()}
        except FileNotFoundError:
            continue
    return kids


def all_gone(pids) -> bool:
    return wait_for(lambda: not any(alive(p) for p in pids), 5.0)


def masks_flow(ipc_dir, n: int = 3, timeout: float = 20.0) -> bool:
    with subscriber(ipc_dir) as sub:
        return len(collect(sub, timeout, until=lambda msgs: len(msgs) >= n)) >= n


def ended(proc: subprocess.Popen, timeout: float = 20.0) -> tuple[int, str]:
    """Exit code and output of a daemon that was signalled (killed, and the test failed, if it hangs)."""
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail(f"the daemon did not stop within {timeout} s:\n{(proc.communicate()[0] or '')[-3000:]}")
    return proc.returncode, out


def endpoints_free(ipc_dir) -> bool:
    """Whether a proxy can bind the daemon's ipc endpoints again (UserError while their locks are held)."""
    with Proxy(f"ipc://{ipc_dir}/in", f"ipc://{ipc_dir}/out", hwm=8):
        return True


def test_ctrl_c_while_workers_start_is_an_ordered_stop(tmp_path, ipc_dir):
    """Ctrl-C reaches the whole process group: workers still importing got KeyboardInterrupt
    tracebacks and the supervisor logged their exits as crashes to restart. Now workers (and the
    viewer) ignore SIGINT: the supervisor stops them, in order, exit 0, endpoints released."""
    daemons = Daemons(tmp_path, ipc_dir)
    try:
        log = tmp_path / "first.log"
        proc = daemons.launch(runtime=RUNTIME, viewer={"enabled": True, "port": 0}, log=log)  # a child too
        # the consumers are spawned (capture waits for them to load): a signal in the few ms of a
        # spawn itself can be lost (see runtime.child.sigint_ignored_by_children), so not then
        assert wait_for(lambda: "started deeplab (pid" in log.read_text(), 30), log.read_text()
        kids = children(proc.pid)
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        ended(proc)
        code, out = proc.returncode, log.read_text()
        assert code == 0, out
        assert "Traceback" not in out and "KeyboardInterrupt" not in out, out
        assert "restarting in" not in out, out
        assert all_gone(kids), f"left running: {[k for k in kids if alive(k)]}"
        assert endpoints_free(ipc_dir)
    finally:
        daemons.stop_all()


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    daemon = SharedDaemon(tmp_path_factory.mktemp("signals"), runtime=RUNTIME)
    yield daemon
    daemon.close()


def test_a_paused_supervisor_kills_no_running_worker_but_catches_a_stopped_one(shared):
    """SIGSTOP of the supervisor for longer than the hang timeout: on SIGCONT every worker was
    declared hung and killed (the silence was the supervisor's); now their deadlines move by the
    gap. A worker stopped meanwhile (SIGSTOP too) is still caught as hung and replaced."""
    proc, ipc_dir = shared.get(), shared.ipc_dir
    pids = worker_pids(ipc_dir)
    assert masks_flow(ipc_dir)
    os.kill(pids["sam"], signal.SIGSTOP)
    os.kill(proc.pid, signal.SIGSTOP)
    time.sleep(RUNTIME["hang_timeout_s"] + 1.0)  # the pause itself is the fault under test
    os.kill(proc.pid, signal.SIGCONT)
    assert wait_for(lambda: "the supervisor did not run for" in shared.output(), 10)
    new = wait_for(lambda: (p := worker_pids(ipc_dir, 5)).get("sam") not in (None, pids["sam"]) and p, 30)
    assert new, "the stopped sam worker was not replaced"
    assert not alive(pids["sam"])
    assert all(new[w] == pids[w] for w in ("capture", "deeplab", "fuser")), (pids, new)
    assert masks_flow(ipc_dir), "no masks after the supervisor resumed"
    out = shared.output()
    assert out.count("looks hung") == 1 and "sam looks hung" in out, out


def test_sigint_and_sigterm_during_a_restart_back_off_restart_nothing(shared):
    """A worker killed, then SIGINT and SIGTERM back to back while the supervisor waits to restart
    it: one ordered stop, exit 0, nothing started after the signals, no process left."""
    proc, ipc_dir = shared.get(), shared.ipc_dir
    pids = worker_pids(ipc_dir)
    os.kill(pids["deeplab"], signal.SIGKILL)
    assert wait_for(lambda: "deeplab exited with code -9; restarting in" in shared.output(), 10)
    kids = children(proc.pid)
    mark = len(shared.output())
    os.kill(proc.pid, signal.SIGINT)
    os.kill(proc.pid, signal.SIGTERM)
    ended(proc)
    after = shared.output()[mark:]
    assert proc.returncode == 0, shared.output()
    assert "started deeplab" not in after and "Traceback" not in after, after
    assert "did not stop in time" not in after, after
    assert all_gone(kids | set(pids.values()))
    assert endpoints_free(ipc_dir)


def test_the_ipc_folder_removed_under_a_running_daemon_stops_it_with_code_5(shared):
    """Before: the pipeline ran on, but nothing new could connect (status, apps, a restarted worker)
    and a second pipeline could bind the same paths. Now: one error line, ordered stop, exit 5 (a
    service manager restarts it), and the paths can be bound again."""
    proc, ipc_dir = shared.get(), shared.ipc_dir  # a fresh daemon: the test above stopped its own
    pids = worker_pids(ipc_dir)
    kids = children(proc.pid)
    shutil.rmtree(ipc_dir)
    try:
        code = proc.wait(10)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the daemon ran on without its ipc folder:\n{shared.output()[-2000:]}")
    out = shared.output()
    assert code == 5, out
    assert out.count("ERROR") == 1 and f"{ipc_dir}/" in out and "was removed" in out, out
    assert "Traceback" not in out, out
    assert all_gone(kids | set(pids.values()))
    assert endpoints_free(ipc_dir)  # the folder made again, as a restarted daemon does


PORT_USERS = {
    "frontend": lambda port: {"bus": {"frontend": f"tcp://127.0.0.1:{port}"}},
    "backend": lambda port: {"bus": {"backend": f"tcp://127.0.0.1:{port}"}},
    "metrics": lambda port: {"metrics": {"prometheus_port": port}},
    "viewer": lambda port: {"viewer": {"enabled": True, "port": port}},
}


@pytest.mark.parametrize("user", PORT_USERS)
def test_a_port_held_by_a_plain_listener_is_one_line_and_exit_2(tmp_path, ipc_dir, user):
    """A tcp port taken by something that is not ZeroMQ (a plain listening socket); the metrics port
    raised an internal error (exit 70) after the proxy had bound."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        sections = {"deeplab": {"runtime": "torch"}, **PORT_USERS[user](port)}
        cfg = write_config(tmp_path, ipc_dir, tiny_checkpoint(tmp_path / "model.pt"), **sections)
        result = cli("run", "--config", str(cfg))
        errors = [line for line in result.stderr.splitlines() if "error" in line]
        assert result.returncode == 2, result.stderr
        assert len(errors) == 1 and f":{port}" in errors[0], result.stderr
        assert "Traceback" not in result.stderr and "started " not in result.stderr, result.stderr
        held.settimeout(1.0)  # the port is still the plain listener's: a client reaches it
        with socket.create_connection(("127.0.0.1", port), 1.0):
            held.accept()[0].close()
