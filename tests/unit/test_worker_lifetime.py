"""A worker process's lifetime: it stops on SIGTERM whatever its main thread holds, and it dies with
its parent. Real processes and real signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

from conftest import ROOT, wait_for


def python(code: str, timeout: float = 20.0) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_sigterm_while_the_main_thread_holds_the_stop_events_lock_does_not_deadlock():
    # Event.wait()/set() hold the event's lock; a handler calling stop.set() there never returned
    proc = python(
        """
        import os, signal, sys, threading
        from kinect_occlusion.runtime.worker import install_stop_handlers
        stop = threading.Event()
        install_stop_handlers(stop)
        with stop._cond:
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGTERM)  # and a second one, as PDEATHSIG sends
            sum(range(100_000))  # bytecode boundaries: the handlers run here
        sys.exit(0 if stop.wait(5) else 1)
        """
    )
    assert proc.returncode == 0, proc.stderr


def test_a_process_dies_with_its_parent(tmp_path):
    pid_file = tmp_path / "child.pid"
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import multiprocessing as mp, os, time
                from kinect_occlusion.runtime.worker import die_with_parent

                def child(parent):
                    assert die_with_parent(parent)
                    open({str(pid_file)!r}, "w").write(str(os.getpid()))
                    time.sleep(60)

                if __name__ == "__main__":
                    mp.get_context("fork").Process(target=child, args=(os.getpid(),)).start()
                    time.sleep(60)
                """
            ),
        ],
        cwd=ROOT,
    )
    try:
        assert wait_for(lambda: pid_file.exists() and pid_file.read_text(), 20)
        child = int(pid_file.read_text())
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(5)
        t0 = time.monotonic()
        assert wait_for(lambda: not alive(child), 5), "the child outlived its parent"
        assert time.monotonic() - t0 < 5
    finally:
        if parent.poll() is None:
            parent.kill()


def test_a_process_whose_parent_is_already_gone_says_so():
    proc = python(
        """
        import sys
        from kinect_occlusion.runtime.worker import die_with_parent
        sys.exit(0 if not die_with_parent(1) else 1)  # pid 1 is not our parent
        """
    )
    assert proc.returncode == 0, proc.stderr


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
